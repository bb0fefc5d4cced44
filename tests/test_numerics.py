"""CPU numerics: the setting applied before TensorFlow, recorded, and enforced on resume."""

import json
import os
import pathlib
import subprocess
import sys

import pytest

import tf_lottery
from tests.conftest import launch_and_kill_after_checkpoint
from tf_lottery import numerics, provenance, report
from tf_lottery.core import layout
from tf_lottery.errors import ConfigError

REPO = pathlib.Path(__file__).resolve().parents[1]
SET_BY_US = (numerics.ENV, numerics.ONEDNN_OPTS, numerics.MAX_ISA)


def clean_env(**extra: str) -> dict[str, str]:
    """This process's environment without the numerics variables, plus ``extra``."""
    env = {k: v for k, v in os.environ.items() if k not in SET_BY_US}
    return {**env, **extra}


# -- the setting, as pure functions ------------------------------------------------------

def test_portable_is_the_default_and_sets_only_what_the_user_left_unset():
    env: dict[str, str] = {}
    numerics.apply(env)
    assert env == {"TF_ENABLE_ONEDNN_OPTS": "0", "ONEDNN_MAX_CPU_ISA": "AVX2"}
    env = {"ONEDNN_MAX_CPU_ISA": "AVX512_CORE"}
    numerics.apply(env)
    assert env == {"TF_ENABLE_ONEDNN_OPTS": "0", "ONEDNN_MAX_CPU_ISA": "AVX512_CORE"}
    # oneDNN's own ops under the AVX2 cap crash bfloat16 layers: no cap then.
    env = {"TF_ENABLE_ONEDNN_OPTS": "1"}
    numerics.apply(env)
    assert env == {"TF_ENABLE_ONEDNN_OPTS": "1"}
    env = {numerics.ENV: "native"}
    numerics.apply(env)
    assert env == {numerics.ENV: "native"}


def test_an_unknown_setting_is_one_line_naming_the_variable():
    with pytest.raises(ConfigError, match=r"^TF_LOTTERY_CPU_NUMERICS=fast: use portable "
                                          r"or native"):
        numerics.setting({numerics.ENV: "fast"})
    env = {numerics.ENV: "fast"}
    numerics.apply(env)  # an import never fails on it
    assert env == {numerics.ENV: "fast"}


@pytest.mark.parametrize("flags,machine,expected", [
    ({"avx", "avx2", "fma", "avx512f", "amx_tile"}, "x86_64", "amx"),
    ({"avx", "avx2", "fma", "avx512f", "avx512_vnni"}, "x86_64", "avx512"),
    ({"avx", "avx2", "fma"}, "x86_64", "avx2"),
    ({"avx", "avx2"}, "x86_64", "avx"),  # AVX2 without FMA: oneDNN's AVX2 kernels need both
    ({"sse4_2"}, "x86_64", "other"),
    ({"avx2", "fma"}, "aarch64", "other"),
])
def test_the_cpu_class_comes_from_its_flags(flags, machine, expected):
    assert numerics.cpu_isa_class(flags, machine) == expected


@pytest.mark.parametrize("cap,expected", [
    ("AVX2", "avx2"), ("avx2_vnni", "avx2"), ("AVX512_CORE_VNNI", "avx512"),
    ("AVX512_CORE_AMX", "amx"), ("AVX", "avx"), ("SSE41", "other"), ("ALL", None), ("", None)])
def test_a_cap_maps_to_a_class(cap, expected):
    assert numerics.cap_class(cap) == expected


def test_the_kernels_are_the_narrower_of_the_cpu_and_the_cap():
    portable = {"TF_ENABLE_ONEDNN_OPTS": "0", "ONEDNN_MAX_CPU_ISA": "AVX2"}
    on_amx = numerics.effective(portable, "amx", False, 2)
    on_avx2 = numerics.effective(portable, "avx2", False, 16)
    assert on_amx.setting == on_avx2.setting == "portable"
    assert on_amx.kernels == on_avx2.kernels == "avx2"
    assert not on_amx.same_bits_as(on_avx2)  # threads split some sums
    assert on_amx.same_bits_as(numerics.effective(portable, "avx512", False, 2))
    native = numerics.effective({numerics.ENV: "native"}, "amx", True, 2)
    assert (native.setting, native.kernels) == ("native", "amx")
    assert not native.same_bits_as(on_amx)
    on = numerics.effective({"TF_ENABLE_ONEDNN_OPTS": "1", "ONEDNN_MAX_CPU_ISA": "AVX2"},
                            "avx512", True, 2)
    assert on.setting == "custom"
    assert not on.same_bits_as(on_amx)
    assert on.same_bits_as(numerics.Numerics.from_json(on.to_json()))
    assert "portable (oneDNN off, avx2 kernels, 2 threads; CPU amx)" == on_amx.describe()
    # On an accelerator the CPU's numerics decide nothing.
    gpu = numerics.effective(portable, "avx2", True, 8, "GPU NVIDIA H100")
    assert gpu.same_bits_as(numerics.effective({}, "amx", True, 96, "GPU NVIDIA H100"))
    assert not gpu.same_bits_as(on_avx2)


# -- applied before TensorFlow loads -------------------------------------------------------

def probe(env: dict[str, str], code: str) -> str:
    done = subprocess.run([sys.executable, "-c", code], cwd=REPO, env=env,
                          capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-2000:]
    return done.stdout.strip()


def test_importing_the_package_applies_the_setting_before_tensorflow():
    code = ("import os, sys, tf_lottery; assert 'tensorflow' not in sys.modules; "
            "print(os.environ.get('TF_ENABLE_ONEDNN_OPTS'), "
            "os.environ.get('ONEDNN_MAX_CPU_ISA'))")
    assert probe(clean_env(), code) == "0 AVX2"
    assert probe(clean_env(TF_LOTTERY_CPU_NUMERICS="native"), code) == "None None"


# -- recorded with the run, enforced on resume -------------------------------------------------

ARGS = ["--dataset=mnist", "--experiment=train", "--train_steps=60", "--batch_size=20",
        "--eval_batch_size=50", "--train_eval_examples=100", "--steps_per_loop=10",
        "--checkpoint_every=20", "--log_every=20", "--eval_every=60"]


def relaunch(model_dir, *extra):
    return subprocess.run(
        [sys.executable, "-m", "tests.mock_main", *ARGS, *extra, f"--model_dir={model_dir}"],
        cwd=REPO, capture_output=True, text=True, timeout=300,
        env=os.environ)  # the first launch's environment, so its numerics too


@pytest.mark.slow
def test_a_resume_under_other_numerics_is_refused_unless_allowed(tmp_path):
    model_dir = tmp_path / "run"
    launch_and_kill_after_checkpoint(ARGS, model_dir, step=20)
    config = json.loads((model_dir / "config.json").read_text())
    here = numerics.Numerics.from_json(config["provenance"]["numerics"])
    assert config["provenance"]["version"] == tf_lottery.__version__
    record = json.loads(pathlib.Path(layout.numerics_file(str(model_dir))).read_text())
    assert numerics.Numerics.from_json(record["numerics"]) == here

    # As if the run had started on another kind of machine.
    other = {**here.to_json(), "onednn": not here.onednn}
    pathlib.Path(layout.numerics_file(str(model_dir))).write_text(
        json.dumps({"numerics": other, "resumed_under": []}))
    refused = relaunch(model_dir)
    assert refused.returncode == 2
    (line,) = refused.stderr.strip().splitlines()[-1:]
    assert "would mix kernels within one run" in line and "--allow_numerics_change" in line
    assert "Traceback" not in refused.stderr
    assert not (model_dir / "results.json").exists()

    # What status and the report show: the first launch's numerics.
    shown = subprocess.run([sys.executable, "-m", "tf_lottery.status",
                            f"--model_dir={model_dir}"], cwd=REPO, capture_output=True,
                           text=True, timeout=300)
    assert f"numerics: {here.describe()}" in shown.stdout, shown.stderr[-2000:]
    report_lines = report.build(str(model_dir)).markdown.splitlines()
    assert any(f"CPU numerics: {here.describe()}." in line for line in report_lines)

    allowed = relaunch(model_dir, "--allow_numerics_change")
    assert allowed.returncode == 0, allowed.stderr[-3000:]
    assert "no longer bit-reproducible" in allowed.stderr
    record = json.loads(pathlib.Path(layout.numerics_file(str(model_dir))).read_text())
    assert record["numerics"] == other
    assert [numerics.Numerics.from_json(n) for n in record["resumed_under"]] == [here]


def test_provenance_names_our_commit_and_never_a_users_repository(tmp_path):
    head = subprocess.run(["git", "-C", str(REPO), "rev-parse", "HEAD"], capture_output=True,
                          text=True)
    if head.returncode != 0:
        pytest.skip("not a git checkout")
    assert provenance.git_commit().split("+")[0] == head.stdout.strip()
    # A copy of the package inside someone else's repository (a venv in their project).
    subprocess.run(["git", "init", "-q", str(tmp_path)], check=True)
    copy = tmp_path / ".venv" / "tf_lottery"
    copy.mkdir(parents=True)
    (copy / "numerics.py").write_text((REPO / "tf_lottery" / "numerics.py").read_text())
    assert provenance.git_commit(str(copy)) is None
