"""The model repository on disk, with a tiny GGUF the tests write themselves."""

from __future__ import annotations

import errno
import hashlib
import http.server
import threading
from pathlib import Path

import pytest

from llmasos.errors import (
    InvalidRequestError,
    ModelError,
    ModelExistsError,
    ModelFileError,
    UnknownModelError,
)
from llmasos.models import repository as repository_module
from llmasos.models.repository import Repository
from llmasos.models.sources import import_model
from tests.fixtures.tiny_gguf import write_tiny_gguf


@pytest.fixture
def tiny(tmp_path) -> Path:
    return write_tiny_gguf(tmp_path / "Tiny-Model.gguf")


@pytest.fixture
def repo(tmp_path) -> Repository:
    return Repository(tmp_path / "home" / "models")


def snapshot(repo: Repository) -> list[str]:
    """Every file under the repository, to show an operation left it as it was."""
    return sorted(str(p.relative_to(repo.root)) for p in repo.root.rglob("*") if p.is_file())


def test_import_reads_the_metadata_from_the_file_itself(repo, tiny):
    manifest = import_model(repo, str(tiny))
    assert manifest.name == "tiny-model:latest"
    assert (manifest.architecture, manifest.quantization, manifest.context_length) == (
        "llama",
        "F32",
        512,
    )
    assert manifest.license == "apache-2.0"
    assert manifest.parameters == 116544
    assert manifest.size_bytes == tiny.stat().st_size
    assert manifest.digest == "sha256:" + hashlib.sha256(tiny.read_bytes()).hexdigest()
    assert repo.blob_path(manifest).read_bytes() == tiny.read_bytes()
    assert repo.show("tiny-model") == manifest
    assert repo.names() == ["tiny-model:latest"]


def test_tags_share_one_blob_which_goes_with_the_last_name(repo, tiny):
    first = repo.import_file(tiny, "tiny:v1")
    repo.tag("tiny:v1", "other:best")
    second = repo.import_file(tiny, "tiny:v2")  # same bytes: stored once
    assert first.digest == second.digest
    assert len(list(repo.blobs.iterdir())) == 1
    for name in ("tiny:v1", "other:best"):
        repo.remove(name)
        assert repo.blob_path(first).exists()
    repo.remove("tiny:v2")
    assert not repo.blob_path(first).exists()
    assert repo.names() == []


def test_a_taken_name_is_refused_and_nothing_changes(repo, tiny):
    repo.import_file(tiny, "tiny")
    before = snapshot(repo)
    with pytest.raises(ModelExistsError, match="llmasos models rm tiny:latest"):
        repo.import_file(tiny, "tiny:latest")
    with pytest.raises(ModelExistsError):
        repo.tag("tiny", "tiny")
    assert snapshot(repo) == before


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b"not a model at all", "not a GGUF file"),
        (b"", "cannot be read as GGUF"),
    ],
)
def test_a_file_that_is_not_gguf_is_refused(repo, tmp_path, content, message):
    bad = tmp_path / "bad.gguf"
    bad.write_bytes(content)
    with pytest.raises(ModelFileError, match=message):
        repo.import_file(bad, "bad")
    assert snapshot(repo) == []


def _nested_arrays(writer) -> None:
    value: list = [1]
    for _ in range(12):
        value = [value]
    writer.add_array("test.deep", value)


@pytest.mark.parametrize(
    ("spoil", "message"),
    [
        (lambda w: w.add_uint32("general.alignment", 0), "general.alignment 0; it must be a power"),
        (lambda w: w.add_uint32("general.alignment", 24), "general.alignment 24"),
        (lambda w: w.add_string("general.alignment", "wide"), "general.alignment 'wide'"),
        (_nested_arrays, "nests arrays more than 8 deep"),
        (lambda w: w.add_array("llama.attention.key_length", ["x"]), "cannot be read as GGUF"),
    ],
    ids=["alignment-0", "alignment-24", "alignment-text", "deep-arrays", "text-key-length"],
)
def test_a_malformed_header_is_a_clear_error_and_nothing_changes(repo, tmp_path, spoil, message):
    bad = write_tiny_gguf(tmp_path / "bad.gguf", extra=spoil)
    with pytest.raises(ModelFileError, match=message):
        repo.import_file(bad, "bad")
    assert snapshot(repo) == []


def test_a_truncated_gguf_is_refused_and_nothing_changes(repo, tiny, tmp_path):
    repo.import_file(tiny, "good")
    before = snapshot(repo)
    cut = tmp_path / "cut.gguf"
    cut.write_bytes(tiny.read_bytes()[: tiny.stat().st_size - 1000])
    with pytest.raises(ModelFileError, match="truncated"):
        repo.import_file(cut, "cut")
    assert snapshot(repo) == before


def test_a_sha256_mismatch_is_refused_and_a_match_accepted(repo, tiny):
    with pytest.raises(ModelFileError, match="not the expected"):
        repo.import_file(tiny, "tiny", sha256="0" * 64)
    assert snapshot(repo) == []
    digest = hashlib.sha256(tiny.read_bytes()).hexdigest()
    assert repo.import_file(tiny, "tiny", sha256=f"sha256:{digest.upper()}").name == "tiny:latest"
    with pytest.raises(InvalidRequestError, match="sha256: must be 64 hexadecimal digits"):
        repo.import_file(tiny, "again", sha256="abc")


def test_a_full_disk_leaves_the_repository_as_it_was(repo, tiny, monkeypatch):
    def full(fd, data):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(repository_module.os, "write", full)
    with pytest.raises(ModelError, match="disk is full"):
        repo.import_file(tiny, "tiny")
    monkeypatch.undo()
    assert snapshot(repo) == []


def test_an_interrupted_download_leaves_nothing(repo, tiny):
    def chunks():
        yield tiny.read_bytes()[:4096]
        raise OSError("connection reset")

    with pytest.raises(ModelFileError, match="connection reset"):
        repo.import_stream(chunks(), "tiny", source_label="http://x/tiny.gguf")
    assert snapshot(repo) == []
    assert Repository(repo.root).names() == []


@pytest.mark.parametrize("name", ["Tiny", "tiny:", ":tag", "a/b", "x" * 65, "tiny:v 1"])
def test_bad_names_are_refused_with_the_rule(repo, tiny, name):
    with pytest.raises(InvalidRequestError, match="is not NAME"):
        repo.import_file(tiny, name)


def test_unknown_names_list_the_known_ones(repo, tiny):
    repo.import_file(tiny, "tiny")
    with pytest.raises(UnknownModelError, match="tiny:latest"):
        repo.show("nope")
    with pytest.raises(UnknownModelError):
        repo.remove("nope")


@pytest.fixture
def http_folder(tmp_path):
    """A loopback HTTP server serving tmp_path/www."""
    folder = tmp_path / "www"
    folder.mkdir()

    class Handler(http.server.SimpleHTTPRequestHandler):
        def __init__(self, *args, **kwargs):
            super().__init__(*args, directory=str(folder), **kwargs)

        def log_message(self, *args):
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield folder, f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()


def test_import_from_a_url_streams_with_progress_and_checks_the_digest(repo, tiny, http_folder):
    folder, base = http_folder
    (folder / "tiny.gguf").write_bytes(tiny.read_bytes())
    seen = []
    digest = hashlib.sha256(tiny.read_bytes()).hexdigest()
    manifest = import_model(
        repo,
        f"{base}/tiny.gguf",
        sha256=digest,
        progress=lambda done, total: seen.append((done, total)),
    )
    assert manifest.name == "tiny:latest"
    assert seen[-1] == (tiny.stat().st_size, tiny.stat().st_size)
    with pytest.raises(ModelFileError, match="not the expected"):
        import_model(repo, f"{base}/tiny.gguf", "other", sha256="1" * 64)
    with pytest.raises(ModelFileError, match="HTTP 404"):
        import_model(repo, f"{base}/missing.gguf")
    assert repo.names() == ["tiny:latest"]


def test_an_unreachable_url_is_a_clear_error(repo):
    with pytest.raises(ModelFileError, match="could not be downloaded"):
        import_model(repo, "http://127.0.0.1:9/model.gguf")
    assert snapshot(repo) == []


def test_a_leftover_partial_import_is_cleaned_when_the_repository_opens(repo):
    (repo.tmp / "abc.partial").write_bytes(b"half a model")
    assert list(Repository(repo.root).tmp.iterdir()) == []
