"""A search index over chunks: BM25 (bm25s), dense vectors (cosine), and both fused (RRF).

What is stored is plain data: ``index.json`` (the chunks, sorted by id) and, when the chunks had
embeddings, ``vectors.npy``. BM25 is rebuilt when the index is loaded (bm25s indexes ten thousand
chunks in well under a second), so the file format does not depend on a library's pickles.
"""

from __future__ import annotations

import itertools
import os
import shutil
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import orjson

from prepflow.core.errors import ConfigError
from prepflow.operators.common.textmatch import TOKEN, normalize

MARKER = ".prepflow-index"
RRF_K = 60


def _is_cjk(token: str) -> bool:
    return len(token) == 1 and ord(token) >= 0x3040


def search_tokens(text: str) -> list[str]:
    """BM25 terms: normalized words, and CJK characters with their bigrams (no segmenter)."""
    tokens = [m.group() for m in TOKEN.finditer(normalize(text))]
    out = list(tokens)
    out += [a + b for a, b in itertools.pairwise(tokens) if _is_cjk(a) and _is_cjk(b)]
    return out


@dataclass(frozen=True)
class Hit:
    chunk_id: str
    score: float


class SearchIndex:
    """Chunks with BM25 and (optionally) dense search."""

    def __init__(
        self,
        ids: list[str],
        texts: list[str],
        doc_ids: list[str],
        vectors: np.ndarray | None = None,
    ) -> None:
        import bm25s

        self.ids, self.texts, self.doc_ids = ids, texts, doc_ids
        self.position = {chunk_id: i for i, chunk_id in enumerate(ids)}
        self.vectors = None
        if vectors is not None:
            norms = np.linalg.norm(vectors, axis=1, keepdims=True)
            self.vectors = (vectors / np.maximum(norms, 1e-12)).astype(np.float32)
        self._bm25 = bm25s.BM25()
        corpus = [search_tokens(t) or [""] for t in texts]
        self._bm25.index(corpus, show_progress=False)
        self._vocab = set(self._bm25.vocab_dict)

    def __len__(self) -> int:
        return len(self.ids)

    def text(self, chunk_id: str) -> str:
        return self.texts[self.position[chunk_id]]

    def bm25(self, query: str, k: int) -> list[Hit]:
        terms = [t for t in search_tokens(query) if t in self._vocab]
        if not terms or not self.ids:
            return []
        k = min(k, len(self.ids))
        docs, scores = self._bm25.retrieve([terms], k=k, show_progress=False)
        hits = [Hit(self.ids[int(d)], float(s)) for d, s in zip(docs[0], scores[0], strict=True)]
        # ties in id order, so that a replay gives the same list whatever the library's sort
        return sorted(
            (h for h in hits if h.score > 0), key=lambda h: (-round(h.score, 6), h.chunk_id)
        )

    def dense(self, vector: Sequence[float], k: int) -> list[Hit]:
        if self.vectors is None:
            raise ConfigError("this index has no embeddings: build it from an 'embedding' column")
        q = np.asarray(vector, np.float32)
        q = q / max(float(np.linalg.norm(q)), 1e-12)
        scores = self.vectors @ q
        top = np.argsort(-scores, kind="stable")[: min(k, len(self.ids))]
        return [Hit(self.ids[i], float(scores[i])) for i in top]

    def search(
        self, query: str, k: int, mode: str = "bm25", vector: Sequence[float] | None = None
    ) -> list[Hit]:
        """Top ``k`` chunks for ``query``: ``bm25``, ``dense`` (needs ``vector``, the query's
        embedding) or ``hybrid`` (reciprocal rank fusion of both)."""
        if mode == "bm25":
            return self.bm25(query, k)
        if vector is None:
            raise ConfigError(f"{mode} search needs the query's embedding")
        if mode == "dense":
            return self.dense(vector, k)
        fused: dict[str, float] = {}
        for hits in (self.bm25(query, 4 * k), self.dense(vector, 4 * k)):
            for rank, hit in enumerate(hits):
                fused[hit.chunk_id] = fused.get(hit.chunk_id, 0.0) + 1 / (RRF_K + rank + 1)
        ranked = sorted(fused.items(), key=lambda kv: (-kv[1], kv[0]))[:k]
        return [Hit(c, s) for c, s in ranked]

    # ---- files -------------------------------------------------------------------------------

    def save(self, directory: str | os.PathLike[str]) -> None:
        """Write the index to ``directory`` (replaced only if an index made by prepflow)."""
        target = Path(directory)
        if target.exists() and not (target / MARKER).exists() and any(target.iterdir()):
            raise ConfigError(f"{target} exists and is not a prepflow index: choose index_dir")
        target.parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}.", dir=target.parent))
        try:
            (tmp / MARKER).write_text("search index written by prepflow\n")
            body = {"ids": self.ids, "texts": self.texts, "doc_ids": self.doc_ids}
            (tmp / "index.json").write_bytes(orjson.dumps(body))
            if self.vectors is not None:
                np.save(tmp / "vectors.npy", self.vectors)
            if target.exists():
                shutil.rmtree(target)
            os.replace(tmp, target)
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise

    @classmethod
    def load(cls, directory: str | os.PathLike[str]) -> SearchIndex:
        path = Path(directory)
        if not (path / "index.json").is_file():
            raise ConfigError(
                f"no search index at {path}: run BuildSearchIndex (index_dir: {path}) first"
            )
        body = orjson.loads((path / "index.json").read_bytes())
        vectors = np.load(path / "vectors.npy") if (path / "vectors.npy").exists() else None
        return cls(body["ids"], body["texts"], body["doc_ids"], vectors)


_LOADED: dict[tuple[str, float], SearchIndex] = {}


def load_index(directory: str) -> SearchIndex:
    """The index at ``directory``, loaded once per process while its files do not change."""
    stamp = Path(directory, "index.json")
    key = (str(Path(directory).resolve()), stamp.stat().st_mtime if stamp.exists() else 0.0)
    if key not in _LOADED:
        _LOADED.clear()
        _LOADED[key] = SearchIndex.load(directory)
    return _LOADED[key]


def build_index(rows: list[dict[str, Any]]) -> SearchIndex:
    """An index of ``{chunk_id, doc_id, text[, embedding]}`` rows, in chunk id order."""
    rows = sorted(rows, key=lambda r: r["chunk_id"])
    for a, b in itertools.pairwise(rows):
        if a["chunk_id"] == b["chunk_id"]:
            raise ConfigError(f"chunk id {a['chunk_id']!r} occurs twice: ids must be unique")
    have = [r.get("embedding") is not None for r in rows]
    if any(have) and not all(have):
        missing = next(r["chunk_id"] for r in rows if r.get("embedding") is None)
        raise ConfigError(f"chunk {missing!r} has no embedding while others have")
    vectors = np.asarray([r["embedding"] for r in rows], np.float32) if rows and all(have) else None
    return SearchIndex(
        [r["chunk_id"] for r in rows],
        [r["text"] for r in rows],
        [r["doc_id"] for r in rows],
        vectors,
    )
