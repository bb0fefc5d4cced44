"""Every recipe flagfile resolves to exactly the config it resolved to when it
was a full copy (tests/fixtures/flagfile_configs.json, written once by
tests/fixtures/make_flagfile_configs.py), variants including their base."""

import dataclasses
import json
import pathlib

import pytest

from tests.fixtures import make_flagfile_configs as fixture
from tf_lottery.config import experiments, sections

ROOT = pathlib.Path(__file__).resolve().parents[1]
EXPECTED = json.loads(fixture.OUT.read_text())
EXPERIMENT_SECTIONS = {"train": set(), "instability": {"instability"}, "imp": {"pruning"}}


def test_the_fixture_covers_every_flagfile():
    assert sorted(EXPECTED) == sorted(f"flags/{p.name}" for p in (ROOT / "flags").glob("*.cfg"))


def with_new_knobs(before: dict) -> dict:
    """``before`` with each field added since the fixture was written at its
    default (docs/config.md: a new knob's default is today's behaviour), as
    ``config.recipe_changes`` reads an older config.json; a section's
    ``optional`` fields are left out at their default, in config.json too."""
    types = {cls.section: cls for cls in (*sections.COMMON, *experiments.section_types())}
    out = dict(before)
    for name, values in before.items():
        if name in types and isinstance(values, dict):
            # As JSON holds them: a tuple default reads back as a list.
            defaults = {f.name: list(f.default) if isinstance(f.default, tuple) else f.default
                        for f in dataclasses.fields(types[name])
                        if f.default is not dataclasses.MISSING
                        and f.name not in types[name].optional}
            out[name] = {**defaults, **values}
    return out


@pytest.mark.parametrize("flagfile", sorted(EXPECTED))
def test_flagfile_resolves_as_before(flagfile):
    """The same values in every section the experiment uses; the sections it
    does not use (0.1.0 resolved them all) are gone, and so is their hash."""
    got = fixture.resolve(flagfile, ())
    before = with_new_knobs(EXPECTED[flagfile]["as_is"])
    dropped = {"instability", "pruning"} - EXPERIMENT_SECTIONS[got["experiment"]]
    assert set(got) == set(before) - dropped
    got.pop("recipe_hash"), before.pop("recipe_hash")
    assert got == {key: before[key] for key in got}


@pytest.mark.parametrize("flagfile", sorted(EXPECTED))
def test_flagfile_resolves_as_before_with_every_section_in_use(flagfile):
    """IMP with sparse instability uses every section: the whole config, its
    recipe hash included, is what the full copy resolved to."""
    got = fixture.resolve(flagfile, fixture.VARIANTS["imp_with_instability"])
    assert got == with_new_knobs(EXPECTED[flagfile]["imp_with_instability"])


# flagfile -> the flagfile it includes: a variant states only what differs.
INCLUDES = {
    "lenet_fashion_mnist": "lenet_mnist",
    "lenet_fashion_mnist_imp": "lenet_fashion_mnist",
    "lenet_fashion_mnist_instability": "lenet_fashion_mnist",
    "resnet20_cifar10_low": "resnet20_cifar10",
    "resnet20_fashion_mnist": "resnet20_cifar10",
    "resnet20_cifar10_warmup": "resnet20_cifar10",
    "vgg16_cifar10": "resnet20_cifar10",
    "vgg16_cifar10_low": "vgg16_cifar10",
    "vgg16_cifar10_warmup": "vgg16_cifar10",
    "inception_v3_lmc": "inception_v3",
}


def flag_lines(name):
    text = (ROOT / "flags" / f"{name}.cfg").read_text()
    return [line for line in text.splitlines() if line.startswith("--")]


@pytest.mark.parametrize("name", sorted(INCLUDES))
def test_a_variant_includes_its_base_and_restates_nothing(name):
    base = INCLUDES[name]
    first, *rest = flag_lines(name)
    assert first == f"--flagfile=flags/{base}.cfg"
    assert rest and not set(rest) & set(flag_lines(base))
