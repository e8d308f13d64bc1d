# ruff: noqa: RUF001  (CJK punctuation in literals is intended)
"""datatrove's side of benchmarks/text_pretrain_clean.py (runs in its own virtualenv).

FineWeb's recipe with datatrove's own blocks: fastText language ID (the same lid.176 file
prepflow uses, through a LambdaFilter: datatrove's LanguageFilter downloads its model),
Gopher repetition and quality, C4 (terminal punctuation off, as FineWeb), FineWeb quality,
then datatrove's 4-stage MinHash dedup. Word tokenisation is NLTK's Treebank tokenizer
without the punkt sentence split (punkt's data cannot be downloaded here), which makes
datatrove a little faster than stock, never slower.

Usage: python text_pretrain_clean_datatrove.py SHARD_DIR WORK_DIR LID_MODEL WORKERS
       python text_pretrain_clean_datatrove.py --steps INPUT_JSONL LID_MODEL
(``--steps``: each filter alone over every document of the input, in this process, CPU
seconds; prints a JSON object of milliseconds per 1,000 documents by step.)
"""

import json
import re
import sys
import time

from datatrove.executor import LocalPipelineExecutor
from datatrove.pipeline.dedup import MinhashDedupSignature
from datatrove.pipeline.dedup.minhash import (
    MinhashConfig,
    MinhashDedupBuckets,
    MinhashDedupCluster,
    MinhashDedupFilter,
)
from datatrove.pipeline.filters import (
    C4QualityFilter,
    FineWebQualityFilter,
    GopherQualityFilter,
    GopherRepetitionFilter,
    LambdaFilter,
)
from datatrove.pipeline.readers import JsonlReader
from datatrove.pipeline.writers import JsonlWriter
from datatrove.utils.word_tokenizers import WordTokenizer

SENTENCE_END = re.compile(r"(?<=[.!?。！？])\s+")


class TreebankTokenizer(WordTokenizer):
    """NLTK's word tokenizer without punkt (no data files needed)."""

    def __init__(self):
        super().__init__("en")
        from nltk.tokenize import NLTKWordTokenizer

        self._tok = NLTKWordTokenizer()

    def word_tokenize(self, text):
        return [t.strip() for t in self._tok.tokenize(text) if t.strip()]

    def sent_tokenize(self, text):
        return [s for s in SENTENCE_END.split(text) if s.strip()]

    def span_tokenize(self, text):
        spans, start = [], 0
        for m in SENTENCE_END.finditer(text):
            spans.append((start, m.start()))
            start = m.end()
        return [*spans, (start, len(text))]


class LangId:
    """Keep en/zh with fastText score >= 0.65 (picklable for the worker processes)."""

    def __init__(self, path):
        self.path, self.model = path, None

    def __call__(self, doc):
        if self.model is None:
            import fasttext

            self.model = fasttext.load_model(self.path)
        text = " ".join(doc.text[:1000].split())
        if not text:
            return False
        labels, probs = self.model.predict(text, k=1)
        return labels[0] in ("__label__en", "__label__zh") and probs[0] >= 0.65


def sign(signature, doc):
    """What MinhashDedupSignature.run does per document, without its file writes."""
    shingles = signature.get_shingles(doc.text)
    return signature.get_signature(shingles) if shingles.size else None


def steps(source: str, lid: str) -> None:
    """Each step alone over every document (the same documents prepflow's side times)."""
    from datatrove.data import Document

    with open(source, encoding="utf-8") as f:
        docs = [Document(text=json.loads(line)["text"], id=str(i)) for i, line in enumerate(f)]
    tok = TreebankTokenizer()
    config = MinhashConfig()
    signature = MinhashDedupSignature(output_folder="/tmp/unused", config=config, language=tok)
    timed = {
        "gopher_quality": GopherQualityFilter(language=tok).filter,
        "language_id": LangId(lid),
        "gopher_repetition": GopherRepetitionFilter(language=tok).filter,
        "c4_quality": C4QualityFilter(filter_no_terminal_punct=False, language=tok).filter,
        "fineweb_quality": FineWebQualityFilter(language=tok).filter,
        "minhash_signatures": lambda d: sign(signature, d),
    }
    out = {}
    for name, fn in timed.items():
        fn(docs[0])  # load models and tables before the clock starts
        start = time.process_time()
        for doc in docs:
            fn(doc)
        out[name] = 1e6 * (time.process_time() - start) / len(docs)
    print(json.dumps(out))


def main(shards: str, work: str, lid: str, workers: int) -> None:
    tok = TreebankTokenizer()
    config = MinhashConfig()
    tasks = workers

    def run(steps, n_tasks, name):
        LocalPipelineExecutor(
            pipeline=steps,
            tasks=n_tasks,
            workers=min(workers, n_tasks),
            logging_dir=f"{work}/logs/{name}",
        ).run()

    run(
        [
            JsonlReader(shards),
            LambdaFilter(LangId(lid)),
            GopherRepetitionFilter(language=tok),
            GopherQualityFilter(language=tok),
            C4QualityFilter(filter_no_terminal_punct=False, language=tok),
            FineWebQualityFilter(language=tok),
            JsonlWriter(f"{work}/filtered"),
        ],
        tasks,
        "filter",
    )
    run(
        [
            JsonlReader(f"{work}/filtered"),
            MinhashDedupSignature(output_folder=f"{work}/sigs", config=config, language=tok),
        ],
        tasks,
        "sigs",
    )
    run(
        [
            MinhashDedupBuckets(
                input_folder=f"{work}/sigs", output_folder=f"{work}/buckets", config=config
            )
        ],
        config.num_buckets,
        "buckets",
    )
    run(
        [
            MinhashDedupCluster(
                input_folder=f"{work}/buckets", output_folder=f"{work}/remove_ids", config=config
            )
        ],
        1,
        "cluster",
    )
    run(
        [
            JsonlReader(f"{work}/filtered"),
            MinhashDedupFilter(input_folder=f"{work}/remove_ids"),
            JsonlWriter(f"{work}/output"),
        ],
        tasks,
        "dedup",
    )


if __name__ == "__main__" and sys.argv[1] == "--steps":
    steps(sys.argv[2], sys.argv[3])
elif __name__ == "__main__":
    main(sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4]))
