"""Cross-replica (synchronized) BatchNorm for any model (``--cross_replica_bn``).

By default each replica normalizes with the statistics of its own slice of
the global batch, so the effective BatchNorm batch shrinks as replicas are
added (TPU pods: 1024 / 256 cores = 4 images per statistic). Synchronized
BatchNorm all-reduces the per-replica moments, so statistics come from the
whole global batch on any topology, at the price of one small collective per
BatchNorm layer and step.

Models built by others (keras.applications' InceptionV3) create their
BatchNorm layers themselves, so the switch is applied after building: Keras'
``BatchNormalization`` reads ``synchronized`` (and ``fused``, which
synchronized statistics cannot use) when it is called, and both only
change how the batch moments are computed, not the layer's variables.
"""

from __future__ import annotations

import tf_keras


def synchronize(model: tf_keras.Model) -> int:
    """Makes every BatchNormalization layer of ``model`` cross-replica.

    Call before the model is traced. Returns the number of layers changed.
    """
    changed = 0
    for layer in model.submodules:
        if isinstance(layer, tf_keras.layers.BatchNormalization) and not layer.synchronized:
            layer.synchronized = True
            layer.fused = False
            changed += 1
    return changed
