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


# ---------------------------------------------------------------------------- plotext frames (issues 10, 13)
from rich.cells import cell_len  # noqa: E402

from tui_trainer.app.chart_render import POINT_MARKER, _layers  # noqa: E402
from tui_trainer.app.series import wilson_interval  # noqa: E402


def one_cell_everywhere(ch: str) -> bool:
    """Characters every terminal draws one cell wide (see chart_render: POINT_MARKER)."""
    o = ord(ch)
    return 0x20 <= o < 0x7F or 0xA0 <= o <= 0xFF or 0x2500 <= o <= 0x257F or 0x2800 <= o <= 0x28FF or \
        ch == POINT_MARKER


def plot_rows(text) -> list[str]:
    """The canvas rows (header and the two x-axis rows left out), y labels cut off at the axis."""
    rows = plain(text).split("\n")[1:-2]
    return [row[re.search("[│┤├]", row).start() + 1:] for row in rows]


def test_frames_are_exactly_the_requested_cells_at_every_size_even_tiny_ones():
    """A chart never paints outside its widget: not one cell more, whatever the size or the data."""
    nan_only, one = Series("nan"), Series("one")
    for i in range(5):
        nan_only.append(i, math.nan)
    one.append(3, 2.0)
    specs = [ChartSpec("loss · a title longer than any narrow chart", [
                 Line("train", loss_series(3000, spike_at=100), PALETTE[0]),
                 Line("val", loss_series(30), PALETTE[1], sparse=True)],
                 hlines=[(4.0, "reference", (0, 200, 0))], resume_steps=[1500], alerts=[(100, "spike")]),
             ChartSpec("nan", [Line("n", nan_only, PALETTE[2])]),
             ChartSpec("one", [Line("o", one, PALETTE[3], sparse=True)])]
    for spec in specs:
        for width, height in ((1, 1), (10, 3), (15, 4), (16, 5), (23, 6), (40, 8), (53, 15), (220, 60)):
            for options in (ChartOptions(), ChartOptions(log_y=True, x_axis="tokens")):
                text = render_chart(spec, options, width, height)
                lines = text.split("\n")
                assert len(lines) == height, (spec.title, width, height)
                assert all(line.cell_len == width for line in lines), (spec.title, width, height)
                odd = {ch for ch in text.plain if ch != "\n" and not one_cell_everywhere(ch)}
                assert not odd and all(cell_len(ch) == 1 for ch in set(text.plain) - {"\n"}), odd


def test_nan_stretch_is_a_gap_not_a_line():
    s = Series("g")
    for i in range(300):
        s.append(i, math.nan if 100 <= i < 200 else 1.0 + (i % 2) * 0.1)
    spec = ChartSpec("g", [Line("g", s, PALETTE[0])])
    rows = plot_rows(render_chart(spec, ChartOptions(ema=False), 80, 16))
    canvas_w = len(rows[0])
    drawn = [any("⠁" <= row[c] <= "⣿" for row in rows) for c in range(canvas_w)]
    third = canvas_w // 3
    assert all(drawn[2:third - 2]) and all(drawn[2 * third + 2:-2])
    assert not any(drawn[third + 2:2 * third - 2])  # nothing is drawn across the NaN stretch


def test_learning_rate_is_never_smoothed_even_with_ema_on():
    lr = Series("lr")
    for i in range(200):
        lr.append(i, 6e-4 * min(1.0, (i + 1) / 20))
    text = render_chart(ChartSpec("learning rate", [Line("lr", lr, (10, 200, 30), smooth=False)]),
                        ChartOptions(ema=True), 60, 14, Colors(background=(0, 0, 0)))
    assert "EMA" not in plain(text)
    colors = {str(span.style.color).replace(" ", "") for span in text.spans
              if hasattr(span.style, "color") and span.style.color}
    faint = "rgb({},{},{})".format(*blend((10, 200, 30), (0, 0, 0), 0.35))
    assert not any(faint in c for c in colors) and any("10,200,30" in c or "#0ac81e" in c for c in colors)


def test_points_are_not_joined_and_carry_their_interval_bars():
    hs, lo, hi = Series("hs"), Series("lo"), Series("hi")
    for step, correct in ((100, 26), (900, 31)):
        hs.append(step, correct / 100)
        low, high = wilson_interval(correct, 100)
        lo.append(step, low)
        hi.append(step, high)
    spec = ChartSpec("HellaSwag", [Line("acc_norm", hs, (200, 0, 200), sparse=True)], ylim=(0.2, 0.32))
    rows = plot_rows(render_chart(spec, ChartOptions(), 80, 20))
    assert sum(row.count(POINT_MARKER) for row in rows) == 2
    middle = [row[10:-10] for row in rows]
    assert not any(ch.strip() and ch not in "─" for row in middle for ch in row)  # no line between them
    spec.lines[0].band = (lo, hi)
    rows = plot_rows(render_chart(spec, ChartOptions(), 80, 20))
    bar_rows = [r for r in rows if any("⠁" <= ch <= "⣿" for ch in r[:4])]
    assert len(bar_rows) >= 8  # the first point's 95 % interval spans most of the 0.2–0.35 range


def test_wilson_interval_matches_the_textbook_values():
    low, high = wilson_interval(25, 100)
    assert abs(low - 0.1755) < 1e-3 and abs(high - 0.3430) < 1e-3
    assert wilson_interval(0, 10)[0] == 0.0 and math.isnan(wilson_interval(0, 0)[0])


def test_reference_labels_stay_off_the_data():
    spec = ChartSpec("hs", [Line("acc", loss_series(100), PALETTE[0])],
                     hlines=[(5.0, "GPT-2 124M", (0, 255, 0))])
    lines = plain(render_chart(spec, ChartOptions(ema=False), 80, 20)).split("\n")
    assert "GPT-2 124M 5" in lines[0]
    assert not any("GPT-2" in line for line in lines[1:])


def test_alerts_are_marked_at_their_step_and_counted():
    s = loss_series(1000)
    spec = ChartSpec("loss", [Line("train", s, PALETTE[0])], alerts=[(500, "spike")])
    text = plain(render_chart(spec, ChartOptions(), 81, 20))
    assert "1 alert" in text.split("\n")[0]
    rows = plot_rows(render_chart(spec, ChartOptions(), 81, 20))
    marks = [(r, c) for r, row in enumerate(rows) for c, ch in enumerate(row) if ch == "!"]
    assert len(marks) == 1 and marks[0][0] <= 1 and abs(marks[0][1] - len(rows[0]) / 2) <= 3


def test_alerts_and_resumes_follow_the_x_axis_to_tokens_and_wall_time():
    s = loss_series(1000)  # tokens (i + 1) * 1024, wall i * 0.5
    spec = ChartSpec("loss", [Line("train", s, PALETTE[0])], alerts=[(500, "spike")], resume_steps=[250])
    for axis in ("tokens", "wall"):
        rows = plot_rows(render_chart(spec, ChartOptions(x_axis=axis), 81, 20))
        marks = [c for row in rows for c, ch in enumerate(row) if ch == "!"]
        assert len(marks) == 1 and abs(marks[0] - len(rows[0]) / 2) <= 3, axis
        resume_col = [c for c in range(len(rows[0])) if sum(row[c] == "│" for row in rows) >= len(rows) - 3]
        assert resume_col and abs(resume_col[0] - len(rows[0]) / 4) <= 3, axis


def test_what_reaches_plotext_does_not_grow_with_the_run():
    big = Series("big")
    big.extend(range(1_000_000), [3.0 + (i % 7) * 0.01 for i in range(1_000_000)])
    spec = ChartSpec("loss", [Line("train", big, PALETTE[0])])
    layers = _layers(spec, ChartOptions(ema=True), Colors(), buckets=100)
    # The raw line's lower and upper envelopes (its spikes) and the EMA's trend, each a few hundred points.
    assert len(layers) == 3 and all(len(layer.x) <= 200 for layer in layers)


def test_a_frame_does_not_depend_on_the_frames_drawn_before_it():
    """The plotext figure is reused between frames: nothing of one chart may leak into the next."""
    loss = ChartSpec("loss", [Line("train", loss_series(2000, spike_at=500), PALETTE[0])],
                     hlines=[(4.0, "ref", (0, 200, 0))], resume_steps=[700], alerts=[(500, "spike")])
    other = ChartSpec("lr", [Line("lr", loss_series(50), PALETTE[2], smooth=False)])
    first = render_chart(loss, ChartOptions(), 70, 16)
    render_chart(other, ChartOptions(log_y=True, x_axis="wall"), 120, 30)
    again = render_chart(loss, ChartOptions(), 70, 16)
    assert again.plain == first.plain and again.spans == first.spans


def test_values_too_far_apart_to_draw_fall_back_to_text_at_the_requested_size():
    s = Series("train")
    for i, v in enumerate([10.0, 1e308, 9.0, 8.5]):
        s.append(i, v, tokens=(i + 1) * 1024.0, wall=float(i))
    spec = ChartSpec("loss", [Line("train", s, PALETTE[0])])
    for log_y in (False, True):
        text = plain(render_chart(spec, ChartOptions(True, log_y, "step"), 60, 12))
        lines = text.splitlines()
        assert len(lines) == 12 and max(len(line) for line in lines) == 60
