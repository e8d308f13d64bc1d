"""DataFlow's side of benchmarks/text_pretrain_clean.py (runs in its own virtualenv).

Runs DataFlow's shipped CPU pipeline ``PTTextFilter_CPUPipeline`` (statics/pipelines/
cpu_pipelines/text_pt_filter.py) unchanged except for its storage, which points at the
benchmark input (field ``raw_content``). NLTK's punkt data cannot be downloaded here, so
NLTK_DATA must point at a stand-in with empty punkt tables (the tokenizer then knows no
abbreviations; its cost is the same).

Usage: python text_pretrain_clean_dataflow.py INPUT.jsonl WORK_DIR
"""

import sys

from dataflow.statics.pipelines.cpu_pipelines.text_pt_filter import PTTextFilter_CPUPipeline
from dataflow.utils.storage import FileStorage


def main(source: str, work: str) -> None:
    pipeline = PTTextFilter_CPUPipeline()
    pipeline.storage = FileStorage(
        first_entry_file_name=source, cache_path=work, file_name_prefix="step", cache_type="jsonl"
    )
    pipeline.forward()


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
