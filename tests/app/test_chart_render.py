"""Chart frames: every option combination draws, spikes and references show, gaps and log-y are safe."""

from __future__ import annotations

import itertools
import math
import re


from tui_trainer.app.chart_render import PALETTE, ChartOptions, ChartSpec, Colors, Line, blend, render_chart
from tui_trainer.app.series import Series

def plain(text) -> str:
    return text.plain


def loss_series(n: int, spike_at: int | None = None) -> Series:
    s = Series("train")
    for i in range(n):
        v = 3 + 5 * math.exp(-i / (n / 5))
        if i == spike_at:
            v = 40.0
        s.append(i, v, tokens=(i + 1) * 1024.0, wall=i * 0.5)
    return s


def test_every_option_combination_draws_at_the_requested_size():
    train = loss_series(5000, spike_at=2500)
    val = Series("val")
    for i in range(0, 5000, 500):
        val.append(i, 3.5, tokens=(i + 1) * 1024.0, wall=i * 0.5)
    spec = ChartSpec("loss", [Line("train", train, PALETTE[0]), Line("val", val, PALETTE[1], sparse=True)],
                     hlines=[(3.2, "ref", (0, 200, 0))], resume_steps=[1000], ylim=(2.0, 9.0))
    for ema, log_y, axis in itertools.product((True, False), (True, False), ("step", "tokens", "wall")):
        text = plain(render_chart(spec, ChartOptions(ema, log_y, axis), 90, 20))
        lines = text.splitlines()
        assert len(lines) == 20 and max(len(line) for line in lines) == 90


def test_a_spike_sets_the_axis_and_the_title_says_what_is_shown():
    spec = ChartSpec("loss", [Line("train", loss_series(200_000, spike_at=123_456), PALETTE[0])])
    text = plain(render_chart(spec, ChartOptions(ema=True), 100, 24))
    top_tick = max(float(m) for m in re.findall(r"^\s*([0-9.]+)┤", text, flags=re.M))
    assert top_tick >= 35           # the one-step spike survived thinning 200k points into ~200 buckets
    assert "loss · EMA" in text and "train (EMA)" in text


def test_non_finite_values_are_counted_in_the_title_and_log_y_survives_zeros():
    s = Series("grad")
    for i, v in enumerate([1.0, 0.0, -2.0, math.nan, math.inf, 3.0, 2.0]):
        s.append(i, v)
    text = plain(render_chart(ChartSpec("grad norm", [Line("g", s, PALETTE[2])]),
                              ChartOptions(ema=False, log_y=True), 60, 15))
    assert "2 NaN/inf" in text and "log" in text


def test_x_axis_units_scale_for_tokens_and_wall_time():
    s = loss_series(3000)
    text = plain(render_chart(ChartSpec("loss", [Line("t", s, PALETTE[0])]), ChartOptions(x_axis="tokens"), 80, 15))
    assert "tokens (k)" in text  # 3.1M tokens: thousands keep the ticks whole
    text = plain(render_chart(ChartSpec("loss", [Line("t", s, PALETTE[0])]), ChartOptions(x_axis="wall"), 80, 15))
    assert "wall (min)" in text


def test_flat_single_point_and_empty_series_draw():
    one = Series("one")
    one.append(0, 0.3)
    empty = Series("empty")
    spec = ChartSpec("hs", [Line("a", one, PALETTE[0], sparse=True), Line("b", empty, PALETTE[1])],
                     hlines=[(0.25, "random", (1, 1, 1))], ylim=(0.2, 0.32))
    assert "hs" in plain(render_chart(spec, ChartOptions(), 50, 12))


def test_long_titles_are_shortened_instead_of_dropped():
    spec = ChartSpec("a very long chart title that would never fit in a narrow chart at all",
                     [Line("t", loss_series(10), PALETTE[0])])
    assert "a very long" in plain(render_chart(spec, ChartOptions(), 40, 12))


def test_blend_fades_towards_the_background():
    assert blend((200, 100, 0), (0, 0, 0), 0.5) == (100, 50, 0)
    assert blend((10, 10, 10), (30, 30, 30), 0.0) == (30, 30, 30)


def test_colors_reach_the_frame():
    s = loss_series(50)
    text = render_chart(ChartSpec("c", [Line("t", s, (1, 2, 3))]), ChartOptions(ema=True), 40, 10,
                        Colors(background=(9, 8, 7), foreground=(200, 201, 202)))
    colors = {str(span.style.color) for span in text.spans if hasattr(span.style, "color") and span.style.color}
    assert any("1,2,3" in c.replace(" ", "") or "#010203" in c for c in colors)       # the EMA line
    faint = blend((1, 2, 3), (9, 8, 7), 0.35)
    assert any(f"{faint[0]},{faint[1]},{faint[2]}" in c.replace(" ", "") or
               "#{:02x}{:02x}{:02x}".format(*faint) in c for c in colors)          # the raw line under it


def test_reference_lines_are_drawn_and_named_and_resumes_marked():
    s = loss_series(100)
    spec = ChartSpec("hs", [Line("acc", s, PALETTE[0])], hlines=[(5.0, "GPT-2", (0, 255, 0))], resume_steps=[50])
    text = plain(render_chart(spec, ChartOptions(ema=False), 80, 20))
    assert "GPT-2" in text
    spec.resume_steps = []
    assert plain(render_chart(spec, ChartOptions(ema=False), 80, 20)) != text  # the dotted resume line


def test_ticks_are_round_numbers():
    from tui_trainer.app.ticks import format_log_ticks, format_ticks, linear_ticks, log_ticks
    assert linear_ticks(0.0, 1000.0, 5) == [0.0, 200.0, 400.0, 600.0, 800.0, 1000.0]
    assert format_ticks([0.0, 0.25, 0.5]) == ["0.00", "0.25", "0.50"]
    assert format_ticks([0.0, 2e6, 4e6]) == ["0M", "2M", "4M"]
    assert log_ticks(-5.0, -3.0, 6) == [-5.0, -4.0, -3.0]
    assert format_log_ticks([1e-5, 1e-4, 1e-3, 2.0, 1e6]) == ["1e-5", "1e-4", "0.001", "2", "1e6"]
