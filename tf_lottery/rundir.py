"""The run directory's identity: its resolved config and its completion state.

A ``--model_dir`` belongs to one recipe. Its ``config.json`` records the
resolved config; relaunching with the same recipe resumes, with a different
recipe is refused (naming the fields that differ) so that no result is
overwritten or mixed with another recipe's. Whether the experiment finished
is its ``results.json`` record's (``core.records``) to say.
"""

from __future__ import annotations

import json
from collections.abc import Callable

from absl import logging

from tf_lottery import files, provenance
from tf_lottery.config import ExperimentConfig, config_from_json, recipe_changes
from tf_lottery.config.recipe import added_sections
from tf_lottery.core import layout, records, store
from tf_lottery.errors import ConfigError, CorruptFileError
from tf_lottery.models import registry as model_registry


def recorded_config(model_dir: str) -> ExperimentConfig:
    """The resolved config ``model_dir`` was launched with (its config.json); reads only.

    Raises:
      ConfigError: it holds no run (no config.json), or the file is damaged.
    """
    text = files.read_json(layout.config_file(model_dir))
    if text is None:
        raise ConfigError(f"--model_dir={model_dir} holds no run (no "
                          f"{layout.CONFIG_FILE})")
    return config_from_json(json.dumps(text))


def results(model_dir: str) -> records.Results | None:
    """The experiment's results.json; a damaged one is set aside (and then
    recomputed by the experiment from its pieces), so only the lease holder
    may call this."""
    return store.read_summary(layout.results_file(model_dir), records.ExperimentResults,
                              model_dir)


def is_complete(model_dir: str) -> bool:
    return layout.is_complete(results(model_dir))


def check(config: ExperimentConfig) -> bool:
    """Whether ``model_dir`` already holds ``config``'s recipe (False: it holds
    none yet); reads only.

    Raises:
      ConfigError: it holds a different recipe.
      CorruptFileError: its config.json is damaged.
    """
    model_dir = config.runtime.model_dir
    path = layout.config_file(model_dir)
    try:
        existing = files.read_json(path)
    except CorruptFileError as e:
        raise CorruptFileError(
            path, e.reason, "restore it from a copy; or, if you are sure this launch "
            "has the flags of the first one, move it aside and relaunch (it is written "
            "again from the flags)") from None
    if existing is None:
        return False
    # Only what this experiment uses: a config.json of release 0.1.0 holds
    # every section, and its recipe hash was computed over all of them.
    changed = recipe_changes(existing, config)
    if changed == ["model.architecture"]:
        raise ConfigError(
            f"--model_dir={model_dir} holds a run of --model={config.model.name} as it "
            f"was; the builder now builds a different network (changed: "
            f"{_architecture_change(config)}); restore the builder or use a new "
            "--model_dir")
    if changed:
        raise ConfigError(
            f"--model_dir={model_dir} holds a run with a different config "
            f"(differs in: {', '.join(changed)}); use a new --model_dir or "
            "restore the original flags"
        )
    return True


def claim(config: ExperimentConfig,
          reopen: Callable[[tuple[str, ...]], object] | None = None) -> None:
    """Creates ``model_dir`` for ``config`` or checks it already holds it.

    config.json is created exclusively (``files.create_json_exclusive``), so
    of several launches racing on a new model_dir (``--task`` launches hold
    no model_dir lease) exactly one writes it and the others compare their
    recipe with it. The first launch's config.json stays, but for add-on
    sections (``Section.addon``, e.g. ``--curve``) this launch turns on: they
    are added to it, after ``reopen(sections)`` (the caller sets aside what
    the new pieces change, e.g. the aggregates), so a launch killed in
    between reopens again.

    Raises:
      ConfigError: the directory is unwritable, or holds a different recipe.
      CorruptFileError: its config.json is damaged: the recipe of what the
        directory holds is unknown, so nothing may be added to it.
    """
    model_dir = config.runtime.model_dir
    files.ensure_writable_dir(model_dir)
    if check(config):
        _record_added(config, reopen)
        return  # Same recipe: resume.
    if config.model.architecture:
        # Before config.json: a config.json always has its architecture.json.
        files.write_json_atomic(layout.architecture_file(model_dir),
                                _architecture(config).to_json())
    path = layout.config_file(model_dir)
    created = {**json.loads(config.to_json()), provenance.KEY: provenance.provenance()}
    if not files.create_json_exclusive(path, created):
        check(config)  # another launch created it meanwhile: the same recipe?


def _record_added(config: ExperimentConfig,
                  reopen: Callable[[tuple[str, ...]], object] | None) -> None:
    """Adds the add-on sections this launch turns on to config.json."""
    path = layout.config_file(config.runtime.model_dir)
    recorded = files.read_json(path)
    added = added_sections(recorded, config) if isinstance(recorded, dict) else ()
    if not added or not isinstance(recorded, dict):
        return
    if reopen is not None:
        reopen(added)
    recipe = config.recipe_dict()
    files.write_json_atomic(path, {**recorded, **{s: recipe[s] for s in added},
                                   "recipe_hash": config.recipe_hash()})
    logging.info("%s: added %s to its config.json (a run relaunched with them).",
                 config.runtime.model_dir, ", ".join(added))


def _architecture(config: ExperimentConfig) -> model_registry.Architecture:
    spec = config.data.spec()
    return model_registry.architecture(config.model.name, spec.num_classes, spec.image_shape)


def _architecture_change(config: ExperimentConfig) -> str:
    """The layers in which the builder's network differs from the recorded one."""
    try:
        recorded = files.read_json(layout.architecture_file(config.runtime.model_dir))
    except CorruptFileError:
        recorded = None
    if not recorded:
        return "layers unknown: architecture.json is missing"
    return model_registry.changed_layers(model_registry.Architecture.from_json(recorded),
                                         _architecture(config))
