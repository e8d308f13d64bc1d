"""A labelled set for measuring LLM judges: items whose good/bad label a careful human agrees with.

    .venv/bin/python benchmarks/judge_set.py build   # writes benchmarks/data/judge_set.jsonl
    .venv/bin/python benchmarks/judge_set.py stats   # counts per kind and label

Built deterministically (fixed seeds, sorted inputs) from:

* real text from ``../shared/data/corpora`` beside the checkout (``--corpora``): Python documentation paragraphs,
  the Debian reference (English and Chinese), Jargon File entries, KJV verses. A *good* item is a
  whole prose paragraph (200-700 characters, ends a sentence, no markup or URLs). A *bad* item is
  a different real paragraph made clearly bad in one way a data-quality judge must catch: word
  salad (its words shuffled), a cut-off fragment (a short slice starting and ending mid-word),
  navigation boilerplate around its first words, one of its sentences repeated on eight lines,
  mojibake (Chinese UTF-8 read as cp1252) or random characters;
* ``examples/math_seeds.jsonl``: a question with its worked answer (good), and the same answer
  with the final result changed to a wrong number (bad);
* the math verifier's hand-labelled answer pairs (``tests/operators/reasoning/answer_pairs.txt``):
  a reference answer and a proposed one, good when the labels say they are equal.

Each line: ``id, source, kind, criteria, text, label (good|bad), why``. ``criteria`` is what the
judge is asked to judge (the ``criteria`` parameter of the general judge).
"""

from __future__ import annotations

import argparse
import json
import random
import re
from collections import Counter
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
OUT = REPO / "benchmarks" / "data" / "judge_set.jsonl"
CORPORA = REPO.parent / "shared" / "data" / "corpora"  # beside the checkout, as the tests find it
PAIRS = REPO / "tests" / "operators" / "reasoning" / "answer_pairs.txt"
SEEDS = REPO / "examples" / "math_seeds.jsonl"

TEXT_CRITERIA = "overall quality: correctness, clarity and usefulness"
SOLUTION_CRITERIA = "whether the answer to the question is correct, step by step and in the end"
EQUIVALENCE_CRITERIA = (
    "whether the proposed answer is mathematically equal to the reference answer "
    "(the same value in any form is right; a different value is wrong)"
)

#: good paragraphs per source, and bad ones per corruption (from a disjoint pool of paragraphs)
GOOD_PER_SOURCE = {"python_docs": 25, "debian_reference": 15, "jargon": 15, "kjv": 15, "zh": 5}
BAD_KINDS = ("word_salad", "fragment", "boilerplate", "repeated_lines", "garbage")
BAD_PER_KIND = 15
PAIRS_PER_LABEL = 20

NAV = [
    "Home | About | Blog | Contact | Login",
    "Skip to main content",
    "Menu ☰  Search...",
    "« Previous  |  Next »  |  Index  |  Modules",
    "Log in | Sign up | Cart (0)",
    "© 2024 All rights reserved. Privacy Policy · Terms of Use · Cookie Settings",
    "Share: Facebook  Twitter  LinkedIn  Email",
    "Was this page helpful? Yes / No",
    "Subscribe to our newsletter",
    "Accept all cookies   Reject   Manage preferences",
    "Back to top ↑",
]


def normalize(text: str) -> str:
    return re.sub(r"\s+", " ", text).strip()


def prose(p: str, *, zh: bool = False) -> bool:
    """A whole prose paragraph a careful reader would call good training text."""
    if not 200 <= len(p) <= 700 or re.search(r"https?:|`|::|\{|\}|\.\.\.|…|\|", p):
        return False
    if zh:
        return p.endswith("。") and sum("\u4e00" <= c <= "\u9fff" for c in p) > len(p) / 2
    letters = sum(c.isalpha() or c.isspace() for c in p)
    return p.endswith(".") and letters / len(p) > 0.9 and p.count(". ") >= 1 and p[0].isupper()


def read(name: str) -> list[str]:
    with (CORPORA / f"{name}.jsonl").open(encoding="utf-8") as f:
        return [json.loads(line)["text"] for line in f]


def paragraphs(corpora: Path) -> dict[str, list[str]]:
    """Candidate good paragraphs per source, sorted (the selection is then seeded)."""
    global CORPORA
    CORPORA = corpora
    out: dict[str, list[str]] = {}
    out["python_docs"] = [normalize(t) for t in read("python_docs_en_paragraphs")]
    out["debian_reference"] = [
        normalize(p) for t in read("debian_reference_en") for p in t.split("\n\n")
    ]
    out["jargon"] = []
    for t in read("jargon_en_entries"):
        m = re.match(r":([^:\n]+):[^\n]*\n\n(.*)", t, re.S)
        if m and "\n\n" not in m.group(2).strip():
            body = re.sub(r"^\[[^\]]*\]\s*", "", m.group(2).strip())
            body = re.sub(r"\{([^{}]*)\}", r"\1", body)  # {cross references} as plain words
            out["jargon"].append(normalize(f"{m.group(1)}: {body}"))
    out["kjv"] = []
    for t in read("kjv_bible_chapters_en"):
        verses = re.split(r"\n\s*\d+ ", "\n" + t.split("\n", 1)[1])
        text = ""
        for v in (normalize(v) for v in verses if v.strip()):
            if len(text) + len(v) > 600:
                break
            text = f"{text} {v}".strip()
        out["kjv"].append(text)
    out["zh"] = [
        normalize(p).replace(" ", "")
        for t in read("debian_reference_zh_cn")
        for p in t.split("\n\n")
    ]
    return {k: sorted(set(p for p in v if prose(p, zh=k == "zh"))) for k, v in out.items()}


def sentences(text: str) -> list[str]:
    return [s for s in re.split(r"(?<=[.!?])\s+", text) if len(s) > 30]


def corrupt(kind: str, text: str, rng: random.Random) -> tuple[str, str]:
    """A clearly bad version of ``text`` and why it is bad."""
    if kind == "word_salad":
        words = text.split()
        rng.shuffle(words)
        return " ".join(words), "word salad: the words of a real paragraph in random order"
    if kind == "fragment":
        start = rng.randrange(10, len(text) // 2)
        while start < len(text) and not (text[start - 1].isalpha() and text[start].isalpha()):
            start += 1  # start inside a word
        end = start + rng.randrange(40, 80)
        while end < len(text) and not (text[end - 1].isalpha() and text[end].isalpha()):
            end += 1  # end inside a word
        return text[start:end], "a cut-off fragment: starts and ends mid-word, no complete thought"
    if kind == "boilerplate":
        title = " ".join(text.split()[:4])
        lines = rng.sample(NAV, 7)
        lines.insert(rng.randrange(1, 4), f"Home » Docs » {title}")
        return "\n".join(lines), "navigation and cookie boilerplate with no content"
    if kind == "repeated_lines":
        line = (sentences(text) or [text[:120]])[0]
        return "\n".join([line] * 8), "one sentence repeated on eight lines"
    raise ValueError(kind)


def garbage(text: str, rng: random.Random, *, zh: bool) -> tuple[str, str]:
    if zh:
        bad = text.encode("utf-8").decode("cp1252", errors="replace")
        return bad, "mojibake: Chinese UTF-8 text decoded as cp1252"
    alphabet = "abcdefghijklmnopqrstuvwxyzQXZJ0123456789#@$%^&*~<>{}[]/\\|+=_;:"
    chunks = ["".join(rng.choices(alphabet, k=rng.randrange(2, 11))) for _ in range(45)]
    return " ".join(chunks), "random characters with no words"


def text_items(corpora: Path) -> list[dict[str, str]]:
    rng = random.Random(14)
    pools = paragraphs(corpora)
    items, spare = [], []
    for source, n in GOOD_PER_SOURCE.items():
        pool = pools[source][:]
        rng.shuffle(pool)
        assert len(pool) >= 2 * n, f"{source}: only {len(pool)} candidate paragraphs"
        for p in pool[:n]:
            items.append(
                {
                    "source": source,
                    "kind": "paragraph",
                    "text": p,
                    "label": "good",
                    "why": f"a whole prose paragraph from {source}",
                }
            )
        spare += [(source, p) for p in pool[n : 2 * n]]
    rng.shuffle(spare)
    english = [(s, p) for s, p in spare if s != "zh"]
    chinese = [(s, p) for s, p in spare if s == "zh"]
    for kind in BAD_KINDS:
        for i in range(BAD_PER_KIND):
            if kind == "garbage":
                zh = i % 2 == 0 and i // 2 < len(chinese)  # every other one, while they last
                source, p = chinese[i // 2] if zh else english.pop()
                bad, why = garbage(p, rng, zh=zh)
            else:
                source, p = english.pop()
                bad, why = corrupt(kind, p, rng)
            items.append({"source": source, "kind": kind, "text": bad, "label": "bad", "why": why})
    for it in items:
        it["criteria"] = TEXT_CRITERIA
    return items


def wrong(n: str) -> str:
    """A clearly wrong value for the integer ``n`` (written with or without thousands commas)."""
    value = int(n.replace(",", ""))
    bad = value + max(1, round(abs(value) * 0.25))
    return f"{bad:,}" if "," in n else str(bad)


def seed_items() -> list[dict[str, str]]:
    """Each seed whose final answer is an integer: right as written, and with that result wrong
    (in the final line and where the working last states it)."""
    items = []
    for line in SEEDS.read_text(encoding="utf-8").splitlines():
        seed = json.loads(line)
        answer = seed["answer"]
        if "####" in answer:
            work, final = (p.strip() for p in answer.rsplit("####", 1))
            bad_final = wrong(final)
            k = work.rfind(final)
            bad_work = work[:k] + bad_final + work[k + len(final) :] if k >= 0 else work
            good_answer = f"{work}\nFinal answer: {final}"
            bad_answer = f"{bad_work}\nFinal answer: {bad_final}"
        elif m := re.search(r"\\boxed\{(\d+)\}", answer):
            final, bad_final = m.group(1), wrong(m.group(1))
            good_answer = answer
            bad_answer = answer[: m.start(1)] + bad_final + answer[m.end(1) :]
        else:
            continue
        q = f"Question: {seed['question']}\nAnswer: "
        items.append(
            {
                "source": "math_seeds",
                "kind": "solution",
                "criteria": SOLUTION_CRITERIA,
                "text": q + good_answer,
                "label": "good",
                "why": "the worked answer is right",
            }
        )
        items.append(
            {
                "source": "math_seeds",
                "kind": "wrong_solution",
                "criteria": SOLUTION_CRITERIA,
                "text": q + bad_answer,
                "label": "bad",
                "why": f"the final result is {bad_final}, the right one is {final}",
            }
        )
    return items


def pair_items() -> list[dict[str, str]]:
    pairs = []
    for line in PAIRS.read_text(encoding="utf-8").splitlines():
        if line.strip() and not line.startswith("#"):
            label, category, reference, answer = (p.strip() for p in line.split(";;"))
            pairs.append((label == "1", category, reference, answer))
    rng = random.Random(14)
    items = []
    for want in (True, False):
        chosen = [p for p in pairs if p[0] == want]
        rng.shuffle(chosen)
        for label, category, reference, answer in chosen[:PAIRS_PER_LABEL]:
            items.append(
                {
                    "source": "answer_pairs",
                    "kind": f"answer_{category}",
                    "criteria": EQUIVALENCE_CRITERIA,
                    "text": f"Reference answer: {reference}\nProposed answer: {answer}",
                    "label": "good" if label else "bad",
                    "why": "hand-labelled " + ("equal" if label else "not equal"),
                }
            )
    return items


def build(corpora: Path, out: Path) -> list[dict[str, str]]:
    items = text_items(corpora) + seed_items() + pair_items()
    rows = []
    for i, it in enumerate(items):
        rows.append(
            {
                "id": f"j{i:03d}",
                **{k: it[k] for k in ("source", "kind", "criteria", "text", "label", "why")},
            }
        )
    out.parent.mkdir(parents=True, exist_ok=True)
    with out.open("w", encoding="utf-8") as f:
        for r in rows:
            f.write(json.dumps(r, ensure_ascii=False) + "\n")
    return rows


def load(path: Path = OUT) -> list[dict[str, str]]:
    with path.open(encoding="utf-8") as f:
        return [json.loads(line) for line in f]


def stats(rows: list[dict[str, str]]) -> None:
    print(f"{len(rows)} items: {dict(Counter(r['label'] for r in rows))}")
    for (kind, label), n in sorted(Counter((r["kind"], r["label"]) for r in rows).items()):
        print(f"  {kind:24} {label:5} {n}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("command", choices=["build", "stats"])
    ap.add_argument("--corpora", type=Path, default=CORPORA)
    ap.add_argument("--out", type=Path, default=OUT)
    args = ap.parse_args()
    if args.command == "build":
        stats(build(args.corpora, args.out))
        print(f"wrote {args.out}")
    else:
        stats(load(args.out))


if __name__ == "__main__":
    main()
