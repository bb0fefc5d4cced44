"""Model registry: network names -> tf_keras builders that return logits."""

from tf_lottery.models import (
    lenet,  # noqa: F401  (registers lenet_300_100)
    resnet_cifar,  # noqa: F401  (resnet20 ... resnet110)
    vgg_cifar,  # noqa: F401  (vgg11 ... vgg19)
)
