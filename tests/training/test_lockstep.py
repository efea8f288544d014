"""The one-file trainer and the modular lib, in process: the same config keys and defaults, the same model bit for
bit, the same data order, schedule, HellaSwag counts and samples, and the shards the lib prepares found by the
twin. (test_lockstep_runs.py compares whole training runs; lockstep is the same numbers and files, not the same
messages or plumbing.) Also the twin's reading measures from issue 11: width, train() length."""

from __future__ import annotations

import ast
import contextlib
import dataclasses
import json
import sys
from pathlib import Path

import pytest
import tiktoken
import torch

from tui_trainer.training import onefile_train as one
from tui_trainer.training.lib import config as libcfg
from tui_trainer.training.lib.data import ShardLoader
from tui_trainer.training.lib.evaluation import generate_samples, run_hellaswag_eval
from tui_trainer.training.lib.model import GPT as LibGPT
from tui_trainer.training.lib.optim import configure_optimizer
from tui_trainer.training.lib.scheduling import get_lr
from tui_trainer.training.lib.shards import ensure_shards, list_shards, resolve_shard_dir

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


def test_onefile_reads_top_to_bottom():
    """Issue 11's measures: no line over 100 columns, train() under 90 lines, numbered sections in order."""
    text = ONEFILE.read_text()
    assert [n for n, line in enumerate(text.splitlines(), 1) if len(line) > 100] == []
    [train] = [n for n in ast.parse(text).body if isinstance(n, ast.FunctionDef) and n.name == "train"]
    assert train.end_lineno - train.lineno + 1 < 90
    numbers = [int(line.split(". ")[0].split()[-1]) for line in text.splitlines() if line.startswith("# ---")]
    assert numbers == list(range(1, 9))


# ------------------------------------------------------------------------------------------------- config
def test_twin_accepts_every_lib_key_with_the_same_default():
    """Drift guard: a key added to lib/config.py must be added to the twin (same section, order, type, default)."""
    lib = [(s.section, s.name, s.type, s.default) for s in libcfg.config_schema()]
    twin = []
    for section in dataclasses.fields(one.TrainingConfig):
        instance = section.default_factory()
        twin += [(section.name, f.name, type(getattr(instance, f.name)), getattr(instance, f.name))
                 for f in dataclasses.fields(instance)]
    assert twin == lib


@pytest.mark.parametrize("preset", sorted((REPO / "configs").glob("*.toml")), ids=lambda p: p.name)
def test_presets_load_to_the_same_values(preset):
    overrides = ["optim.max_lr=1e-3", "launch.env.NCCL_DEBUG=WARN", "data.source=shakespeare", "model.n_layer=3"]
    for extra in ([], overrides):
        lib = libcfg.load_config(preset, extra)
        ours = one.load_config(str(preset), extra)
        assert dataclasses.asdict(ours) == dataclasses.asdict(lib)
        # The config.toml the twin writes (beside the run, in each checkpoint) reads back to the same values.
        assert libcfg.config_from_dict(libcfg.parse_toml_text(one.config_to_toml(ours))) == lib


@pytest.mark.parametrize("overrides, named", [
    (["modle.n_layer=2"], "modle"), (["model.n_layers=2"], "model.n_layers"), (["optim.zzz=1"], "optim.zzz"),
    (["model.n_layer=\"x\""], "model.n_layer"), (["system.compile=1"], "system.compile"), (["nodot=1"], "nodot"),
])
def test_unknown_keys_and_wrong_types_are_refused_naming_the_key(overrides, named):
    with pytest.raises(one.UserError, match=named):
        one.load_config(None, overrides)


# ------------------------------------------------------------------------------------------ model + optim
def tiny_model_cfg(**kw):
    values = dict(n_layer=2, n_head=2, n_embd=32, block_size=16, vocab_size=50304) | kw
    return libcfg.ModelConfig(**values), one.ModelConfig(**values)


def twin_models(seed: int = 1337):
    lib_mc, one_mc = tiny_model_cfg()
    torch.manual_seed(seed)
    lib_model = LibGPT(lib_mc)
    torch.manual_seed(seed)
    return lib_model, one.GPT(one_mc)


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16], ids=str)
def test_same_seed_same_weights_same_loss_and_gradients(dtype):
    lib_model, one_model = twin_models()
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
            with torch.no_grad():
                _, eval_loss = model(x, y)
        loss.backward()
        results.append((loss.detach(), eval_loss, logits.detach(), [p.grad.clone() for p in model.parameters()]))
        assert logits_none is None and torch.equal(eval_loss, loss.detach())
    (lib_loss, _, lib_logits, lib_grads), (one_loss, _, one_logits, one_grads) = results
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


# ------------------------------------------------------------------------------------ HellaSwag + samples
HELLASWAG = [{"ctx": f"Example {i} begins and then", "label": i % 4,
              "endings": [f"ending {j} of example {i}{' with more words' * j}." for j in range(4)]}
             for i in range(9)]


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16], ids=str)
def test_hellaswag_counts_and_samples_match(dtype):
    lib_model, one_model = twin_models(seed=3)
    enc = tiktoken.get_encoding("gpt2")
    cpu = torch.device("cpu")
    autocast = (lambda: torch.autocast("cpu", dtype=dtype)) if dtype != torch.float32 else contextlib.nullcontext
    lib = run_hellaswag_eval(lib_model, HELLASWAG, cpu, autocast, 0, 1)
    ours = one.hellaswag_counts(one_model, HELLASWAG, enc, cpu, autocast, one.DistContext())
    assert ours == lib and lib["total"] == 9
    sample_cfg = one.SampleConfig(count=3, max_tokens=6)
    for prompt in ("Hello, I'm a language model,", ""):
        lib_texts = generate_samples(lib_model, enc, prompt, 3, 6, 50, 1.0, 42, cpu, autocast)
        assert one.generate_samples(one_model, enc, prompt, sample_cfg, cpu, autocast) == lib_texts


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
        ours = one.ShardLoader(files, B, T, rank, world_size, shuffle, 7)
        for _ in range(3 * lib.windows_per_epoch // world_size + 5):  # three epochs and a bit
            (lx, ly), (ox, oy) = lib.next_batch(), ours.next_batch()
            assert torch.equal(lx, ox) and torch.equal(ly, oy)
        assert ours.state_dict() == lib.state_dict()
    # A position saved by one resumes the other, also with a changed micro-batch size.
    lib = ShardLoader(files, B, T, 0, world_size, shuffle=shuffle, seed=7)
    for _ in range(11):
        lib.next_batch()
    for batch in (B, 3):
        ours = one.ShardLoader(files, batch, T, 0, world_size, shuffle, 7)
        again = ShardLoader(files, batch, T, 0, world_size, shuffle=shuffle, seed=7)
        ours.load_state_dict(lib.state_dict())
        again.load_state_dict(lib.state_dict())
        assert ours.position == again.position
        assert torch.equal(ours.next_batch()[0], again.next_batch()[0])


# ------------------------------------------------------------------------------------------------ shards
SMALL = ["model.block_size=32", "optim.micro_batch_size=4", "optim.total_batch_size=128", "sample.max_tokens=4"]


def test_twin_reads_the_shards_the_lib_prepared(tmp_path):
    corpus = write_corpus(tmp_path)
    overrides = SMALL + ["data.source=files", f"data.path={corpus}", f"data.cache_dir={tmp_path / 'cache'}",
                         "data.val_fraction=0.1"]
    ours = one.load_config(None, overrides)
    assert one.find_shards(ours, "train") == one.find_shards(ours, "val") == []  # nothing prepared yet
    lib = libcfg.load_config(None, overrides)
    prepared = ensure_shards(lib)
    assert prepared == resolve_shard_dir(lib)
    for split in ("train", "val"):
        assert one.find_shards(ours, split) == list_shards(prepared, split) != []
    # Other preparation settings are other shards: not taken for these.
    assert one.find_shards(one.load_config(None, overrides + ["data.val_fraction=0.2"]), "train") == []


def test_shards_without_manifest_are_used_as_they_are(tmp_path):
    write_shards(tmp_path / "fw", 1000, [3000, 3000], manifest=False, source="edufineweb")
    cfg = one.load_config(None, [f"data.shard_dir={tmp_path / 'fw'}"] + SMALL)
    assert len(one.find_shards(cfg, "train")) == 2 and len(one.find_shards(cfg, "val")) == 1


def test_missing_shards_fail_the_run_with_the_command_to_prepare_them(tmp_path):
    config = tmp_path / "c.toml"
    config.write_text(f'[data]\ncache_dir = "{tmp_path}"\n[system]\ndevice = "cpu"\n')
    run_dir = tmp_path / "run"
    assert one.main(["--config", str(config), "--run-dir", str(run_dir), "--set", "data.source=embedded"]) == 2
    events = [json.loads(line) for line in (run_dir / "events.jsonl").read_text().splitlines()]
    assert [e["type"] for e in events] == ["error", "run_end"]
    assert f"gpt-console prepare {config} --set data.source=embedded" in events[0]["message"]
    assert events[0]["traceback"] == "" and events[1]["status"] == "failed"


def test_control_requests_are_read_like_the_lib_reads_them(tmp_path):
    """The console's control files: the same ids, actions and verdicts (acted on, or answered with an error)."""
    from tui_trainer.channel.control import ControlInbox
    files = {"001-a.json": {"id": "001-a", "action": "sample", "prompt": "Once"}, "002-b.json": "{not json",
             "003-c.json": {"id": "003-c", "action": "explode"}, "004-d.json": [1, 2],
             "005-e.json": {"id": "005-e", "action": "sample", "prompt": 7}, "006-f.json": "[" * 100_000,
             "007-g.json": {"action": "stop"}, ".tmp-008.json": {"action": "eval"}}
    seen = []
    for side in ("lib", "one"):
        control = tmp_path / side / "control"
        control.mkdir(parents=True)
        for name, body in files.items():
            (control / name).write_text(body if isinstance(body, str) else json.dumps(body))
        requests = ControlInbox(tmp_path / side).poll() if side == "lib" else one.poll_control(tmp_path / side)
        seen.append([(r["id"], r["action"] if "error" not in r else "", "error" in r) for r in requests])
        assert sorted(p.name for p in (control / "done").iterdir()) == sorted(f for f in files if f[0] != ".")
    assert seen[0] == seen[1]
    assert [(i, ok) for i, _, ok in seen[1]] == [("001-a", False), ("002-b", True), ("003-c", True),
                                                ("004-d", True), ("005-e", True), ("006-f", True), ("007-g", False)]
