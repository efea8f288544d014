"""Helpers for driving the console with Textual's Pilot (the tests are plain functions around asyncio.run)."""

from __future__ import annotations

import asyncio
import io
import time
from typing import Awaitable, Callable

from rich.console import Console
from textual.widgets import Input

from tui_trainer.app.console import GptConsole
from tui_trainer.app.screens.editor import EditorScreen
from tui_trainer.app.widgets.config_form import ConfigForm

SIZE = (160, 48)


def run(coro_fn: Callable[[], Awaitable[None]]) -> None:
    asyncio.run(coro_fn())


async def wait_for(pilot, condition: Callable[[], object], timeout: float = 10.0, what: str = "condition"):
    """Let the app run until ``condition()`` is truthy; fail with ``what`` after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}; screen "
                                 f"{type(pilot.app.screen).__name__}, focused {pilot.app.focused!r}, "
                                 f"notifications {notes(pilot.app)}")
        await pilot.pause(0.05)


def notes(app: GptConsole) -> list[str]:
    """Messages currently shown as notifications."""
    return [n.message for n in app._notifications]


def text_of(widget, width: int = 200) -> str:
    """The plain text a Static shows (its content rendered by Rich, styles dropped)."""
    console = Console(width=width, file=io.StringIO(), record=True, color_system=None)
    console.print(widget.content)
    return console.export_text()


async def open_editor(pilot) -> EditorScreen:
    app = pilot.app
    screen = await wait_for(pilot, lambda: isinstance(app.screen, EditorScreen) and app.screen, what="editor")
    await wait_for(pilot, lambda: screen.query_one(ConfigForm).ready, what="form fully mounted")
    return screen


async def type_into(pilot, screen: EditorScreen, key: str, text: str) -> None:
    box = screen.query_one(ConfigForm).row(key).query_one(Input)
    box.focus()
    box.value = ""
    await pilot.pause()
    await pilot.press(*list(text))
    await pilot.pause(0.1)
