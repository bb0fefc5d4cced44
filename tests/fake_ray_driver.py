"""``python -m tests.fake_ray_driver MODEL_DIR``: the Ray executor over fake workers.

A driver process of its own, so that a test can SIGKILL it and relaunch it
(tests/test_ray_executor.py). The graph is the one test_ray_executor uses.
"""

import sys

from absl import logging

from tests import fake_worker
from tests.fake_worker import fake_config
from tf_lottery.tasks import ray_executor

if __name__ == "__main__":
    logging.set_verbosity(logging.INFO)
    model_dir = sys.argv[1]
    ray_executor.execute(fake_config(model_dir), workers=2, planner=fake_worker.diamond,
                         worker="tests.fake_worker:FakeWorker", num_cpus=2)
