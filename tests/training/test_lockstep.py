"""The one-file trainer and the modular lib, in process: same config schema and messages, same model bit for bit,
same data order, same shards, same schedule. (test_lockstep_runs.py compares whole training runs.)"""

from __future__ import annotations

import ast
import dataclasses
import json
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from tui_trainer.training import onefile_train as one
from tui_trainer.training import train as modular
from tui_trainer.training.lib import config as libcfg
from tui_trainer.training.lib.data import ShardLoader
from tui_trainer.training.lib.model import GPT as LibGPT
from tui_trainer.training.lib.optim import configure_optimizer
from tui_trainer.training.lib.rundir import ResumeConflict, checkpoint_to_resume
from tui_trainer.training.lib.scheduling import get_lr
from tui_trainer.training.lib.shards import ensure_shards, resolve_shard_dir

from .data_helpers import write_shards
from .harness import REPO, write_corpus

ONEFILE = REPO / "tui_trainer" / "training" / "onefile_train.py"


# ----------------------------------------------------------------------------------------- self-contained
def test_onefile_imports_only_stdlib_torch_numpy_tiktoken():
    allowed = set(sys.stdlib_module_names) | {"torch", "numpy", "tiktoken", "tomli"}
    imported = []
    for node in ast.walk(ast.parse(ONEFILE.read_text())):
        if isinstance(node, ast.Import):
            imported += [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            assert node.level == 0, f"relative import from {node.module}"
            imported.append(node.module)
    assert imported and "torch" in imported
    assert [m for m in imported if m.split(".")[0] not in allowed] == []


# ------------------------------------------------------------------------------------------------- config
def test_every_config_field_default_type_and_bound_matches_the_lib():
    lib_sections = [(f.name, f.default_factory) for f in dataclasses.fields(libcfg.TrainingConfig)]
    one_sections = [(f.name, f.default_factory) for f in dataclasses.fields(one.TrainingConfig)]
    assert [n for n, _ in lib_sections] == [n for n, _ in one_sections]
    compared = 0
    for (name, lib_cls), (_, one_cls) in zip(lib_sections, one_sections):
        lib_fields, one_fields = dataclasses.fields(lib_cls), dataclasses.fields(one_cls)
        assert [f.name for f in lib_fields] == [f.name for f in one_fields], name
        for lf, of in zip(lib_fields, one_fields):
            key = f"{name}.{lf.name}"
            assert lf.type == of.type, key
            assert getattr(lib_cls(), lf.name) == getattr(one_cls(), of.name), key
            for meta in ("choices", "min", "max"):
                assert lf.metadata[meta] == of.metadata[meta], (key, meta)
            compared += 1
    assert compared == len(libcfg.config_schema()) > 50


@pytest.mark.parametrize("preset", sorted((REPO / "configs").glob("*.toml")), ids=lambda p: p.name)
def test_presets_load_to_the_same_values(preset):
    overrides = ["optim.max_lr=1e-3", "launch.env.NCCL_DEBUG=WARN", "data.source=shakespeare"]
    for extra in ([], overrides):
        lib = libcfg.load_config(preset, extra)
        ours = one.load_config(preset, extra)
        assert dataclasses.asdict(ours) == dataclasses.asdict(lib)
        assert ours.world_size == lib.world_size
        # Each side reads the other's written config back to the same values.
        assert libcfg.config_from_dict(libcfg.parse_toml_text(one.config_to_toml(ours))) == lib
        assert dataclasses.asdict(one.config_from_dict(one.parse_toml_text(libcfg.config_to_toml(lib)))) == \
            dataclasses.asdict(ours)
        assert one.parameter_count(ours) == libcfg.parameter_count(lib)
        assert one.flops_per_token(ours) == libcfg.flops_per_token(lib)


BAD_OVERRIDES = [
    ["modle.n_layer=2"], ["model.n_layers=2"], ["optim.zzz=1"], ["model.n_layer=\"x\""], ["model.n_layer=2.5"],
    ["system.compile=1"], ["optim.max_lr=true"], ["optim.max_lr=nan"], ["optim.max_lr=inf"],
    ["system.dtype=bf16"], ["schedule.kind=cosin"], ["data.source=nowhere"], ["model.n_layer=0"],
    ["optim.beta1=1.5"], ["optim.max_lr=-1"], ["optim.min_lr_ratio=2"], ["data.val_fraction=0.9"],
    ["model.n_embd=100", "model.n_head=12"], ["optim.total_batch_size=1000"],
    ["schedule.warmup_steps=30000"], ["sample.max_tokens=2000"], ["sample.top_k=60000"], ["system.device=gpu"],
    ["launch.nnodes=2"], ["data.source=files"], ["launch.env.1BAD=x"], ["launch.env.GOOD=1"], ["launch.env=3"],
    ["model=3"], ["nodot=1"], ["model.n_layer"], ["model.vocab_size=100", "sample.top_k=200"],
    ["system.heartbeat_seconds=0.1", "optim.micro_batch_size=0", "schedule.kind=exp"],
]


@pytest.mark.parametrize("overrides", BAD_OVERRIDES, ids=lambda o: " ".join(o))
def test_bad_overrides_give_the_same_messages(overrides):
    with pytest.raises(libcfg.ConfigError) as lib_error:
        libcfg.load_config(None, overrides)
    with pytest.raises(one.ConfigError) as one_error:
        one.load_config(None, overrides)
    assert str(one_error.value) == str(lib_error.value)
    assert [(p.key, p.reason, p.fix) for p in lib_error.value.problems] == one_error.value.problems


@pytest.mark.parametrize("text", [
    "[model\nn_layer = 2", "[model]\nn_layer = 2\nn_layer = 3", "[modle]\nx = 1\n[optim]\nlr = 1",
    "[data]\nsource = 'fineweb'\nshuffle = 'yes'", "[launch]\nenv = { A = 1 }", "model = 1\n",
])
def test_bad_toml_files_give_the_same_messages(tmp_path, text):
    path = tmp_path / "bad.toml"
    path.write_text(text)
    for target in (path, tmp_path / "missing.toml"):
        with pytest.raises(libcfg.ConfigError) as lib_error:
            libcfg.load_config(target)
        with pytest.raises(one.ConfigError) as one_error:
            one.load_config(target)
        assert str(one_error.value) == str(lib_error.value)


def test_cli_flags_parse_alike():
    for argv in (["--config", "a.toml"],
                 ["--config", "a.toml", "--set", "x.y=1", "--set", "a.b=c", "--run-dir", "r", "--events", "e.jsonl",
                  "--resume", "--profile"]):
        assert vars(one.parse_args(argv)) == vars(modular.parse_args(argv))


def test_resume_conflict_message_matches(tmp_path):
    root = tmp_path / "checkpoints" / "step-00000004"
    root.mkdir(parents=True)
    for name in ("meta.json", "checkpoint.pt"):
        (root / name).write_text("x")
    with pytest.raises(ResumeConflict) as lib_error:
        checkpoint_to_resume(root.parent, False)
    with pytest.raises(one.UserError) as one_error:
        one.checkpoint_to_resume(root.parent, False)
    assert str(one_error.value) == str(lib_error.value)
    assert one.checkpoint_to_resume(root.parent, True) == checkpoint_to_resume(root.parent, True) == root


# ------------------------------------------------------------------------------------------ model + optim
def tiny_model_cfg(**kw):
    values = dict(n_layer=2, n_head=2, n_embd=32, block_size=16, vocab_size=50304) | kw
    return libcfg.ModelConfig(**values), one.ModelConfig(**values)


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16], ids=str)
def test_same_seed_same_weights_same_loss_and_gradients(dtype):
    lib_mc, one_mc = tiny_model_cfg()
    torch.manual_seed(1337)
    lib_model = LibGPT(lib_mc)
    torch.manual_seed(1337)
    one_model = one.GPT(one_mc)
    lib_state, one_state = lib_model.state_dict(), one_model.state_dict()
    assert list(lib_state) == list(one_state)
    assert all(torch.equal(lib_state[k], one_state[k]) for k in lib_state)
    assert [n for n, _ in lib_model.named_parameters()] == [n for n, _ in one_model.named_parameters()]

    g = torch.Generator().manual_seed(0)
    # 20 × 16 = 320 rows: two chunks of the CPU head (256 rows each), the second one partial.
    x, y = torch.randint(0, 50257, (20, 16), generator=g), torch.randint(0, 50257, (20, 16), generator=g)
    results = []
    for model in (lib_model, one_model):
        with torch.autocast("cpu", dtype=dtype, enabled=dtype != torch.float32):
            logits_none, loss = model(x, y)
            logits, _ = model(x)
        loss.backward()
        results.append((loss.detach(), logits.detach(), [p.grad.clone() for p in model.parameters()]))
        assert logits_none is None
    (lib_loss, lib_logits, lib_grads), (one_loss, one_logits, one_grads) = results
    assert torch.equal(lib_loss, one_loss) and torch.equal(lib_logits, one_logits)
    assert all(torch.equal(a, b) for a, b in zip(lib_grads, one_grads))


def test_optimizer_groups_match():
    lib_cfg = libcfg.load_config(None, ["model.n_layer=2", "model.n_embd=32", "model.n_head=2"])
    one_cfg = one.load_config(None, ["model.n_layer=2", "model.n_embd=32", "model.n_head=2"])
    torch.manual_seed(0)
    model = LibGPT(lib_cfg.model)
    lib_opt = configure_optimizer(model, lib_cfg, "cpu")
    one_opt = one.configure_optimizer(model, one_cfg, "cpu")
    for a, b in zip(lib_opt.param_groups, one_opt.param_groups, strict=True):
        assert [id(p) for p in a["params"]] == [id(p) for p in b["params"]]
        assert {k: v for k, v in a.items() if k != "params"} == {k: v for k, v in b.items() if k != "params"}


@pytest.mark.parametrize("kind", ["cosine", "linear", "constant"])
def test_learning_rate_schedule_matches(kind):
    overrides = [f"schedule.kind={kind}", "schedule.warmup_steps=7", "schedule.max_steps=50", "optim.max_lr=1e-3"]
    lib, ours = libcfg.load_config(None, overrides), one.load_config(None, overrides)
    assert [one.get_lr(s, ours) for s in range(55)] == [get_lr(s, lib) for s in range(55)]


# ------------------------------------------------------------------------------------------------ loader
@pytest.mark.parametrize("shuffle", [True, False])
@pytest.mark.parametrize("world_size", [1, 2, 3])
def test_loader_reads_the_same_windows_and_resumes_alike(tmp_path, shuffle, world_size):
    # Four train shards, one too short for a window: order, epochs and the dropped shard all show.
    write_shards(tmp_path, 700, [1000, 40, 2345, 777])
    files = sorted(tmp_path.glob("*_train_*.npy"))
    B, T = 2, 16
    for rank in range(world_size):
        lib = ShardLoader(files, B, T, rank, world_size, shuffle=shuffle, seed=7)
        ours = one.ShardLoader(files, B, T, rank, world_size, shuffle, 7, "train")
        for _ in range(3 * lib.windows_per_epoch // world_size + 5):  # three epochs and a bit
            (lx, ly), (ox, oy) = lib.next_batch(), ours.next_batch()
            assert torch.equal(lx, ox) and torch.equal(ly, oy)
        assert ours.state_dict() == lib.state_dict()
    # A position saved by one resumes the other, also with a changed micro-batch size.
    lib = ShardLoader(files, B, T, 0, world_size, shuffle=shuffle, seed=7)
    for _ in range(11):
        lib.next_batch()
    for batch in (B, 3):
        ours = one.ShardLoader(files, batch, T, 0, world_size, shuffle, 7, "train")
        again = ShardLoader(files, batch, T, 0, world_size, shuffle=shuffle, seed=7)
        ours.load_state_dict(lib.state_dict())
        again.load_state_dict(lib.state_dict())
        assert ours.position == again.position
        assert torch.equal(ours.next_batch()[0], again.next_batch()[0])


# ------------------------------------------------------------------------------------------------ shards
def _shard_snapshot(shard_dir: Path) -> dict:
    files = {p.name: p.read_bytes() for p in sorted(shard_dir.glob("*.npy"))}
    manifest = (shard_dir / "manifest.json").read_text()
    data = json.loads(manifest)
    data.pop("created")
    return {"dir": shard_dir.name, "files": files, "manifest": data}


def _prepare_both(tmp_path: Path, overrides: list[str]) -> tuple[dict, dict]:
    snapshots = []
    for side in ("lib", "one"):
        base = [f"data.cache_dir={tmp_path / side}", "model.block_size=32", "optim.micro_batch_size=4",
                "optim.total_batch_size=128", "sample.max_tokens=4"]
        if side == "lib":
            cfg = libcfg.load_config(None, base + overrides)
            snapshots.append(_shard_snapshot(ensure_shards(cfg)))
            assert resolve_shard_dir(cfg).parent == tmp_path / side / "shards"
        else:
            reports = []
            cfg = one.load_config(None, base + overrides)
            path = one.ensure_shards(cfg, lambda *a: reports.append(a))
            snapshots.append(_shard_snapshot(path))
            assert reports and reports[-1][-1] is True  # finished
            assert one.ensure_shards(cfg, lambda *a: reports.append(a)) == path and reports[-1][-1] is True
    return snapshots[0], snapshots[1]


@pytest.mark.parametrize("overrides", [
    ["data.val_fraction=0.1", "data.shard_tokens=20000"],                  # several train shards
    ["data.val_fraction=0.0", "data.max_tokens=50000", "data.shard_tokens=1024"],
    ["data.val_fraction=0.5", "data.shard_tokens=5000"],                   # val capped at one shard
], ids=["multi-shard", "capped", "val-overflow"])
def test_files_source_prepares_byte_identical_shards(tmp_path, overrides):
    corpus = write_corpus(tmp_path)
    texts = tmp_path / "texts"
    texts.mkdir()
    (texts / "a.txt").write_text("Plain text, one document per file.\n" * 50)
    (texts / "b.jsonl").write_text(corpus.read_text())
    lib, ours = _prepare_both(tmp_path, ["data.source=files", f"data.path={texts}"] + overrides)
    assert lib == ours and len(lib["files"]) >= 2


def test_shakespeare_source_prepares_byte_identical_shards(tmp_path, shared_data):
    lib, ours = _prepare_both(tmp_path, ["data.source=shakespeare", f"data.path={shared_data / 'tinyshakespeare.txt'}",
                                         "data.val_fraction=0.1", "data.shard_tokens=100000"])
    assert lib == ours and len(lib["files"]) == 5


def test_embedded_source_prepares_byte_identical_shards(tmp_path):
    # Capped (the pydoc topics and the first stdlib modules); the next test compares every document.
    lib, ours = _prepare_both(tmp_path, ["data.source=embedded", "data.max_tokens=100000", "data.shard_tokens=30000"])
    assert lib == ours and sum(len(b) for b in lib["files"].values()) > 2 * 100_000


def test_embedded_documents_match_in_full():
    from tui_trainer.training.lib.sources import embedded_documents
    assert list(one.embedded_documents()) == list(embedded_documents())


def test_fineweb_without_shards_points_at_the_prepare_command(tmp_path):
    cfg = one.load_config(None, [f"data.cache_dir={tmp_path}"])
    with pytest.raises(one.UserError, match="gpt-console prepare"):
        one.ensure_shards(cfg, lambda *a: None)


def test_shards_without_manifest_are_used_as_they_are(tmp_path):
    write_shards(tmp_path / "fw", 1000, [3000, 3000], manifest=False, source="edufineweb")
    cfg = one.load_config(None, [f"data.shard_dir={tmp_path / 'fw'}", "model.block_size=32",
                                 "optim.micro_batch_size=4", "optim.total_batch_size=128", "sample.max_tokens=4"])
    assert one.ensure_shards(cfg, lambda *a: None) == tmp_path / "fw"
    train, val = one.build_dataloaders(cfg, 0, 1)
    assert len(train.files) == 2 and len(val.files) == 1


# ---------------------------------------------------------------------------------- devices and metrics
def test_peak_table_precision_and_device_match():
    from tui_trainer.training.lib import metrics, precision
    from tui_trainer.training.lib.distributed import setup_distributed
    assert [(p, (v["bfloat16"], v["tf32"], v["float32"])) for p, v in metrics.PEAK_FLOPS] == one.PEAK_FLOPS
    names = [p.replace("\\b", "").replace(".*", " ").split("|")[0] for p, _ in metrics.PEAK_FLOPS] + ["Unknown"]
    for name in names:
        for dtype in (torch.float32, torch.bfloat16, torch.float16):
            for tf32 in (True, False):
                for device_type in ("cuda", "mps"):
                    assert one.peak_flops(name, device_type, dtype, tf32) == \
                        metrics.peak_flops(name, device_type, dtype, tf32), (name, dtype, tf32, device_type)
    cpu = torch.device("cpu")
    assert one.device_name(cpu) == metrics.device_name(cpu)
    assert one.cpu_has_native_bf16() == precision.cpu_has_native_bf16()
    for setting in ("auto", "float32", "bfloat16"):
        assert one.configure_precision(setting, True, cpu)[0] == precision.configure_precision(setting, True, cpu)[0]
    for setting in ("auto", "cpu"):
        assert one.setup_distributed(setting).device == setup_distributed(setting).device


def test_cpu_peak_uses_the_libs_cache_entry_and_writes_one_it_reads(tmp_path, monkeypatch):
    from tui_trainer.training.lib import peak
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    threads = torch.get_num_threads()
    cache = tmp_path / "gpt-console" / "cpu_peak.json"
    cache.parent.mkdir()
    cache.write_text(json.dumps({peak.cache_key(torch.bfloat16, threads): 1.25e12}))
    assert one.cpu_peak_flops(torch.bfloat16) == 1.25e12  # same key, same file: no probe
    measured = one.cpu_peak_flops(torch.float32)  # a miss: probed and added
    assert measured > 1e9
    assert peak._read_cache(cache) == {peak.cache_key(torch.bfloat16, threads): 1.25e12,
                                       peak.cache_key(torch.float32, threads): measured}
