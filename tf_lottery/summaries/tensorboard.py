"""Run-level TensorBoard metadata: custom-scalars layouts and hparams.

Both go through TensorBoard's own plugin APIs (``custom_scalar`` and
``hparams``), written into an experiment's ``model_dir`` so that
``tensorboard --logdir=<model_dir>`` shows the grouped charts and lets runs
be compared by recipe.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import tensorflow as tf
from tensorboard.plugins.custom_scalar import layout_pb2
from tensorboard.plugins.custom_scalar import summary as custom_scalar_summary
from tensorboard.plugins.hparams import api as hparams_api

from tf_lottery.config import ExperimentConfig

# A layout: category title -> [(chart title, [tag regexes drawn together])].
Layout = Mapping[str, Sequence[tuple[str, Sequence[str]]]]
HParamValue = bool | int | float | str


def write_layout(writer: tf.summary.SummaryWriter, layout: Layout) -> None:
    """Writes a custom-scalars layout: one multiline chart per entry.

    Each chart overlays every tag (in every run under the logdir) matching
    one of its regular expressions.
    """
    categories = [
        layout_pb2.Category(title=title, chart=[
            layout_pb2.Chart(title=chart, multiline=layout_pb2.MultilineChartContent(
                tag=list(tags)))
            for chart, tags in charts])
        for title, charts in layout.items()]
    with writer.as_default():
        tf.summary.experimental.write_raw_pb(
            custom_scalar_summary.pb(layout_pb2.Layout(category=categories)).SerializeToString(),
            step=0)
    writer.flush()


def flat_hparams(config: ExperimentConfig) -> dict[str, HParamValue]:
    """The recipe as dotted names -> scalars (lists joined by commas)."""
    out: dict[str, HParamValue] = {}

    def visit(prefix: str, value) -> None:
        if isinstance(value, Mapping):
            for key, inner in value.items():
                visit(f"{prefix}.{key}" if prefix else key, inner)
        elif isinstance(value, list | tuple):
            out[prefix] = ",".join(str(v) for v in value)
        elif isinstance(value, bool | int | float | str):
            out[prefix] = value
        elif value is not None:
            out[prefix] = str(value)

    visit("", config.recipe_dict())
    return out


def write_hparams(writer: tf.summary.SummaryWriter, config: ExperimentConfig,
                  metrics: Mapping[str, str]) -> None:
    """Records the run's recipe as hparams, with ``metrics`` (tag -> display
    name) as the values the hparams dashboard tabulates for the run."""
    values = flat_hparams(config)
    with writer.as_default():
        hparams_api.hparams_config(
            hparams=[hparams_api.HParam(name) for name in sorted(values)],
            metrics=[hparams_api.Metric(tag, display_name=name)
                     for tag, name in metrics.items()])
        hparams_api.hparams(values, trial_id=config.recipe_hash())
    writer.flush()
