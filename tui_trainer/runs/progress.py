"""Human-readable text for runs: the live progress line and one-off event lines (used by the headless CLI;
plain strings, so the console may reuse them)."""

from __future__ import annotations

import time

from tui_trainer.channel.summary import RunSummary


def fmt_duration(seconds: float | None) -> str:
    if seconds is None or seconds != seconds:
        return "?"
    s = int(round(max(0.0, seconds)))
    if s < 60:
        return f"{s}s"
    if s < 3600:
        return f"{s // 60}m{s % 60:02d}s"
    if s < 86400:
        return f"{s // 3600}h{s % 3600 // 60:02d}m"
    return f"{s // 86400}d{s % 86400 // 3600:02d}h"


def fmt_age(t: float | None, now: float | None = None) -> str:
    if t is None:
        return "-"
    return fmt_duration((time.time() if now is None else now) - t) + " ago"


def fmt_count(x: float | None) -> str:
    """1234 -> 1.23k, 5_600_000 -> 5.60M."""
    if x is None:
        return "-"
    for limit, suffix in ((1e9, "G"), (1e6, "M"), (1e3, "k")):
        if abs(x) >= limit:
            return f"{x / limit:.2f}{suffix}"
    return f"{x:.0f}" if float(x).is_integer() else f"{x:.1f}"


def fmt_num(x: float | None, digits: int = 4) -> str:
    return "-" if x is None else f"{x:.{digits}f}"


def progress_line(s: RunSummary, now: float | None = None) -> str:
    """``step 120/500 24% | loss 4.1234 | val 4.3000 | 12.3k tok/s | mfu 31% | ETA 4m12s``."""
    if s.step is None:
        if s.started_at is None:
            return "waiting for the trainer to start..."
        return f"started ({s.device or '?'}, {s.world_size or '?'} ranks), waiting for the first step..."
    total = f"/{s.max_steps}" if s.max_steps else ""
    parts = [f"step {s.step + 1}{total}" + (f" {100 * s.progress:.0f}%" if s.progress is not None else ""),
             f"loss {fmt_num(s.loss)}"]
    if s.val_loss is not None:
        parts.append(f"val {fmt_num(s.val_loss)}")
    if s.hellaswag_acc_norm is not None:
        parts.append(f"hellaswag {s.hellaswag_acc_norm:.4f}")
    if s.tok_per_s is not None:
        parts.append(f"{fmt_count(s.tok_per_s)} tok/s")
    if s.mfu is not None:
        parts.append(f"mfu {100 * s.mfu:.1f}%")
    if not s.ended:
        parts.append(f"ETA {fmt_duration(s.eta_seconds(now))}")
    return " | ".join(parts)


def describe_event(e: dict) -> str | None:
    """A line (or block) for events worth printing as they arrive; None for the ones the progress line covers."""
    kind = e.get("type")
    step = e.get("step")
    if kind == "run_start":
        resumed = e.get("resumed_from_step")
        head = f"resumed from the checkpoint at step {resumed}" if resumed is not None else "started"
        return (f"{head}: {fmt_count(e.get('params'))} parameters, {e.get('world_size')} rank(s) on "
                f"{e.get('device_name') or e.get('device')}, {e.get('dtype')}, {e.get('max_steps')} steps")
    if kind == "sample":
        texts = e.get("texts") or []
        lines = [f"--- samples at step {step} ({e.get('source', '')}) ---"]
        lines += [f"[{i}] {e.get('prompt', '')}{text}".replace("\n", "\n    ") for i, text in enumerate(texts)]
        return "\n".join(lines)
    if kind == "hellaswag":
        return (f"HellaSwag at step {step}: acc_norm {fmt_num(e.get('acc_norm'))} "
                f"({e.get('correct_norm')}/{e.get('total')}), acc {fmt_num(e.get('acc'))}")
    if kind == "val":
        return f"validation loss at step {step}: {fmt_num(e.get('loss'))}"
    if kind == "checkpoint":
        return f"checkpoint at step {step} ({e.get('reason', '')}): {e.get('path', '')}"
    if kind == "control_ack":
        ok = "done" if e.get("ok") else "refused"
        return f"control '{e.get('action')}' {ok} at step {step}" + (f": {e['message']}" if e.get("message") else "")
    if kind == "error":
        return f"ERROR: {e.get('message', '')}"
    if kind == "log":
        level = str(e.get("level", "info")).lower()
        if level == "debug":
            return None
        return f"{level.upper()}: {e.get('message', '')}" if level in ("warning", "warn", "error") else \
            str(e.get("message", ""))
    if kind == "run_end":
        return f"run {e.get('status')} at step {step}: {e.get('reason', '')}"
    return None
