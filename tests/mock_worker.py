"""``tf_lottery.tasks.worker.Worker`` over TFDS mock data, for Ray worker processes.

tests/mock_main.py patches data loading in the process it runs; a Ray
executor's tasks run in other processes, so the executor is given this
Worker (``worker="tests.mock_worker:MockDataWorker"``), which applies the
same patches in its own process for as long as it lives: the same mock
examples (MOCK_EXAMPLES per split, default 300), no data-prepared check, no
array cache.
"""

import tf_lottery  # noqa: F401  (Keras 2)

# isort: split

import contextlib
import os
from unittest import mock

import tensorflow_datasets as tfds

from tf_lottery import experiments
from tf_lottery.data import cache, sources
from tf_lottery.tasks.worker import Worker


class MockDataWorker(Worker):
    def __init__(self, config, *args, **kwargs):
        self._mocks = contextlib.ExitStack()  # open for the life of the process
        self._mocks.enter_context(tfds.testing.mock_data(
            num_examples=int(os.environ.get("MOCK_EXAMPLES", "300"))))
        self._mocks.enter_context(mock.patch.object(sources, "is_prepared",
                                                    lambda builder: True))
        self._mocks.enter_context(mock.patch.object(cache, "load", lambda *args: None))
        super().__init__(experiments.get(config.experiment), config, *args, **kwargs)
