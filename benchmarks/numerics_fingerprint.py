"""Which bits this machine's CPU kernels compute, as JSON: compare two machines.

    python benchmarks/numerics_fingerprint.py [--threads=1,2,8]

Prints the CPU numerics in effect (``tf_lottery.numerics``: setting, whether
TensorFlow's oneDNN ops are on, the kernels' instruction-set class, the CPU's)
and, for each intra-op thread count, a SHA-256 prefix of each product whose
summation order a kernel may choose: LeNet's first layer (60x784 by 784x300), a
512x512 and a 1000x1000 MatMul, a 3x3 convolution, reductions, exp and softmax
cross-entropy, on fixed random inputs. Two machines (or settings) whose
hashes agree compute those kernels to the same bits; docs/numerics.md says
what was found with it. Each thread count runs in its own process, since
TensorFlow fixes its thread pool when it starts.
"""

from __future__ import annotations

import tf_lottery  # noqa: F401  (the numerics setting, before TensorFlow loads)

# isort: split

import argparse
import hashlib
import json
import subprocess
import sys


def kernels(threads: int) -> dict[str, object]:
    """This process's hashes at ``threads`` intra-op threads (set before any op)."""
    # Loaded here: the parent process only starts one child per thread count.
    import numpy as np
    import tensorflow as tf

    from tf_lottery import numerics

    tf.config.threading.set_intra_op_parallelism_threads(threads)
    tf.config.experimental.enable_op_determinism()
    rng = np.random.default_rng(0)

    def const(*shape: int) -> tf.Tensor:
        return tf.constant(rng.standard_normal(shape).astype(np.float32))

    def digest(t: tf.Tensor) -> str:
        return hashlib.sha256(t.numpy().tobytes()).hexdigest()[:16]

    x, w, a, b = const(60, 784), const(784, 300), const(1000, 1000), const(512, 512)
    images, kernel = const(32, 32, 32, 16), const(3, 3, 16, 16)
    logits = tf.matmul(x, w)[:, :10]
    return {
        "numerics": numerics.current().to_json(),
        "matmul_lenet": digest(tf.matmul(x, w)),
        "matmul_512": digest(tf.matmul(b, b)),
        "matmul_1000": digest(tf.matmul(a, a)),
        "conv2d_3x3": digest(tf.nn.conv2d(images, kernel, 1, "SAME")),
        "sum_axis0": digest(tf.reduce_sum(a, axis=0)),
        "sum_all": digest(tf.reduce_sum(a)),
        "exp": digest(tf.exp(x)),
        "softmax_xent": digest(tf.nn.sparse_softmax_cross_entropy_with_logits(
            tf.zeros(60, tf.int32), logits)),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", default="0",
                        help="comma-separated intra-op thread counts (0: TensorFlow's default)")
    parser.add_argument("--one", type=int, default=None, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.one is not None:
        print(json.dumps(kernels(args.one)))
        return
    out = {}
    for threads in (int(t) for t in args.threads.split(",")):
        done = subprocess.run([sys.executable, __file__, f"--one={threads}"],
                              capture_output=True, text=True, check=True)
        out[str(threads)] = json.loads(done.stdout.strip().splitlines()[-1])
    print(json.dumps(out, indent=2, sort_keys=True))


if __name__ == "__main__":
    main()
