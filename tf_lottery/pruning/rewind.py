"""Rewind manager: start a masked network from the parent's W_k.

Rewinding to step k means, for an IMP level or a baseline:

- weights: every model variable comes back from the parent's rewind
  checkpoint W_k: kernels, biases, BatchNorm scales/offsets *and* moving
  statistics (they are model variables of the checkpoint). Then the level's
  mask is assigned and the pruned weights are zeroed;
- step and learning rate: the engine's step counter is restored to k, and
  the LR is a pure function of that step, so the schedule continues from k;
- optimizer state: 'reset' zeroes it (moments and iteration count, so
  Adam's bias correction restarts at k), as open_lth does when it rewinds;
  'restore' takes the state saved with W_k (moments of the dense parent at
  k; moments of pruned weights cannot move them, see ``wrappers``);
- data: the run trains from k with the level's SGD-noise seeds, and batches
  are a pure function of (seeds, step), so step s of a level sees the same
  batch as step s of the parent when the seeds are the recipe's.

A run's start is a ``FromCheckpoint`` of W_k whose ``then`` sets the mask:
``RewindManager.start``. An ``init`` function may replace the rewound weights
before the mask is set: ``reinitialize(seed)`` (random reinitialization)
replaces all of them, BatchNorm statistics included, with a fresh
initialization from another seed; step, schedule and optimizer policy stay
those of k.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable

import numpy as np

from tf_lottery.models import registry as model_registry
from tf_lottery.pruning import wrappers
from tf_lottery.training import checkpoints
from tf_lottery.training.trainer import FromCheckpoint, RunSpec, SgdNoise, Trainer

OPTIMIZER_POLICIES = ("reset", "restore")


@dataclasses.dataclass(frozen=True)
class RewindManager:
    """Builds runs that start from W_k of ``parent_dir`` with a given mask.

    Attributes:
      parent_dir: run directory holding the rewind checkpoint (IMP level 0).
      rewind_step: k.
      optimizer_policy: 'reset' or 'restore' (see module docstring).
    """

    parent_dir: str
    rewind_step: int
    optimizer_policy: str = "reset"

    def __post_init__(self):
        if self.optimizer_policy not in OPTIMIZER_POLICIES:
            raise ValueError(f"optimizer policy must be one of {OPTIMIZER_POLICIES}, "
                             f"got {self.optimizer_policy!r}")

    @property
    def checkpoint(self) -> str:
        """Prefix of W_k; raises if the parent has not committed it."""
        if not checkpoints.has_rewind(self.parent_dir, self.rewind_step):
            raise FileNotFoundError(
                f"{self.parent_dir} has no rewind checkpoint for step "
                f"{self.rewind_step}")
        return checkpoints.rewind_prefix(self.parent_dir, self.rewind_step)

    def after_restore(self, masks: dict[str, np.ndarray],
                      init: Callable[[Trainer], None] | None = None
                      ) -> Callable[[Trainer], None]:
        """The ``then`` of a start from W_k: checks the step is k, runs ``init``
        (e.g. ``reinitialize(seed)``) if given, then sets ``masks``."""
        def then(trainer: Trainer) -> None:
            step = int(trainer.step.numpy())
            if step != self.rewind_step:
                raise RuntimeError(f"rewound to step {step}, expected {self.rewind_step}")
            if init is not None:
                init(trainer)
            wrappers.set_masks(trainer.model, masks)

        return then

    def start(self, masks: dict[str, np.ndarray],
              init: Callable[[Trainer], None] | None = None) -> FromCheckpoint:
        """W_k, optimizer state after the policy, then ``after_restore``."""
        return FromCheckpoint(self.checkpoint, reset_optimizer=self.optimizer_policy == "reset",
                              then=self.after_restore(masks, init))

    def run_spec(self, run_dir: str, end_step: int, noise: SgdNoise,
                 masks: dict[str, np.ndarray], init: Callable[[Trainer], None] | None = None,
                 evaluate_every: int = 0) -> RunSpec:
        """A run from the masked W_k to ``end_step`` that also keeps its own W_k.

        The run's own rewind checkpoint at k holds W_k with this run's mask
        (and optimizer state after the policy): the starting point of its
        instability analysis.
        """
        return RunSpec(
            run_dir=run_dir, end_step=end_step, noise=noise,
            start=self.start(masks, init), rewind_steps=(self.rewind_step,),
            evaluate_every=evaluate_every)


def reinitialize(seed: int) -> Callable[[Trainer], None]:
    """An ``init`` for ``RewindManager.start``: every weight replaced by a fresh
    initialization of the same architecture drawn from ``seed``."""
    def init(trainer: Trainer) -> None:
        spec = trainer.pipeline.spec
        fresh = model_registry.build_model(
            trainer.config.model.name, spec.num_classes, spec.image_shape, seed)
        wrappers.copy_weights(fresh, trainer.model)

    return init
