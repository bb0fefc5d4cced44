"""Barrier math and its aggregation (pure numpy)."""

import numpy as np
import pytest

from tf_lottery.stability import barrier, interpolation


def test_constant_curve_has_zero_barrier():
    assert barrier.error_barrier([0.13] * 30) == 0.0


def test_barrier_is_peak_minus_endpoint_mean():
    assert barrier.error_barrier([0.10, 0.30, 0.50, 0.20, 0.12]) == pytest.approx(0.39)
    # The peak may sit at an endpoint: the barrier is then half their gap.
    assert barrier.error_barrier([0.20, 0.15, 0.10]) == pytest.approx(0.05)


def test_barrier_rejects_a_single_point():
    with pytest.raises(ValueError):
        barrier.error_barrier([0.1])


def test_summarize_uses_the_sample_std():
    s = barrier.summarize([0.01, 0.03])
    assert s["mean"] == pytest.approx(0.02)
    assert s["std"] == pytest.approx(np.std([0.01, 0.03], ddof=1))
    assert s["n"] == 2
    assert barrier.summarize([0.05]) == {"mean": 0.05, "std": 0.0, "n": 1}


def test_aggregate_averages_pairs_then_replicates():
    agg = barrier.aggregate([[0.1, 0.3, 0.2], [0.0]])
    assert [r["mean"] for r in agg["per_replicate"]] == pytest.approx([0.2, 0.0])
    assert agg["mean"] == pytest.approx(0.1)  # not 0.15, the mean over all pairs
    assert agg["std"] == pytest.approx(np.std([0.2, 0.0], ddof=1))
    assert agg["n"] == 2
    one = barrier.aggregate([[0.1, 0.3]])
    assert one["mean"] == pytest.approx(0.2) and one["n"] == 2


def test_stable_means_strictly_below_threshold():
    assert barrier.is_stable(0.0199, 0.02)
    assert not barrier.is_stable(0.02, 0.02)


def test_table_lists_every_rewind_step():
    row = {"mean": 0.0512, "std": 0.003}
    text = barrier.format_table([(0, row, row, False), (2000, row, row, True)], 0.02)
    lines = text.splitlines()
    assert len(lines) == 3 and "2%" in lines[0]
    assert lines[1].split()[0] == "0" and lines[1].endswith("no")
    assert "5.12%" in lines[1] and "0.30%" in lines[1]
    assert lines[2].split()[0] == "2000" and lines[2].endswith("yes")


def test_lerp_is_exact_at_both_ends_and_for_equal_endpoints():
    rng = np.random.default_rng(0)
    a = rng.normal(size=1000).astype(np.float32)
    b = rng.normal(size=1000).astype(np.float32)
    np.testing.assert_array_equal(interpolation.lerp(a, b, 0.0), a)
    np.testing.assert_array_equal(interpolation.lerp(a, b, 1.0), b)
    for alpha in interpolation.alphas(30):
        out = interpolation.lerp(a, a, float(alpha))
        assert out.dtype == np.float32
        np.testing.assert_array_equal(out, a)
    mid = interpolation.lerp(a, b, 0.5)
    np.testing.assert_allclose(mid, (a.astype(np.float64) + b) / 2, rtol=1e-6, atol=1e-7)
    np.testing.assert_array_equal(interpolation.alphas(5), [0, 0.25, 0.5, 0.75, 1])


def test_loss_barrier_is_peak_minus_endpoint_mean():
    # Constructed: a bump of height 1.0 above equal endpoints of 0.5.
    assert barrier.loss_barrier([0.5, 0.9, 1.5, 0.8, 0.5]) == pytest.approx(1.0)
    # Unequal endpoints: peak 2.0 minus their mean 0.75 = 1.25, not minus the
    # line between them at the peak's α = 0.25 (0.625: 1.375, Entezari et
    # al.'s convention), which is within ½|1.0 − 0.5| of it.
    assert barrier.loss_barrier([0.5, 2.0, 0.8, 0.9, 1.0]) == pytest.approx(1.25)
    # Convex-down (monotone) path: the peak is an endpoint, half their gap.
    assert barrier.loss_barrier([0.3, 0.2, 0.1]) == pytest.approx(0.1)
    assert barrier.loss_barrier([2.3] * 7) == 0.0


def test_loss_barrier_is_the_error_barrier_of_the_same_curve():
    curve = np.random.default_rng(0).uniform(0.1, 3.0, size=30).tolist()
    assert barrier.loss_barrier(curve) == barrier.error_barrier(curve)
    with pytest.raises(ValueError, match="loss curve"):
        barrier.loss_barrier([0.4])
