"""Run directories written by release 0.1.0 still resume and still report.

The fixtures under tests/fixtures/v0_1/ were written by that release's CLI
(tests/fixtures/make_v0_1_fixtures.py) and are never regenerated (but once:
weights.json, for the portable CPU numerics, as that script says): whatever
the current code changes in layout or records, a finished run from then is
still recognised as finished (and left untouched), the report still reads
it, and the same flags still train to the same bits.
"""

import hashlib
import json
import os
import pathlib
import shutil
import subprocess
import sys

import pytest
import tensorflow as tf

from tests.fixtures import make_v0_1_fixtures as v0_1
from tf_lottery import numerics, report

REPO = pathlib.Path(__file__).resolve().parents[1]
FIXTURES = REPO / "tests" / "fixtures" / "v0_1"

pytestmark = pytest.mark.slow


def snapshot(root: pathlib.Path) -> dict[str, tuple[int, bytes]]:
    return {str(p.relative_to(root)): (p.stat().st_mtime_ns, p.read_bytes())
            for p in sorted(root.rglob("*")) if p.is_file()}


def relaunch(flags, model_dir, env=None):
    return subprocess.run(
        [sys.executable, "-m", "tests.mock_main", *flags, f"--model_dir={model_dir}"],
        cwd=REPO, capture_output=True, text=True, timeout=300,
        env={**(env or os.environ), "MOCK_EXAMPLES": "200"})


@pytest.mark.parametrize("name,flags", [("instability", v0_1.INSTABILITY),
                                        ("imp", v0_1.IMP)])
def test_a_finished_v0_1_run_is_recognised_and_left_untouched(name, flags, tmp_path):
    run_dir = tmp_path / name  # a copy elsewhere: results must not depend on the path
    shutil.copytree(FIXTURES / name, run_dir)
    before = snapshot(run_dir)
    done = relaunch(flags, run_dir)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "already complete" in done.stdout
    assert snapshot(run_dir) == before


def test_the_report_reads_v0_1_runs(tmp_path):
    root = tmp_path / "runs"
    for name in ("instability", "imp"):
        shutil.copytree(FIXTURES / name, root / name)
    built = report.build(str(root))
    assert not built.missing
    assert {e.config.experiment for e in built.experiments} == {"instability", "imp"}
    written = json.loads((FIXTURES / "instability" / "results.json").read_text())
    (section,) = built.instability
    by_k = {r["rewind_step"]: r["barrier"]["test"]["mean"] for r in written["rewind_steps"]}
    assert {row.k: row.barrier["test"].mean for row in section.rows} == pytest.approx(by_k)
    assert {"instability.png", "imp.png"} <= set(built.figures)


def test_the_same_flags_train_to_the_v0_1_bits(tmp_path):
    """Under the numerics the fixture was made with (the portable setting,
    spelled out whatever this suite runs under), any x86 CPU with AVX2 and FMA
    computes these bits: docs/numerics.md."""
    expected = json.loads((FIXTURES / "weights.json").read_text())
    if numerics.this_cpu() in ("avx", "other"):
        pytest.skip("the portable numerics need an x86 CPU with AVX2 and FMA")
    env = {k: v for k, v in os.environ.items() if k != numerics.ENV}
    done = relaunch(expected["flags"], tmp_path / "run", {**env, **expected["numerics"]})
    assert done.returncode == 0, done.stderr[-3000:]
    reader = tf.train.load_checkpoint(str(tmp_path / "run" / "final" / "ckpt"))
    got = {name: hashlib.sha256(reader.get_tensor(name).tobytes()).hexdigest()
           for name in expected["sha256"]}
    assert got == expected["sha256"]
