"""DataFlow's side of benchmarks/code_pt_filter.py (runs in its own virtualenv, .bench/dataflow).

Runs DataFlow's shipped CPU pipeline ``PTCodeFilter_CPUPipeline`` (statics/pipelines/
cpu_pipelines/code_pt_filter.py) unchanged except for its storage, which points at the
benchmark input (fields ``text``, ``lines``, ``filename``, ``filetype``, ``line_count``).

Usage: python code_pt_filter_dataflow.py INPUT.jsonl WORK_DIR
"""

import sys

from dataflow.statics.pipelines.cpu_pipelines.code_pt_filter import PTCodeFilter_CPUPipeline
from dataflow.utils.storage import FileStorage


def main(source: str, work: str) -> None:
    pipeline = PTCodeFilter_CPUPipeline()
    pipeline.storage = FileStorage(
        first_entry_file_name=source, cache_path=work, file_name_prefix="step", cache_type="jsonl"
    )
    pipeline.forward()


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
