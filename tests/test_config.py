"""Flags -> config: recipes resolve to the paper's numbers; bad input is named;
each field declares its flag once; a run's identity is what its experiment uses."""

import dataclasses
import json
import pathlib

import pytest
from absl import flags

from tests.conftest import parse_config
from tests.fixtures import make_v0_1_fixtures as v0_1
from tf_lottery import config as config_lib
from tf_lottery import rundir
from tf_lottery.config import experiments, knobs
from tf_lottery.config.sections import COMMON
from tf_lottery.errors import ConfigError, FieldError

FIXTURES = pathlib.Path(__file__).resolve().parent / "fixtures" / "v0_1"


def test_lenet_flagfile_is_the_papers_recipe():
    c = parse_config("--flagfile=flags/lenet_fashion_mnist.cfg")
    assert c.model.name == "lenet_300_100"
    assert c.data.dataset == "fashion_mnist"
    assert c.optimizer.name == "adam"
    assert c.schedule.kind == "constant"
    assert c.schedule.learning_rate == pytest.approx(1.2e-3)
    assert c.train.batch_size == 60
    assert c.train.train_steps == 24000
    assert c.train.steps_per_epoch == 1000
    assert c.train.rewind_steps == (0, 25, 100, 500, 2000)
    assert c.data.augment == "none"


def test_mnist_flagfile_matches_fashion_recipe():
    a = parse_config("--flagfile=flags/lenet_mnist.cfg").recipe_dict()
    b = parse_config("--flagfile=flags/lenet_fashion_mnist.cfg").recipe_dict()
    a["data"].pop("dataset"), b["data"].pop("dataset")
    assert a == b


def test_command_line_overrides_flagfile():
    c = parse_config("--flagfile=flags/lenet_fashion_mnist.cfg", "--train_steps=500",
                     "--rewind_steps=0,100")
    assert c.train.train_steps == 500
    assert c.train.rewind_steps == (0, 100)
    assert c.optimizer.name == "adam"


def test_epochs_resolve_to_steps():
    c = parse_config("--batch_size=100", "--train_epochs=2.5", "--lr_schedule=step",
                     "--lr_drop_epochs=1,2", "--warmup_epochs=0.5")
    assert c.train.steps_per_epoch == 600
    assert c.train.train_steps == 1500
    assert c.schedule.drop_steps == (600, 1200)
    assert c.schedule.warmup_steps == 300


def test_exponential_decay_every_n_epochs():
    c = parse_config("--batch_size=100", "--train_steps=6000", "--lr_schedule=exponential",
                     "--lr_decay_epochs=2", "--lr_decay_rate=0.94")
    assert c.schedule.decay_steps == 1200


def test_runtime_flags_do_not_change_the_recipe_hash():
    a = parse_config("--train_steps=10", "--strategy=mirrored", "--steps_per_loop=5")
    b = parse_config("--train_steps=10", model_dir="/elsewhere")
    assert a.recipe_hash() == b.recipe_hash()
    c = parse_config("--train_steps=10", "--data_order_seed=1")
    assert c.recipe_hash() != a.recipe_hash()
    assert config_lib.diff_recipes(a.recipe_dict(), c.recipe_dict()) == [
        "train.data_order_seed"]


def test_config_json_round_trip():
    c = parse_config("--flagfile=flags/lenet_fashion_mnist.cfg")
    assert config_lib.config_from_json(c.to_json()) == c


@pytest.mark.parametrize("args, flag", [
    (["--model=nope", "--train_steps=1"], "--model=nope"),
    (["--dataset=nope", "--train_steps=1"], "--dataset=nope"),
    (["--learning_rate=-1", "--train_steps=1"], "--learning_rate"),
    (["--learning_rate=nan", "--train_steps=1"], "--learning_rate"),
    (["--batch_size=0", "--train_steps=1"], "--batch_size"),
    (["--train_steps=100", "--rewind_steps=0,200"], "--rewind_steps"),
    (["--train_steps=100", "--rewind_steps=a"], "--rewind_steps"),
    (["--train_steps=100", "--train_epochs=1"], "--train_epochs"),
    (["--train_steps=100", "--lr_schedule=step"], "--lr_drop_steps"),
    (["--train_steps=100", "--lr_drop_steps=50"], "--lr_drop_steps"),
    (["--train_steps=100", "--weight_decay=-1"], "--weight_decay"),
    (["--train_steps=100", "--label_smoothing=1"], "--label_smoothing"),
    (["--train_steps=100", "--strategy=tpu"], "--tpu"),
])
def test_bad_input_names_the_flag(args, flag):
    with pytest.raises(ConfigError, match=flag.replace("-", r"\-")) as e:
        parse_config(*args)
    assert "\n" not in str(e.value)


# -- one source of truth: fields declare their flags -----------------------------

def test_every_knob_declares_one_flag_with_the_fields_default():
    fv = flags.FlagValues()
    config_lib.define_flags(fv)
    declared = {"experiment"}
    for cls in (*COMMON, *experiments.section_types()):
        for field, knob, _ in knobs.declarations(cls):
            name = knobs.flag_of(field, knob)
            if name:
                declared.add(name)
                default = None if field.default is dataclasses.MISSING else field.default
                want = [str(v) for v in default] if isinstance(default, tuple) else default
                assert fv[name].default == want, name
                assert fv[name].help.endswith(knob.help), name
            if knob.epochs:
                declared.add(knob.epochs.name)
    assert declared == {name for name, flag in fv._flags().items() if name == flag.name}


def test_experiment_is_checked_by_the_flag_parser_and_its_help_lists_them():
    fv = flags.FlagValues()
    config_lib.define_flags(fv)
    with pytest.raises(flags.IllegalFlagValueError,
                       match=r"<train\|instability\|imp\|imp_sweep\|onset>"):
        fv(["prog", "--experiment=nope"])
    for name in experiments.names():
        assert f"'{name}'" in fv["experiment"].help
    assert experiments.names() == ["train", "instability", "imp", "imp_sweep", "onset"]


def test_each_experiment_loads_by_name():
    """Every declared experiment is registered by object under its name, its
    module's EXPERIMENT, and runs that module's own function inline."""
    from tf_lottery import experiments as registry
    from tf_lottery.experiments import imp, imp_sweep, instability, onset, train

    modules = [train, instability, imp, imp_sweep, onset]
    assert registry.names() == experiments.names()
    assert [registry.get(n) for n in registry.names()] == [m.EXPERIMENT for m in modules]
    assert [registry.get(n).spec for n in registry.names()] == [
        experiments.get(n) for n in experiments.names()]
    with pytest.raises(ConfigError, match="--experiment=nope is not known"):
        registry.get("nope")
    with pytest.raises(ConfigError, match="--experiment=nope is not known"):
        experiments.get("nope")


# -- the recipe: only the sections the experiment uses -----------------------------

def test_a_runs_identity_covers_only_the_sections_its_experiment_uses():
    def recipe(*args):
        return parse_config("--train_steps=10", *args)

    train = recipe()
    assert set(train.recipe_dict()) == {"experiment", "model", "data", "optimizer",
                                        "schedule", "train"}
    assert recipe("--children=5", "--imp_levels=3").recipe_hash() == train.recipe_hash()
    # Unused sections are neither built nor validated.
    assert recipe("--children=1", "--imp_levels=0").recipe_hash() == train.recipe_hash()
    with pytest.raises(AttributeError, match="'train' experiment has no 'pruning'"):
        _ = train.pruning

    instability = recipe("--experiment=instability")
    assert instability.recipe_hash() != recipe("--experiment=instability",
                                               "--children=3").recipe_hash()
    assert instability.recipe_hash() == recipe("--experiment=instability",
                                               "--imp_levels=3").recipe_hash()

    imp = recipe("--experiment=imp")
    assert "instability" not in imp.recipe_dict()
    assert imp.recipe_hash() == recipe("--experiment=imp", "--children=3").recipe_hash()
    sparse = recipe("--experiment=imp", "--instability")
    assert sparse.instability.children == 2
    assert sparse.recipe_hash() != recipe("--experiment=imp", "--instability",
                                          "--children=3").recipe_hash()


@pytest.mark.parametrize("name", ["instability", "imp"])
def test_a_v0_1_config_json_reads_back_and_claims_its_run(name, tmp_path):
    recorded = (FIXTURES / name / "config.json").read_text()
    c = config_lib.config_from_json(recorded)
    assert c.recipe_dict().keys() == {
        "experiment", "model", "data", "optimizer", "schedule", "train",
        *{"instability": ["instability"], "imp": ["pruning", "instability"]}[name]}
    flags_of_release = {"instability": v0_1.INSTABILITY, "imp": v0_1.IMP}[name]
    (tmp_path / "config.json").write_text(recorded)
    same = parse_config(*flags_of_release, model_dir=str(tmp_path))
    assert config_lib.recipe_changes(json.loads(recorded), same) == []
    rundir.claim(same)  # accepted: the run resumes (or, finished, is left alone)
    assert (tmp_path / "config.json").read_text() == recorded
    other = parse_config(*flags_of_release, "--interpolation_points=4",
                         model_dir=str(tmp_path))
    with pytest.raises(ConfigError, match="instability.interpolation_points"):
        rundir.claim(other)


def test_a_train_run_resumes_under_other_experiment_flags(tmp_path):
    rundir.claim(parse_config("--train_steps=10", model_dir=str(tmp_path)))
    rundir.claim(parse_config("--train_steps=10", "--children=4", "--imp_levels=2",
                              model_dir=str(tmp_path)))
    with pytest.raises(ConfigError, match="experiment, instability"):
        rundir.claim(parse_config("--train_steps=10", "--experiment=instability",
                                  model_dir=str(tmp_path)))


def test_a_field_added_after_a_run_was_launched_counts_as_its_default():
    c = parse_config("--train_steps=10")
    recorded = json.loads(c.to_json())
    del recorded["optimizer"]["ema_decay"]  # as if written before the knob existed
    assert config_lib.recipe_changes(recorded, c) == []
    recorded["optimizer"]["ema_decay"] = 0.5
    assert config_lib.recipe_changes(recorded, c) == ["optimizer.ema_decay"]


# -- errors: the library names fields, the command line names flags ----------------

def test_sections_built_in_python_are_checked_and_name_the_field():
    with pytest.raises(FieldError, match=r"^pruning\.levels must be >= 1, got 0$") as e:
        config_lib.PruningConfig(levels=0)
    assert config_lib.cli_message(e.value) == "--imp_levels must be >= 1, got 0"
    with pytest.raises(FieldError) as e:
        config_lib.RuntimeConfig(model_dir="/r", strategy="tpu")
    assert config_lib.cli_message(e.value) == (
        "--strategy=tpu needs --tpu=NAME (or --tpu=local on a TPU VM)")
    with pytest.raises(FieldError) as e:
        config_lib.ScheduleConfig(kind="step", decay_steps=0)
    assert config_lib.cli_message(e.value) == (
        "--lr_drop_steps/--lr_drop_epochs are needed by --lr_schedule=step")


def test_a_one_shot_flag_given_as_zero_is_refused_as_before():
    with pytest.raises(ConfigError, match=r"--target_density must be in \(0, 1\), got 0.0"):
        parse_config("--experiment=imp", "--train_steps=10", "--target_density=0")
    assert parse_config("--experiment=imp", "--train_steps=10").pruning.levels == 15
