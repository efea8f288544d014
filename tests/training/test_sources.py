"""Corpus readers and the download helper (against a local HTTP server)."""

from __future__ import annotations

import gzip
import hashlib
import json
import os
import subprocess
import sys

import pytest

from tui_trainer.training.lib import hellaswag, sources
from tui_trainer.training.lib.sources import DataError, download_file

from .data_helpers import closed_port, make_cfg, serve_directory

CORPUS_DIGEST = ("import hashlib\nfrom tui_trainer.training.lib.sources import embedded_documents\n"
                 "h = hashlib.sha256()\nn = 0\nfor d in embedded_documents():\n"
                 "    h.update(d.encode() + b'\\0'); n += 1\nprint(n, h.hexdigest())\n")


@pytest.fixture(scope="module")
def embedded() -> list[str]:
    return list(sources.embedded_documents())


def test_embedded_corpus_is_python_documentation_of_a_few_megabytes(embedded):
    chars = sum(map(len, embedded))
    assert len(embedded) > 500 and chars > 2_000_000, (len(embedded), chars)
    assert any(d.startswith('The "if" statement') for d in embedded)  # a pydoc topic
    assert any(d.startswith("json\n\nJSON (JavaScript Object Notation)") for d in embedded)  # a module docstring
    assert any("def json.dumps(obj, *, skipkeys=False" in d for d in embedded)  # signatures come along
    assert any(d.startswith("builtins\n") for d in embedded)  # built-in C modules' docstrings
    assert not any(d.startswith("test.") for d in embedded)  # the test suites are left out
    assert all(d.strip() for d in embedded)


def test_embedded_corpus_is_identical_in_another_process(embedded):
    digest = hashlib.sha256()
    for d in embedded:
        digest.update(d.encode() + b"\0")
    env = dict(os.environ, PYTHONHASHSEED="12345")  # set/dict iteration must not leak into the order
    out = subprocess.run([sys.executable, "-c", CORPUS_DIGEST], env=env, capture_output=True, text=True,
                         timeout=120, check=True)
    assert out.stdout.split() == [str(len(embedded)), digest.hexdigest()]


def test_shakespeare_passages_cover_the_file_at_blank_lines(shared_data, tmp_path):
    cfg = make_cfg(tmp_path, "data.source=shakespeare", f"data.path={shared_data / 'tinyshakespeare.txt'}")
    passages = list(sources.iter_documents(cfg))
    text = (shared_data / "tinyshakespeare.txt").read_text()
    assert "".join(passages) == text
    assert 100 < len(passages) < 200
    assert all(p.endswith("\n\n") for p in passages[:-1])


def test_shakespeare_missing_local_path_is_a_clear_error(tmp_path):
    cfg = make_cfg(tmp_path, "data.source=shakespeare", f"data.path={tmp_path / 'nope.txt'}")
    with pytest.raises(DataError, match="data.path = .*nope.txt' does not exist"):
        list(sources.iter_documents(cfg))


def test_files_source_reads_txt_and_jsonl_in_sorted_order(tmp_path):
    corpus = tmp_path / "corpus"
    (corpus / "sub").mkdir(parents=True)
    (corpus / "b.txt").write_text("second file")
    (corpus / "a.txt").write_text("first file")
    (corpus / "sub" / "c.jsonl").write_text('{"text": "line one"}\n\n{"text": "line two", "id": 3}\n')
    (corpus / "README.md").write_text("not part of the corpus")
    cfg = make_cfg(tmp_path, "data.source=files", f"data.path={corpus}")
    assert list(sources.iter_documents(cfg)) == ["first file", "second file", "line one", "line two"]
    glob_cfg = make_cfg(tmp_path, "data.source=files", f"data.path={corpus}/*.txt")
    assert list(sources.iter_documents(glob_cfg)) == ["first file", "second file"]
    single = make_cfg(tmp_path, "data.source=files", f"data.path={corpus / 'sub' / 'c.jsonl'}")
    assert list(sources.iter_documents(single)) == ["line one", "line two"]


def test_files_source_errors_name_the_problem(tmp_path):
    with pytest.raises(DataError, match="matches no files"):
        list(sources.file_documents(str(tmp_path / "missing/*.txt")))
    (tmp_path / "x.csv").write_text("a,b")
    with pytest.raises(DataError, match="neither .txt nor .jsonl"):
        list(sources.file_documents(str(tmp_path / "*.csv")))
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"text": "ok"}\n{"body": "no text field"}\n')
    with pytest.raises(DataError, match=r"bad.jsonl, line 2: expected a JSON object with a \"text\" string"):
        list(sources.file_documents(str(bad)))


def test_fineweb_without_datasets_says_how_to_install(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "datasets", None)  # importing it now raises ImportError
    cfg = make_cfg(tmp_path, "data.source=fineweb-edu")
    with pytest.raises(DataError, match=r"pip install -e '\.\[fineweb\]'"):
        list(sources.iter_documents(cfg))


# ------------------------------------------------------------------------------------------ downloads
def test_download_verifies_checksum_and_renames_into_place(tmp_path):
    served = tmp_path / "served"
    served.mkdir()
    payload = b"To be, or not to be\n" * 1000
    (served / "input.txt").write_bytes(payload)
    dest = tmp_path / "cache" / "input.txt"
    with serve_directory(served) as base:
        got = download_file(f"{base}/input.txt", dest, what="a test file", path_key="data.path",
                            sha256=hashlib.sha256(payload).hexdigest())
        assert got == dest and dest.read_bytes() == payload
        (served / "input.txt").write_bytes(b"changed on the server")
        # A good cached copy is not fetched again.
        download_file(f"{base}/input.txt", dest, what="a test file", path_key="data.path",
                      sha256=hashlib.sha256(payload).hexdigest())
    assert dest.read_bytes() == payload
    assert sorted(p.name for p in dest.parent.iterdir()) == ["input.txt"]  # no temp files left


def test_download_with_wrong_checksum_keeps_nothing(tmp_path):
    served = tmp_path / "served"
    served.mkdir()
    (served / "input.txt").write_bytes(b"not the file you wanted")
    dest = tmp_path / "cache" / "input.txt"
    with serve_directory(served) as base:
        with pytest.raises(DataError, match="corrupt or not the expected file.*sha256") as e:
            download_file(f"{base}/input.txt", dest, what="Tiny Shakespeare", path_key="data.path",
                          sha256="0" * 64)
    assert "Tiny Shakespeare" in str(e.value) and "data.path" in str(e.value)
    assert list(dest.parent.iterdir()) == []


def test_download_offline_names_url_and_the_key_for_a_local_copy(tmp_path):
    url = f"http://127.0.0.1:{closed_port()}/input.txt"
    with pytest.raises(DataError) as e:
        download_file(url, tmp_path / "x.txt", what="Tiny Shakespeare", path_key="data.path")
    message = str(e.value)
    assert url in message and 'data.path = "/path/to/file"' in message and "offline" in message
    assert not (tmp_path / "x.txt").exists()


def test_download_http_error_is_a_data_error(tmp_path):
    served = tmp_path / "served"
    served.mkdir()
    with serve_directory(served) as base:
        with pytest.raises(DataError, match="HTTP Error 404"):
            download_file(f"{base}/missing.jsonl", tmp_path / "h.jsonl", what="HellaSwag",
                          path_key="eval.hellaswag_path")


def test_shakespeare_downloads_into_cache_dir_with_checksum(shared_data, tmp_path, monkeypatch):
    served = tmp_path / "served"
    served.mkdir()
    (served / "input.txt").write_bytes((shared_data / "tinyshakespeare.txt").read_bytes())
    cfg = make_cfg(tmp_path, "data.source=shakespeare")
    with serve_directory(served) as base:
        monkeypatch.setattr(sources, "SHAKESPEARE_URL", f"{base}/input.txt")
        path = sources.shakespeare_file(cfg)
        assert path == tmp_path / "cache" / "tinyshakespeare.txt"
        assert sources.file_sha256(path) == sources.SHAKESPEARE_SHA256
        (served / "input.txt").write_bytes(b"tampered")
        path.unlink()
        with pytest.raises(DataError, match="expected 86c4e6aa"):
            sources.shakespeare_file(cfg)
    assert not path.exists()


def test_hellaswag_download_checks_the_file_shape(shared_data, tmp_path, monkeypatch):
    served = tmp_path / "served"
    served.mkdir()
    with gzip.open(shared_data / "hellaswag_val.jsonl.gz", "rb") as f:
        (served / "hellaswag_val.jsonl").write_bytes(f.read())
    lines = (served / "hellaswag_val.jsonl").read_text().splitlines()
    (served / "short.jsonl").write_text("\n".join(lines[:3]) + "\n")
    cfg = make_cfg(tmp_path)
    with serve_directory(served) as base:
        monkeypatch.setattr(hellaswag, "HELLASWAG_URL", f"{base}/short.jsonl")
        with pytest.raises(DataError, match="has 3 examples, not the 10042"):
            hellaswag.hellaswag_file(cfg)
        assert not (tmp_path / "cache" / "hellaswag" / "hellaswag_val.jsonl").exists()
        monkeypatch.setattr(hellaswag, "HELLASWAG_URL", f"{base}/hellaswag_val.jsonl")
        path = hellaswag.hellaswag_file(cfg)
    assert path == tmp_path / "cache" / "hellaswag" / "hellaswag_val.jsonl"
    assert json.loads(path.read_text().splitlines()[0])["label"] == 3
