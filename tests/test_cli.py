"""The headless CLI. Fast checks here; the ones on real runs are in tests/runs/test_real_runs.py."""

from __future__ import annotations

import json
import subprocess
import sys

from event_samples import event

from tui_trainer.cli import main
from tui_trainer.runs import RunStore
from tui_trainer.runs.files import write_json, write_private


def cli(*args, cwd=None, env=None, stdin=subprocess.DEVNULL):
    return subprocess.run([sys.executable, "-m", "tui_trainer.cli", *args], capture_output=True, text=True,
                          cwd=cwd, env=env, stdin=stdin, timeout=60)


def test_config_error_is_one_message_exit_2_no_traceback(tmp_path):
    bad = tmp_path / "bad.toml"
    bad.write_text("[optim]\nmax_lr = 'fast'\n[modle]\nn_layer = 2\n")
    r = cli("run", str(bad), "--runs-root", str(tmp_path / "runs"))
    assert r.returncode == 2
    assert "optim.max_lr" in r.stderr and "did you mean 'model'" in r.stderr
    assert "Traceback" not in r.stderr
    assert not (tmp_path / "runs").exists() or not any((tmp_path / "runs").iterdir())  # nothing created
    r = cli("run", str(tmp_path / "missing.toml"), "--runs-root", str(tmp_path / "runs"))
    assert r.returncode == 2 and "no such file" in r.stderr and "Traceback" not in r.stderr
    r = cli("run", str(bad), "--set", "nodot=1", "--runs-root", str(tmp_path / "runs"))
    assert r.returncode == 2 and "section.key=value" in r.stderr


def test_unknown_run_and_empty_root(tmp_path, capsys):
    assert main(["runs", "--runs-root", str(tmp_path)]) == 0
    assert "no runs" in capsys.readouterr().out
    assert main(["stop", "nope", "--runs-root", str(tmp_path)]) == 1
    err = capsys.readouterr().err
    assert "no run 'nope'" in err and "Traceback" not in err


def test_commands_on_a_run_that_is_not_running(tmp_path, capsys):
    store = RunStore(tmp_path)
    run = store.create("old")
    write_private(run.config_file, "")
    write_json(run.launch_file, {"launch": 1, "events_offset": 0, "workers": []})
    with open(run.events_file, "w") as f:
        for i, (kind, payload) in enumerate([
                ("run_start", {"config": {}, "trainer": "train", "params": 10, "world_size": 1, "device": "cpu",
                               "device_name": "CPU", "dtype": "float32", "grad_accum_steps": 1, "max_steps": 4,
                               "start_step": 0, "resumed_from_step": None, "peak_flops": None}),
                ("step", {"step": 0, "loss": 5.5, "lr": 1e-3, "grad_norm": 1.0, "dt": 0.1, "tok_per_s": 100.0,
                          "tokens": 10, "mfu": None}),
                ("val", {"step": 1, "loss": 5.25}),
                ("hellaswag", {"step": 1, "acc": 0.25, "acc_norm": 0.3, "correct": 3, "correct_norm": 3,
                               "total": 10}),
                ("run_end", {"status": "finished", "reason": "reached max_steps", "step": 1})]):
            f.write(json.dumps({"v": 1, "seq": i, "t": 1.0 + i, "type": kind, **payload}) + "\n")
        f.write('{"torn": ')
    root = ["--runs-root", str(tmp_path)]
    assert main(["runs", *root]) == 0
    out = capsys.readouterr().out
    assert run.id in out and "finished" in out and "5.5000" in out and "5.2500" in out and "0.3000" in out
    assert main(["control", run.id[:10], "checkpoint", *root]) == 1
    assert "not running" in capsys.readouterr().err
    assert main(["stop", run.id, *root]) == 1
    assert "not running (finished)" in capsys.readouterr().err
    assert main(["resume", run.id, *root]) == 1
    assert "no complete checkpoint" in capsys.readouterr().err
    assert main(["attach", run.id, *root]) == 0  # replays, sees it is over, exit code of "finished"
    out = capsys.readouterr().out
    assert "finished" in out and "HellaSwag at step 1" in out
    assert main(["export", run.id, "--csv", "-o", str(tmp_path / "m.csv"), *root]) == 0
    lines = (tmp_path / "m.csv").read_text().splitlines()
    assert lines[0].startswith("step,time,loss") and lines[1].startswith("0,") and lines[2].startswith("1,")
    assert main(["delete", run.id, "--yes", *root]) == 0 and not run.dir.exists()


def test_console_entry_with_a_missing_config(tmp_path):
    r = cli(str(tmp_path / "nope.toml"))
    assert r.returncode == 2 and "no such config file" in r.stderr and "Traceback" not in r.stderr


def test_cli_never_imports_torch():
    code = "import sys, tui_trainer.cli, tui_trainer.runs.launcher; print('torch' in sys.modules)"
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert r.stdout.strip() == "False"


def test_prepare_delegates_to_the_data_preparation(tmp_path):
    corpus = tmp_path / "corpus"
    corpus.mkdir()
    for i in range(10):  # one document per file
        (corpus / f"{i}.txt").write_text(f"Document {i}. To be, or not to be, that is the question.\n" * 50)
    config = tmp_path / "c.toml"
    config.write_text(f'[data]\nsource = "files"\npath = "{corpus}"\ncache_dir = "{tmp_path / "cache"}"\n'
                      "val_fraction = 0.2\n")
    r = cli("prepare", str(config))
    assert r.returncode == 0, r.stderr
    assert list((tmp_path / "cache").rglob("manifest.json"))
    r = cli("prepare", str(config), "--set", f'data.path="{tmp_path / "missing.txt"}"')
    assert r.returncode != 0 and "missing.txt" in r.stderr and "Traceback" not in r.stderr


def test_an_error_already_in_the_log_reads_as_it_does_live(tmp_path, capsys):
    """`run` and `attach` print a trainer error as "ERROR: …" whether it arrived while following or was already
    in the log when following began (a trainer that fails at once on a busy machine): one wording, not two."""
    store = RunStore(tmp_path)
    run = store.create("failed")
    write_private(run.config_file, "")
    write_json(run.launch_file, {"launch": 1, "events_offset": 0, "workers": []})
    events = [event(0, "run_start"), event(1, "error", message="data.path: no such file: corpus.txt — fix it"),
              event(2, "run_end", status="failed", reason="setup failed", step=0)]
    run.events_file.write_text("".join(json.dumps(e) + "\n" for e in events))
    assert main(["attach", run.id, "--runs-root", str(tmp_path)]) == 1
    out = capsys.readouterr().out
    assert "ERROR: data.path: no such file: corpus.txt" in out, out
