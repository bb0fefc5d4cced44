"""CPU numerics: which kernels compute a run, chosen before TensorFlow loads.

The same seed gives other bits on another kind of CPU, and the causes were
measured here (docs/numerics.md has the figures and the commands):

- On x86, TensorFlow's float32 MatMul and Conv2D go through oneDNN even with
  ``TF_ENABLE_ONEDNN_OPTS=0``: Eigen's contraction calls oneDNN's sgemm, and
  oneDNN picks its kernels by the CPU's instruction set when it first runs. So
  an AVX2 and an AVX-512 machine disagree whatever TF's oneDNN switch says.
- A contraction's bits also depend on the number of intra-op threads, which
  split some products' sums: with TF's oneDNN ops off for most shapes, with
  them on for some (a 512x512 MatMul), so the thread count is part of the
  numerics (``TF_NUM_INTRAOP_THREADS`` fixes it).
- With TF's oneDNN ops on or off and oneDNN capped at AVX2
  (``ONEDNN_MAX_CPU_ISA``), an AVX-512 machine trained LeNet-300-100 to the
  very accuracies an AVX2-only machine measured with the same 2 threads.
- With TF's oneDNN ops on, the cap crashes bfloat16 layers (a segmentation
  fault in ``--precision=mixed_bfloat16``): TensorFlow picks oneDNN's bf16
  kernels by the CPU's flags, and oneDNN capped at AVX2 has none.

Hence two settings, chosen by the environment variable
``TF_LOTTERY_CPU_NUMERICS`` (it must be known before TensorFlow loads, which
a flag parsed later cannot be):

- ``portable`` (the default): TF's oneDNN ops off and oneDNN's sgemm capped
  at AVX2, which is what an AVX2-only machine computes by default, so x86
  machines with AVX2 and FMA compute the same bits at the same thread count;
- ``native``: TensorFlow's own choice (oneDNN on only where the CPU has
  AVX-512 VNNI/BF16 or AMX, with every instruction the CPU has).

Variables the user set by hand win over the setting's defaults, and
``TF_ENABLE_ONEDNN_OPTS=1`` also drops the AVX2 cap (see the crash above);
the run records what was in effect (``Numerics``) and calls it ``custom``
when it is neither setting. Nothing here imports TensorFlow at module level: the package
applies the setting from its ``__init__``, before TensorFlow is imported.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Mapping, MutableMapping
from typing import Any

from tf_lottery.errors import ConfigError

ENV = "TF_LOTTERY_CPU_NUMERICS"
PORTABLE = "portable"
NATIVE = "native"
CUSTOM = "custom"  # the variables were set by hand to neither setting
ONEDNN_OPTS = "TF_ENABLE_ONEDNN_OPTS"
MAX_ISA = "ONEDNN_MAX_CPU_ISA"

# What each setting puts in the environment (where the user has not).
SETTINGS: dict[str, dict[str, str]] = {
    PORTABLE: {ONEDNN_OPTS: "0", MAX_ISA: "AVX2"},
    NATIVE: {},
}

# Instruction-set classes, narrowest first: the ones oneDNN's float32 kernels
# differ by. A cap (ONEDNN_MAX_CPU_ISA) or a CPU maps to one of them.
ISA_CLASSES = ("other", "avx", "avx2", "avx512", "amx")


def setting(environ: Mapping[str, str] = os.environ) -> str:
    """The chosen setting's name.

    Raises:
      ConfigError: ``TF_LOTTERY_CPU_NUMERICS`` names no setting.
    """
    name = environ.get(ENV, PORTABLE)
    if name not in SETTINGS:
        raise ConfigError(f"{ENV}={name}: use {' or '.join(SETTINGS)} "
                          "(docs/numerics.md says what each computes with)")
    return name


def apply(environ: MutableMapping[str, str] = os.environ) -> None:
    """Puts the chosen setting's variables into ``environ`` where unset.

    Called by the package's ``__init__`` before TensorFlow loads; an unknown
    setting is left for ``current`` to report as one line (an import must
    not fail on it).
    """
    for name, value in SETTINGS.get(environ.get(ENV, PORTABLE), {}).items():
        if name == MAX_ISA and environ.get(ONEDNN_OPTS) == "1":
            continue  # oneDNN's own ops under the cap crash on bfloat16
        environ.setdefault(name, value)


def cpu_isa_class(flags: set[str], machine: str) -> str:
    """The widest instruction-set class of a CPU, from its /proc/cpuinfo flags."""
    if machine not in ("x86_64", "AMD64", "i686"):
        return "other"
    for name, needs in (("amx", {"amx_tile"}), ("avx512", {"avx512f"}),
                        ("avx2", {"avx2", "fma"}), ("avx", {"avx"})):
        if needs <= flags:
            return name
    return "other"


def cap_class(cap: str) -> str | None:
    """The class of a ``ONEDNN_MAX_CPU_ISA`` value (None: no cap)."""
    cap = cap.strip().upper()
    if cap in ("", "ALL", "DEFAULT"):
        return None
    for prefix, name in (("AVX512_CORE_AMX", "amx"), ("AVX10", "avx512"),
                         ("AVX512", "avx512"), ("AVX2", "avx2"), ("AVX", "avx")):
        if cap.startswith(prefix):
            return name
    return "other"


def this_cpu() -> str:
    """This machine's instruction-set class (Linux's /proc/cpuinfo; elsewhere
    no flags are read and an x86 CPU counts as ``other``)."""
    import platform  # here: the package's __init__ imports this module first

    flags: set[str] = set()
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("flags"):
                    flags = set(line.split(":", 1)[1].split())
                    break
    except OSError:
        pass
    return cpu_isa_class(flags, platform.machine())


@dataclasses.dataclass(frozen=True)
class Numerics:
    """What decides a run's bits on a CPU, as recorded with the run.

    Attributes:
      setting: ``portable``, ``native`` or ``custom``.
      onednn: whether TensorFlow's oneDNN ops are in use.
      max_cpu_isa: ``ONEDNN_MAX_CPU_ISA`` ("" when unset: all the CPU has).
      cpu: the CPU's widest instruction-set class (``ISA_CLASSES``).
      kernels: the class of kernels oneDNN runs: the CPU's, or the cap's
        when narrower.
      threads: intra-op threads (they split some sums).
      accelerator: the device kind that computes, "" for the CPU: on a GPU or
        TPU the CPU's numerics decide nothing.
    """

    setting: str
    onednn: bool
    max_cpu_isa: str
    cpu: str
    kernels: str
    threads: int
    accelerator: str = ""

    def same_bits_as(self, other: Numerics) -> bool:
        """Whether the two compute the same bits, by what was measured."""
        if self.accelerator or other.accelerator:
            return self.accelerator == other.accelerator
        return (self.onednn, self.kernels, self.threads) == (
            other.onednn, other.kernels, other.threads)

    def describe(self) -> str:
        """One phrase for logs, status and the report."""
        cpu = (f"{self.setting} (oneDNN {'on' if self.onednn else 'off'}, "
               f"{self.kernels} kernels, {self.threads} threads; CPU {self.cpu})")
        return f"{self.accelerator} (CPU: {cpu})" if self.accelerator else cpu

    def to_json(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_json(cls, obj: Mapping[str, Any]) -> Numerics:
        return cls(setting=str(obj["setting"]), onednn=bool(obj["onednn"]),
                   max_cpu_isa=str(obj["max_cpu_isa"]), cpu=str(obj["cpu"]),
                   kernels=str(obj["kernels"]), threads=int(obj["threads"]),
                   accelerator=str(obj.get("accelerator", "")))


def effective(environ: Mapping[str, str], cpu: str, onednn: bool,
              threads: int, accelerator: str = "") -> Numerics:
    """The numerics that ``environ`` gives on a CPU of class ``cpu``."""
    chosen = setting(environ)
    cap = environ.get(MAX_ISA, "")
    capped = cap_class(cap)
    kernels = cpu if capped is None else min(cpu, capped, key=ISA_CLASSES.index)
    expected = SETTINGS[chosen]
    as_set = all(environ.get(k) == v for k, v in expected.items())
    if chosen == NATIVE:
        as_set = not environ.get(MAX_ISA) and ONEDNN_OPTS not in environ
    return Numerics(setting=chosen if as_set else CUSTOM, onednn=onednn,
                    max_cpu_isa=cap, cpu=cpu, kernels=kernels, threads=threads,
                    accelerator=accelerator)


def current() -> Numerics:
    """The numerics of this process (TensorFlow must be loaded or loadable).

    Raises:
      ConfigError: ``TF_LOTTERY_CPU_NUMERICS`` names no setting.
    """
    # Imported here, not at the top: this module is imported by the package's
    # __init__, which must not load TensorFlow before the setting is applied.
    import tensorflow as tf
    from tensorflow.python.util import _pywrap_util_port

    # 0 means TensorFlow's default: TF_NUM_INTRAOP_THREADS, else one thread
    # per core this process may use.
    available = (len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity")
                 else os.cpu_count() or 1)
    threads = (tf.config.threading.get_intra_op_parallelism_threads()
               or int(os.environ.get("TF_NUM_INTRAOP_THREADS") or 0) or available)
    devices = [d for kind in ("TPU", "GPU") for d in tf.config.list_physical_devices(kind)]
    accelerator = ""
    if devices:
        name = tf.config.experimental.get_device_details(devices[0]).get("device_name")
        accelerator = f"{devices[0].device_type} {name or ''}".strip()
    return effective(os.environ, this_cpu(), bool(_pywrap_util_port.IsMklEnabled()),
                     int(threads), accelerator)
