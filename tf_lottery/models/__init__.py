"""Network builders (``lenet``, ``resnet_cifar``, ``vgg_cifar``, ``resnet_imagenet``,
``inception``), looked up by name through ``registry``, which imports them:
no module registers itself on import."""
