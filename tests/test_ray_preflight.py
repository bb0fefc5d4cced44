"""--executor=ray without Ray, and --ray_address where nothing listens: one line each.

Test traffic stays on loopback: the closed port is one this test bound on
127.0.0.1 and closed again, and the CLI tests make Ray's own connect
(``ray.init``) exit loudly, so a launch that reached it would fail them.
"""

import os
import socket
import subprocess
import sys
import time

import pytest

from tf_lottery.errors import ConfigError
from tf_lottery.tasks import ray_preflight

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SMALL = ["--dataset=mnist", "--batch_size=20", "--eval_batch_size=50",
         "--train_eval_examples=100", "--train_steps=20", "--executor=ray"]


def closed_port() -> int:
    """A port on 127.0.0.1 that nothing listens on (bound, then closed)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def launch(prelude: str, *args: str) -> subprocess.CompletedProcess:
    """tests.mock_main after ``prelude`` ran in the same process."""
    code = (f"import runpy, sys\n{prelude}\n"
            "runpy.run_module('tests.mock_main', run_name='__main__', alter_sys=True)")
    return subprocess.run([sys.executable, "-c", code, *args], cwd=ROOT, text=True,
                          capture_output=True, timeout=300)


def test_addresses_without_a_host_are_left_to_ray_and_others_are_parsed():
    for address in (None, "", "auto", "local"):
        assert ray_preflight.host_port(address) is None
    assert ray_preflight.host_port("10.0.0.2:6379") == ("10.0.0.2", 6379)
    assert ray_preflight.host_port("ray://head.example:10001") == ("head.example", 10001)
    assert ray_preflight.host_port("[::1]:6379") == ("::1", 6379)
    for bad in ("10.0.0.2", "10.0.0.2:", "host:port", ":6379", "h:70000"):
        with pytest.raises(ConfigError, match=r"^--ray_address=.*: give HOST:PORT"):
            ray_preflight.host_port(bad)


def test_a_closed_port_on_loopback_fails_at_once_in_one_line():
    port = closed_port()
    start = time.monotonic()
    with pytest.raises(ConfigError) as raised:
        ray_preflight.check_address(f"127.0.0.1:{port}", timeout_s=5.0)
    assert time.monotonic() - start < 5.0
    message = str(raised.value)
    assert "\n" not in message
    assert message.startswith(f"--ray_address=127.0.0.1:{port}: cannot connect to "
                              f"127.0.0.1:{port} (Connection refused); check that a Ray head")


def test_an_open_port_passes_and_auto_is_not_checked():
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as server:
        server.bind(("127.0.0.1", 0))
        server.listen(1)
        ray_preflight.check_address(f"127.0.0.1:{server.getsockname()[1]}", timeout_s=5.0)
    ray_preflight.check_address("auto", timeout_s=5.0)
    with pytest.raises(ConfigError, match=r"^--ray_connect_timeout_s must be > 0"):
        ray_preflight.check_address("auto", timeout_s=0)


@pytest.mark.slow
def test_cli_without_ray_names_the_extra_in_one_line(tmp_path):
    model_dir = tmp_path / "run"
    done = launch("sys.modules['ray'] = None  # as if Ray were not installed",
                  *SMALL, f"--model_dir={model_dir}")
    assert done.returncode == 2, done.stderr[-2000:]
    errors = [line for line in done.stderr.splitlines() if line.startswith("tf_lottery:")]
    assert errors == ["tf_lottery: error: --executor=ray needs Ray, which is not installed: "
                      "pip install 'tf_lottery[ray]' (or run with --executor=inline)"]
    assert "Traceback" not in done.stderr
    assert not model_dir.exists()  # stopped before anything was written


@pytest.mark.slow
def test_cli_with_a_closed_ray_address_stops_before_ray_connects(tmp_path):
    port = closed_port()
    never = "import ray; ray.init = lambda *a, **k: sys.exit('ray.init was reached')"
    done = launch(never, *SMALL, f"--model_dir={tmp_path / 'run'}",
                  f"--ray_address=127.0.0.1:{port}", "--ray_connect_timeout_s=3")
    assert done.returncode == 2, done.stderr[-2000:]
    errors = [line for line in done.stderr.splitlines() if line.startswith("tf_lottery:")]
    assert len(errors) == 1 and errors[0].startswith(
        f"tf_lottery: error: --ray_address=127.0.0.1:{port}: cannot connect"), done.stderr
    assert "ray.init was reached" not in done.stderr and "Traceback" not in done.stderr
