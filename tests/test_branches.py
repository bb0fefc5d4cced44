"""IMP's branch registry: names, seeds, masks, and what reads it."""

import json
import pathlib

import numpy as np
import pytest

from tf_lottery import config as config_lib
from tf_lottery.pruning import branches, masks

V0_1 = pathlib.Path(__file__).resolve().parent / "fixtures" / "v0_1" / "imp"


def test_the_baselines_are_every_registered_branch_but_imp():
    assert branches.baseline_names() == ("random_prune", "random_reinit")
    assert config_lib.BASELINES == branches.baseline_names()
    help_text = config_lib.PruningConfig.__dataclass_fields__["baselines"].metadata
    assert all(b.name in str(help_text) for b in branches.baselines())
    imp = branches.get(branches.IMP)
    assert imp.mask is None and imp.init is None and not imp.draws
    assert all(b.draws for b in branches.baselines())


def test_seeds_are_those_release_0_1_recorded():
    """A relaunched v0.1 IMP run draws the same random masks and inits."""
    recorded = json.loads((V0_1 / "results.json").read_text())
    base = json.loads((V0_1 / "config.json").read_text())["pruning"]["baseline_seed"]
    for level in recorded["levels"]:
        for name, run in level["baselines"].items():
            assert branches.get(name).seed(base, level["level"]) == run["seed"]


def test_random_prune_keeps_each_layers_density_and_moves_the_positions():
    rng = np.random.default_rng(0)
    level = {"a/kernel": (rng.random((20, 10)) < 0.3).astype(np.float32),
             "b/kernel": (rng.random((10, 5)) < 0.6).astype(np.float32)}
    drawn = branches.get("random_prune").mask(level, 7)
    assert masks.layer_densities(drawn) == masks.layer_densities(level)
    assert not np.array_equal(drawn["a/kernel"], level["a/kernel"])
    again = branches.get("random_prune").mask(level, 7)
    assert all(np.array_equal(drawn[n], again[n]) for n in level)


def test_names_and_salts_are_unique():
    with pytest.raises(ValueError, match="registered twice"):
        branches.register(branches.Branch("random_prune", "x", "x", salt=99))
    with pytest.raises(ValueError, match="salt"):
        branches.register(branches.Branch("new_baseline", "x", "x", salt=1))
