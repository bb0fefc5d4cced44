"""Curves and centroids of a BatchNorm network with a residual block (issue 26).

The tiny CIFAR ResNet of tests/test_tasks.py (conv-BN stem, one residual
block, global pooling) runs through the instability analysis with
``--curve --centroid``: the curve fit trains the bend of BatchNorm's scale
and offset with the rest, each curve point and each centroid has its
statistics re-estimated, and weight matching aligns the children through
the residual add.
"""

import pytest
import tensorflow as tf

from tests.conftest import parse_config, tiny_data, tiny_pipeline
from tests.test_tasks import TINY_RESNET
from tf_lottery.core import layout, records, store
from tf_lottery.experiments import instability


@pytest.mark.slow
def test_curves_and_centroids_of_a_residual_batchnorm_network(tmp_path):
    args = ("--experiment=instability", "--dataset=cifar10", "--augment=crop_flip",
            f"--model={TINY_RESNET}", "--train_steps=6", "--batch_size=8",
            "--eval_batch_size=16", "--train_eval_examples=16", "--steps_per_loop=3",
            "--checkpoint_every=3", "--log_every=3", "--eval_every=6", "--rewind_steps=3",
            "--children=3", "--interpolation_points=3", "--bn_recompute_batches=2",
            "--curve", "--curve_steps=4", "--curve_checkpoint_every=2", "--centroid")
    c = parse_config(*args, model_dir=str(tmp_path))
    data = tiny_data(num_train=48, num_test=16, shape=(32, 32, 3))
    results = instability.instability(c, tf.distribute.get_strategy(), tiny_pipeline(c, data))
    root = str(tmp_path)
    point = layout.rewind_point_dir(root, 0, 3)
    for i, j in ((0, 1), (0, 2), (1, 2)):
        curve = store.read(layout.curve_file(point, i, j), records.CurveRecord, root)
        # BatchNorm statistics re-estimated at every curve point, whatever the
        # line's --bn_mode (here the default, interpolate).
        assert curve.bn_mode == "recompute" and curve.steps == 4 and curve.bend
        assert len(curve.error["test"]) == 3
    found = store.read(layout.centroid_file(point), records.CentroidRecord, root)
    assert found.bn_recomputed and found.aligned is not None
    assert len(found.matching) == 2  # children 1 and 2 matched to child 0
    (summary,) = results.centroid
    assert summary.gap["test"].mean == found.raw.gap["test"]
    (rewind,) = results.rewind_steps
    assert rewind.curve_barrier is not None
