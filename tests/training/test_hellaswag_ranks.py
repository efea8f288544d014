"""HellaSwag under two real gloo ranks where only one of them can read the file (a node lacks it).

Every rank must enter the same collectives: either all ranks score HellaSwag or none does. Each rank is its
own trainer process joined through torch.distributed's environment variables (as torchrun would set them),
so each can be given its own eval.hellaswag_path.
"""

from __future__ import annotations

import json
import socket
import subprocess
from pathlib import Path

import pytest


from .harness import check_events, of_type, prepared_workdir, read_events, trainer_argv, trainer_env

pytestmark = pytest.mark.slow
EXAMPLES = [{"ctx": f"The cat sat on the {w}.", "label": i % 4,
             "endings": ["It purred.", "It slept there.", "Then it left.", "A dog came."]}
            for i, w in enumerate(["mat", "chair", "floor", "bed", "sofa", "rug", "box"])]


@pytest.fixture(scope="module")
def workdir(tmp_path_factory) -> Path:
    root = prepared_workdir(tmp_path_factory, "hellaswag-ranks")
    (root / "hellaswag.jsonl").write_text("".join(json.dumps(e) + "\n" for e in EXAMPLES))
    return root


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def run_two_ranks(workdir: Path, run_dir: Path, paths: list[Path], timeout: float = 150) -> list[int]:
    """Rank r reads HellaSwag from paths[r]; returns both exit codes (a hang fails the test, ranks killed)."""
    port = _free_port()
    procs = []
    for rank, path in enumerate(paths):
        env = trainer_env() | {"RANK": str(rank), "LOCAL_RANK": str(rank), "WORLD_SIZE": "2",
                               "LOCAL_WORLD_SIZE": "2", "MASTER_ADDR": "127.0.0.1", "MASTER_PORT": str(port)}
        argv = trainer_argv(workdir / "tiny.toml", run_dir, "schedule.max_steps=2", "eval.every=2",
                            "eval.hellaswag_every=2", f"eval.hellaswag_path='{path}'",
                            "launch.nproc_per_node=2")
        log = open(workdir / f"{run_dir.name}-rank{rank}.log", "w")
        procs.append(subprocess.Popen(argv, env=env, cwd=workdir, stdout=log, stderr=subprocess.STDOUT))
    try:
        return [p.wait(timeout) for p in procs]
    except subprocess.TimeoutExpired:
        raise AssertionError("the ranks hung: they did not enter the same collectives") from None
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
                p.wait()


def test_only_rank1_lacks_the_file_and_every_rank_scores_it(workdir):
    run_dir = workdir / "rank1-lacks"
    codes = run_two_ranks(workdir, run_dir, [workdir / "hellaswag.jsonl", workdir / "missing.jsonl"])
    assert codes == [0, 0], (workdir / "rank1-lacks-rank1.log").read_text()[-3000:]
    events = read_events(run_dir)
    check_events(events)
    # rank 0's examples were shared: both ranks scored their half, the counts add up to every example
    assert [(h["step"], h["total"]) for h in of_type(events, "hellaswag")] == [(0, len(EXAMPLES)),
                                                                               (2, len(EXAMPLES))]
    assert events[-1]["status"] == "finished"


def test_only_rank0_lacks_the_file_and_no_rank_scores_it(workdir):
    run_dir = workdir / "rank0-lacks"
    codes = run_two_ranks(workdir, run_dir, [workdir / "missing.jsonl", workdir / "hellaswag.jsonl"])
    assert codes == [0, 0], (workdir / "rank0-lacks-rank1.log").read_text()[-3000:]
    events = read_events(run_dir)
    check_events(events)
    assert not of_type(events, "hellaswag")
    [warning] = [e for e in of_type(events, "log") if "HellaSwag skipped" in e["message"]]
    assert "missing.jsonl" in warning["message"]
    assert [v["step"] for v in of_type(events, "val")] == [0, 2] and events[-1]["status"] == "finished"
