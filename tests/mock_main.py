"""``python -m tests.mock_main [flags]``: the real CLI over TFDS mock data.

Lets tests run ``tf_lottery.main`` end to end in a subprocess (needed for
SIGKILL tests) with no prepared data: TFDS's ``mock_data`` yields
deterministic random examples, and the data-prepared check is bypassed, as
is the array cache (a --data_dir's cached real arrays must not stand in for
mock data). With --executor=ray the Ray workers are tests.mock_worker's,
which apply the same patches in their own processes.
MOCK_EXAMPLES sets the number of examples per split (default 300);
MOCK_WORKER_WAIT_S, how long a multi-worker launch waits for its peers.
"""

import tf_lottery  # noqa: F401  (Keras 2)

# isort: split

import os
from unittest import mock

import tensorflow_datasets as tfds
from absl import app

from tf_lottery import main as main_lib
from tf_lottery.data import cache, sources
from tf_lottery.tasks import ray_executor  # imports no Ray until it runs
from tf_lottery.training import strategy

if __name__ == "__main__":
    if "MOCK_WORKER_WAIT_S" in os.environ:
        strategy.WORKER_WAIT_S = float(os.environ["MOCK_WORKER_WAIT_S"])
    with tfds.testing.mock_data(num_examples=int(os.environ.get("MOCK_EXAMPLES", "300"))), \
            mock.patch.object(sources, "is_prepared", lambda builder: True), \
            mock.patch.object(cache, "load", lambda *args: None), \
            mock.patch.object(ray_executor, "WORKER", "tests.mock_worker:MockDataWorker"):
        app.run(main_lib.main)
