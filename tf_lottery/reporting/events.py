"""Scalars from TensorBoard event files, read with TensorBoard's own reader.

The report's fallback when a JSON summary is missing: a run stopped between
writing its TensorBoard scalars and its summary, or a model_dir of which only
the event files were copied. Paths may be local or ``gs://``.
"""

from __future__ import annotations

import tensorflow as tf
from tensorboard.backend.event_processing import event_accumulator


def read_scalars(run_dir: str) -> dict[str, dict[int, float]]:
    """tag -> {step: value} of the scalar summaries in ``run_dir``'s own event
    files (not its subdirectories); empty when there are none.

    A step written twice (a resumed run repeating itself) keeps its last value.
    """
    if not tf.io.gfile.isdir(run_dir):
        return {}
    acc = event_accumulator.EventAccumulator(
        run_dir, size_guidance={event_accumulator.TENSORS: 0,
                                event_accumulator.SCALARS: 0})
    acc.Reload()
    tags = acc.Tags()
    out: dict[str, dict[int, float]] = {}
    for tag in tags.get(event_accumulator.TENSORS, []):
        if acc.SummaryMetadata(tag).plugin_data.plugin_name == "scalars":
            out[tag] = {e.step: float(tf.make_ndarray(e.tensor_proto))
                        for e in acc.Tensors(tag)}
    for tag in tags.get(event_accumulator.SCALARS, []):  # TF1-style summaries
        out.setdefault(tag, {e.step: float(e.value) for e in acc.Scalars(tag)})
    return out
