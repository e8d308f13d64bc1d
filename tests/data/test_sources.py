"""open_input: files, directories, globs, fsspec URLs, Parquet, HF datasets dirs, fingerprints."""

from __future__ import annotations

import json

import fsspec
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from prepflow.core.errors import InputError
from prepflow.data.readers import open_input


def write_jsonl(path, values) -> None:
    path.write_text("".join(json.dumps({"v": v}) + "\n" for v in values))


def values(source, batch_rows: int = 100) -> list:
    return [r["v"] for b in source.iter_batches(batch_rows) for r in b.to_pylist()]


def test_directory_of_shards_sorted_with_batches_across_files(tmp_path):
    data = tmp_path / "shards"
    (data / "sub").mkdir(parents=True)
    write_jsonl(data / "part-10.jsonl", [3, 4, 5])
    write_jsonl(data / "part-02.jsonl", [0, 1, 2])
    write_jsonl(data / "sub" / "part-99.jsonl", [6])
    (data / "_SUCCESS").write_text("")
    (data / ".part-10.jsonl.crc").write_text("junk")
    source = open_input(data)
    assert source.paths == [
        str(data / "part-02.jsonl"),
        str(data / "part-10.jsonl"),
        str(data / "sub" / "part-99.jsonl"),
    ]
    assert [b.num_rows for b in source.iter_batches(4)] == [4, 3]
    assert values(source, 4) == [0, 1, 2, 3, 4, 5, 6]


def test_glob_and_errors_for_nothing_mixed_or_unknown(tmp_path):
    write_jsonl(tmp_path / "b.jsonl", [2])
    write_jsonl(tmp_path / "a.jsonl", [1])
    pq.write_table(pa.table({"v": [9]}), tmp_path / "c.parquet")
    assert values(open_input(tmp_path / "*.jsonl")) == [1, 2]
    assert open_input(tmp_path / "*.parquet").format == "parquet"
    with pytest.raises(InputError, match="the pattern matches no files"):
        open_input(tmp_path / "*.csv")
    with pytest.raises(InputError, match=r"no such file or directory"):
        open_input(tmp_path / "missing.jsonl")
    with pytest.raises(InputError, match=r"the input mixes formats: jsonl \(.*a\.jsonl\), parquet"):
        open_input(tmp_path)
    (tmp_path / "notes.xml").write_text("hi")
    with pytest.raises(InputError, match=r"cannot tell the data format of .*notes\.xml"):
        open_input(tmp_path / "notes.xml")
    (tmp_path / "notes.txt").write_text("hi\n\n  \nthere\r\n")  # text: a row per non-blank line
    assert open_input(tmp_path / "notes.txt").iter_batches(10).__next__().to_pylist() == [
        {"text": "hi"},
        {"text": "there"},
    ]
    with pytest.raises(InputError, match=r"unknown data format 'xml'"):
        open_input(tmp_path / "a.jsonl", format="xml")
    assert values(open_input(tmp_path / "notes.xml", format="csv")) == []  # a header, no rows


def test_explicit_format_overrides_the_extension(tmp_path):
    path = tmp_path / "rows.txt"
    write_jsonl(path, [1, 2])
    assert values(open_input(path, format="jsonl")) == [1, 2]


def test_a_local_file_named_by_relative_path_absolute_path_or_file_url(tmp_path, monkeypatch):
    path = tmp_path / "a.jsonl"
    write_jsonl(path, [1, 2])
    monkeypatch.chdir(tmp_path)
    for name in ("a.jsonl", "./a.jsonl", str(path), f"file://{path}"):
        source = open_input(name)
        assert (source.paths, source.local) == ([str(path)], True), name
        assert values(source) == [1, 2]
        assert source.estimate_rows() == 2


def test_memory_url():
    fs = fsspec.filesystem("memory")
    fs.pipe("/prepflow-test/in/a.jsonl", b'{"v": 1}\n{"v": 2}\n')
    fs.pipe("/prepflow-test/in/b.jsonl", b'{"v": 3}\n')
    try:
        source = open_input("memory://prepflow-test/in")
        assert source.paths == [
            "memory:///prepflow-test/in/a.jsonl",
            "memory:///prepflow-test/in/b.jsonl",
        ]
        assert values(source, 2) == [1, 2, 3]
    finally:
        fs.rm("/prepflow-test", recursive=True)


def test_schema_from_first_rows_ignoring_bad_records(tmp_path):
    path = tmp_path / "a.jsonl"
    path.write_text('{"a": 1, "b": "x"}\n' * 10 + "not json\n")
    assert open_input(path).schema() == pa.schema([("a", pa.int64()), ("b", pa.string())])
    pq.write_table(pa.table({"n": pa.array([1], pa.int32())}), tmp_path / "p.parquet")
    assert open_input(tmp_path / "p.parquet").schema() == pa.schema([("n", pa.int32())])


def test_parquet_shards_with_different_schemas_and_corrupt_file(tmp_path):
    pq.write_table(pa.table({"v": [1, 2]}), tmp_path / "0.parquet")
    pq.write_table(pa.table({"v": [2.5], "w": ["x"]}), tmp_path / "1.parquet")
    (batch,) = open_input(tmp_path).iter_batches(10)
    assert batch.schema == pa.schema([("v", pa.float64()), ("w", pa.string())])
    assert batch.to_pylist() == [{"v": 1.0, "w": None}, {"v": 2.0, "w": None}, {"v": 2.5, "w": "x"}]
    (tmp_path / "2.parquet").write_bytes(b"PAR1 this is not parquet")
    with pytest.raises(InputError, match=r"2\.parquet: unreadable Parquet file") as err:
        list(open_input(tmp_path).iter_batches(10, on_bad=lambda r: None))
    assert err.value.path == str(tmp_path / "2.parquet")


def test_hf_layout_read_without_datasets(tmp_path):
    """The save_to_disk layout: Arrow IPC stream files listed in state.json."""
    for k, rows in enumerate([[1, 2], [3]]):
        table = pa.table({"v": rows}).replace_schema_metadata({"huggingface": "{}"})
        name = str(tmp_path / f"data-{k:05d}-of-00002.arrow")
        with pa.OSFile(name, "wb") as sink, pa.ipc.new_stream(sink, table.schema) as writer:
            writer.write_table(table)
    files = [{"filename": f"data-{k:05d}-of-00002.arrow"} for k in (1, 0)]  # order as listed
    (tmp_path / "state.json").write_text(json.dumps({"_data_files": files}))
    (tmp_path / "dataset_info.json").write_text("{}")
    source = open_input(tmp_path)
    assert source.format == "hf"
    assert values(source, 2) == [3, 1, 2]
    assert source.schema().metadata is None


def test_hf_dataset_saved_by_datasets(tmp_path):
    datasets = pytest.importorskip("datasets")
    rows = {"text": ["a", "b", "c"], "n": [1, 2, 3], "tags": [["x"], [], ["y", "z"]]}
    datasets.Dataset.from_dict(rows).save_to_disk(str(tmp_path / "ds"), num_shards=2)
    source = open_input(tmp_path / "ds")
    assert source.format == "hf" and len(source.paths) == 2
    assert pa.concat_tables(source.iter_batches(2)).to_pydict() == rows
    datasets.DatasetDict({"train": datasets.Dataset.from_dict(rows)}).save_to_disk(
        str(tmp_path / "dd")
    )
    with pytest.raises(InputError, match=r"DatasetDict; pass one split's directory \(train\)"):
        open_input(tmp_path / "dd")


def test_estimate_rows_is_close_without_reading_everything(shared_data, tmp_path) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    from prepflow.data.readers import open_input

    src = shared_data / "corpora" / "fortunes_en.jsonl"
    true_rows = sum(1 for _ in src.open("rb"))
    assert abs(open_input(src).estimate_rows() - true_rows) / true_rows < 0.25
    pq.write_table(pa.table({"a": list(range(1234))}), tmp_path / "x.parquet")
    assert open_input(tmp_path / "x.parquet").estimate_rows() == 1234
