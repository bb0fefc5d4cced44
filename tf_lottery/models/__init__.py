"""Model registry: network names -> tf_keras builders that return logits."""

from tf_lottery.models import lenet  # noqa: F401  (registers lenet_300_100)
