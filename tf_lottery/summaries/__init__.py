"""TensorBoard writers shared by the experiments: layouts and hparams."""
