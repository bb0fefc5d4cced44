"""Model registry: network names -> tf_keras builders that return logits."""

from tf_lottery.models import (
    inception,  # noqa: F401  (inception_v3)
    lenet,  # noqa: F401  (registers lenet_300_100)
    resnet_cifar,  # noqa: F401  (resnet20 ... resnet110)
    resnet_imagenet,  # noqa: F401  (resnet50)
    vgg_cifar,  # noqa: F401  (vgg11 ... vgg19)
)
