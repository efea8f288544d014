"""Which sample round the samples panel shows: one prompt at a time, scrubbable back through its steps.

Three ways of showing, and the panel always says which one is on:
- following: the newest round of whichever prompt was sampled last (the default);
- held: a position the user chose (scrubbed back, another prompt, the first round); new rounds do not move it;
- requested: the round the user asked for with ``p``. It stays on screen until the user moves (``[ ] { } t``),
  even when a scheduled sample of another prompt arrives right after it (same step, same batch, same redraw).
No Textual here.
"""

from __future__ import annotations

from dataclasses import dataclass

from tui_trainer.app.run_view import SampleRound, SampleTimeline

FOLLOWING, HELD, REQUESTED = "following", "held", "requested"


@dataclass(frozen=True)
class SampleView:
    prompt: str
    round: SampleRound
    index: int      # 0-based position of ``round`` among the prompt's rounds
    count: int      # rounds for this prompt
    prompt_index: int
    prompt_count: int
    mode: str       # FOLLOWING, HELD or REQUESTED
    waiting_for: str | None = None  # a requested prompt whose sample has not arrived yet

    @property
    def following(self) -> bool:
        return self.mode == FOLLOWING

    @property
    def is_newest(self) -> bool:
        return self.index == self.count - 1


class SampleBrowser:
    def __init__(self) -> None:
        self.prompt: str | None = None   # None = follow whichever prompt was sampled last
        self.index: int | None = None    # None = follow the newest round of the prompt
        self.requested = False           # the held position is the round the user asked for
        self._awaiting: tuple[str, int] | None = None  # (prompt, rounds arrived when it was asked for)

    # ------------------------------------------------------------------------------------ requests (p)
    def request(self, timeline: SampleTimeline, prompt: str) -> None:
        """The user asked for a sample of ``prompt``: show it as soon as it arrives, and keep it shown."""
        self._awaiting = (prompt, timeline.arrived)

    def cancel_request(self) -> None:
        """The request was refused or could not be sent: nothing is coming."""
        self._awaiting = None

    def _resolve_request(self, timeline: SampleTimeline) -> None:
        if self._awaiting is None:
            return
        prompt, mark = self._awaiting
        rounds = timeline.by_prompt.get(prompt, [])
        for i, r in enumerate(rounds):
            if r.serial > mark and r.source == "control":
                self.prompt, self.index, self.requested, self._awaiting = prompt, i, True, None
                return

    # --------------------------------------------------------------------------------------- showing
    def current(self, timeline: SampleTimeline) -> SampleView | None:
        self._resolve_request(timeline)
        prompts = timeline.prompts()
        waiting = self._awaiting[0] if self._awaiting else None
        if not prompts:
            return None
        prompt = self.prompt if self.prompt in timeline.by_prompt else timeline.latest_prompt or prompts[-1]
        rounds = timeline.by_prompt[prompt]
        index = len(rounds) - 1 if self.index is None else max(0, min(self.index, len(rounds) - 1))
        if self.prompt is None and self.index is None:
            mode = FOLLOWING
        else:
            mode = REQUESTED if self.requested else HELD
        return SampleView(prompt, rounds[index], index, len(rounds), prompts.index(prompt), len(prompts),
                          mode, waiting)

    # ---------------------------------------------------------------------------------------- moving
    def _moved(self) -> None:
        self.requested = False

    def scrub(self, timeline: SampleTimeline, delta: int) -> None:
        """Move ``delta`` rounds through time for the shown prompt (negative = earlier)."""
        view = self.current(timeline)
        if view is None:
            return
        self._moved()
        self.prompt = view.prompt
        target = view.index + delta
        self.index = None if target >= view.count - 1 else max(0, target)

    def first(self, timeline: SampleTimeline) -> None:
        view = self.current(timeline)
        if view is not None:
            self._moved()
            self.prompt, self.index = view.prompt, 0

    def next_prompt(self, timeline: SampleTimeline, delta: int = 1) -> None:
        view = self.current(timeline)
        if view is None:
            return
        self._moved()
        prompts = timeline.prompts()
        self.prompt = prompts[(view.prompt_index + delta) % len(prompts)]
        self.index = None

    def follow(self) -> None:
        self._moved()
        self.prompt, self.index = None, None
