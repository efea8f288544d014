"""The CPU peak probe: measures, caches per machine/torch/threads/dtype, survives a bad cache."""

from __future__ import annotations

import json

import pytest
import torch

from tui_trainer.training.lib import peak


@pytest.fixture(autouse=True)
def fresh_memo(monkeypatch):
    monkeypatch.setattr(peak, "_MEMO", {})


def test_probe_measures_a_plausible_rate_and_caches_it(tmp_path):
    flops = peak.cpu_peak_flops(torch.float32, cache_dir=tmp_path, probe_seconds=0.05)
    # any CPU that runs torch does more than 1 GFLOP/s and less than 1 PFLOP/s in fp32
    assert 1e9 < flops < 1e15
    cached = json.loads((tmp_path / peak.CACHE_FILE).read_text())
    key = peak.cache_key(torch.float32, torch.get_num_threads())
    assert cached == {key: flops}
    assert torch.__version__ in key and "threads" in key and "float32" in key


def test_cached_figure_is_reused_until_refresh(tmp_path):
    key = peak.cache_key(torch.float32, 1)
    (tmp_path / peak.CACHE_FILE).write_text(json.dumps({key: 123.0, "other machine": 5.0}))
    assert peak.cpu_peak_flops(torch.float32, threads=1, cache_dir=tmp_path) == 123.0
    fresh = peak.cpu_peak_flops(torch.float32, threads=1, cache_dir=tmp_path, refresh=True, probe_seconds=0.05)
    assert fresh > 1e9
    cached = json.loads((tmp_path / peak.CACHE_FILE).read_text())
    assert cached == {key: fresh, "other machine": 5.0}  # other entries kept
    assert torch.get_num_threads() >= 1


def test_unreadable_cache_is_ignored_and_replaced(tmp_path):
    (tmp_path / peak.CACHE_FILE).write_text("{not json")
    flops = peak.cpu_peak_flops(torch.float32, threads=1, cache_dir=tmp_path, probe_seconds=0.05)
    assert flops > 1e9
    assert json.loads((tmp_path / peak.CACHE_FILE).read_text())[peak.cache_key(torch.float32, 1)] == flops


def test_probe_restores_thread_count(tmp_path):
    before = torch.get_num_threads()
    peak.cpu_peak_flops(torch.float32, threads=1, cache_dir=tmp_path, probe_seconds=0.02)
    assert torch.get_num_threads() == before


def test_only_training_dtypes_are_probed(tmp_path):
    with pytest.raises(ValueError, match="float16"):
        peak.cpu_peak_flops(torch.float16, cache_dir=tmp_path)


def test_cpu_model_names_the_processor():
    name = peak.cpu_model()
    assert name and name == peak.cpu_model()


def test_command_line_shows_the_cached_figures(monkeypatch, tmp_path, capsys):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    threads = torch.get_num_threads()
    cache = tmp_path / "gpt-console" / peak.CACHE_FILE
    cache.parent.mkdir()
    cache.write_text(json.dumps({peak.cache_key(torch.bfloat16, threads): 9.25e11,
                                 peak.cache_key(torch.float32, threads): 2.21e11}))
    peak.main([])
    out = capsys.readouterr().out
    assert "bfloat16: 0.925 TFLOP/s" in out and "float32: 0.221 TFLOP/s" in out and str(cache) in out
