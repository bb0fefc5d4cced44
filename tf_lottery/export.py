"""``python -m tf_lottery.export --model_dir=D --out=PATH``: a ticket as a plain Keras model.

Writes one network of a run -- an IMP level's subnetwork (``--level``,
default: the sparsest level finished) or a training run's network -- at its
final weights W_T or its rewind point W_k (``--which``), so that it loads
with ``tf_keras.models.load_model`` (``--format=keras``, a ``.keras`` file)
or also ``tf.saved_model.load`` (``--format=saved_model``, a folder) in a
process that never imports tf_lottery.

Which weights (``--weights``): the exported ticket is the network the run
measured. ``evaluated`` (the default for ``--which=final``) is the network
every metric in results.json was computed on (``Trainer.evaluated_weights``):
with ``--ema_decay`` the moving average of the weights, BatchNorm statistics
included, else the trained weights themselves, so a run without EMA exports
the same network under either choice. ``trained`` is the raw trained weights
(for a run with EMA, the network the optimizer left, whose accuracy no record
reports). ``--which=rewind`` exports the trained weights: W_k is the point a
level or child restarts training from, and training restarts from its
trained weights (an average kept at k is carried along like optimizer state,
or reset to those weights at a level's masked start). An "evaluated" W_k
would be an average of the steps before k that no run trains from, so
``--weights=evaluated --which=rewind`` is refused in one line rather than
quietly exporting something other than what was asked for.

How it is written:

- the network is rebuilt as its run built it, its weights read from the
  checkpoint, and TFMOT's ``strip_pruning`` removes the pruning wrappers;
- pruned weights are exactly 0 (they are in every checkpoint; multiplying by
  the mask once more makes it a property of the file, whatever wrote it);
- the mask is written beside it as ``<out>.mask.npz`` (``layout.export_mask_file``):
  ``"<layer>/kernel"`` -> 0/1 uint8 array (``pruning.masks.save``), all ones
  for a dense network.

The weights are float32 whatever ``--precision`` the run trained with. The
mask file holds masks only (``pruning.masks.load`` reads it), so which
weights were exported is said by ``Exported.weights`` / ``Exported.averaged``
and the command's output line, not written to disk.
"""

from __future__ import annotations

import tf_lottery  # noqa: F401  (selects Keras 2 before TensorFlow loads)

# isort: split

import dataclasses
import os
import sys

import numpy as np
import tensorflow as tf
import tf_keras
from absl import app, flags

from tf_lottery import experiments, files, rundir
from tf_lottery.config import ExperimentConfig
from tf_lottery.core import layout
from tf_lottery.errors import ConfigError
from tf_lottery.pruning import masks as masks_lib
from tf_lottery.training import checkpoints

WHICH = ("final", "rewind")
WEIGHTS = ("evaluated", "trained")
FORMATS = ("keras", "saved_model")
KERAS_SUFFIXES = (".keras", ".h5")


@dataclasses.dataclass(frozen=True)
class Exported:
    """What ``export_ticket`` wrote.

    Attributes:
      path: the network (a ``.keras`` file or a SavedModel folder).
      mask_path: its mask, ``"<layer>/kernel"`` -> 0/1 array.
      format: 'keras' or 'saved_model'.
      checkpoint: the checkpoint prefix the weights came from.
      density: surviving fraction of the prunable weights.
      weights: 'evaluated' (the weights the run's metrics were computed on)
        or 'trained'.
      averaged: whether the network holds the ``--ema_decay`` moving average
        (``evaluated`` weights of a run with EMA) rather than trained weights.
    """

    path: str
    mask_path: str
    format: str
    checkpoint: str
    density: float
    weights: str = "trained"
    averaged: bool = False

    def describe_weights(self) -> str:
        """The exported weights in words, for the command's output line."""
        if self.averaged:
            return "evaluated weights: the --ema_decay moving average"
        if self.weights == "evaluated":
            return "evaluated weights: the trained ones, the run has no --ema_decay"
        return "trained weights"


def _format(out: str, format: str | None) -> str:
    keras_suffix = out.endswith(KERAS_SUFFIXES)
    fmt = format or ("keras" if keras_suffix else "saved_model")
    if fmt not in FORMATS:
        raise ConfigError(f"--format={fmt} is not known (known: {', '.join(FORMATS)})")
    if fmt == "keras" and not keras_suffix:
        raise ConfigError(f"--out={out} must end with .keras for --format=keras")
    if fmt == "saved_model" and keras_suffix:
        raise ConfigError(f"--out={out} is a file name; --format=saved_model writes a folder")
    return fmt


def resolve_weights(weights: str | None, which: str) -> str:
    """``--weights`` given ``--which``: by default ``evaluated`` for the final
    network and ``trained`` for the rewind point (see the module doc).

    Raises:
      ConfigError: an unknown choice, or ``evaluated`` asked for W_k.
    """
    if weights is None:
        return "trained" if which == "rewind" else "evaluated"
    if weights not in WEIGHTS:
        raise ConfigError(f"--weights={weights} is not known (known: {', '.join(WEIGHTS)})")
    if weights == "evaluated" and which == "rewind":
        raise ConfigError("--weights=evaluated applies to --which=final only: the rewind "
                          "point W_k is restarted from with its trained weights "
                          "(use --weights=trained or leave --weights out)")
    return weights


def checkpoint_of(config: ExperimentConfig, model_dir: str, level: int | None, which: str,
                  rewind_step: int | None) -> str:
    """The checkpoint prefix holding the network to export.

    Raises:
      ConfigError: no such network, or it is not written yet.
    """
    if which not in WHICH:
        raise ConfigError(f"--which={which} is not known (known: {', '.join(WHICH)})")
    networks = experiments.get(config.experiment).networks
    run_dir = networks.run_dir(config, model_dir, level)
    if which == "final":
        directory = layout.final_dir(run_dir)
    else:
        if rewind_step is None:
            steps = networks.rewind_steps(config)
            if len(steps) != 1:
                raise ConfigError(f"--which=rewind needs --rewind_step: the run kept W_k at "
                                  f"k = {', '.join(map(str, steps))}")
            rewind_step = steps[0]
        directory = layout.rewind_dir(run_dir, rewind_step)
    if not checkpoints.is_committed(directory):
        raise ConfigError(f"{directory} holds no finished checkpoint (the run has not "
                          "written it yet)")
    return layout.permanent_checkpoint(directory)


def restored_model(config: ExperimentConfig, prefix: str, evaluated: bool = False
                   ) -> tuple[tf_keras.Model, dict]:
    """The network as its run built it (wrapped for IMP), with ``prefix``'s
    weights, and its masks (``"<layer>/kernel"`` -> 0/1 array).

    With ``evaluated`` the model holds the weights the run's evaluation
    reports for ``prefix`` (``Trainer.restore_evaluated_weights``): the
    moving averages saved beside the weights when the run used
    ``--ema_decay``, else the trained weights.
    """
    from tf_lottery.models import registry as model_registry
    from tf_lottery.pruning import wrappers
    from tf_lottery.training import ema

    spec = config.data.spec()
    model = model_registry.build_model(config.model.name, spec.num_classes,
                                       spec.image_shape, config.train.init_seed)
    masked = experiments.get(config.experiment).networks.masked
    if masked:
        model = wrappers.wrap_model(model, config.pruning.exclude)
    parts: dict = {"model": model}
    average = None
    if evaluated and config.optimizer.ema_decay:
        # Built over model.weights as the Trainer builds it, so the saved
        # averages map onto this model's variables one to one.
        average = parts["ema"] = ema.WeightAverage(model.weights, config.optimizer.ema_decay)
    status = tf.train.Checkpoint(**parts).read(prefix).expect_partial()
    try:
        status.assert_existing_objects_matched()
    except AssertionError as e:
        raise ConfigError(f"{prefix} does not hold the weights of --model="
                          f"{config.model.name}: {str(e).splitlines()[0]}") from None
    if average is not None:
        for v, value in zip(average.sources, average.values(), strict=True):
            v.assign(value)
    if masked:
        masks = wrappers.get_masks(model)
    else:
        masks = {name: np.ones(w.shape, np.float32) for name, w in dense_kernels(model).items()}
    return model, masks


def dense_kernels(model: tf_keras.Model) -> dict[str, tf.Variable]:
    """``"<layer>/<weight>"`` -> variable of every kernel IMP would prune."""
    from tf_lottery.pruning import wrappers

    out = {}
    for layer in wrappers.all_layers(model):
        if type(layer) in wrappers.PRUNABLE_TYPES:
            kernel = (layer.depthwise_kernel
                      if isinstance(layer, tf_keras.layers.DepthwiseConv2D) else layer.kernel)
            out[f"{layer.name}/{kernel.name.split('/')[-1].split(':')[0]}"] = kernel
    return out


def export_ticket(model_dir: str, out: str, *, level: int | None = None,
                  which: str = "final", format: str | None = None,
                  rewind_step: int | None = None, weights: str | None = None) -> Exported:
    """Writes one network of the run in ``model_dir`` to ``out`` (see the module doc).

    ``weights``: 'evaluated' (default for ``which='final'``: the network the
    run's metrics were computed on, its ``--ema_decay`` average if it had
    one) or 'trained' (the default, and only choice, for ``which='rewind'``).

    Raises:
      ConfigError: one line naming the flag or file at fault.
    """
    import tensorflow_model_optimization as tfmot

    fmt = _format(out, format)
    weights = resolve_weights(weights, which)
    config = rundir.recorded_config(model_dir)
    prefix = checkpoint_of(config, model_dir, level, which, rewind_step)
    evaluated = weights == "evaluated"
    model, masks = restored_model(config, prefix, evaluated=evaluated)
    plain = tfmot.sparsity.keras.strip_pruning(model)
    for name, kernel in dense_kernels(plain).items():
        # Exactly 0 where pruned: the checkpoints (and the average, reset at
        # a level's masked start) already hold 0 there; this makes it a
        # property of the file, whatever wrote the checkpoint.
        kernel.assign(kernel * masks[name])
    parent = os.path.dirname(os.path.abspath(out)) if "://" not in out else os.path.dirname(out)
    files.ensure_writable_dir(parent)
    if fmt == "keras":
        plain.save(out)
    else:
        plain.save(out, save_format="tf")
    mask_path = layout.export_mask_file(out)
    masks_lib.save(mask_path, masks)  # as a level's own mask.npz: uint8 0/1
    kept = sum(float(m.sum()) for m in masks.values())
    total = sum(m.size for m in masks.values())
    return Exported(out, mask_path, fmt, prefix, kept / total if total else 1.0, weights,
                    averaged=evaluated and bool(config.optimizer.ema_decay))


def define_flags() -> None:
    """The command line's flags (on absl's global FLAGS, for ``python -m``
    only: a process that also runs experiments has its own --model_dir)."""
    flags.DEFINE_string("model_dir", None, "Export: the run directory.")
    flags.DEFINE_integer("level", None, "Export: IMP level (default: the sparsest finished).")
    flags.DEFINE_enum("which", "final", WHICH, "Export: the final weights W_T or the rewind "
                      "point W_k the level was rewound to.")
    flags.DEFINE_enum("weights", None, WEIGHTS, "Export: 'evaluated' (default for "
                      "--which=final), the weights the run's metrics were computed on (the "
                      "--ema_decay average if the run had one), or 'trained', the raw "
                      "trained weights (the only choice for --which=rewind).")
    flags.DEFINE_integer("rewind_step", None, "Export: k of --which=rewind where the run kept "
                         "several W_k.")
    flags.DEFINE_enum("format", None, FORMATS, "Export: 'keras' (a .keras file) or "
                      "'saved_model' (a folder); default: from --out's suffix.")
    flags.DEFINE_string("out", None, "Export: where to write the network; its mask goes "
                        "beside it as <out>.mask.npz.")


def main(argv: list[str]) -> int:
    FLAGS = flags.FLAGS
    if len(argv) > 1:
        print(f"tf_lottery.export: error: unexpected argument(s) {' '.join(argv[1:])!r}",
              file=sys.stderr)
        return 2
    try:
        for name in ("model_dir", "out"):
            if not FLAGS[name].value:
                raise ConfigError(f"--{name} is required")
        done = export_ticket(FLAGS.model_dir, FLAGS.out, level=FLAGS.level,
                             which=FLAGS.which, format=FLAGS.format,
                             rewind_step=FLAGS.rewind_step, weights=FLAGS.weights)
    except ConfigError as e:
        print(f"tf_lottery.export: error: {e}", file=sys.stderr)
        return 2
    print(f"tf_lottery.export: wrote {done.path} ({done.format}, density "
          f"{100 * done.density:.2f}%, {done.describe_weights()}) from {done.checkpoint}; "
          f"mask in {done.mask_path}")
    return 0


if __name__ == "__main__":
    define_flags()
    app.run(main)
