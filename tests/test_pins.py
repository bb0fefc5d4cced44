"""The pin set: one TensorFlow for every platform, written only in setup.cfg.

Whether each platform's set resolves on the package index is checked by
tools/resolve_platforms.py (network; `make check-pins`, run by CI). These
tests are the offline half: the sets agree with each other, no other file
names a different version, and this environment is the one setup.cfg pins.
"""

import importlib.metadata
import importlib.util
import pathlib
import re
import sys

ROOT = pathlib.Path(__file__).resolve().parents[1]


def _resolver():
    spec = importlib.util.spec_from_file_location(
        "resolve_platforms", ROOT / "tools" / "resolve_platforms.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


def test_every_platform_gets_the_same_tensorflow():
    rp = _resolver()
    cfg = ROOT / "setup.cfg"
    cpu = rp.pins(rp.requirements((), cfg))
    gpu = rp.pins(rp.requirements(("gpu",), cfg))
    tpu = rp.pins(rp.requirements(("tpu",), cfg))
    tf = cpu["tensorflow"]
    assert gpu["tensorflow"] == tf  # tensorflow[and-cuda]==... in the gpu extra
    assert tpu["tensorflow-tpu"] == tf
    major_minor = tf.rsplit(".", 1)[0]
    for family in ("tf-keras", "tensorboard"):
        assert cpu[family].startswith(major_minor + "."), (family, cpu[family], tf)
    assert "libtpu" in tpu


def test_the_resolver_covers_cpu_gpu_and_the_tpu_vm_python():
    platforms = {p.name: p for p in _resolver().PLATFORMS}
    assert platforms["gpu-linux"].extras == ("gpu",)
    assert platforms["tpu-vm"].extras == ("tpu",)
    assert platforms["tpu-vm"].python == "3.10"  # tpu-ubuntu2204-base's Python
    assert any(p.python == "3.11" and not p.extras for p in platforms.values())


def test_no_other_file_pins_a_different_version():
    rp = _resolver()
    pins = rp.pins(rp.requirements(("gpu", "tpu", "test"), ROOT / "setup.cfg"))
    texts = [*ROOT.glob("tpu_scripts/*"), ROOT / "Makefile", ROOT / "README.md",
             *ROOT.glob("docs/*.md"), *ROOT.glob("benchmarks/*"), ROOT / ".ci" / "run"]
    found = []
    for path in texts:
        for name, version in re.findall(r"([A-Za-z][\w.-]*)(?:\[[\w,-]*\])?==(\d[\w.]*)",
                                        path.read_text()):
            pinned = pins.get(rp.normalize(name))
            if pinned is not None and pinned != version:
                found.append(f"{path.relative_to(ROOT)}: {name}=={version} (setup.cfg: {pinned})")
    assert not found


def test_this_environment_is_the_pinned_cpu_set():
    rp = _resolver()
    pins = rp.pins(rp.requirements(("test",), ROOT / "setup.cfg"))
    installed = {name: importlib.metadata.version(name) for name in pins}
    assert installed == pins, "stale environment: rerun make install"
