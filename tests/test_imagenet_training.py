"""One training step of ResNet-50 (under a 2-replica MirroredStrategy) and
Inception-v3 (under the default strategy) on a tiny TFDS-prepared imagenet2012, with
pruning wrappers. Each model takes one strategy: building and tracing these
networks is most of the suite's cost, and the step code is shared.

Reduced images (64 px ResNet, 75 px Inception: its minimum) and batch 4. The
step must optimize the objective computed by hand (main + 0.4 aux with
label smoothing for Inception) with per-replica BatchNorm, keep pruned
weights at zero. That a MirroredStrategy
step equals a one-device step is tested on CIFAR models (synchronized
BatchNorm); cross-replica BatchNorm itself in test_imagenet_models.
"""

import numpy as np
import pytest
import tensorflow as tf

from tests import fake_imagenet
from tests.conftest import parse_config
from tf_lottery import compose
from tf_lottery.data.pipeline import global_batch_at
from tf_lottery.pruning import wrappers
from tf_lottery.training import losses
from tf_lottery.training.trainer import Trainer


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory):
    root = tmp_path_factory.mktemp("imagenet")
    fake_imagenet.prepare(str(root / "data"), str(root / "manual"), num_shards=2)
    return str(root / "data")


def half_masks(trainer):
    """Prunes every other weight of each wrapped kernel (same on any strategy)."""
    return {name: (np.arange(w.numpy().size).reshape(w.shape) % 2).astype(np.float32)
            for name, (w, _) in wrappers.pruning_vars(trainer.model).items()}


def pruned_trainer(config, strategy, pipeline):
    trainer = Trainer(config, strategy, pipeline, wrappers.masked_training())
    wrappers.set_masks(trainer.model, half_masks(trainer))
    return trainer


@pytest.mark.slow
@pytest.mark.parametrize("model,size,optimizer,replicas", [
    ("resnet50", 64, ("--optimizer=momentum", "--learning_rate=0.1", "--weight_decay=1e-4"),
     2),
    ("inception_v3", 75, ("--optimizer=rmsprop", "--epsilon=1.0", "--learning_rate=0.01",
                          "--grad_clip_norm=2.0"), 1),
])
def test_one_pruned_step(data_dir, mirrored, model, size, optimizer, replicas):
    recipe = "inception" if model == "inception_v3" else "resnet"
    config = parse_config(
        f"--model={model}", "--dataset=imagenet2012", f"--data_dir={data_dir}",
        f"--augment={recipe}", f"--image_size={size}", "--batch_size=4",
        "--eval_batch_size=4", "--train_eval_examples=4", "--train_steps=1",
        "--label_smoothing=0.1", *optimizer)
    pipeline = compose.make_pipeline(config)
    images, labels = global_batch_at(pipeline, 0, 0, 0)
    for strategy in (tf.distribute.get_strategy() if replicas == 1 else mirrored,):
        trainer = pruned_trainer(config, strategy, pipeline)
        names = {n.split("/")[0] for n in wrappers.pruning_vars(trainer.model)}
        assert "logits" in names or {"predictions", "aux_2_conv", "aux_logits"} <= names
        start = trainer.model.get_weights()
        # The objective by hand on the same global batch: each replica's slice
        # is normalized with its own BatchNorm statistics; the forward passes
        # are undone (they move the moving statistics).
        expected = []
        for part in np.split(np.arange(4), strategy.num_replicas_in_sync):
            logits, aux = losses.split_outputs(trainer.model(images[part], training=True))
            assert (aux is not None) == (model == "inception_v3")
            expected.append(losses.per_example_loss(
                tf.constant(labels[part]), logits, aux, 0.1, 0.4).numpy())
        trainer.model.set_weights(start)
        dataset = strategy.distribute_datasets_from_function(
            pipeline.train_dataset_fn(0, 1, 0, 0))
        totals, _ = trainer._train_loop(iter(dataset), tf.constant(1, tf.int64))
        np.testing.assert_allclose(totals.numpy()[0], np.sum(expected), rtol=1e-5)
        assert int(trainer.step.numpy()) == 1
        assert not all(np.array_equal(a, b) for a, b in zip(
            start, trainer.model.get_weights(), strict=True))
        for weight, mask in wrappers.pruning_vars(trainer.model).values():
            assert not np.any(weight.numpy()[mask.numpy() == 0])
    # Evaluation reads the logits of the wrapped
    # model's outputs ([logits, aux] for Inception in both modes).
    metrics = trainer.evaluate("test")
    assert metrics["examples"] == 5 and np.isfinite(metrics["loss"])
