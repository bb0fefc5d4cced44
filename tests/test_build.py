"""BUILD names every Python file of the package and its tests."""

import pathlib
import re

ROOT = pathlib.Path(__file__).resolve().parents[1]


def test_every_python_file_is_named_in_build():
    named = set(re.findall(r'"([\w/]+\.py)"', (ROOT / "BUILD").read_text()))
    dirs = ("tf_lottery", "tests", "benchmarks", "tools", "tpu_scripts")
    files = {str(p.relative_to(ROOT)) for d in dirs for p in (ROOT / d).rglob("*.py")}
    missing = sorted(files - named)
    assert not missing, f"add these to BUILD: {missing}"
    stale = sorted(n for n in named if not (ROOT / n).exists())
    assert not stale, f"BUILD names files that do not exist: {stale}"
