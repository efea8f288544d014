"""Control requests from the console to a live run, as files in ``<run_dir>/control/``.

The console writes ``<id>.json`` atomically (a dot-prefixed temp file renamed into place, so the trainer never
reads half a request). Rank 0 of the trainer polls the directory at step boundaries, acts, and moves each
handled file into ``control/done/``; every request is answered by a ``control_ack`` event carrying its id.
Ids sort in the order requests were made. Stdlib only.
"""

from __future__ import annotations

import json
import os
import secrets
import time
from pathlib import Path
from typing import Any

from .layout import control_dir

ACTIONS: tuple[str, ...] = ("stop", "checkpoint", "sample", "eval")
DONE_DIR = "done"


def send_control(run_dir: str | os.PathLike, action: str, **payload: Any) -> str:
    """Ask a running trainer to stop / checkpoint / sample (payload ``prompt``) / eval. Returns the request id."""
    if action not in ACTIONS:
        raise ValueError(f"unknown control action {action!r}; use one of {', '.join(ACTIONS)}")
    directory = control_dir(run_dir)
    directory.mkdir(parents=True, exist_ok=True)
    request_id = f"{time.time_ns():020d}-{action}-{secrets.token_hex(3)}"
    body = {"id": request_id, "action": action, "t": time.time(), **payload}
    tmp = directory / f".{request_id}.json.tmp"
    tmp.write_text(json.dumps(body, ensure_ascii=False), encoding="utf-8")
    os.replace(tmp, directory / f"{request_id}.json")
    return request_id


class ControlInbox:
    """Trainer side: pending requests, oldest first. Each returned dict has ``id`` and ``action``, the sender's
    payload, and ``error`` (a message) when the file was not a valid request — acknowledge those with ok=false."""

    def __init__(self, run_dir: str | os.PathLike):
        self.directory = control_dir(run_dir)
        self.done = self.directory / DONE_DIR

    def poll(self) -> list[dict[str, Any]]:
        try:
            names = sorted(e.name for e in os.scandir(self.directory)
                           if e.name.endswith(".json") and not e.name.startswith(".") and e.is_file())
        except FileNotFoundError:
            return []
        requests = []
        for name in names:
            path = self.directory / name
            request = self._read(path)
            self.done.mkdir(parents=True, exist_ok=True)
            try:
                os.replace(path, self.done / name)
            except FileNotFoundError:  # someone else took it; do not act twice
                continue
            requests.append(request)
        return requests

    @staticmethod
    def _read(path: Path) -> dict[str, Any]:
        request_id = path.stem
        try:
            body = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError, RecursionError) as e:
            return {"id": request_id, "action": "", "error": f"unreadable control file {path.name}: {e}"}
        if not isinstance(body, dict):
            return {"id": request_id, "action": "", "error": f"control file {path.name} is not a JSON object"}
        body.setdefault("id", request_id)
        body["id"] = str(body["id"])
        action = body.get("action")
        if action not in ACTIONS:
            body["action"] = str(action or "")
            body["error"] = f"unknown action {action!r} (known: {', '.join(ACTIONS)})"
        elif action == "sample" and "prompt" in body and not isinstance(body["prompt"], str):
            body["error"] = "sample prompt must be a string"
        return body
