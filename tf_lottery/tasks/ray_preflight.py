"""Checks made before the Ray executor starts: Ray is installed, --ray_address answers.

Both end a launch in one line, before anything is written to the model_dir.
Ray is the ``[ray]`` extra, so a plain ``pip install tf_lottery`` lacks it.
And ``ray.init`` at a ``--ray_address`` where nothing listens retries for
minutes, printing Ray's GCS warnings, without a bound a user can set; a
plain TCP connect to the host and port the user gave, bounded by
``--ray_connect_timeout_s``, says at once what is wrong. Only that host is
contacted: Ray itself would rewrite 127.0.0.1 to the node's own address.
``auto``, ``local`` and no address keep Ray's own behaviour (they name no
host to check).
"""

from __future__ import annotations

import importlib
import socket

from tf_lottery.errors import ConfigError

CONNECT_TIMEOUT_S = 10.0   # --ray_connect_timeout_s: a head across a WAN answers well within it
INSTALL = "pip install 'tf_lottery[ray]'"
_NO_HOST = ("", "auto", "local")


def require_ray() -> None:
    """Raises ConfigError (one line naming the extra) when Ray cannot be imported."""
    try:
        importlib.import_module("ray")
    except ImportError as e:
        if e.name == "ray":
            raise ConfigError(f"--executor=ray needs Ray, which is not installed: {INSTALL} "
                              "(or run with --executor=inline)") from None
        raise ConfigError(f"--executor=ray: Ray is installed but does not import ({e}); "
                          f"reinstall it with {INSTALL}") from None


def host_port(address: str | None) -> tuple[str, int] | None:
    """The host and port of ``HOST:PORT`` or ``ray://HOST:PORT``; None for no host."""
    if address is None or address in _NO_HOST:
        return None
    rest = address.split("://", 1)[1] if "://" in address else address
    host, sep, port = rest.rpartition(":")
    host = host.strip("[]")  # [::1]:6379
    if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise ConfigError(f"--ray_address={address}: give HOST:PORT (the Ray head's GCS "
                          "port, 6379 unless `ray start --port` chose another), "
                          "ray://HOST:PORT or auto")
    return host, int(port)


def check_address(address: str | None, timeout_s: float = CONNECT_TIMEOUT_S) -> None:
    """Raises ConfigError (one line) unless ``address`` accepts a TCP connection
    within ``timeout_s``."""
    if timeout_s <= 0:
        raise ConfigError(f"--ray_connect_timeout_s must be > 0, got {timeout_s:g}")
    target = host_port(address)
    if target is None:
        return
    try:
        with socket.create_connection(target, timeout=timeout_s):
            return
    except TimeoutError:
        why = f"no answer within {timeout_s:g} s (--ray_connect_timeout_s)"
    except OSError as e:
        why = e.strerror or str(e)
    raise ConfigError(f"--ray_address={address}: cannot connect to {target[0]}:{target[1]} "
                      f"({why}); check that a Ray head runs there (`ray status` on it) and "
                      "that this machine reaches that host and port (name, firewall), or "
                      "leave --ray_address unset for a local Ray instance")


def check(address: str | None, timeout_s: float = CONNECT_TIMEOUT_S) -> None:
    """Everything ``--executor=ray`` needs before it starts: Ray, then the address."""
    require_ray()
    check_address(address, timeout_s)
