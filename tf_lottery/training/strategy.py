"""Builds the tf.distribute strategy named by --strategy."""

from __future__ import annotations

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


def make_strategy(runtime: RuntimeConfig) -> tf.distribute.Strategy:
    """default | one_device | mirrored | multi_worker_mirrored | tpu."""
    name = runtime.strategy
    if name == "tpu":
        resolver = tf.distribute.cluster_resolver.TPUClusterResolver(
            tpu="" if runtime.tpu == "local" else runtime.tpu
        )
        tf.config.experimental_connect_to_cluster(resolver)
        tf.tpu.experimental.initialize_tpu_system(resolver)
        strategy = tf.distribute.TPUStrategy(resolver)
    elif name == "multi_worker_mirrored":
        strategy = tf.distribute.MultiWorkerMirroredStrategy()
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
