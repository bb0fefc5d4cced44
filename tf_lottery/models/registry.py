"""Maps model names to builders; the only place experiments look models up.

A builder takes ``(num_classes, image_shape)`` and returns a
``tf_keras.Model`` mapping float images to logits. Builders draw their
initial weights from TensorFlow's global seed, which ``build_model`` sets from
``init_seed`` so that W_0 is a pure function of that seed.
"""

from __future__ import annotations

from collections.abc import Callable

import tf_keras

Builder = Callable[[int, tuple[int, int, int]], tf_keras.Model]
_MODELS: dict[str, Builder] = {}


def register(name: str) -> Callable[[Builder], Builder]:
    """Decorator: ``@register("resnet20")`` adds a builder under ``name``."""

    def wrap(fn: Builder) -> Builder:
        if name in _MODELS:
            raise ValueError(f"model {name!r} registered twice")
        _MODELS[name] = fn
        return fn

    return wrap


def names() -> list[str]:
    import tf_lottery.models  # noqa: F401  (populate the registry)

    return sorted(_MODELS)


def build_model(
    name: str, num_classes: int, image_shape: tuple[int, int, int], init_seed: int
) -> tf_keras.Model:
    """Builds ``name`` with weights drawn deterministically from ``init_seed``.

    Call inside ``strategy.scope()`` so the variables are distributed.
    """
    import tf_lottery.models  # noqa: F401

    if name not in _MODELS:
        raise KeyError(f"unknown model {name!r} (known: {', '.join(names())})")
    tf_keras.utils.set_random_seed(init_seed)
    height, width, channels = image_shape  # a tuple, also when given as a list
    model = _MODELS[name](num_classes, (height, width, channels))
    return model


def count_params(model: tf_keras.Model) -> int:
    """Number of scalar weights (trainable and not, e.g. BatchNorm statistics)."""
    return int(sum(int(w.shape.num_elements()) for w in model.weights))
