"""Builds the tf.distribute strategy named by --strategy, and compiles steps for it.

Building it is the environment check of a launch: a TPU that cannot be
reached or workers that never join are one-line errors raised before
anything is written to --model_dir.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Callable

import tensorflow as tf
from absl import logging

from tf_lottery.config import RuntimeConfig
from tf_lottery.errors import ConfigError


def configure_cpu_devices(num: int) -> None:
    """Splits the host CPU into ``num`` logical devices (before TF starts).

    Lets MirroredStrategy run with several replicas on a CPU-only machine, which
    is how the strategy-equivalence tests run.
    """
    if num <= 1:
        return
    cpus = tf.config.list_physical_devices("CPU")
    current = tf.config.get_logical_device_configuration(cpus[0])
    if current and len(current) == num:
        return
    try:
        tf.config.set_logical_device_configuration(
            cpus[0], [tf.config.LogicalDeviceConfiguration() for _ in range(num)]
        )
    except RuntimeError as e:
        raise ConfigError(f"--cpu_devices={num} must be set before TensorFlow "
                          f"initializes its devices ({e})") from None


def mirrored_strategy(devices: list[str]) -> tf.distribute.MirroredStrategy:
    """A MirroredStrategy whose collectives cannot collide with an earlier one's.

    Every MirroredStrategy numbers its collective ops (gradient all-reduce,
    synchronized BatchNorm) from the same keys, and TensorFlow caches each
    key's tensor shape per process: a second strategy in the same process
    (another test, another recipe in a notebook) running a different model
    fails with "Shape mismatch in the collective instance". A fresh key base
    per strategy avoids it, as TensorFlow's own ``strategy_combinations`` does.
    """
    # Private, but TensorFlow offers no public way to set the key base.
    tf.distribute.MirroredStrategy._collective_key_base += 100000
    return tf.distribute.MirroredStrategy(devices=devices)


def step_compiler(runtime: RuntimeConfig,
                  strategy: tf.distribute.Strategy) -> Callable[[Callable], Callable]:
    """How the Trainer wraps each replica's step (``strategy.run`` calls it
    inside the training and evaluation loops).

    --jit_compile: the step is one XLA computation (``tf.function(jit_compile=
    True)``), fusing its ops; the loop around it stays a TensorFlow graph,
    since its input iterator cannot be compiled. A TPU compiles every step
    with XLA anyway, so there the flag changes nothing.

    Otherwise the step's ops run as TensorFlow traces them, without AutoGraph:
    only the loops need it (their ``tf.range`` loop), and converting the step
    with everything it calls (model, optimizer, hooks) added ~1.5 s of
    tracing to every launch and no op.
    """
    if runtime.jit_compile and not isinstance(strategy, tf.distribute.TPUStrategy):
        return lambda step: tf.function(step, jit_compile=True, autograph=False)
    return tf.autograph.experimental.do_not_convert


# How long a multi-worker launch waits for every worker of TF_CONFIG to join.
WORKER_WAIT_S = 600.0


def _first_line(e: BaseException) -> str:
    return (str(e).strip().splitlines() or [type(e).__name__])[0]


def tpu_strategy(tpu: str | None) -> tf.distribute.TPUStrategy:
    """Connects to the TPU named by --tpu ('local': this TPU VM's own)."""
    flag = f"--strategy=tpu --tpu={tpu}" if tpu else "--strategy=tpu (no --tpu given)"
    try:
        resolver = tf.distribute.cluster_resolver.TPUClusterResolver(
            tpu="" if tpu == "local" else tpu)
        tf.config.experimental_connect_to_cluster(resolver)
        tf.tpu.experimental.initialize_tpu_system(resolver)
        return tf.distribute.TPUStrategy(resolver)
    except Exception as e:  # resolver, metadata and gRPC failures have many types
        raise ConfigError(f"{flag}: no TPU could be reached ({_first_line(e)}); on a "
                          "Cloud TPU VM pass --tpu=local, elsewhere give the TPU's name "
                          "with --tpu, or choose another --strategy") from None


def _tf_config_workers() -> list[str]:
    """Addresses of the TF_CONFIG cluster ([] when TF_CONFIG is unset)."""
    raw = os.environ.get("TF_CONFIG")
    if not raw:
        return []
    try:
        parsed = json.loads(raw)
        return [address for job in parsed["cluster"].values() for address in job]
    except (ValueError, KeyError, TypeError, AttributeError) as e:
        raise ConfigError("--strategy=multi_worker_mirrored: the TF_CONFIG environment "
                          f"variable is not a JSON cluster spec ({_first_line(e)}); fix it, "
                          "or unset it to train on this host alone") from None


# Run as a separate process: while TensorFlow waits for missing workers it
# holds the GIL in C++, so no Python thread or signal handler of this process
# runs until they join. Nothing has been written yet, so it ends the launch.
_WATCHDOG = """
import os, signal, sys, time
parent, seconds, message = int(sys.argv[1]), float(sys.argv[2]), sys.argv[3]
time.sleep(seconds)
if os.getppid() == parent:
    sys.stderr.write(message + "\\n")
    sys.stderr.flush()
    os.kill(parent, signal.SIGKILL)
"""


def multi_worker_strategy() -> tf.distribute.MultiWorkerMirroredStrategy:
    """MultiWorkerMirroredStrategy over TF_CONFIG's cluster, once all workers joined.

    A worker that has not joined within ``WORKER_WAIT_S`` ends the launch
    with one line on stderr (exit by SIGKILL, see ``_WATCHDOG``).
    """
    workers = _tf_config_workers()
    message = (f"tf_lottery: error: --strategy=multi_worker_mirrored: the workers of "
               f"TF_CONFIG ({', '.join(workers)}) did not all join within "
               f"{WORKER_WAIT_S:.0f} s; start every worker with the same TF_CONFIG "
               "cluster and check that their addresses are reachable")
    watchdog = subprocess.Popen([sys.executable, "-c", _WATCHDOG, str(os.getpid()),
                                 str(WORKER_WAIT_S), message])
    try:
        return tf.distribute.MultiWorkerMirroredStrategy()
    except (ValueError, RuntimeError, tf.errors.OpError) as e:
        raise ConfigError(f"--strategy=multi_worker_mirrored: TF_CONFIG's cluster "
                          f"cannot be joined ({_first_line(e)}); check TF_CONFIG") from None
    finally:
        watchdog.kill()
        watchdog.wait()


def make_strategy(runtime: RuntimeConfig) -> tf.distribute.Strategy:
    """default | one_device | mirrored | multi_worker_mirrored | tpu.

    Raises:
      ConfigError: the strategy cannot be built here (no TPU, a bad TF_CONFIG).
    """
    name = runtime.strategy
    if name == "tpu":
        strategy = tpu_strategy(runtime.tpu)
    elif name == "multi_worker_mirrored":
        strategy = multi_worker_strategy()
    else:
        configure_cpu_devices(runtime.cpu_devices)
        gpus = tf.config.list_logical_devices("GPU")
        if name == "default":
            strategy = tf.distribute.get_strategy()
        elif name == "one_device":
            strategy = tf.distribute.OneDeviceStrategy(
                gpus[0].name if gpus else "/cpu:0")
        elif name == "mirrored":
            devices = [d.name for d in gpus] or [
                d.name for d in tf.config.list_logical_devices("CPU")]
            strategy = mirrored_strategy(devices)
        else:
            raise ConfigError(f"--strategy={name} is not one of default, "
                              "one_device, mirrored, multi_worker_mirrored, tpu")
    logging.info("Strategy %s with %d replica(s)", type(strategy).__name__,
                 strategy.num_replicas_in_sync)
    return strategy
