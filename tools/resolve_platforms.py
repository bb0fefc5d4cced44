"""Checks that each platform's lock resolves on the package index; writes the locks.

setup.cfg holds ranges (what a user's environment may bring); locks/ holds
one exact set per platform below (what CI, ``make`` and
tpu_scripts/install.sh install, as pip constraints): setup.cfg's
install_requires plus the platform's extras and ``ray`` and ``test``.
Installing a set can only be tried on its platform, but resolving it can be
done anywhere: ``uv pip compile`` with a target Python and platform resolves
against the index without installing, and fails with the conflict when a
lock names a release that does not exist for that platform or that the
ranges exclude (e.g. tensorflow-tpu 2.21.0, which was never published). CI
runs this so that a move that breaks the GPU or Cloud TPU install is caught
here, not on the user's VM.

Usage: python tools/resolve_platforms.py [--only NAME ...] [--write]
Prints one JSON line per platform; exits 1 if any lock does not resolve.
--write compiles the locks again (keeping each locked version that still
fits: uv prefers the versions of the file it overwrites).
"""

from __future__ import annotations

import argparse
import configparser
import dataclasses
import json
import pathlib
import re
import shutil
import subprocess
import sys
import tempfile
import time

ROOT = pathlib.Path(__file__).resolve().parents[1]
LOCKS = ROOT / "locks"
# Extras every lock holds besides its platform's: CI tests the Ray executor,
# and a TPU VM runs Ray clusters (tpu_scripts/ray_cluster.sh).
ALWAYS = ("ray", "test")
# Versions that must agree across platforms: a run resumes on another
# platform with the same TensorFlow, Keras 2 and pruning code.
FAMILY = ("tensorflow", "tf-keras", "tensorboard", "tensorflow-model-optimization")


@dataclasses.dataclass(frozen=True)
class Platform:
    """A target: which extras of setup.cfg, for which Python and wheel platform."""

    name: str
    extras: tuple[str, ...]
    python: str
    uv_platform: str
    why: str

    @property
    def lock(self) -> pathlib.Path:
        return LOCKS / f"{self.name}.txt"


PLATFORMS = (
    Platform("cpu-linux-py3.10", (), "3.10", "x86_64-manylinux_2_28",
             "oldest Python the package supports"),
    Platform("cpu-linux-py3.11", (), "3.11", "x86_64-manylinux_2_28",
             "the Python of this repository's CI"),
    Platform("cpu-linux-py3.12", (), "3.12", "x86_64-manylinux_2_28",
             "newest Python with every locked wheel"),
    Platform("cpu-macos-arm64", (), "3.11", "aarch64-apple-darwin",
             "a laptop"),
    Platform("gpu-linux", ("gpu",), "3.11", "x86_64-manylinux_2_28",
             "tensorflow[and-cuda]: CUDA and cuDNN wheels from PyPI"),
    Platform("tpu-vm", ("tpu",), "3.10", "x86_64-manylinux_2_35",
             "Cloud TPU VM image tpu-ubuntu2204-base: Ubuntu 22.04, Python 3.10"),
)


def requirements(extras: tuple[str, ...], setup_cfg: pathlib.Path) -> list[str]:
    """setup.cfg's install_requires plus the named extras, one requirement each."""
    cfg = configparser.ConfigParser()
    cfg.read(setup_cfg)

    def lines(text: str) -> list[str]:
        return [x.strip() for x in text.splitlines() if x.strip() and not x.strip().startswith("#")]

    reqs = lines(cfg["options"]["install_requires"])
    for extra in extras:
        reqs += lines(cfg["options.extras_require"][extra])
    return reqs


def pins(lines: list[str]) -> dict[str, str]:
    """{normalized name: version} for every ``name[extras]==version`` line."""
    out = {}
    for r in lines:
        m = re.fullmatch(r"([A-Za-z0-9_.-]+)(?:\[[^\]]*\])?==([^\s;]+)", r.strip())
        if m:
            out[normalize(m.group(1))] = m.group(2)
    return out


def locked(platform: Platform) -> dict[str, str]:
    """The platform's lock file as {normalized name: version}."""
    return pins(platform.lock.read_text().splitlines())


def normalize(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def compile_set(platform: Platform, uv: str, setup_cfg: pathlib.Path,
                output: pathlib.Path, constraints: pathlib.Path | None = None):
    """``uv pip compile`` of the platform's ranges into ``output``."""
    reqs = requirements(platform.extras + ALWAYS, setup_cfg)
    with tempfile.TemporaryDirectory() as tmp:
        req_file = pathlib.Path(tmp) / "requirements.in"
        req_file.write_text("\n".join(reqs) + "\n")
        command = [uv, "pip", "compile", str(req_file), "-o", str(output),
                   "--python-version", platform.python, "--python-platform",
                   platform.uv_platform, "--no-annotate", "--quiet", "--no-config",
                   "--custom-compile-command", "python tools/resolve_platforms.py --write"]
        if constraints is not None:
            command += ["-c", str(constraints)]
        return subprocess.run(command, capture_output=True, text=True, timeout=600)


def resolve(platform: Platform, uv: str, setup_cfg: pathlib.Path, write: bool = False) -> dict:
    """Resolves the ranges with the platform's lock as constraints (or writes
    the lock anew); returns a JSON-able verdict."""
    verdict = {"platform": platform.name, "python": platform.python,
               "wheel_platform": platform.uv_platform, "extras": list(platform.extras),
               "lock": str(platform.lock.relative_to(ROOT))}
    start = time.monotonic()
    if write:
        LOCKS.mkdir(exist_ok=True)
        done = compile_set(platform, uv, setup_cfg, platform.lock)
    else:
        if not platform.lock.exists():
            return {**verdict, "ok": False, "error": "no lock: run with --write"}
        with tempfile.TemporaryDirectory() as tmp:
            out = pathlib.Path(tmp) / "resolved.txt"
            done = compile_set(platform, uv, setup_cfg, out, constraints=platform.lock)
            text = out.read_text() if out.exists() else ""
    verdict["seconds"] = round(time.monotonic() - start, 1)
    if done.returncode != 0:
        return {**verdict, "ok": False, "error": done.stderr.strip()}
    lock = locked(platform)
    if not write:
        resolved = pins(text.splitlines())
        # A lock that misses a package would leave pip free to pick its version.
        off = {n: (lock.get(n), v) for n, v in resolved.items() if lock.get(n) != v}
        if off:
            return {**verdict, "ok": False,
                    "error": f"lock differs from the resolution (lock, resolved): {off}; "
                             "run with --write"}
    family = {n: lock[n] for n in (*FAMILY, "tensorflow-tpu", "libtpu") if n in lock}
    return {**verdict, "ok": True, "packages": len(lock), "tensorflow_family": family}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", nargs="*", default=None,
                        choices=[p.name for p in PLATFORMS], help="platforms to check")
    parser.add_argument("--write", action="store_true",
                        help="compile the locks again instead of checking them")
    parser.add_argument("--setup_cfg", type=pathlib.Path, default=ROOT / "setup.cfg")
    args = parser.parse_args(argv)
    uv = shutil.which("uv") or shutil.which("uv", path=str(pathlib.Path(sys.executable).parent))
    if not uv:
        print("resolve_platforms: error: uv not found; pip install -e '.[test]'",
              file=sys.stderr)
        return 2
    failed = 0
    families = set()
    for platform in PLATFORMS:
        if args.only is not None and platform.name not in args.only:
            continue
        verdict = resolve(platform, uv, args.setup_cfg, write=args.write)
        print(json.dumps(verdict), flush=True)
        failed += not verdict["ok"]
        family = verdict.get("tensorflow_family", {})
        families.add(tuple(family.get(n) for n in FAMILY))
    if len(families) > 1:
        # A run must resume on another platform with the same TensorFlow.
        print(json.dumps({"ok": False, "error": f"the TensorFlow family differs across "
                                                f"platforms: {sorted(families)}"}))
        failed += 1
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
