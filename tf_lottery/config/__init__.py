"""Every knob of an experiment: config sections whose fields declare their flags.

- ``knobs``: how a field declares its flag (``knob``), checks, ``Section``;
- ``sections``: the recipe's sections (model, data, optimizer, schedule,
  train) and the runtime;
- ``experiments``: experiments by name, each with the sections it uses;
- ``recipe``: ``ExperimentConfig``, the recipe that identifies a run, JSON;
- ``cli``: absl flags generated from the declarations, flags -> config.

See docs/config.md for adding a knob or an experiment.
"""

from tf_lottery.config import experiments
from tf_lottery.config.cli import cli_message, config_from_flags, define_flags, flag_label
from tf_lottery.config.experiments import (
    BASELINES,
    PRUNING_SCOPES,
    REWIND_OPTIMIZER,
    InstabilityConfig,
    PruningConfig,
)
from tf_lottery.config.recipe import (
    ExperimentConfig,
    config_from_json,
    diff_recipes,
    recipe_changes,
    recipe_fields,
)
from tf_lottery.config.sections import (
    AUGMENTATIONS,
    IMAGENET_RECIPES,
    OPTIMIZERS,
    PRECISIONS,
    SCHEDULES,
    STRATEGIES,
    DataConfig,
    ModelConfig,
    OptimizerConfig,
    RuntimeConfig,
    ScheduleConfig,
    TrainConfig,
)

__all__ = [
    "AUGMENTATIONS", "BASELINES", "IMAGENET_RECIPES", "OPTIMIZERS", "PRECISIONS",
    "PRUNING_SCOPES", "REWIND_OPTIMIZER", "SCHEDULES", "STRATEGIES", "DataConfig",
    "ExperimentConfig", "InstabilityConfig", "ModelConfig", "OptimizerConfig",
    "PruningConfig", "RuntimeConfig", "ScheduleConfig", "TrainConfig", "cli_message",
    "config_from_flags", "config_from_json", "define_flags", "diff_recipes", "experiments",
    "flag_label", "recipe_changes", "recipe_fields",
]
