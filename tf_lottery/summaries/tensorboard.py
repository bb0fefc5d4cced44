"""TensorBoard plumbing: custom-scalars layouts, hparams experiments and sessions,
scalars and images.

Everything goes through TensorBoard's own plugin APIs (``custom_scalar`` and
``hparams``). What the paper's dashboards contain is ``dashboards.py``'s job.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence

import tensorflow as tf
from tensorboard.plugins.custom_scalar import layout_pb2
from tensorboard.plugins.custom_scalar import summary as custom_scalar_summary
from tensorboard.plugins.hparams import api as hparams_api
from tensorboard.plugins.hparams import plugin_data_pb2

from tf_lottery import chief
from tf_lottery.config import ExperimentConfig

# A layout: category title -> [(chart title, [tag regexes drawn together])].
Layout = Mapping[str, Sequence[tuple[str, Sequence[str]]]]
HParamValue = bool | int | float | str


def write_layout(writer: tf.summary.SummaryWriter, layout: Layout) -> None:
    """Writes a custom-scalars layout: one multiline chart per entry.

    Each chart overlays every tag (in every run under the logdir) matching
    one of its regular expressions. TensorBoard merges the layouts of all
    runs under a logdir, category by category, so every experiment writes
    only its own.
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


def write_hparams_config(writer: tf.summary.SummaryWriter, hparams: Sequence[str],
                         metrics: Mapping[str, str], shown: Iterable[str] = ()) -> None:
    """Declares the hparams dashboard's columns: ``hparams`` (names, in this
    order) and ``metrics`` (scalar tag -> display name), read in each
    session's run dir.

    The dashboard lists first, and shows by default, the hparams it is told
    *differ* between sessions (then the others, each group by name): those
    are ``shown`` (e.g. the session's rewind step, level, density, branch),
    while the recipe's fields, the same in every row of one experiment, stay
    one click away.
    """
    shown = set(shown)
    pb = hparams_api.hparams_config_pb(
        hparams=[hparams_api.HParam(name) for name in dict.fromkeys(hparams)],
        metrics=[hparams_api.Metric(tag, display_name=name) for tag, name in metrics.items()])
    value = pb.value[0]
    data = plugin_data_pb2.HParamsPluginData.FromString(value.metadata.plugin_data.content)
    for info in data.experiment.hparam_infos:
        info.differs = info.name in shown
    value.metadata.plugin_data.content = data.SerializeToString()
    with writer.as_default():
        tf.summary.experimental.write_raw_pb(pb.SerializeToString(), step=0)
    writer.flush()


def write_image(run_dir: str, tag: str, png: bytes, step: int) -> None:
    """Appends a PNG (a report figure) to ``run_dir`` as TensorBoard image ``tag``.

    The Images tab shows the latest step; a step written again by a resumed
    experiment replaces the one before (TensorBoard drops the older events
    of a step that comes again).
    """
    image = tf.io.decode_png(png, channels=4)
    writer = chief.summary_writer(run_dir)
    with writer.as_default():
        tf.summary.image(tag, image[tf.newaxis], step=step)
    writer.close()


def write_scalars(run_dir: str, points: Mapping[str, Iterable[tuple[int, float]]]) -> None:
    """Appends scalars (tag -> (step, value) pairs) to ``run_dir``."""
    writer = chief.summary_writer(run_dir)
    with writer.as_default():
        for tag, values in points.items():
            for step, value in values:
                tf.summary.scalar(tag, value, step=step)
    writer.close()


def write_session(run_dir: str, hparams: Mapping[str, HParamValue], group: str,
                  metrics: Mapping[str, float], step: int) -> None:
    """Makes ``run_dir`` one row of the hparams dashboard.

    Sessions that share ``group`` (e.g. replicates of one measurement) form
    one session group, which the dashboard can aggregate. ``metrics`` (tag ->
    value) are written as scalars at ``step`` in ``run_dir``; a later call
    may add metrics to the same session with empty ``hparams``.
    """
    writer = chief.summary_writer(run_dir)
    with writer.as_default():
        if hparams:
            hparams_api.hparams(dict(hparams), trial_id=group)
        for tag, value in metrics.items():
            tf.summary.scalar(tag, value, step=step)
    writer.close()
