"""The report's figures as TensorBoard images, so TensorBoard shows the paper's pictures.

Each time a piece of an experiment finishes (a rewind point, an IMP level,
a baseline, a level's sparse instability, an onset probe), ``refresh_figures`` redraws the
figures ``python -m tf_lottery.report`` would draw for that model_dir
(``reporting.build``: the same code, so TensorBoard and the report show the
same pictures) and appends them to the experiment's summary run as images
``figures/<name>`` (``core.layout.figure_tag``). Their step is the number of
pieces finished, so the Images tab's slider steps through the experiment's
progress and shows the latest by default.
"""

from __future__ import annotations

from absl import logging

from tf_lottery import chief
from tf_lottery.core import layout, records, store
from tf_lottery.errors import ConfigError, CorruptFileError
from tf_lottery.summaries import tensorboard


def pieces_finished(built) -> int:
    """Finished measurements behind a report: rewind points, the independent
    networks' barrier, IMP levels, baselines and sparse barriers, and the
    rewind points an onset search probed."""
    count = 0
    for s in built.instability:
        count += sum(r.complete for r in s.rows) + (s.independent is not None)
    for section in built.imp:
        count += sum(1 + len(r.baselines) + (r.barrier is not None) for r in section.rows)
    for experiment in built.experiments:  # an onset search's results.json names its probes
        count += _onset_probes(experiment.path)
    return count


def _onset_probes(path: str) -> int:
    """Probes an onset search's results.json (running or complete) records;
    a damaged one is the report's to name, and counts none."""
    try:
        result = store.read(layout.results_file(path), records.ExperimentResults, path)
    except (CorruptFileError, ValueError, KeyError, TypeError):
        return 0
    return len(result.probes) if isinstance(result, records.OnsetResults) else 0


def refresh_figures(model_dir: str) -> int | None:
    """Redraws the report's figures of ``model_dir`` into its summary run as
    images; returns their step (None when there is nothing to draw yet).

    A figure that cannot be drawn is logged and skipped rather than raised:
    a picture must never stop the experiment it describes (its numbers are in
    ``results.json`` and ``python -m tf_lottery.report`` redraws it).
    """
    if not chief.is_chief():  # the other workers write no TensorBoard events
        return None
    # Imported when a figure is drawn: matplotlib stays out of a launch's start-up.
    from tf_lottery.reporting import build, figures

    try:
        built = build.build(model_dir)
        drawn = {name: figures.png(fig) for name, fig in built.figures.items()}
    except (ConfigError, CorruptFileError, ValueError, ArithmeticError) as e:
        logging.warning("TensorBoard figures of %s not drawn: %s", model_dir, e)
        return None
    if not drawn:
        return None
    step = pieces_finished(built)
    for name, png in drawn.items():
        tensorboard.write_image(layout.summary_dir(model_dir), layout.figure_tag(name), png,
                                step)
    return step
