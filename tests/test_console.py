"""Console scripts: each runs its module as ``python -m`` does."""

import configparser
import os
import subprocess
import sys

from tf_lottery import console

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def test_setup_cfg_declares_one_script_per_module_each_running_it():
    cfg = configparser.ConfigParser()
    cfg.read(os.path.join(ROOT, "setup.cfg"))
    declared = dict(line.split(" = ") for line in
                    cfg["options.entry_points"]["console_scripts"].strip().splitlines())
    assert sorted(declared) == sorted(console.SCRIPTS)
    for script, target in declared.items():
        module, function = target.split(":")
        assert module == "tf_lottery.console"
        assert getattr(console, function).__doc__ == f"``python -m {console.SCRIPTS[script]}``."


def test_tf_lottery_script_prints_the_same_help_as_python_m():
    def run(*argv):
        return subprocess.run([sys.executable, *argv], cwd=ROOT, text=True,
                              capture_output=True, timeout=300)

    module = run("-m", "tf_lottery.main", "--help")
    script = run("-c", "import sys; from tf_lottery.console import main; "
                       "sys.argv[0] = 'tf-lottery'; main()", "--help")
    assert module.returncode == script.returncode == 0, script.stderr[-2000:]
    assert script.stdout == module.stdout and "--ray_connect_timeout_s" in script.stdout
