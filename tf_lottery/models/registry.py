"""Maps model names to builders; the only place experiments look models up.

A builder takes ``(num_classes, image_shape)`` and returns a
``tf_keras.Model`` mapping float images to logits. Builders draw their
initial weights from TensorFlow's global seed, which ``build_model`` sets from
``init_seed`` so that W_0 is a pure function of that seed.

A model is named either by its registry name (``resnet20``) or by the import
path of a user's builder, ``package.module:function`` (``--model=``); a
function handed to the Python API is known by its import path too
(``given``). A user's network is identified by that path plus ``architecture``,
a hash of the layer configs it builds, so that a run resumed after its builder
was edited is refused (``rundir.claim`` names the layers that changed).
"""

from __future__ import annotations

import dataclasses
import hashlib
import importlib
import json
from collections.abc import Callable
from typing import Any

import tensorflow as tf
import tf_keras

from tf_lottery.errors import FieldError
from tf_lottery.models import inception, lenet, resnet_cifar, resnet_imagenet, vgg_cifar

Builder = Callable[[int, tuple[int, int, int]], tf_keras.Model]
# The package's own builders; ``register`` adds more (a test's network).
_MODELS: dict[str, Builder] = {
    **lenet.BUILDERS, **resnet_cifar.BUILDERS, **vgg_cifar.BUILDERS,
    **resnet_imagenet.BUILDERS, **inception.BUILDERS}
# Builders handed to the Python API as functions, by their import path: a
# function defined in a script or a notebook resolves in its own process.
_GIVEN: dict[str, Builder] = {}


def register(name: str) -> Callable[[Builder], Builder]:
    """Decorator: ``@register("resnet20")`` adds a builder under ``name``."""

    def wrap(fn: Builder) -> Builder:
        if name in _MODELS:
            raise ValueError(f"model {name!r} registered twice")
        _MODELS[name] = fn
        return fn

    return wrap


def names() -> list[str]:
    return sorted(_MODELS)


def is_import_path(name: str) -> bool:
    """Whether ``name`` names a user's builder (``package.module:function``)."""
    return ":" in name


def given(fn: Builder) -> str:
    """The import path of a builder handed over as a function, kept so that it
    resolves in this process even where it cannot be imported (``__main__``,
    a notebook, a closure)."""
    if not callable(fn):
        raise FieldError("model.name", f"={fn!r} is neither a model name nor a builder "
                         "function")
    path = f"{fn.__module__}:{fn.__qualname__}"
    _GIVEN[path] = fn
    return path


def _import(path: str) -> Builder:
    if path in _GIVEN:
        return _GIVEN[path]
    module_name, _, attribute = path.partition(":")
    if not module_name or not attribute:
        raise FieldError("model.name", f"={path} is not an import path "
                         "package.module:function")
    try:
        module = importlib.import_module(module_name)
    except Exception as e:  # any error of the user's module, reported in one line
        raise FieldError("model.name", f"={path}: cannot import {module_name} "
                         f"({type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''})"
                         ) from None
    target: Any = module
    for part in attribute.split("."):
        target = getattr(target, part, None)
        if target is None:
            raise FieldError("model.name", f"={path}: {module_name} has no {attribute}")
    if not callable(target):
        raise FieldError("model.name", f"={path} is not a function")
    return target


def resolve(name: str) -> Builder:
    """The builder a model name or import path stands for.

    Raises:
      FieldError: (``model.name``) unknown name, or a builder that cannot be
        imported.
    """
    if is_import_path(name):
        return _import(name)
    if name not in _MODELS:
        raise FieldError("model.name", f"={name} is not a known model (known: "
                         f"{', '.join(names())}; or give a builder as "
                         "package.module:function)")
    return _MODELS[name]


def _checked(name: str, model: Any, num_classes: int) -> tf_keras.Model:
    """A user's model, checked to be a tf_keras.Model with [batch, classes] logits."""
    if not isinstance(model, tf_keras.Model):
        kind = type(model).__module__ + "." + type(model).__qualname__
        hint = " (a Keras 3 model? build it with tf_keras)" if "keras" in kind else ""
        raise FieldError("model.name", f"={name} returned a {kind}, not a "
                         f"tf_keras.Model{hint}")
    outputs = model.outputs if model.outputs else []
    shape = tuple(outputs[0].shape) if outputs else None
    if shape is None or len(shape) != 2 or shape[1] != num_classes:
        raise FieldError("model.name", f"={name} outputs shape {shape}; expected logits "
                         f"of shape (None, {num_classes}) for the dataset's "
                         f"{num_classes} classes")
    return model


def build_model(
    name: str, num_classes: int, image_shape: tuple[int, int, int], init_seed: int
) -> tf_keras.Model:
    """Builds ``name`` with weights drawn deterministically from ``init_seed``.

    Call inside ``strategy.scope()`` so the variables are distributed.

    Raises:
      FieldError: (``model.name``) the model is unknown, or a user's builder
        fails to import, returns no tf_keras.Model or the wrong output shape.
    """
    builder = resolve(name)
    tf_keras.utils.set_random_seed(init_seed)
    height, width, channels = image_shape  # a tuple, also when given as a list
    if not is_import_path(name):
        return builder(num_classes, (height, width, channels))
    try:
        model = builder(num_classes, (height, width, channels))
    except Exception as e:  # the user's code: one line, not a traceback
        raise FieldError("model.name", f"={name} raised {type(e).__name__} building the "
                         f"network: {str(e).splitlines()[0] if str(e) else ''}") from None
    return _checked(name, model, num_classes)


@dataclasses.dataclass(frozen=True)
class Architecture:
    """What a builder builds, as identity: a hash over its layers' configs,
    and each layer's (name, class, config) for saying what changed."""

    digest: str
    layers: tuple[tuple[str, str, str], ...]

    def to_json(self) -> dict:
        return {"digest": self.digest, "layers": [list(x) for x in self.layers]}

    @classmethod
    def from_json(cls, obj: dict) -> Architecture:
        return cls(obj["digest"], tuple((str(a), str(b), str(c)) for a, b, c in obj["layers"]))


def _canonical(value: Any) -> str:
    return json.dumps(value, sort_keys=True, default=repr)


_ARCHITECTURES: dict[tuple[str, int, tuple[int, ...]], Architecture] = {}


def architecture(name: str, num_classes: int, image_shape: tuple[int, ...]) -> Architecture:
    """The architecture ``name`` builds for this data, computed once per process.

    Built in a fresh graph: Keras numbers auto-generated layer names per
    graph, so two builds of the same code give the same names (and so the same
    hash), and no variable of the real run is created here.
    """
    key = (name, num_classes, tuple(image_shape))
    if key not in _ARCHITECTURES:
        with tf.Graph().as_default():
            height, width, channels = image_shape
            model = build_model(name, num_classes, (height, width, channels), 0)
            layers = tuple((layer.name, type(layer).__name__,
                            _canonical(layer.get_config())) for layer in model.layers)
            config = _canonical(model.get_config()) if _has_config(model) else ""
        blob = _canonical([layers, config])
        _ARCHITECTURES[key] = Architecture(hashlib.sha256(blob.encode()).hexdigest()[:12],
                                           layers)
    return _ARCHITECTURES[key]


def _has_config(model: tf_keras.Model) -> bool:
    try:
        model.get_config()
    except NotImplementedError:  # a subclassed model without get_config
        return False
    return True


def changed_layers(before: Architecture, after: Architecture) -> str:
    """What differs between two architectures, in a few words per layer."""
    old = {n: (c, cfg) for n, c, cfg in before.layers}
    new = {n: (c, cfg) for n, c, cfg in after.layers}
    parts = [f"added {n} ({new[n][0]})" for n in new if n not in old]
    parts += [f"removed {n} ({old[n][0]})" for n in old if n not in new]
    for n in (n for n in new if n in old and new[n] != old[n]):
        a, b = json.loads(old[n][1]), json.loads(new[n][1])
        keys = [k for k in sorted(set(a) | set(b)) if a.get(k) != b.get(k)]
        detail = ", ".join(f"{k} {a.get(k)} -> {b.get(k)}" for k in keys[:3]
                           ) or f"{old[n][0]} -> {new[n][0]}"
        parts.append(f"{n} ({detail})")
    if not parts and [n for n, _, _ in before.layers] != [n for n, _, _ in after.layers]:
        parts.append("the layers' order or wiring")
    return "; ".join(parts[:5]) or "the model's wiring"


def count_params(model: tf_keras.Model) -> int:
    """Number of scalar weights (trainable and not, e.g. BatchNorm statistics)."""
    return int(sum(int(w.shape.num_elements()) for w in model.weights))
