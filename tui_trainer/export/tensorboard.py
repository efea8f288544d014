"""Export a run's event log as TensorBoard event files (``tensorboard --logdir DIR``).

Scalars, each at its step with the event's wall time (TensorBoard's STEP, RELATIVE and WALL x-axes all work):
  train/loss, train/lr, train/grad_norm, train/tok_per_s, train/mfu   from ``step`` (mfu only when known)
  val/loss                                                            from ``val``
  hellaswag/acc, hellaswag/acc_norm                                   from ``hellaswag``
Text: ``samples`` — each sample round as markdown (prompt, then each continuation), at its step.

A resumed run is stitched as ``gpt-console export --csv`` stitches it: when a resume re-ran steps, the newest
value for a (tag, step) wins, and everything is written in step order — TensorBoard's reader treats a step
that goes backwards as a restart and drops what came after it. Scalars are TensorBoard's classic float32
values.

Written with the ``tensorboard`` package's own event-file writer (the optional ``tensorboard`` extra); no
TensorFlow, no torch.
"""

from __future__ import annotations

import math
import os
from pathlib import Path
from typing import Iterable

from tui_trainer.export.output_dir import check_output_dir, staged_dir

STEP_SCALARS = (("train/loss", "loss"), ("train/lr", "lr"), ("train/grad_norm", "grad_norm"),
                ("train/tok_per_s", "tok_per_s"), ("train/mfu", "mfu"))
SAMPLE_TAG = "samples"


def collect(events: Iterable[dict]) -> tuple[dict[str, dict[int, tuple[float, float]]], dict[int, tuple]]:
    """(scalars: tag -> step -> (wall time, value), samples: step -> (wall time, markdown)), newest wins."""
    scalars: dict[str, dict[int, tuple[float, float]]] = {}
    samples: dict[int, tuple[float, str]] = {}

    def put(tag: str, step: int, t: float, value) -> None:
        if isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value):
            scalars.setdefault(tag, {})[step] = (t, float(value))

    for event in events:
        kind, step, t = event.get("type"), event.get("step"), event.get("t")
        if not isinstance(step, int) or not isinstance(t, (int, float)):
            continue
        if kind == "step":
            for tag, name in STEP_SCALARS:
                put(tag, step, t, event.get(name))
        elif kind == "val":
            put("val/loss", step, t, event.get("loss"))
        elif kind == "hellaswag":
            put("hellaswag/acc", step, t, event.get("acc"))
            put("hellaswag/acc_norm", step, t, event.get("acc_norm"))
        elif kind == "sample" and isinstance(event.get("texts"), list):
            samples[step] = (t, sample_markdown(event))
    return scalars, samples


def sample_markdown(event: dict) -> str:
    prompt = str(event.get("prompt", ""))
    parts = [f"**prompt** ({event.get('source', '')}): {prompt}"]
    texts = [text for text in event["texts"] if isinstance(text, str)]
    parts += [f"{i + 1}. {prompt}**{text}**" for i, text in enumerate(texts)]
    return "\n\n".join(parts)


def export_tensorboard(events: Iterable[dict], out: str | os.PathLike) -> tuple[Path, int, int]:
    """Write the event file into the new directory ``out``; returns (out, scalar points, sample rounds)."""
    from tensorboard.compat.proto import event_pb2, summary_pb2, tensor_pb2, tensor_shape_pb2, types_pb2
    from tensorboard.plugins.text import metadata as text_metadata
    from tensorboard.summary.writer.event_file_writer import EventFileWriter

    out = check_output_dir(out, "the TensorBoard export")
    scalars, samples = collect(events)
    # (step, wall time, order, Summary.Value): sorted by step so the reader never sees one go backwards.
    records = []
    for tag, points in scalars.items():
        for step, (t, value) in points.items():
            records.append((step, t, 0, summary_pb2.Summary.Value(tag=tag, simple_value=value)))
    text_meta = text_metadata.create_summary_metadata(display_name="samples", description="generated text")
    for step, (t, markdown) in samples.items():
        tensor = tensor_pb2.TensorProto(dtype=types_pb2.DT_STRING, string_val=[markdown.encode("utf-8")],
                                        tensor_shape=tensor_shape_pb2.TensorShapeProto())
        value = summary_pb2.Summary.Value(tag=SAMPLE_TAG, metadata=text_meta, tensor=tensor)
        records.append((step, t, 1, value))
    records.sort(key=lambda r: (r[0], r[2], r[1]))
    with staged_dir(out) as tmp:
        writer = EventFileWriter(str(tmp))
        try:
            for step, t, _, value in records:
                summary = summary_pb2.Summary(value=[value])
                writer.add_event(event_pb2.Event(wall_time=t, step=step, summary=summary))
        finally:
            writer.close()
    return out, sum(len(p) for p in scalars.values()), len(samples)
