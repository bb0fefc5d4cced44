"""Checks that each platform's pinned set resolves on the package index.

The pins live once, in setup.cfg: the base set (CPU) and the ``gpu`` and
``tpu`` extras. Installing a set can only be tried on its platform, but
resolving it can be done anywhere: ``uv pip compile`` with a target Python
and platform resolves against the index without installing, and fails with
the conflict when a pin names a release that does not exist for that
platform or that another pin excludes (e.g. tensorflow-tpu 2.21.0, which was
never published). CI runs this so that a pin move that breaks the GPU or
Cloud TPU install is caught here, not on the user's VM.

Usage: python tools/resolve_platforms.py [--only NAME ...]
Prints one JSON line per platform; exits 1 if any set does not resolve.
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


@dataclasses.dataclass(frozen=True)
class Platform:
    """A target: which extras of setup.cfg, for which Python and wheel platform."""

    name: str
    extras: tuple[str, ...]
    python: str
    uv_platform: str
    why: str


PLATFORMS = (
    Platform("cpu-linux-py3.10", (), "3.10", "x86_64-manylinux_2_28",
             "oldest Python the package supports"),
    Platform("cpu-linux-py3.11", (), "3.11", "x86_64-manylinux_2_28",
             "the Python of this repository's CI"),
    Platform("cpu-linux-py3.12", (), "3.12", "x86_64-manylinux_2_28",
             "newest Python with every pinned wheel"),
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


def pins(reqs: list[str]) -> dict[str, str]:
    """{normalized name: version} for every ``name[extras]==version`` requirement."""
    out = {}
    for r in reqs:
        m = re.fullmatch(r"([A-Za-z0-9_.-]+)(?:\[[^\]]*\])?==([^\s;]+)", r)
        if m:
            out[normalize(m.group(1))] = m.group(2)
    return out


def normalize(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def resolve(platform: Platform, uv: str, setup_cfg: pathlib.Path) -> dict:
    """Resolves one platform's set; returns a JSON-able verdict."""
    reqs = requirements(platform.extras, setup_cfg)
    with tempfile.TemporaryDirectory() as tmp:
        req_file = pathlib.Path(tmp) / "requirements.in"
        req_file.write_text("\n".join(reqs) + "\n")
        start = time.monotonic()
        done = subprocess.run(
            [uv, "pip", "compile", str(req_file), "--python-version", platform.python,
             "--python-platform", platform.uv_platform, "--no-header", "--no-annotate",
             "--quiet", "--no-config"],
            capture_output=True, text=True, timeout=600)
    verdict = {"platform": platform.name, "python": platform.python,
               "wheel_platform": platform.uv_platform, "extras": list(platform.extras),
               "seconds": round(time.monotonic() - start, 1)}
    if done.returncode != 0:
        return {**verdict, "ok": False, "error": done.stderr.strip()}
    resolved = {}
    for line in done.stdout.splitlines():
        m = re.fullmatch(r"([A-Za-z0-9_.-]+)(?:\[[^\]]*\])?==(\S+)", line.strip())
        if m:
            resolved[normalize(m.group(1))] = m.group(2)
    # uv honours == exactly; this guards against a pin silently not applying.
    off = {n: (v, resolved.get(n)) for n, v in pins(reqs).items() if resolved.get(n) != v}
    if off:
        return {**verdict, "ok": False, "error": f"pins not honoured: {off}"}
    family = {n: resolved[n] for n in ("tensorflow", "tensorflow-tpu", "tf-keras",
                                        "tensorboard", "libtpu") if n in resolved}
    return {**verdict, "ok": True, "packages": len(resolved), "tensorflow_family": family}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", nargs="*", default=None,
                        choices=[p.name for p in PLATFORMS], help="platforms to check")
    parser.add_argument("--setup_cfg", type=pathlib.Path, default=ROOT / "setup.cfg")
    args = parser.parse_args(argv)
    uv = shutil.which("uv") or shutil.which("uv", path=str(pathlib.Path(sys.executable).parent))
    if not uv:
        print("resolve_platforms: error: uv not found; pip install -e '.[test]'",
              file=sys.stderr)
        return 2
    failed = 0
    tensorflow = set()
    for platform in PLATFORMS:
        if args.only is not None and platform.name not in args.only:
            continue
        verdict = resolve(platform, uv, args.setup_cfg)
        print(json.dumps(verdict), flush=True)
        failed += not verdict["ok"]
        family = verdict.get("tensorflow_family", {})
        tensorflow.update(v for n, v in family.items() if n in ("tensorflow", "tensorflow-tpu"))
    if len(tensorflow) > 1:
        # A run must resume on another platform with the same TensorFlow.
        print(json.dumps({"ok": False, "error": f"TensorFlow differs across platforms: "
                                                f"{sorted(tensorflow)}"}))
        failed += 1
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
