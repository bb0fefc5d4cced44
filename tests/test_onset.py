"""The onset search over synthetic barrier functions (pure Python, no TensorFlow)."""

import itertools

import pytest

from tf_lottery.core.records import Stat
from tf_lottery.stability import onset

GRID = onset.geometric_grid(24000, 0.25)  # 0, 1, 2, 4, ..., 4096
THRESHOLD = 0.02


def measure(f):
    """A measurement function from ``f(k) -> mean test barrier``."""
    return lambda k: onset.Measurement(Stat(f(k), 0.001, 2), Stat(f(k) / 2, 0.0, 2))


def step_at(k0, high=0.3):
    return lambda k: high if k < k0 else 0.005


def full_sweep(f, grid=GRID):
    """The bracket a sweep of every grid point gives (monotone f)."""
    stable = [k for k in grid if f(k) < THRESHOLD]
    unstable = [k for k in grid if f(k) >= THRESHOLD]
    return (max(unstable) if unstable else None, min(stable) if stable else None)


def test_geometric_grid():
    assert GRID == (0, 1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024, 2048, 4096)
    assert onset.geometric_grid(1000, 0.5, min_step=25) == (0, 25, 50, 100, 200, 400)
    with pytest.raises(ValueError, match="k=0 alone"):
        onset.geometric_grid(10, 0.05)


@pytest.mark.parametrize("k0", [1, 3, 100, 500, 2048, 4096])
def test_monotone_finds_the_sweeps_bracket_with_fewer_probes(k0):
    f = step_at(k0)
    search = onset.Search(GRID, THRESHOLD, checks=1)
    decision, measured = search.run(measure(f))
    assert decision.outcome == onset.FOUND
    assert decision.bracket == full_sweep(f)
    assert decision.inconsistencies == ()
    # log2(15) rounds up to 4 bisection probes, plus at most one check.
    assert len(decision.probes) <= 5 < len(GRID)
    assert set(decision.probes) == set(measured)


def test_all_stable():
    decision, _ = onset.Search(GRID, THRESHOLD, checks=1).run(measure(lambda k: 0.0))
    assert decision.outcome == onset.STABLE_FROM_START
    assert decision.bracket == (None, 0)
    # Bisection walks down to k=0, and the check looks at k=1.
    assert 0 in decision.probes and 1 in decision.probes


def test_none_stable():
    decision, _ = onset.Search(GRID, THRESHOLD, checks=2).run(measure(lambda k: 0.5))
    assert decision.outcome == onset.NEVER_STABLE
    assert decision.bracket == (4096, None)
    assert decision.inconsistencies == ()
    assert len(decision.probes) == 4  # no stable point, so nothing to check


def test_non_monotone_is_reported_and_the_bracket_widened():
    # Stable at 32 only (a dip), then unstable to 512, stable from 1024.
    def f(k):
        return 0.005 if k == 32 or k >= 1024 else 0.3
    search = onset.Search(GRID, THRESHOLD, checks=1)
    decision, measured = search.run(measure(f))
    # Bisection over 14 points first lands on the dip (the middle, k=32) and
    # closes [16, 32] below it; the check at 64 is unstable: reported, and
    # the search continued above 64 to the true onset.
    assert decision.probes[:5] == (32, 2, 8, 16, 64)
    assert (32, 64) in decision.inconsistencies
    assert decision.outcome == onset.FOUND
    assert decision.bracket == (512, 1024)
    for a, b in decision.inconsistencies:
        assert a < b and f(a) < THRESHOLD <= f(b)


def test_without_checks_a_dip_goes_unnoticed():
    def f(k):
        return 0.005 if k == 32 or k >= 1024 else 0.3
    decision, _ = onset.Search(GRID, THRESHOLD, checks=0).run(measure(f))
    assert decision.bracket == (16, 32)
    assert decision.inconsistencies == ()


def test_stability_uses_the_mean_and_the_strict_threshold():
    search = onset.Search((0, 10), THRESHOLD, checks=0)
    at = {0: onset.Measurement(Stat(THRESHOLD, 0.5, 3), Stat(0.0, 0.0, 3)),
          10: onset.Measurement(Stat(THRESHOLD - 1e-9, 0.5, 3), Stat(0.0, 0.0, 3))}
    decision, _ = search.run(lambda k: at[k])
    assert decision.bracket == (0, 10)


@pytest.mark.parametrize("k0", [0, 2, 64, 4096, 10**6])
def test_decisions_depend_only_on_what_is_measured(k0):
    """A search killed after any number of probes resumes with the same
    next probe and ends the same: state is the measurements alone."""
    f = step_at(k0)
    search = onset.Search(GRID, THRESHOLD, checks=1)
    final, measured = search.run(measure(f))
    order = final.probes
    for cut in range(len(order) + 1):
        kept = {k: measured[k] for k in order[:cut]}
        decision = search.decide(kept)
        assert decision.next == (order[cut] if cut < len(order) else None)
        assert decision.probes == order[:cut]
        # Insertion order of the stored measurements does not matter.
        assert search.decide(dict(reversed(list(kept.items())))) == decision
    # Measurements off the grid (e.g. from an earlier sweep) are ignored.
    assert search.decide({**measured, 3: measure(f)(3)}) == final


def test_every_monotone_step_on_a_small_grid():
    grid = (0, 1, 2, 4, 8)
    search = onset.Search(grid, THRESHOLD, checks=1)
    for k0 in [*grid, 9]:
        decision, _ = search.run(measure(step_at(k0)))
        assert decision.bracket == full_sweep(step_at(k0), grid)


def test_every_pattern_on_a_small_grid_ends_consistently():
    """All 2^5 stable/unstable patterns: the search ends, its bracket's ends
    were measured as claimed, and nothing probed above the bracket's upper end
    within the checks is unstable unless reported."""
    grid = (0, 1, 2, 4, 8)
    search = onset.Search(grid, THRESHOLD, checks=1)
    for pattern in itertools.product([True, False], repeat=len(grid)):
        stable = dict(zip(grid, pattern, strict=True))
        decision, measured = search.run(measure(lambda k, s=stable: 0.0 if s[k] else 0.5))
        lo, hi = decision.bracket
        if lo is not None:
            assert not stable[lo] and lo in measured
        if hi is not None:
            assert stable[hi] and hi in measured
            after = [k for k in grid if k > hi][:1]
            assert all(stable[k] for k in after if k in measured)
        seen = {(a, b) for a in measured for b in measured
                if a < b and stable[a] and not stable[b]}
        assert set(decision.inconsistencies) == seen


def test_child_runs_and_table():
    search = onset.Search(GRID, THRESHOLD, checks=1)
    decision, measured = search.run(measure(step_at(100)))
    assert onset.child_runs(decision.probes, 2, 3) == 6 * len(decision.probes)
    table = onset.format_table(decision, measured, THRESHOLD)
    assert "onset bracket: [64, 128] (found)" in table
    assert len(table.splitlines()) == 1 + len(decision.probes) + 1


def test_bad_grid():
    with pytest.raises(ValueError, match="increasing"):
        onset.Search((0, 4, 2), THRESHOLD)
