"""IMP's branches as the config knows them: names, titles, what each changes.

``--imp_baselines`` offers these names while flags are defined, before any
pruning code loads, so the declaration lives here, in the config layer;
``pruning.branches`` gives each its mask and init functions (and checks
that it implements exactly the branches declared here). A new baseline is
one ``Declared(...)`` line here and its functions in ``pruning.branches``.
"""

from __future__ import annotations

import dataclasses

IMP = "imp"


@dataclasses.dataclass(frozen=True)
class Declared:
    """A branch's name (its run directory and TensorBoard tags), its title in
    figures and tables, its summary for ``--imp_baselines``' help and its
    salt (the stream its seeds are drawn from; unique among branches)."""

    name: str
    title: str
    summary: str
    salt: int


DECLARED = (
    Declared(IMP, "IMP", "the level's magnitude-pruned mask, rewound to W_k", salt=0),
    Declared("random_prune", "random pruning", "same per-layer densities, random positions",
             salt=1),
    Declared("random_reinit", "random reinitialization", "same mask, new initialization",
             salt=2),
)


def baselines() -> tuple[Declared, ...]:
    """Every declared branch but ``imp``, in declaration order."""
    return tuple(b for b in DECLARED if b.name != IMP)


def baseline_names() -> tuple[str, ...]:
    return tuple(b.name for b in baselines())


def get(name: str) -> Declared:
    return next(b for b in DECLARED if b.name == name)
