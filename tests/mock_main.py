"""``python -m tests.mock_main [flags]``: the real CLI over TFDS mock data.

Lets tests run ``tf_lottery.main`` end to end in a subprocess (needed for
SIGKILL tests) with no prepared data: TFDS's ``mock_data`` yields
deterministic random examples, and the data-prepared check is bypassed.
MOCK_EXAMPLES sets the number of examples per split (default 300).
"""

import tf_lottery  # noqa: F401  (Keras 2)

# isort: split

import os
from unittest import mock

import tensorflow_datasets as tfds
from absl import app

from tf_lottery import main as main_lib
from tf_lottery.data import sources

if __name__ == "__main__":
    with tfds.testing.mock_data(num_examples=int(os.environ.get("MOCK_EXAMPLES", "300"))), \
            mock.patch.object(sources, "is_prepared", lambda builder: True):
        app.run(main_lib.main)
