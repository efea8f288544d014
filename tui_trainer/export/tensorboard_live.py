"""``[log] tensorboard = true``: rank 0 mirrors the event log into ``<run dir>/tensorboard/`` as the run goes.

A thread follows events.jsonl (so nothing is added to the training thread or to ``emit``) and appends the same
scalars and sample texts as ``gpt-console export --tensorboard``, flushed about once a second.

Resumes are stitched with TensorBoard's own restart marker: each trainer process starts a new event file with
a ``SessionLog.START`` at its start step, and TensorBoard's reader drops every earlier value at or after that
step — the steps the resume re-runs. What the resumed process does not redo is carried over: the evaluations and
samples of the start step itself, when its checkpoint was saved after them (``carry_evals``).
"""

from __future__ import annotations

import threading
from pathlib import Path

from tui_trainer.channel.follower import EventFollower, parse_event_line
from tui_trainer.export.tensorboard import SAMPLE_TAG, STEP_SCALARS, sample_markdown

MIRROR_DIR = "tensorboard"
EVAL_TYPES = ("val", "hellaswag", "sample")


def _end_of_log(path: Path) -> int:
    """Offset just after the last complete line: this process's own events come after it."""
    try:
        with open(path, "rb") as f:
            data_end = f.seek(0, 2)
            f.seek(max(0, data_end - 65536))
            block = f.read()
    except OSError:
        return 0
    cut = block.rfind(b"\n")
    return data_end - len(block) + cut + 1 if cut >= 0 else 0


class TensorBoardMirror:
    def __init__(self, events_file: str | Path, out_dir: str | Path, *, start_step: int, carry_evals: bool,
                 interval: float = 1.0):
        from tensorboard.compat.proto import event_pb2, summary_pb2, tensor_pb2, tensor_shape_pb2, types_pb2
        from tensorboard.plugins.text import metadata as text_metadata
        from tensorboard.summary.writer.event_file_writer import EventFileWriter
        self._pb = (event_pb2, summary_pb2, tensor_pb2, tensor_shape_pb2, types_pb2)
        self._text_meta = text_metadata.create_summary_metadata(display_name="samples",
                                                                description="generated text")
        self.events_file, self.start_step, self.carry_evals = Path(events_file), start_step, carry_evals
        self.offset = _end_of_log(self.events_file)
        self.follower = EventFollower(self.events_file, self.offset)
        self.writer = EventFileWriter(str(out_dir))
        self.interval = interval
        self.saw_end = False
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="tensorboard-mirror", daemon=True)
        self._thread.start()

    # ------------------------------------------------------------------------------------------- writing
    def _values(self, event: dict) -> list:
        summary_pb2 = self._pb[1]
        kind = event.get("type")
        values = []

        def scalar(tag: str, value) -> None:
            if isinstance(value, (int, float)) and not isinstance(value, bool) and value == value \
                    and abs(value) != float("inf"):
                values.append(summary_pb2.Summary.Value(tag=tag, simple_value=float(value)))

        if kind == "step":
            for tag, name in STEP_SCALARS:
                scalar(tag, event.get(name))
        elif kind == "val":
            scalar("val/loss", event.get("loss"))
        elif kind == "hellaswag":
            scalar("hellaswag/acc", event.get("acc"))
            scalar("hellaswag/acc_norm", event.get("acc_norm"))
        elif kind == "sample" and isinstance(event.get("texts"), list):
            _, summary_pb2, tensor_pb2, tensor_shape_pb2, types_pb2 = self._pb
            tensor = tensor_pb2.TensorProto(dtype=types_pb2.DT_STRING,
                                            string_val=[sample_markdown(event).encode("utf-8")],
                                            tensor_shape=tensor_shape_pb2.TensorShapeProto())
            values.append(summary_pb2.Summary.Value(tag=SAMPLE_TAG, metadata=self._text_meta, tensor=tensor))
        return values

    def _write(self, event: dict) -> None:
        event_pb2, summary_pb2 = self._pb[0], self._pb[1]
        step, t = event.get("step"), event.get("t")
        if not isinstance(step, int) or not isinstance(t, (int, float)):
            return
        values = self._values(event)
        if values:
            summary = summary_pb2.Summary(value=values)
            self.writer.add_event(event_pb2.Event(wall_time=t, step=step, summary=summary))

    def _restart_marker(self) -> None:
        """SessionLog.START at the start step, then the start step's carried-over evaluations and samples."""
        event_pb2 = self._pb[0]
        carried: dict[str, dict] = {}
        if self.carry_evals and self.start_step > 0:
            with open(self.events_file, "rb") as f:
                for line in iter(lambda: f.readline(), b""):
                    if f.tell() > self.offset:
                        break
                    event = parse_event_line(line)
                    if event and event["type"] in EVAL_TYPES and event.get("step") == self.start_step:
                        carried[event["type"]] = event  # the newest of each kind
        first_t = min((e["t"] for e in carried.values()), default=None)
        marker = event_pb2.Event(step=self.start_step, session_log=event_pb2.SessionLog(
            status=event_pb2.SessionLog.START))
        if first_t is not None:
            marker.wall_time = first_t
        else:
            import time
            marker.wall_time = time.time()
        self.writer.add_event(marker)
        for event in carried.values():
            self._write(event)

    def _drain(self) -> None:
        for event in self.follower.poll():
            if event.get("type") == "run_end":
                self.saw_end = True
            self._write(event)
        self.writer.flush()

    def _run(self) -> None:
        try:
            self._restart_marker()
            while not self._stop.wait(self.interval):
                self._drain()
        except Exception:  # noqa: BLE001 - a mirror must never take the run down; the event log has it all
            self._stop.set()

    def stop(self, timeout: float = 10.0) -> None:
        """Write what is left, up to this process's run_end (the event writer may still be flushing it)."""
        import time
        self._stop.set()
        self._thread.join(timeout)
        deadline = time.monotonic() + timeout
        try:
            while True:
                self._drain()
                if self.saw_end or time.monotonic() > deadline:
                    break
                time.sleep(0.05)
        except Exception:  # noqa: BLE001 - the run has ended well; a mirror problem must not fail it
            pass
        finally:
            self.writer.close()


def start_mirror(run_dir: Path, events_file: Path, *, start_step: int, carry_evals: bool, events):
    """The mirror, or None with one warning event when the tensorboard package is missing."""
    try:
        return TensorBoardMirror(events_file, Path(run_dir) / MIRROR_DIR, start_step=start_step,
                                 carry_evals=carry_evals)
    except ImportError as e:
        events.emit("log", level="warning", message=f"log.tensorboard is on but the tensorboard package is "
                    f"missing ({e}); pip install 'tui_trainer[tensorboard]'. The run goes on without it.")
        return None
