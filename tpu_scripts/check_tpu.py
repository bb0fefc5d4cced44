"""Proves, on the VM, that the installed TensorFlow sees the TPU.

Run by install.sh after the install. A TPU that TensorFlow cannot see (the
CPU wheel left in place, a libtpu that does not match tensorflow-tpu, a VM
created without TPUs) would otherwise surface only when a run starts, as a
long traceback. Prints one line; exits 1 if no TPU core is visible.
"""

import sys

import tensorflow as tf


def main() -> int:
    try:
        resolver = tf.distribute.cluster_resolver.TPUClusterResolver(tpu="local")
        tf.config.experimental_connect_to_cluster(resolver)
        tf.tpu.experimental.initialize_tpu_system(resolver)
    except (ValueError, RuntimeError, tf.errors.OpError) as e:
        reason = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        print(f"check_tpu: error: TensorFlow {tf.__version__} cannot reach a TPU on this "
              f"VM ({reason}); check that the VM has TPUs and that tpu_scripts/install.sh "
              "finished", file=sys.stderr)
        return 1
    cores = tf.config.list_logical_devices("TPU")
    if not cores:
        print(f"check_tpu: error: TensorFlow {tf.__version__} lists no TPU device; "
              "reinstall with tpu_scripts/install.sh", file=sys.stderr)
        return 1
    print(f"check_tpu: TensorFlow {tf.__version__} sees {len(cores)} TPU cores")
    return 0


if __name__ == "__main__":
    sys.exit(main())
