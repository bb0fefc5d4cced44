"""benchmarks/device_check.sh in its reduced CPU mode: every section is reported."""

import json
import os
import pathlib
import subprocess
import sys

import pytest

from tests.test_tpu_scripts import shellcheck

ROOT = pathlib.Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "benchmarks" / "device_check.sh"


def test_device_check_script_is_shellcheck_clean():
    out = subprocess.run([shellcheck(), str(SCRIPT)], capture_output=True, text=True)
    assert out.returncode == 0, out.stdout


@pytest.mark.slow
def test_cpu_mode_reports_every_section(tmp_path):
    env = {**os.environ, "DEVICE_CHECK_MODE": "cpu", "DEVICE_CHECK_BUDGET_S": "100",
           "PYTHON": sys.executable, "CUDA_VISIBLE_DEVICES": ""}
    done = subprocess.run(["bash", str(SCRIPT), str(tmp_path)], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=400)
    log = (tmp_path / "device_check.log").read_text()[-3000:]
    assert done.returncode == 0, done.stderr + log
    report = json.loads((tmp_path / "device_check.json").read_text())
    assert report["mode"] == "cpu"
    for section in ("environment", "throughput", "packing", "determinism"):
        assert section in report and "error" not in report[section], (section, report)
    assert report["environment"]["tensorflow"]
    assert isinstance(report["nondeterministic_ops"], list)
    first = report["throughput"]["runs"][0]
    assert first["model"] == "lenet_300_100" and first["precision"] == "float32"
    assert first["steps_per_sec"] > 0 and first["examples_per_sec"] > 0
    lenet = report["packing"]["lenet_300_100"]
    assert lenet["alone"]["total_examples_per_sec"] > 0
    assert len(lenet["packed"]["per_process_examples_per_sec"]) == report["packing"]["processes"]
    assert lenet["one_graph"]["runs"] == report["packing"]["runs"]
    assert lenet["one_graph"]["total_examples_per_sec"] > 0
    assert lenet["one_graph_over_alone"] > 0
    assert report["determinism"]["identical_runs_bitwise_equal"] is True
