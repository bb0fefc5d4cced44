"""The whole config of an experiment, and what identifies a run: its recipe.

The recipe is every section but the runtime, and of the experiment sections
only those the experiment uses (``experiments.EXPERIMENTS``): a plain
training run is not identified by --children. ``config.json`` holds the
recipe, its hash and the runtime, with the field names of release 0.1.0; a
0.1.0 file (every section, used or not) reads back with its unused sections
ignored.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from collections.abc import Mapping
from typing import Any

from tf_lottery.config import experiments
from tf_lottery.config.knobs import Section, declarations
from tf_lottery.config.sections import (
    COMMON,
    DataConfig,
    ModelConfig,
    OptimizerConfig,
    RuntimeConfig,
    ScheduleConfig,
    TrainConfig,
)


@dataclasses.dataclass(frozen=True)
class ExperimentConfig:
    """The whole experiment; ``recipe_dict()`` is what identifies a run.

    ``sections`` holds the experiment's own sections, each readable as an
    attribute by its name: ``config.instability``, ``config.pruning``. An
    experiment that does not use a section does not have it.
    """

    experiment: str
    model: ModelConfig
    data: DataConfig
    optimizer: OptimizerConfig
    schedule: ScheduleConfig
    train: TrainConfig
    runtime: RuntimeConfig
    sections: tuple[Section, ...] = ()

    def __post_init__(self) -> None:
        # A builder given by import path is identified by what it builds too.
        model = self.model.with_architecture(self.data)
        if model is not self.model:
            object.__setattr__(self, "model", model)
        for part in self.parts():
            part.validate_in(self)
        spec = experiments.EXPERIMENTS.get(self.experiment)
        if spec is not None and spec.check is not None:
            spec.check(self)

    def __getattr__(self, name: str) -> Any:
        for section in self.__dict__.get("sections", ()):
            if section.section == name:
                return section
        raise AttributeError(f"the {self.__dict__.get('experiment')!r} experiment has no "
                             f"{name!r} section")

    def parts(self) -> tuple[Section, ...]:
        """Every section: the recipe's, the experiment's own, the runtime."""
        return (self.model, self.data, self.optimizer, self.schedule, self.train,
                *self.sections, self.runtime)

    def recipe_dict(self) -> dict[str, Any]:
        """The fields that determine results (everything but ``runtime``)."""
        d: dict[str, Any] = {"experiment": self.experiment}
        for part in self.parts():
            if part is not self.runtime and not part.measures_only:
                d[part.section] = _fields(part)
        return d

    def recipe_hash(self) -> str:
        """Short content hash of the recipe, as in open_lth's run names.

        A ``late`` knob at its default is left out, so adding one changes
        no hash (``knobs.knob``).
        """
        recipe = self.recipe_dict()
        for part in self.parts():
            if part is self.runtime or part.measures_only:
                continue
            for field, declared, _ in declarations(type(part)):
                if declared.late and getattr(part, field.name) == field.default:
                    recipe[part.section].pop(field.name)
        blob = json.dumps(recipe, sort_keys=True)
        return hashlib.sha256(blob.encode()).hexdigest()[:12]

    def to_json(self) -> str:
        return json.dumps(
            {"recipe_hash": self.recipe_hash(), **self.recipe_dict(),
             # Not recipe, but what a task run elsewhere must know (the config
             # round-trips: Ray workers); at its defaults left out, so the
             # config.json of a run that does not use it is as it was.
             **{p.section: _fields(p) for p in self.sections
                if p.measures_only and p != type(p)()},
             "runtime": dataclasses.asdict(self.runtime)},
            indent=2,
            sort_keys=True,
        )


def _fields(part: Section) -> dict[str, Any]:
    """A section's fields, but its ``optional`` ones while at their default (a
    recipe from before they existed keeps its hash and config.json)."""
    d = dataclasses.asdict(part)
    defaults = _defaults(type(part))
    for name in part.optional:
        if name in defaults and d[name] == defaults[name]:
            del d[name]
    return d


def _dig(d: Mapping[str, Any], path: str) -> Any:
    section, field = path.split(".")
    return d.get(section, {}).get(field)


def _build(cls: type[Section], values: Mapping[str, Any]) -> Section:
    """A section from its JSON; fields missing from the JSON keep their defaults."""
    names = {f.name for f in dataclasses.fields(cls)}
    return cls(**{k: tuple(v) if isinstance(v, list) else v
                  for k, v in values.items() if k in names})


def config_from_json(text: str) -> ExperimentConfig:
    """Inverse of ``ExperimentConfig.to_json`` (lists come back as tuples).

    Reads the ``config.json`` of any release: sections the experiment does
    not use (0.1.0 wrote every section) are ignored.
    """
    d = json.loads(text)
    spec = experiments.EXPERIMENTS.get(d["experiment"])
    used = spec.section_types(lambda switch: _dig(d, switch)) if spec else ()
    common: dict[str, Any] = {cls.section: _build(cls, d[cls.section]) for cls in COMMON}
    return ExperimentConfig(experiment=d["experiment"], **common,
                            sections=tuple(_build(cls, d.get(cls.section, {}))
                                           for cls in used))


def diff_recipes(a: dict[str, Any], b: dict[str, Any], prefix: str = "",
                 skip: tuple[str, ...] = ()) -> list[str]:
    """Dotted names of the recipe fields that differ between two dicts (but
    the top-level keys in ``skip``)."""
    out = []
    for key in sorted((set(a) | set(b)) - set(skip)):
        va, vb = a.get(key), b.get(key)
        name = f"{prefix}{key}"
        if isinstance(va, dict) and isinstance(vb, dict):
            out += diff_recipes(va, vb, name + ".")
        elif va != vb and not (
            isinstance(va, list | tuple) and isinstance(vb, list | tuple)
            and list(va) == list(vb)
        ):
            out.append(name)
    return out


def recipe_changes(recorded: Mapping[str, Any], config: ExperimentConfig) -> list[str]:
    """Dotted names of the recipe fields in which ``config`` differs from a run
    directory's recorded ``config.json``.

    Only the sections ``config``'s experiment uses are compared (a 0.1.0 file
    records every section). A field the recorded file lacks was added after
    the run was launched and counts as its default.
    """
    by_name = {cls.section: cls for cls in (*COMMON, *experiments.section_types())}

    def complete(d: Mapping[str, Any], keys) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for key in keys:
            value = d.get(key)
            if key in by_name and isinstance(value, Mapping):
                value = {**_defaults(by_name[key]), **value}
            out[key] = value
        return out

    new = config.recipe_dict()
    return diff_recipes(complete(recorded, new), complete(new, new),
                        skip=added_sections(recorded, config))


def added_sections(recorded: Mapping[str, Any], config: ExperimentConfig) -> tuple[str, ...]:
    """The add-on sections (``Section.addon``) that ``config`` uses and a run
    directory's recorded ``config.json`` lacks: turned on by this launch
    (``rundir.claim`` then records them)."""
    return tuple(part.section for part in config.sections
                 if part.addon and part.section not in recorded)


def _defaults(cls: type[Section]) -> dict[str, Any]:
    return {f.name: f.default for f in dataclasses.fields(cls)
            if f.default is not dataclasses.MISSING}


def recipe_fields() -> list[str]:
    """Dotted names of every recipe field of every experiment (what the hparams
    dashboard declares, so runs of all experiments share its columns)."""
    out = ["experiment"]
    recipe: tuple[type[Section], ...] = (ModelConfig, DataConfig, OptimizerConfig,
                                         ScheduleConfig, TrainConfig)
    for cls in (*recipe, *(c for c in experiments.section_types() if not c.measures_only)):
        out += [f"{cls.section}.{f.name}" for f in dataclasses.fields(cls)]
    return out
