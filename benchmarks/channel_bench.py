"""Channel benchmarks: follower replay of a 1M-event log, EventWriter cost per event, follower latency.

    .venv/bin/python benchmarks/channel_bench.py [--events 1000000]

Prints the figures recorded in docs/benchmarks.md ("Channel"). Stdlib only; the replay runs in a fresh
subprocess so its peak RSS is its own (reported next to the RSS of a subprocess that only imports).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import random
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tui_trainer.channel.follower import EventFollower  # noqa: E402
from tui_trainer.channel.summary import RunSummary  # noqa: E402
from tui_trainer.channel.writer import EventWriter  # noqa: E402

CONFIG = {"model": {"n_layer": 12, "n_head": 12, "n_embd": 768}, "optim": {"max_lr": 6e-4}}


def make_log(path: Path, n: int) -> None:
    """A realistic log: run_start, then per step a step event; val/hellaswag/sample/heartbeat now and then."""
    rng = random.Random(0)
    t = 1_700_000_000.0
    with open(path, "w", encoding="utf-8") as f:
        seq = 0

        def put(kind: str, **payload) -> None:
            nonlocal seq
            f.write(json.dumps({"v": 1, "seq": seq, "t": t, "type": kind, **payload}) + "\n")
            seq += 1

        put("run_start", config=CONFIG, trainer="train", params=124_475_904, world_size=8, device="cuda:0",
            device_name="NVIDIA H100 80GB HBM3", dtype="bfloat16", grad_accum_steps=1, max_steps=n,
            start_step=0, resumed_from_step=None, peak_flops=989e12)
        step = 0
        while seq < n - 1:
            t += 0.33
            loss = 11.0 * math.exp(-step / 5000) + 3.0 + rng.random() * 0.05
            put("step", step=step, loss=loss, lr=6e-4 * min(1.0, (step + 1) / 715), grad_norm=0.3 + rng.random(),
                dt=0.33 + rng.random() * 0.01, tok_per_s=1.58e6 + rng.random() * 1e4, tokens=(step + 1) * 524288,
                mfu=0.41 + rng.random() * 0.01)
            step += 1
            if step % 250 == 0:
                put("val", step=step, loss=loss + 0.02)
                put("hellaswag", step=step, correct=2900, correct_norm=2950, total=10042, acc=0.2888,
                    acc_norm=0.2937)
                put("sample", step=step, prompt="Hello, I'm a language model,", source="schedule",
                    texts=["and I can do many things with the help of my teacher" * 2] * 4)
            if step % 30 == 0:
                put("heartbeat", step=step)
        put("run_end", status="finished", reason="reached max_steps", step=step)


def replay_in_subprocess(path: Path, batch: int, only_import: bool = False) -> dict:
    code = f"""
import json, resource, sys, time
sys.path.insert(0, {str(ROOT)!r})
from tui_trainer.channel.follower import EventFollower
from tui_trainer.channel.summary import RunSummary
t0 = time.perf_counter(); c0 = time.process_time(); n = 0; s = RunSummary()
if not {only_import}:
    f = EventFollower({str(path)!r})
    while True:
        b = f.poll(max_events={batch})
        if not b: break
        n += len(b)
        for e in b: s.apply(e)
dt = time.perf_counter() - t0
print(json.dumps({{"events": n, "seconds": dt, "cpu_seconds": time.process_time() - c0, "maxrss_kb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss,
                  "step": s.step, "ended": s.ended}}))
"""
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    return json.loads(out)


def writer_cost(n: int, directory: Path) -> dict:
    """Caller-side cost of emit() (what the training loop pays) and end-to-end throughput until flushed."""
    path = directory / "writer.jsonl"
    writer = EventWriter(path, max_queue=n + 10)
    payload = dict(loss=3.2812, lr=6e-4, grad_norm=0.41, dt=0.331, tok_per_s=1.58e6, tokens=1, mfu=0.41)
    per_call = []
    t0 = time.perf_counter()
    cpu0 = time.process_time()
    for i in range(n):
        c0 = time.perf_counter_ns()
        writer.emit("step", step=i, **payload)
        per_call.append(time.perf_counter_ns() - c0)
    emitted = time.perf_counter() - t0
    writer.close(timeout=60)
    total = time.perf_counter() - t0
    cpu = time.process_time() - cpu0  # caller + writer thread: the whole CPU price of the events
    lines = sum(1 for _ in open(path, "rb"))
    per_call.sort()
    return {"events": n, "lines": lines, "dropped": writer.dropped, "emit_mean_us": emitted / n * 1e6,
            "emit_p50_us": per_call[n // 2] / 1e3, "emit_p99_us": per_call[int(n * 0.99)] / 1e3,
            "flushed_events_per_s": n / total, "cpu_us_per_event": cpu / n * 1e6}


def latency(directory: Path, count: int = 200, interval: float = 0.02, poll: float = 0.1) -> dict:
    """Events emitted at ``interval`` by an EventWriter; a follower polling every ``poll`` s (the console's
    rhythm) notes when each becomes visible. Latency = visible time - emit time."""
    path = directory / "latency.jsonl"
    writer = EventWriter(path)
    follower = EventFollower(path)
    seen: list[float] = []
    done = threading.Event()

    def produce() -> None:
        for i in range(count):
            writer.emit("heartbeat", step=i)
            time.sleep(interval)
        writer.close()
        done.set()

    thread = threading.Thread(target=produce)
    thread.start()
    while len(seen) < count:
        for event in follower.poll():
            seen.append(time.time() - event["t"])
        if done.is_set() and len(seen) >= count:
            break
        time.sleep(poll)
    thread.join()
    seen.sort()
    return {"events": len(seen), "poll_s": poll, "p50_ms": seen[len(seen) // 2] * 1e3,
            "p99_ms": seen[int(len(seen) * 0.99)] * 1e3, "max_ms": seen[-1] * 1e3,
            "over_250ms": sum(1 for x in seen if x > 0.25)}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--events", type=int, default=1_000_000)
    ap.add_argument("--batch", type=int, default=10_000)
    ap.add_argument("--writer-events", type=int, default=100_000)
    args = ap.parse_args()
    print(f"python {sys.version.split()[0]}, {os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.1f}")
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        log = tmp / "events.jsonl"
        t0 = time.perf_counter()
        make_log(log, args.events)
        size = log.stat().st_size
        print(f"log: {args.events:,} events, {size / 1e6:.1f} MB, generated in {time.perf_counter() - t0:.1f} s")
        base = replay_in_subprocess(log, args.batch, only_import=True)
        runs = [replay_in_subprocess(log, args.batch) for _ in range(3)]
        best = min(runs, key=lambda r: r["seconds"])
        print(f"replay (poll max_events={args.batch} + RunSummary.apply), best of 3: {best['events']:,} events in "
              f"{best['seconds']:.2f} s = {best['events'] / best['seconds']:,.0f} events/s "
              f"({size / best['seconds'] / 1e6:.0f} MB/s); all runs: "
              + ", ".join(f"{r['seconds']:.2f} s" for r in runs))
        print(f"replay CPU time (user+sys, insensitive to other load): {best['cpu_seconds']:.2f} s = "
              f"{best['events'] / best['cpu_seconds']:,.0f} events per CPU-second")
        print(f"peak RSS: {best['maxrss_kb'] / 1024:.1f} MiB (a process that only imports: "
              f"{base['maxrss_kb'] / 1024:.1f} MiB); summary ended={best['ended']} step={best['step']}")
        w = writer_cost(args.writer_events, tmp)
        print(f"EventWriter.emit: mean {w['emit_mean_us']:.2f} us, p50 {w['emit_p50_us']:.2f} us, "
              f"p99 {w['emit_p99_us']:.2f} us per event (caller side); {w['flushed_events_per_s']:,.0f} events/s "
              f"written+flushed; total CPU (caller + writer thread) {w['cpu_us_per_event']:.1f} us per event; "
              f"{w['lines']:,} lines, {w['dropped']} dropped")
        lat = latency(tmp)
        print(f"latency emit -> visible in a follower polling every {lat['poll_s'] * 1e3:.0f} ms: p50 "
              f"{lat['p50_ms']:.0f} ms, p99 {lat['p99_ms']:.0f} ms, max {lat['max_ms']:.0f} ms, "
              f"{lat['over_250ms']}/{lat['events']} over 250 ms")


if __name__ == "__main__":
    main()
