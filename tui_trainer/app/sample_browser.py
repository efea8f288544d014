"""Which sample round the samples panel shows: one prompt at a time, scrubbable back through its steps.

By default the browser follows the newest round of the most recently sampled prompt. Scrubbing back pins a
position (new rounds then do not move the view) until the user scrubs forward to the newest again or presses
follow. No Textual here.
"""

from __future__ import annotations

from dataclasses import dataclass

from tui_trainer.app.run_view import SampleRound, SampleTimeline


@dataclass(frozen=True)
class SampleView:
    prompt: str
    round: SampleRound
    index: int      # 0-based position of ``round`` among the prompt's rounds
    count: int      # rounds for this prompt
    prompt_index: int
    prompt_count: int
    following: bool

    @property
    def is_newest(self) -> bool:
        return self.index == self.count - 1


class SampleBrowser:
    def __init__(self) -> None:
        self.prompt: str | None = None   # None = follow whichever prompt was sampled last
        self.index: int | None = None    # None = follow the newest round of the prompt

    def current(self, timeline: SampleTimeline) -> SampleView | None:
        prompts = timeline.prompts()
        if not prompts:
            return None
        prompt = self.prompt if self.prompt in timeline.by_prompt else timeline.latest_prompt or prompts[-1]
        rounds = timeline.by_prompt[prompt]
        index = len(rounds) - 1 if self.index is None else max(0, min(self.index, len(rounds) - 1))
        return SampleView(prompt, rounds[index], index, len(rounds), prompts.index(prompt), len(prompts),
                          self.index is None and self.prompt is None)

    def scrub(self, timeline: SampleTimeline, delta: int) -> None:
        """Move ``delta`` rounds through time for the shown prompt (negative = earlier)."""
        view = self.current(timeline)
        if view is None:
            return
        self.prompt = view.prompt
        target = view.index + delta
        self.index = None if target >= view.count - 1 else max(0, target)

    def first(self, timeline: SampleTimeline) -> None:
        view = self.current(timeline)
        if view is not None:
            self.prompt, self.index = view.prompt, 0

    def next_prompt(self, timeline: SampleTimeline, delta: int = 1) -> None:
        view = self.current(timeline)
        if view is None:
            return
        prompts = timeline.prompts()
        self.prompt = prompts[(view.prompt_index + delta) % len(prompts)]
        self.index = None

    def follow(self) -> None:
        self.prompt, self.index = None, None
