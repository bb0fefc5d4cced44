"""Every recipe flagfile resolves to exactly the config it resolved to when it
was a full copy (tests/fixtures/flagfile_configs.json, written once by
tests/fixtures/make_flagfile_configs.py)."""

import json
import pathlib

import pytest

from tests.fixtures import make_flagfile_configs as fixture

ROOT = pathlib.Path(__file__).resolve().parents[1]
EXPECTED = json.loads(fixture.OUT.read_text())


def test_the_fixture_covers_every_flagfile():
    assert sorted(EXPECTED) == sorted(f"flags/{p.name}" for p in (ROOT / "flags").glob("*.cfg"))


@pytest.mark.parametrize("variant", sorted(fixture.VARIANTS))
@pytest.mark.parametrize("flagfile", sorted(EXPECTED))
def test_flagfile_resolves_as_before(flagfile, variant):
    got = fixture.resolve(flagfile, fixture.VARIANTS[variant])
    assert got == EXPECTED[flagfile][variant]
