"""Preparing token shards: EOT-first documents, val split, manifest, atomic and idempotent ensure_shards."""

from __future__ import annotations

import json
import os

import numpy as np
import pytest

from tui_trainer.training.lib import shards
from tui_trainer.training.lib.shards import build_shards, ensure_shards, is_val_document, list_shards
from tui_trainer.training.lib.sources import DataError
from tui_trainer.training.lib.tokenizer import EOT, get_tokenizer

from .data_helpers import make_cfg, write_shards

DOCS = [f"Document number {i} says {'hello ' * (i % 7)}world." for i in range(60)]


def _tokens(path) -> np.ndarray:
    return np.load(path)


def test_documents_are_eot_first_and_round_trip(tmp_path):
    manifest = build_shards(DOCS, tmp_path, source="t", shard_tokens=200, val_fraction=0.1)
    enc = get_tokenizer()
    val = np.concatenate([_tokens(p) for p in list_shards(tmp_path, "val")])
    train = np.concatenate([_tokens(p) for p in list_shards(tmp_path, "train")])
    assert val.dtype == np.uint16 and train.dtype == np.uint16

    def split(tokens):
        docs = enc.decode(tokens.tolist()).split("<|endoftext|>")
        assert docs[0] == ""  # every document starts with EOT
        return docs[1:]

    val_docs, train_docs = split(val), split(train)
    expected_val = [d for i, d in enumerate(DOCS) if is_val_document(i, 0.1)]
    assert val_docs == expected_val and len(val_docs) == 6
    assert train_docs == [d for i, d in enumerate(DOCS) if not is_val_document(i, 0.1)]
    # Manifest: shard 0 = val, train numbered from 1 with shard_tokens each except the last.
    files = [s["file"] for s in manifest["shards"]]
    assert files[0] == "t_val_000000.npy" and files[1] == "t_train_000001.npy"
    assert all(s["tokens"] == 200 for s in manifest["shards"][1:-1])
    assert manifest["complete"] and manifest["eot"] == EOT and manifest["tokenizer"] == "gpt2"
    assert manifest["tokens"] == {"val": len(val), "train": len(train)}
    assert manifest["documents"] == {"val": 6, "train": 54}
    assert json.loads((tmp_path / "manifest.json").read_text()) == manifest


def test_val_documents_are_spread_evenly_and_never_empty():
    picked = [i for i in range(100) if is_val_document(i, 0.05)]
    assert picked == [0, 20, 40, 60, 80]
    assert [i for i in range(10) if is_val_document(i, 0.0)] == [0]
    assert sum(is_val_document(i, 0.5) for i in range(1000)) == 500


def test_streamed_corpus_uses_its_first_shard_as_val(tmp_path):
    manifest = build_shards(DOCS, tmp_path, source="s", shard_tokens=100, val_fraction=0.05, streamed=True)
    val, train = list_shards(tmp_path, "val"), list_shards(tmp_path, "train")
    assert [p.name for p in val] == ["s_val_000000.npy"] and len(_tokens(val[0])) == 100
    stream = np.concatenate([_tokens(p) for p in val + train])
    all_tokens = np.concatenate([t for batch in shards.tokenize_documents(DOCS) for t in batch])
    assert np.array_equal(stream, all_tokens)  # the same token stream, cut at shard boundaries
    assert manifest["tokens"]["val"] == 100


def test_max_tokens_caps_the_total_exactly(tmp_path):
    manifest = build_shards(DOCS, tmp_path, source="t", shard_tokens=100, val_fraction=0.1, max_tokens=333)
    assert manifest["tokens"]["val"] + manifest["tokens"]["train"] == 333


def test_too_small_corpus_is_a_clear_error(tmp_path):
    with pytest.raises(DataError, match="too small to split"):
        build_shards(["only one document"], tmp_path, source="t", shard_tokens=100, val_fraction=0.1)


def test_ensure_shards_builds_once_then_reuses(tmp_path):
    corpus = tmp_path / "corpus.jsonl"
    corpus.write_text("".join(json.dumps({"text": d}) + "\n" for d in DOCS))
    cfg = make_cfg(tmp_path, "data.source=files", f"data.path={corpus}", "data.shard_tokens=1024")
    calls = []
    shard_dir = ensure_shards(cfg, progress=calls.append)
    assert shard_dir.parent == tmp_path / "cache" / "shards" and shard_dir.name.startswith("files-")
    assert calls and calls[-1].done and calls[-1].documents == len(DOCS)
    stamp = (shard_dir / "manifest.json").stat().st_mtime_ns
    again = []
    assert ensure_shards(cfg, progress=again.append) == shard_dir and again == []
    assert (shard_dir / "manifest.json").stat().st_mtime_ns == stamp
    # No temp directories left beside it.
    assert [p.name for p in shard_dir.parent.iterdir() if p.is_dir()] == [shard_dir.name]
    # A different recipe (val_fraction) gets its own directory; the first is untouched.
    other = ensure_shards(make_cfg(tmp_path, "data.source=files", f"data.path={corpus}",
                                   "data.shard_tokens=1024", "data.val_fraction=0.2"))
    assert other != shard_dir and (shard_dir / "manifest.json").stat().st_mtime_ns == stamp
    # Editing the input files is a new recipe too.
    corpus.write_text(corpus.read_text() + json.dumps({"text": "one more"}) + "\n")
    assert ensure_shards(cfg) not in (shard_dir, other)


def test_embedded_source_prepares_with_a_token_cap(tmp_path):
    cfg = make_cfg(tmp_path, "data.source=embedded", "data.max_tokens=60000", "data.shard_tokens=20000")
    shard_dir = ensure_shards(cfg)
    manifest = json.loads((shard_dir / "manifest.json").read_text())
    assert manifest["source"] == "embedded" and manifest["recipe"]["input"]["python"]
    assert manifest["tokens"]["val"] + manifest["tokens"]["train"] == 60000
    assert [s["split"] for s in manifest["shards"]] == ["val", "train", "train", "train"]


def test_explicit_shard_dir_with_foreign_shards_is_used_as_is(tmp_path):
    nanogpt = tmp_path / "edu_fineweb10B"
    write_shards(nanogpt, 500, [1000, 1000], manifest=False, source="edufineweb")
    cfg = make_cfg(tmp_path, "data.source=fineweb-edu", f"data.shard_dir={nanogpt}")
    assert ensure_shards(cfg) == nanogpt  # nothing to prepare, no `datasets` needed
    assert [p.name for p in list_shards(nanogpt, "train")] == ["edufineweb_train_000001.npy",
                                                               "edufineweb_train_000002.npy"]


def test_explicit_shard_dir_is_never_overwritten(tmp_path):
    corpus = tmp_path / "c.txt"
    corpus.write_text(" ".join(DOCS))
    target = tmp_path / "mine"
    target.mkdir()
    (target / "notes.txt").write_text("precious")
    cfg = make_cfg(tmp_path, "data.source=files", f"data.path={corpus}", f"data.shard_dir={target}")
    with pytest.raises(DataError, match="left alone"):
        ensure_shards(cfg)
    assert (target / "notes.txt").read_text() == "precious"
    # An empty directory is fine to fill; a later config with another recipe is refused, not rebuilt.
    empty = tmp_path / "empty"
    empty.mkdir()
    docs = tmp_path / "docs"
    docs.mkdir()
    for i, d in enumerate(DOCS):
        (docs / f"{i:03d}.txt").write_text(d)
    cfg = make_cfg(tmp_path, "data.source=files", f"data.path={docs}", f"data.shard_dir={empty}")
    assert ensure_shards(cfg) == empty and list_shards(empty, "train")
    changed = make_cfg(tmp_path, "data.source=files", f"data.path={docs}", f"data.shard_dir={empty}",
                       "data.val_fraction=0.3")
    with pytest.raises(DataError, match="changed since: data.val_fraction"):
        ensure_shards(changed)


def test_failed_build_leaves_no_directory(tmp_path):
    corpus = tmp_path / "c.txt"
    corpus.write_text("a single document cannot be split")
    cfg = make_cfg(tmp_path, "data.source=files", f"data.path={corpus}")
    with pytest.raises(DataError, match="too small"):
        ensure_shards(cfg)
    leftovers = [p.name for p in (tmp_path / "cache" / "shards").iterdir() if not p.name.endswith(".lock")]
    assert leftovers == []


def test_parallel_tokenisation_gives_the_same_tokens():
    docs = DOCS * 20
    one = [t for batch in shards.tokenize_documents(docs, workers=1) for t in batch]
    two = [t for batch in shards.tokenize_documents(docs, workers=2) for t in batch]
    assert len(one) == len(two) == len(docs)
    assert all(np.array_equal(a, b) for a, b in zip(one, two))


def test_prepare_cli_builds_then_reports_already_prepared(tmp_path):
    import subprocess
    import sys
    docs = tmp_path / "docs"
    docs.mkdir()
    for i, d in enumerate(DOCS):
        (docs / f"{i:03d}.txt").write_text(d)
    args = [sys.executable, "-m", "tui_trainer.training.prepare", "--config", os.devnull, "--set",
            "data.source=files", "--set", f"data.path={docs}", "--set", f"data.cache_dir={tmp_path / 'cache'}"]
    first = subprocess.run(args, capture_output=True, text=True, timeout=120)
    assert first.returncode == 0, first.stderr
    assert first.stdout.startswith("prepared in") and "train +" in first.stdout
    assert "preparing files: 60 documents" in first.stderr and "done" in first.stderr
    second = subprocess.run(args, capture_output=True, text=True, timeout=120)
    assert second.returncode == 0 and second.stdout.startswith("already prepared")
    bad = subprocess.run(args + ["--set", "data.sorce=x"], capture_output=True, text=True, timeout=120)
    assert bad.returncode == 2 and "did you mean 'source'" in bad.stderr and "Traceback" not in bad.stderr
    missing = subprocess.run(args + ["--set", f"data.path={tmp_path / 'nothing'}/*.txt"], capture_output=True,
                             text=True, timeout=120)
    assert missing.returncode == 1 and missing.stderr.startswith("error: data.path") and \
        "Traceback" not in missing.stderr
