"""A run's name and note (label.json) read back from disk: anything hostile reads as no label, never a crash."""

from __future__ import annotations

from tui_trainer.runs.labels import LABEL_FILE, RunLabel, read_label, write_label


def test_a_written_label_reads_back(tmp_path):
    write_label(tmp_path, "baseline", "lr 6e-4, warmup 715")
    assert read_label(tmp_path) == RunLabel("baseline", "lr 6e-4, warmup 715")


def test_hostile_label_files_read_as_no_label(tmp_path):
    for raw in (b"[" * 5000, b"{" * 5000, b"\xff\xfe", b"[1, 2]", b'{"name": 7}', b'{"name": "x' + b"y" * 20000 + b'"}'):
        (tmp_path / LABEL_FILE).write_bytes(raw)
        assert read_label(tmp_path) == RunLabel(), raw[:20]
