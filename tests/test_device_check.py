"""benchmarks/device_check.sh in its reduced CPU mode: every section is reported."""

import importlib.util
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
    # The budget is wall time split among sections; the packing section
    # starts two TensorFlow processes at once, which under the suite's other
    # xdist worker on 2 cores took longer than a 100 s budget's share. Sections
    # that finish early pass their time on, so a wider budget costs nothing
    # when the machine is quick.
    env = {**os.environ, "DEVICE_CHECK_MODE": "cpu", "DEVICE_CHECK_BUDGET_S": "240",
           "PYTHON": sys.executable, "CUDA_VISIBLE_DEVICES": ""}
    done = subprocess.run(["bash", str(SCRIPT), str(tmp_path)], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=600)
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


def load_device_check():
    spec = importlib.util.spec_from_file_location("device_check",
                                                  ROOT / "benchmarks" / "device_check.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.parametrize("mode", ["gpu", "cpu"])
def test_chosen_sections_run_in_order_and_split_the_budget(monkeypatch, mode):
    dc = load_device_check()
    clock = {"now": 0.0}
    monkeypatch.setattr(dc, "time", type("Clock", (), {"time": lambda: clock["now"]}))
    allowed = {}

    def section(name):
        def run(section_mode, deadline):  # uses all the time it is given
            assert section_mode == mode
            allowed[name] = deadline - clock["now"]
            clock["now"] = deadline
            return {"ran": name}
        return run

    for name in dc.SECTIONS:
        monkeypatch.setattr(dc, name, section(name))
    report = dc.run_sections(mode, 100.0, {"env": 1}, 0.0, ("determinism", "packing"))
    assert list(allowed) == ["determinism", "packing"]
    assert "throughput" not in report and report["packing"]["ran"] == "packing"
    shares = dc.CPU_SHARES if mode == "cpu" else dc.SHARES
    pair = shares["determinism"] + shares["packing"]
    rest = 100 * (1 - shares["environment"])
    # The environment's share, unused here, carries over to the first section.
    assert allowed["determinism"] == pytest.approx(
        100 * shares["environment"] + rest * shares["determinism"] / pair)
    assert allowed["packing"] == pytest.approx(rest * shares["packing"] / pair)
    assert report["wall_s"] == 100.0
