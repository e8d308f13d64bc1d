"""The Kneser-Ney trainer, the `prepflow lm train` command and KenLM perplexity scoring."""

import io
import json
import math

import kenlm
import pytest
from typer.testing import CliRunner

from prepflow.cli.lm import lm_app
from prepflow.operators.text.language_model import load_model, train_arpa
from prepflow.operators.text.perplexity import PerplexityFilter, PerplexityScore

SENTENCES = [
    "the cat sat on the mat",
    "the dog sat on the log",
    "a cat and a dog",
    "the cat ate",
    "dog",
    "the mat is red",
]


@pytest.mark.parametrize("order", [2, 3, 4])
def test_every_context_distribution_sums_to_one(tmp_path, order):
    path = tmp_path / "m.arpa"
    with path.open("w") as f:
        train_arpa(SENTENCES, order, f)
    model = kenlm.Model(str(path))
    vocab = [*sorted({w for s in SENTENCES for w in s.split()}), "</s>", "<unk>"]
    for context in ([], ["the"], ["the", "cat"], ["sat", "on", "the"], ["unseen"]):
        state = kenlm.State()
        model.BeginSentenceWrite(state)
        for word in context:
            nxt = kenlm.State()
            model.BaseScore(state, word, nxt)
            state = nxt
        total = sum(10 ** model.BaseScore(state, w, kenlm.State()) for w in vocab)
        assert total == pytest.approx(1.0, abs=1e-5), (order, context)


def test_bigram_probabilities_match_hand_computed_kneser_ney():
    buf = io.StringIO()
    sizes = train_arpa(["a b", "a b", "b a"], 2, buf)
    assert sizes == {"1-grams": 5, "2-grams": 6}  # a b </s> <unk> <s>
    logp = dict(line.split("\t")[1::-1] for line in buf.getvalue().splitlines() if "\t" in line)
    # Unigrams count distinct left neighbours: a <- {<s>, b}, b <- {a, <s>}, </s> <- {a, b}: all
    # 2, so counts of counts are too few and lmplz's fallback discounts (0.5, 1, 1.5) apply.
    gamma = 3 * 1.0 / 6  # mass left for the uniform over a, b, </s>, <unk>
    p_b = (2 - 1.0) / 6 + gamma / 4
    assert float(logp["b"]) == pytest.approx(math.log10(p_b), abs=1e-6)
    assert float(logp["<unk>"]) == pytest.approx(math.log10(gamma / 4), abs=1e-6)
    # after "a": "a b" twice, "a </s>" once -> (2 - D2) / 3 + gamma(a) * p(b)
    gamma_a = (0.5 * 1 + 1.0 * 1) / 3
    assert float(logp["a b"]) == pytest.approx(math.log10(1 / 3 + gamma_a * p_b), abs=1e-6)


@pytest.fixture(scope="module")
def bible_model(shared_data, tmp_path_factory):
    """A trigram model trained with the CLI on 400 chapters of the King James Bible."""
    out = tmp_path_factory.mktemp("lm") / "kjv.arpa"
    corpus = shared_data / "corpora" / "kjv_bible_chapters_en.jsonl"
    result = CliRunner().invoke(
        lm_app, ["train", str(corpus), "--output", str(out), "--order", "3", "--max-docs", "400"]
    )
    assert result.exit_code == 0, result.output
    assert result.output.startswith(f"wrote {out} (")
    return out


def test_perplexity_ranks_in_domain_text_lower(run, bible_model, shared_data):
    with (shared_data / "corpora" / "kjv_bible_chapters_en.jsonl").open() as f:
        held_out = [json.loads(line)["text"] for line in f][1000]
    texts = [
        held_out,
        "The function returns a new list sorted by the key argument.",
        "zxq vvk plo qqq rrt",
        "",
    ]
    scores = (
        run(PerplexityScore(model=str(bible_model)), texts).kept.column("perplexity").to_pylist()
    )
    assert scores[0] < scores[1] < scores[2]
    assert math.isnan(scores[3])
    # the document score is 10^(-log10 P / tokens) over its lines, as KenLM scores them:
    # 12 normalised words and </s>
    model = load_model(str(bible_model))
    expected = 10 ** (
        -model.score("the function returns a new list sorted by the key argument .") / 13
    )
    assert scores[1] == pytest.approx(expected)


def test_perplexity_filter(run, bible_model):
    result = run(
        PerplexityFilter(model=str(bible_model), max_perplexity=1e4),
        ["And God said unto Moses, Go in unto Pharaoh.", "zxq vvk plo qqq rrt", ""],
    )
    assert result.kept.column("_id").to_pylist() == [0]
    reasons = result.dropped.column("_reason").to_pylist()
    assert reasons[0].startswith("max_perplexity: perplexity=") and reasons[0].endswith(" > 10000")
    assert reasons[1] == "max_perplexity: no words"


def test_missing_model_is_reported():
    assert PerplexityScore(model="/nope.arpa").check() == [
        "PerplexityScore: parameter 'model': no such file '/nope.arpa'"
    ]


def test_train_rejects_a_missing_column(tmp_path):
    src = tmp_path / "in.jsonl"
    src.write_text('{"body": "x"}\n')
    result = CliRunner().invoke(lm_app, ["train", str(src), "-o", str(tmp_path / "m.arpa")])
    assert result.exit_code == 2
    assert "no column 'text'" in result.output
    assert not (tmp_path / "m.arpa").exists()
