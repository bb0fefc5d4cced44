"""IMP's branches by name: how each network trained at a pruned level gets its mask and weights.

At every pruned level IMP trains the level's own subnetwork (branch
``imp``); baselines (``--imp_baselines``) train other networks of the same
level that never feed later levels. Every branch starts from W_k with the
step, LR schedule and optimizer policy of k (``rewind.RewindManager``); a
branch is what it changes, a (mask function, init function) pair:

- ``mask(level_mask, seed)``: the branch's mask, from the level's IMP mask
  (None: the level's mask itself);
- ``init(seed)``: a function of the trainer that replaces the rewound W_k
  before the mask is set (None: W_k as rewound).

A branch that draws at random has its own seed at each level, a pure
function of (``--imp_baseline_seed``, level, the branch's salt), recorded
with its results.

A new baseline is declared in ``config.branches`` (its name, title and
salt: ``--imp_baselines`` offers it) and given its functions below; IMP
trains it, and the report and TensorBoard show it under its title. This
module imports neither TensorFlow nor numpy (the report reads the titles);
the functions import what they need when they run.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import TYPE_CHECKING

from tf_lottery.config import branches as declared

if TYPE_CHECKING:
    from tf_lottery.pruning.masks import Masks
    from tf_lottery.training.trainer import Then

IMP = declared.IMP


@dataclasses.dataclass(frozen=True)
class Branch:
    """One kind of network trained at a pruned level.

    Attributes:
      name: its name in ``--imp_baselines``, its run directory and its
        TensorBoard tags (``imp/<name>/test_accuracy``).
      title: how figures and tables name it.
      summary: what it changes, for ``--imp_baselines``' help.
      salt: the stream its seeds are drawn from; unique among branches.
      mask: ``(level mask, seed) -> mask``, or None for the level's mask.
      init: ``seed -> fn(trainer)`` replacing the rewound weights before the
        mask is set, or None to keep W_k.
    """

    name: str
    title: str
    summary: str
    salt: int
    mask: Callable[[Masks, int], Masks] | None = None
    init: Callable[[int], Then] | None = None

    @property
    def draws(self) -> bool:
        """Whether it draws anything at random (then its seed is recorded)."""
        return self.mask is not None or self.init is not None

    def seed(self, base: int, level: int) -> int:
        """Seed of the branch's random draws at ``level``: a pure function of
        (``base``, ``level``, ``salt``)."""
        import numpy as np

        return int(np.random.SeedSequence([base, level, self.salt]).generate_state(1)[0] >> 1)


_BRANCHES: dict[str, Branch] = {}


def register(branch: Branch) -> Branch:
    """Adds ``branch``; names and salts are unique."""
    if branch.name in _BRANCHES:
        raise ValueError(f"branch {branch.name!r} registered twice")
    if any(b.salt == branch.salt for b in _BRANCHES.values()):
        raise ValueError(f"branch {branch.name!r} reuses salt {branch.salt}")
    _BRANCHES[branch.name] = branch
    return branch


def get(name: str) -> Branch:
    return _BRANCHES[name]


def baselines() -> tuple[Branch, ...]:
    """Every registered branch but ``imp``, in registration order."""
    return tuple(b for b in _BRANCHES.values() if b.name != IMP)


def baseline_names() -> tuple[str, ...]:
    return tuple(b.name for b in baselines())


def _random_positions(level_mask: Masks, seed: int) -> Masks:
    import numpy as np

    from tf_lottery.pruning import masks

    return masks.random_like(level_mask, np.random.default_rng(seed))


def _fresh_initialization(seed: int) -> Then:
    from tf_lottery.pruning import rewind

    return rewind.reinitialize(seed)


_FUNCTIONS: dict[str, dict[str, Callable]] = {
    "random_prune": {"mask": _random_positions},
    "random_reinit": {"init": _fresh_initialization},
}
for _declared in declared.DECLARED:  # exactly the branches the config offers
    register(Branch(_declared.name, _declared.title, _declared.summary, _declared.salt,
                    **_FUNCTIONS.get(_declared.name, {})))
