"""Series: thinning keeps spikes and gaps, EMA matches TensorBoard's debiased formula, resumes stitch."""

from __future__ import annotations

import math

import numpy as np
import pytest

from tui_trainer.app.series import Series, positive_only, thin


def tensorboard_ema(values, weight):
    """Reference: TensorBoard's debiased EMA, skipping non-finite values (NaN where the input is)."""
    out, last, n = [], 0.0, 0
    for v in values:
        if math.isfinite(v):
            last = last * weight + (1 - weight) * v
            n += 1
            out.append(last / (1 - weight ** n))
        else:
            out.append(math.nan)
    return out


def test_short_series_pass_through_untouched():
    x = np.arange(10.0)
    y = np.linspace(1, 2, 10)
    t = thin(x, y, buckets=20)
    assert np.array_equal(t.x, x) and np.array_equal(t.y, y)


def test_thinning_bounds_points_and_keeps_a_one_point_spike():
    n = 1_000_000
    x = np.arange(n, dtype=float)
    y = np.full(n, 3.0)
    y[654_321] = 50.0   # one spike
    y[123_456] = 0.5    # one dip
    t = thin(x, y, buckets=100)
    assert len(t.x) <= 200
    assert t.y.max() == 50.0 and t.y.min() == 0.5
    # The spike lands in the bucket that covers its step.
    spike_x = t.x[np.argmax(t.y)]
    assert abs(spike_x - 654_321) <= n / 100


def test_a_run_of_nan_becomes_a_gap_and_inf_never_reaches_the_axis():
    x = np.arange(1000, dtype=float)
    y = np.ones(1000)
    y[400:600] = np.nan
    y[10] = np.inf
    y[20] = -np.inf
    t = thin(x, y, buckets=50)
    assert np.isfinite(t.y[~np.isnan(t.y)]).all()   # no inf survives
    segments = t.segments()
    assert len(segments) == 2                        # the NaN stretch splits the line in two
    left, right = segments
    assert max(left[0]) < 400 and min(right[0]) >= 600


def test_segments_of_unthinned_data_split_at_each_nan():
    t = thin(np.arange(5.0), np.array([1.0, np.nan, 2.0, 3.0, np.nan]), buckets=10)
    assert t.segments() == [([0.0], [1.0]), ([2.0, 3.0], [2.0, 3.0])]


def test_points_without_the_chosen_x_coordinate_are_left_out():
    t = thin(np.array([0.0, np.nan, 2.0]), np.array([1.0, 5.0, 3.0]), buckets=10)
    assert t.x.tolist() == [0.0, 2.0] and t.y.tolist() == [1.0, 3.0]


def test_positive_only_for_log_axes():
    assert np.isnan(positive_only(np.array([1.0, 0.0, -1.0]))[1:]).all()


def test_ema_matches_tensorboard_and_skips_non_finite_values():
    values = [5.0, 4.0, math.nan, 3.5, math.inf, 3.0, 2.9]
    s = Series("loss", ema_weight=0.6)
    for i, v in enumerate(values):
        s.append(i, v)
    np.testing.assert_allclose(s.ema(), tensorboard_ema(values, 0.6), equal_nan=True)
    assert s.nonfinite == 2
    assert s.ema()[0] == 5.0  # debiased: the first point is not dragged towards zero


def test_changing_the_weight_recomputes_the_smoothed_line():
    s = Series("loss")
    values = [float(v) for v in np.random.default_rng(1).normal(3, 1, 500)]
    for i, v in enumerate(values):
        s.append(i, v)
    s.set_ema_weight(0.99)
    np.testing.assert_allclose(s.ema(), tensorboard_ema(values, 0.99))
    with pytest.raises(ValueError):
        s.set_ema_weight(1.0)


def test_resume_from_an_earlier_step_stitches_and_keeps_the_ema_consistent():
    s = Series("loss", ema_weight=0.5)
    for i in range(10):
        s.append(i, 10.0 - i, tokens=(i + 1) * 100, wall=float(i))
    # The run died after step 9; it resumes from a checkpoint at step 5, so steps 6.. are trained again.
    s.append(6, 1.0, tokens=700, wall=20.0)
    assert s.x("step").tolist() == [0, 1, 2, 3, 4, 5, 6]
    assert s.values()[-1] == 1.0
    expected = tensorboard_ema([10.0, 9.0, 8.0, 7.0, 6.0, 5.0, 1.0], 0.5)
    np.testing.assert_allclose(s.ema(), expected)


def test_truncation_updates_the_non_finite_count_and_version():
    s = Series("loss")
    for i, v in enumerate([1.0, math.nan, 2.0, math.nan]):
        s.append(i, v)
    version = s.version
    s.truncate_from_step(2)
    assert len(s) == 2 and s.nonfinite == 1 and s.version > version
    s.truncate_from_step(-math.inf)
    assert len(s) == 0 and s.nonfinite == 0 and s.last() is None


def test_columns_grow_past_their_first_capacity():
    s = Series("x")
    for i in range(10_000):
        s.append(i, float(i), tokens=i * 2.0, wall=i * 3.0)
    assert len(s) == 10_000
    assert s.x("tokens")[-1] == 19_998.0 and s.x("wall")[-1] == 29_997.0 and s.last() == 9999.0


def test_thin_mean_is_one_mean_per_bucket_with_gaps_for_empty_ones():
    from tui_trainer.app.series import thin_mean
    x = np.arange(1000, dtype=np.float64)
    y = np.repeat(np.arange(10, dtype=np.float64), 100)      # bucket k holds the value k
    y[300:400] = np.nan                                       # one bucket with no finite value
    t = thin_mean(x, y, 10)
    assert len(t.x) == 10 and np.isnan(t.y[3])
    assert np.allclose(np.delete(t.y, 3), np.delete(np.arange(10.0), 3))
    clean = np.repeat(np.arange(10, dtype=np.float64), 100)
    assert np.allclose(thin_mean(x, clean, 10, no_nan=True).y, thin_mean(x, clean, 10).y)
    short = thin_mean(x[:5], clean[:5], 10)                   # fewer points than buckets: unchanged
    assert np.array_equal(short.x, x[:5])
