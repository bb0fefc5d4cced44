"""``python -m tests.mock_curve [flags]``: the curve CLI over TFDS mock data.

As ``tests.mock_main``: deterministic random examples, no prepared data.
"""

import tf_lottery  # noqa: F401  (Keras 2)

# isort: split

import os
from unittest import mock

import tensorflow_datasets as tfds
from absl import app

from tf_lottery import curve
from tf_lottery.data import cache, sources

if __name__ == "__main__":
    with tfds.testing.mock_data(num_examples=int(os.environ.get("MOCK_EXAMPLES", "300"))), \
            mock.patch.object(sources, "is_prepared", lambda builder: True), \
            mock.patch.object(cache, "load", lambda *args: None):
        app.run(curve.main)
