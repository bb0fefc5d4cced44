"""Ranges in setup.cfg, exact locks in locks/: the locks fit the ranges and agree.

Whether each platform's lock resolves on the package index is checked by
tools/resolve_platforms.py (network; `make check-pins`, run by CI). These
tests are the offline half: every lock satisfies setup.cfg's ranges, the
TensorFlow family is the same in every lock, no other file names a version
the locks do not hold, and this environment is the lock of its platform.
"""

import importlib.metadata
import importlib.util
import pathlib
import platform
import re
import sys

from packaging.requirements import Requirement

ROOT = pathlib.Path(__file__).resolve().parents[1]


def _resolver():
    spec = importlib.util.spec_from_file_location(
        "resolve_platforms", ROOT / "tools" / "resolve_platforms.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


def _unmet(requirements: list[str], lock: dict[str, str], normalize) -> list[str]:
    """The requirements whose package the lock lacks or holds outside the range."""
    unmet = []
    for text in requirements:
        req = Requirement(text)
        version = lock.get(normalize(req.name))
        if version is None or not req.specifier.contains(version, prereleases=True):
            unmet.append(f"{text} (locked: {version})")
    return unmet


def test_every_lock_satisfies_setup_cfgs_ranges():
    rp = _resolver()
    cfg = ROOT / "setup.cfg"
    for p in rp.PLATFORMS:
        reqs = rp.requirements(p.extras + rp.ALWAYS, cfg)
        assert not _unmet(reqs, rp.locked(p), rp.normalize), p.name


def test_the_range_check_refuses_a_lock_outside_a_range():
    rp = _resolver()
    lock = {"numpy": "2.2.6", "tensorflow": "2.21.0"}
    assert _unmet(["numpy>=2.1,<2.3", "tensorflow>=2.20,<2.21", "scipy>=1.14"],
                  lock, rp.normalize) == ["tensorflow>=2.20,<2.21 (locked: 2.21.0)",
                                          "scipy>=1.14 (locked: None)"]


def test_ranges_are_ranges_and_the_tensorflow_family_sits_at_one_minor():
    rp = _resolver()
    reqs = rp.requirements(("gpu", "tpu", "ray"), ROOT / "setup.cfg")
    assert not [r for r in reqs if "==" in r], "setup.cfg holds ranges; exact sets go in locks/"
    for text in reqs:
        req = Requirement(text)
        if rp.normalize(req.name) in ("tensorflow", "tensorflow-tpu", "tf-keras", "tensorboard"):
            assert req.specifier.contains("2.20.0") and not req.specifier.contains("2.21.0")


def test_every_platform_locks_the_same_tensorflow_family():
    rp = _resolver()
    locks = {p.name: rp.locked(p) for p in rp.PLATFORMS}
    for name in rp.FAMILY:
        versions = {platform: lock[name] for platform, lock in locks.items()}
        assert len(set(versions.values())) == 1, (name, versions)
    tpu = locks["tpu-vm"]
    assert tpu["tensorflow-tpu"] == tpu["tensorflow"] and "libtpu" in tpu
    assert "nvidia-cudnn-cu12" in locks["gpu-linux"]  # tensorflow[and-cuda]
    assert all("ray" in lock for lock in locks.values())


def test_the_resolver_covers_cpu_gpu_and_the_tpu_vm_python_with_a_lock_each():
    rp = _resolver()
    platforms = {p.name: p for p in rp.PLATFORMS}
    assert platforms["gpu-linux"].extras == ("gpu",)
    assert platforms["tpu-vm"].extras == ("tpu",)
    assert platforms["tpu-vm"].python == "3.10"  # tpu-ubuntu2204-base's Python
    assert any(p.python == "3.11" and not p.extras for p in platforms.values())
    assert sorted(rp.LOCKS.glob("*.txt")) == sorted(p.lock for p in rp.PLATFORMS)


def test_no_other_file_pins_a_version_no_lock_holds():
    rp = _resolver()
    held: dict[str, set[str]] = {}
    for p in rp.PLATFORMS:
        for name, version in rp.locked(p).items():
            held.setdefault(name, set()).add(version)
    texts = [*ROOT.glob("tpu_scripts/*"), ROOT / "Makefile", ROOT / "README.md",
             *ROOT.glob("docs/*.md"), *ROOT.glob("benchmarks/*"), ROOT / ".ci" / "run"]
    found = []
    for path in texts:
        for name, version in re.findall(r"([A-Za-z][\w.-]*)(?:\[[\w,-]*\])?==(\d[\w.]*)",
                                        path.read_text()):
            versions = held.get(rp.normalize(name))
            if versions is not None and version not in versions:
                found.append(f"{path.relative_to(ROOT)}: {name}=={version} (locks: {versions})")
    assert not found


def test_this_environment_is_its_platforms_lock():
    rp = _resolver()
    python = f"{sys.version_info[0]}.{sys.version_info[1]}"
    if platform.system() == "Darwin":
        name = "cpu-macos-arm64"
    else:
        name = f"cpu-linux-py{python}"
    lock = rp.locked(next(p for p in rp.PLATFORMS if p.name == name))
    # The venv's own bootstrap tools are not what the package runs on.
    wanted = {n: v for n, v in lock.items() if n not in ("pip", "setuptools", "wheel")}
    installed = {}
    for n in wanted:
        try:
            installed[n] = importlib.metadata.version(n)
        except importlib.metadata.PackageNotFoundError:
            installed[n] = None
    assert installed == wanted, "stale environment: rerun make install"
