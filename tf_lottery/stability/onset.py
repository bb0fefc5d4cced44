"""Where stability begins: a search for the earliest stable rewind step k.

The instability analysis sweeps a fixed grid of rewind steps and pays
children x replicates training runs at every one of them. The onset of
stability is one number, the earliest k whose barrier is below the
threshold, and under the assumption every paper in this line makes (once
stable, a network stays stable for later k) it can be bisected for: the
parent keeps W_k on a dense grid (``geometric_grid``: 0 and powers of two up
to a fraction of T), and children are spawned only at the k the search asks
for, about log2(grid size) of them.

The assumption is checked, not trusted. Once bisection has closed the
bracket [last unstable k, first stable k], ``checks`` further grid points
above the first stable k are probed; one that is unstable is an
*inconsistency* (stable at k, unstable at k' > k): it is reported and the
search goes on above k', so the bracket it ends with is widened to what the
measurements support. Every pair (stable k, unstable k' > k) among the
probed points is reported, whichever check found it.

A k counts as stable by the instability analysis' own rule
(``barrier.is_stable`` of the mean test barrier over replicates, whose
per-replicate values are each the mean over that replicate's pairs).

State. ``Search.decide`` is a pure function of the grid, the threshold and
the barriers measured so far: it replays the bisection from the start over
the measured points and returns the first k it needs that is not measured
yet (or that it is done). A search that was killed resumes from its stored
measurements with exactly the probes it would have made, and a planner can
show the probes not yet decided as what they are: unknown until the barrier
before them is measured.

Pure Python: no TensorFlow, no I/O.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence

from tf_lottery.config.experiments import geometric_grid as geometric_grid
from tf_lottery.core.records import Stat
from tf_lottery.stability import barrier

# Outcomes of a finished search (``Decision.outcome``).
SEARCHING = "searching"  # a probe is still to be measured
FOUND = "found"  # unstable at the bracket's lower end, stable from its upper end
STABLE_FROM_START = "stable_from_start"  # stable at the grid's first k (k = 0)
NEVER_STABLE = "never_stable"  # unstable at every k up to the grid's last


@dataclasses.dataclass(frozen=True)
class Measurement:
    """The barrier measured at one k: mean ± std over replicates per split."""

    test: Stat
    train: Stat


@dataclasses.dataclass(frozen=True)
class Decision:
    """Where the search stands given the measurements.

    Attributes:
      next: the k to measure next, or None when the search is finished.
      probes: the grid points the search has used so far, in the order it
        used them (``next`` not included).
      bracket: (last unstable k, first stable k); None at either end when
        the grid has no such point (stable from the first k, or never).
      inconsistencies: (stable k, unstable k') pairs with k < k' among the
        probes: violations of monotonicity, in order of k then k'.
      outcome: ``SEARCHING`` while ``next`` is set, else how it ended.
    """

    next: int | None
    probes: tuple[int, ...]
    bracket: tuple[int | None, int | None]
    inconsistencies: tuple[tuple[int, int], ...]
    outcome: str

    @property
    def done(self) -> bool:
        return self.next is None


@dataclasses.dataclass(frozen=True)
class Search:
    """Bisection over a grid of rewind steps for the earliest stable k.

    Attributes:
      grid: increasing rewind steps at which the parent keeps W_k.
      threshold: a k is stable when its mean test barrier is below this.
      checks: grid points above the first stable k probed to check
        monotonicity (0: trust it).
    """

    grid: tuple[int, ...]
    threshold: float
    checks: int = 1

    def __post_init__(self) -> None:
        if not self.grid or list(self.grid) != sorted(set(self.grid)):
            raise ValueError(f"the grid must be increasing and non-empty, got {self.grid}")
        if self.checks < 0:
            raise ValueError(f"checks must be >= 0, got {self.checks}")

    def stable(self, m: Measurement) -> bool:
        return barrier.is_stable(m.test.mean, self.threshold)

    def decide(self, measured: Mapping[int, Measurement]) -> Decision:
        """Replays the search over ``measured`` (k -> barrier); k not on the
        grid are ignored."""
        n, grid = len(self.grid), self.grid
        probes: list[int] = []

        def status(index: int) -> bool | None:
            k = grid[index]
            if k not in measured:
                return None
            if k not in probes:
                probes.append(k)
            return self.stable(measured[k])

        lo, hi = -1, n  # grid[lo] unstable, grid[hi] stable; -1 and n are virtual
        while True:
            while hi - lo > 1:
                mid = (lo + hi) // 2
                found = status(mid)
                if found is None:
                    return self._decision(grid[mid], probes, measured, lo, hi)
                lo, hi = (lo, mid) if found else (mid, hi)
            widened = False
            for j in range(hi + 1, min(n, hi + 1 + self.checks)):
                found = status(j)
                if found is None:
                    return self._decision(grid[j], probes, measured, lo, hi)
                if not found:
                    # Stable at grid[hi], unstable above it: the onset lies
                    # above grid[j]; search (j, n) again.
                    lo, hi, widened = j, n, True
                    break
            if not widened:
                return self._decision(None, probes, measured, lo, hi)

    def _decision(self, next_k: int | None, probes: list[int],
                  measured: Mapping[int, Measurement], lo: int, hi: int) -> Decision:
        n = len(self.grid)
        state = {k: self.stable(measured[k]) for k in sorted(probes)}
        inconsistent = tuple((a, b) for a in state for b in state
                             if a < b and state[a] and not state[b])
        if next_k is not None:
            outcome = SEARCHING
        elif hi == 0:
            outcome = STABLE_FROM_START
        elif hi == n:
            outcome = NEVER_STABLE
        else:
            outcome = FOUND
        return Decision(
            next=next_k, probes=tuple(probes),
            bracket=(self.grid[lo] if lo >= 0 else None, self.grid[hi] if hi < n else None),
            inconsistencies=inconsistent, outcome=outcome)

    def run(self, measure) -> tuple[Decision, dict[int, Measurement]]:
        """Runs the search to the end with ``measure(k) -> Measurement``
        (for tests and in-process use); returns the final decision and every
        measurement."""
        measured: dict[int, Measurement] = {}
        decision = self.decide(measured)
        while decision.next is not None:
            measured[decision.next] = measure(decision.next)
            decision = self.decide(measured)
        return decision, measured


def child_runs(probes: Sequence[int], children: int, replicates: int) -> int:
    """Children trained for ``probes``: children x replicates per k."""
    return len(probes) * children * replicates


def format_table(decision: Decision, measured: Mapping[int, Measurement],
                 threshold: float) -> str:
    """The log's summary: every probed k (in grid order) with its barriers and
    stability, then the bracket and any inconsistency."""
    rows = [(k, measured[k].test.to_json(), measured[k].train.to_json(),
             barrier.is_stable(measured[k].test.mean, threshold))
            for k in sorted(decision.probes)]
    lines = [barrier.format_table(rows, threshold)]
    lo, hi = decision.bracket
    lines.append(f"onset bracket: [{'-' if lo is None else lo}, {'-' if hi is None else hi}] "
                 f"({decision.outcome})")
    for a, b in decision.inconsistencies:
        lines.append(f"inconsistent: stable at k={a} but unstable at k={b}")
    return "\n".join(lines)
