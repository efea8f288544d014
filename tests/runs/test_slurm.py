"""The Slurm backend against a real single-host Slurm cluster (.ci/slurm-up starts one from Debian's packages):
submit a tiny 2-rank CPU run, follow it, control it, stop it gracefully, resume it, cancel it, queue it.

The batch script's exact torchrun line for several nodes is checked without a cluster. The cluster tests skip
with the reason where no Slurm answers — except under CI (CI=true), where a missing cluster is a failure.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from tui_trainer.runs import LaunchError, RunStore
from tui_trainer.runs import slurm
from tui_trainer.training.lib.config import ConfigError, load_config

from runs_helpers import read_events, wait_final, wait_for_event

REPO = Path(__file__).resolve().parents[2]


def slurm_config(tmp_path: Path, text: str, extra: str = "") -> Path:
    """The tiny config of runs_helpers submitted to Slurm (1 node × 2 CPU ranks, gloo)."""
    text = text.replace("[launch]\n", "[launch]\nbackend = \"slurm\"\n") + "\n[slurm]\ncpus_per_task = 2\n" + extra
    path = tmp_path / "slurm.toml"
    path.write_text(text)
    return path


# --------------------------------------------------------------------------------- without a cluster
def test_multinode_batch_script_runs_one_torchrun_per_node_with_c10d_on_the_first_node(tmp_path):
    cfg = load_config(REPO / "configs/gpt2-124m.toml", [
        "launch.backend=slurm", "launch.nnodes=4", "launch.nproc_per_node=8", "slurm.gpus_per_node=8",
        "optim.micro_batch_size=16",
        "slurm.partition=gpu", "slurm.account=ml", 'slurm.time_limit="1-00:00:00"', "slurm.rdzv_port=29611",
        "slurm.stop_signal_seconds=300", 'slurm.sbatch={qos = "high", exclusive = ""}',
        'slurm.setup="source /opt/venv/bin/activate"', 'slurm.python="/opt/venv/bin/python"'])
    run_dir = tmp_path / "20261201-010000-gpt2"
    text = slurm.batch_script(cfg, run_dir, resume=True, module="tui_trainer.training.train",
                              env={"GPT_CONSOLE_RUN_DIR": str(run_dir)}, cwd="/home/me/proj", job_name="gpt-x")
    lines = text.splitlines()
    assert lines[0] == "#!/bin/bash"
    sbatch = [ln for ln in lines if ln.startswith("#SBATCH ")]
    assert sbatch == [
        "#SBATCH --job-name=gpt-x", "#SBATCH --nodes=4", "#SBATCH --ntasks-per-node=1",
        f"#SBATCH --output={run_dir}/logs/trainer.log", "#SBATCH --open-mode=append", "#SBATCH --chdir=/home/me/proj",
        "#SBATCH --gpus-per-node=8", "#SBATCH --partition=gpu", "#SBATCH --account=ml",
        "#SBATCH --time=1-00:00:00", "#SBATCH --signal=TERM@300", "#SBATCH --qos=high", "#SBATCH --exclusive"]
    [srun] = [ln for ln in lines if ln.startswith("srun ")]
    assert srun == (
        "srun --ntasks-per-node=1 --kill-on-bad-exit=1 /opt/venv/bin/python -m torch.distributed.run "
        '--nnodes="$SLURM_NNODES" --nproc_per_node=8 --rdzv_backend=c10d --rdzv_endpoint="$head_node:29611" '
        '--rdzv_id="$SLURM_JOB_ID" -m tui_trainer.training.train '
        f"--config {run_dir}/config.toml --run-dir {run_dir} --resume")
    assert 'head_node=$(scontrol show hostnames "$SLURM_JOB_NODELIST" | head -n 1)' in lines
    assert "source /opt/venv/bin/activate" in lines
    assert lines.index("source /opt/venv/bin/activate") < lines.index(srun)
    # After srun returns, the job writes the run's status itself.
    assert lines[lines.index(srun) + 2].endswith(f"-m tui_trainer.runs.slurm conclude {run_dir} \"$code\"")
    # The script is valid bash.
    path = tmp_path / "job.sbatch"
    path.write_text(text)
    assert subprocess.run(["bash", "-n", str(path)]).returncode == 0


def test_the_onefile_trainer_gets_its_shards_prepared_in_the_job_first(tmp_path):
    """The one-file twin only reads token shards: the job prepares them (one task, first node) and starts the
    trainer only if that worked. The modular trainer prepares on its ranks and gets no such step."""
    run_dir = tmp_path / "run"
    scripts = {trainer: slurm.batch_script(load_config(None, ["launch.backend=slurm", f"launch.trainer={trainer}"]),
                                           run_dir, resume=False, module=f"m.{trainer}", env={}, cwd="/w",
                                           job_name="j")
               for trainer in ("train", "onefile")}
    lines = scripts["onefile"].splitlines()
    [prepare, train] = [ln.strip() for ln in lines if ln.strip().startswith("srun ")]
    assert prepare.startswith("srun --nodes=1 --ntasks=1 ")
    assert prepare.endswith(f"-m tui_trainer.training.prepare --config {run_dir}/config.toml")
    assert "-m m.onefile" in train
    assert lines.index(prepare) < lines.index("else") < lines.index("  " + train) < lines.index("fi")
    assert "tui_trainer.training.prepare" not in scripts["train"]
    for trainer, text in scripts.items():
        path = tmp_path / f"{trainer}.sbatch"
        path.write_text(text)
        assert subprocess.run(["bash", "-n", str(path)]).returncode == 0, trainer


def test_slurm_keys_are_validated_with_the_fix():
    with pytest.raises(ConfigError) as e:
        load_config(None, ["launch.backend=slurm", 'slurm.time_limit="two hours"', "slurm.gpus_per_node=4",
                           "slurm.sbatch.--qos=x", 'slurm.partition="gpu;rm -rf"'])
    text = str(e.value)
    for expected in ("slurm.time_limit: 'two hours' is not a Slurm time", "launch.nproc_per_node: 1 ranks per node",
                     "slurm.sbatch: not an sbatch option: --qos", "slurm.partition: 'gpu;rm -rf'"):
        assert expected in text
    # A multi-node Slurm run needs no hand-made rendezvous: the job provides it.
    assert load_config(None, ["launch.backend=slurm", "launch.nnodes=2"]).launch.nnodes == 2
    with pytest.raises(ConfigError, match="rendezvous"):
        load_config(None, ["launch.nnodes=2"])


def test_a_runs_root_under_tmp_is_refused_before_anything_is_created(tmp_path, monkeypatch, shared_data):
    from runs_helpers import tiny_toml
    if not slurm.sbatch_available():
        # Without sbatch the first refusal is the missing command — check that one instead.
        store = RunStore(tmp_path / "runs")
        with pytest.raises(LaunchError, match="no `sbatch`"):
            store.launch(config_path=slurm_config(tmp_path, tiny_toml(shared_data, tmp_path, max_steps=2)))
        assert not (tmp_path / "runs").exists() or not any((tmp_path / "runs").iterdir())
        return
    store = RunStore(tmp_path / "runs")
    with pytest.raises(LaunchError, match="every node sees"):
        store.launch(config_path=slurm_config(tmp_path, tiny_toml(shared_data, tmp_path, max_steps=2)))
    assert not (tmp_path / "runs").exists() or not any((tmp_path / "runs").iterdir())


# ------------------------------------------------------------------------------------ with a cluster
def cli(*args, timeout=240):
    return subprocess.run([sys.executable, "-m", "tui_trainer.cli", *args], capture_output=True, text=True,
                          stdin=subprocess.DEVNULL, timeout=timeout)


@pytest.mark.slow
def test_slurm_run_trains_streams_answers_control_stops_resumes(slurm_runs_root, tmp_path, shared_data, data_cache):
    from runs_helpers import tiny_toml
    max_steps = 100_000  # stopped long before
    config = slurm_config(tmp_path, tiny_toml(shared_data, data_cache, max_steps=max_steps).replace(
        "[checkpoint]\nevery = 0", "[checkpoint]\nevery = 0\nkeep_last = 3"))
    store = RunStore(slurm_runs_root)
    run = store.launch(config_path=config)
    info = run.launch_info()
    assert info["backend"] == "slurm" and info["slurm_job_id"].isdigit()
    script = run.dir / "job.sbatch"
    assert script.exists() and "srun --ntasks-per-node=1" in script.read_text()

    # It trains under Slurm, with 2 ranks, and streams events the usual way.
    start = wait_for_event(run, lambda e: e["type"] == "run_start", 180, "run_start from the Slurm job")
    assert start["world_size"] == 2
    wait_for_event(run, lambda e: e["type"] == "step" and e["step"] >= 3, 120, "training steps")
    assert run.status().state == "running"
    r = cli("runs", "--runs-root", str(slurm_runs_root))
    assert r.returncode == 0 and info["slurm_job_id"] in r.stdout and "running" in r.stdout, r.stdout + r.stderr

    # A control request travels through the run directory as for a local run.
    ack = run.control("sample", prompt="ROMEO:", timeout=120)
    assert ack["type"] == "control_ack" and ack["ok"], ack

    # gpt-console stop: scancel --signal=TERM, the ranks checkpoint at the step boundary and exit.
    r = cli("stop", run.id, "--runs-root", str(slurm_runs_root), timeout=300)
    assert r.returncode == 0, r.stdout + r.stderr
    status = wait_final(run, 60)
    assert status.state == "stopped", status
    [end] = [e for e in read_events(run.events_file) if e["type"] == "run_end"]
    assert end["status"] == "stopped"
    stop_step = end["step"]
    assert run.checkpoints()[-1].name == f"step-{stop_step:08d}"

    # Resume submits a new job from the newest checkpoint.
    r = cli("resume", run.id, "--runs-root", str(slurm_runs_root))
    assert r.returncode == 0, r.stdout + r.stderr
    info2 = run.launch_info()
    assert info2["launch"] == 2 and info2["slurm_job_id"] != info["slurm_job_id"]
    resumed = wait_for_event(run, lambda e: e["type"] == "run_start" and e.get("resumed_from_step") is not None,
                             180, "the resumed run_start")
    assert resumed["resumed_from_step"] == stop_step

    # Cancelled by Slurm itself (no graceful signal): not lost, and the reason is Slurm's.
    wait_for_event(run, lambda e: e["type"] == "step" and e["step"] > stop_step + 1, 120, "resumed steps")
    subprocess.run(["scancel", info2["slurm_job_id"]], check=True)
    status = wait_final(run, 120)
    assert status.state in ("failed", "stopped") and "cancelled" in status.reason, status


@pytest.mark.slow
def test_a_held_job_reads_as_queued_with_slurms_reason_and_stop_cancels_it(slurm_runs_root, tmp_path, shared_data,
                                                                           data_cache):
    from runs_helpers import tiny_toml
    config = slurm_config(tmp_path, tiny_toml(shared_data, data_cache, max_steps=4),
                          extra='sbatch = { hold = "" }\n')
    run = RunStore(slurm_runs_root).launch(config_path=config)
    status = run.status()
    assert status.state == "queued" and "JobHeldUser" in status.reason, status
    r = cli("runs", "--runs-root", str(slurm_runs_root))
    assert "queued (job" in r.stdout and run.launch_info()["slurm_job_id"] in r.stdout, r.stdout
    with pytest.raises(Exception, match="still queued"):
        run.resume()
    status = run.stop(timeout=60)
    assert status.state == "stopped", status
    assert not read_events_safe(run.events_file)  # it never started


@pytest.mark.slow
def test_a_onefile_run_under_slurm_prepares_its_shards_in_the_job(slurm_runs_root, tmp_path, shared_data):
    from runs_helpers import tiny_toml
    fresh_cache = tmp_path / "fresh-cache"  # nothing prepared: the job must do it before the twin starts
    config = slurm_config(tmp_path, tiny_toml(shared_data, fresh_cache, max_steps=2, hellaswag=False).replace(
        "[launch]\n", '[launch]\ntrainer = "onefile"\n'))
    run = RunStore(slurm_runs_root).launch(config_path=config)
    status = wait_final(run, 300)
    assert status.state == "finished", (status, run.log_file.read_text(errors="replace")[-3000:])
    events = read_events(run.events_file)
    assert [e["trainer"] for e in events if e["type"] == "run_start"] == ["onefile"]
    assert [e["step"] for e in events if e["type"] == "step"] == [0, 1]
    [manifest] = fresh_cache.glob("shards/*/manifest.json")
    assert "prepared in " in run.log_file.read_text(errors="replace")  # by the job, before the twin started


@pytest.mark.slow
def test_a_run_reaching_its_time_limit_stops_cleanly_before_it(slurm_runs_root, tmp_path, shared_data, data_cache):
    """slurm.stop_signal_seconds: Slurm sends SIGTERM that long before the time limit (up to 60 s earlier still:
    its timer ticks once a minute), the ranks checkpoint and exit 0 before the limit kills them, and the status
    says Slurm stopped it. A 3-minute limit with the signal at 60 s: it comes 60-120 s into the job."""
    from runs_helpers import tiny_toml
    config = slurm_config(tmp_path, tiny_toml(shared_data, data_cache, max_steps=1_000_000, hellaswag=False),
                          extra='time_limit = "00:03:00"\nstop_signal_seconds = 60\n')
    run = RunStore(slurm_runs_root).launch(config_path=config)
    assert "#SBATCH --signal=TERM@60" in (run.dir / "job.sbatch").read_text()
    started = wait_for_event(run, lambda e: e["type"] == "run_start", 180, "run_start from the Slurm job")
    status = wait_final(run, 240)
    events = read_events(run.events_file)
    [end] = [e for e in events if e["type"] == "run_end"]
    assert status.state == "stopped" and end["status"] == "stopped", (status, end)
    assert end["reason"] == "signal SIGTERM" and "stopped by Slurm" in status.reason, status
    assert end["t"] - started["t"] < 180  # before the limit: the trainer ended the run, not Slurm's kill
    [stop] = [e for e in events if e["type"] == "checkpoint" and e["reason"] == "stop"]
    assert stop["step"] == end["step"] > 0 and run.checkpoints()[-1].name == f"step-{end['step']:08d}"


def read_events_safe(path: Path) -> list[dict]:
    return read_events(path) if path.exists() else []


def test_a_look_while_sbatch_has_not_answered_yet_is_not_a_lost_run(tmp_path):
    """launch.json is written before sbatch returns the job id; a status look in that window (the console polls
    every second) must neither call the run lost nor persist anything."""
    import json
    import time as _time
    from tui_trainer.runs.status import derive_status
    run_dir = tmp_path / "20261201-010000-x"
    run_dir.mkdir()
    (run_dir / "launch.json").write_text(json.dumps({"launch": 1, "backend": "slurm", "started_at": _time.time()}))
    status = derive_status(run_dir)
    assert (status.state, status.reason) == ("queued", "being submitted to Slurm")
    assert not (run_dir / "status.json").exists()
    # A submission that never completed is not "queued" forever.
    (run_dir / "launch.json").write_text(json.dumps({"launch": 1, "backend": "slurm",
                                                     "started_at": _time.time() - 3600}))
    assert derive_status(run_dir).final
