"""Typed records: JSON round trip, relative paths, and the migration of every
record release 0.1.0 wrote (read from tests/fixtures/v0_1, never regenerated)."""

import dataclasses
import json
import pathlib

import pytest

from tf_lottery.core import layout, records, store
from tf_lottery.errors import CorruptFileError

FIXTURES = pathlib.Path(__file__).resolve().parent / "fixtures" / "v0_1"
RECORDED = "/work/main/tests/fixtures/v0_1"  # the model_dirs 0.1.0 ran in (config.json)
NOW = "/moved/runs"  # where the records are read now
M = "/runs/x"


def fixture(relative):
    return json.loads((FIXTURES / relative).read_text())


def metrics(error=0.25):
    return records.Metrics(test_accuracy=1 - error, test_error=error, train_accuracy=0.8,
                           train_error=0.2, test_loss=1.5, train_loss=1.25, test_examples=200,
                           train_examples=100)


def pair(point_dir, i=0, j=1, k=0):
    return records.PairRecord(
        status="complete", endpoints=[layout.final_checkpoint(layout.child_dir(point_dir, c))
                                      for c in (i, j)],
        bn_mode="interpolate", alphas=[0.0, 0.5, 1.0],
        error={"test": [0.2, 0.5, 0.3], "train": [0.1, 0.4, 0.2]},
        loss={"test": [1.0, 2.0, 1.5], "train": [0.5, 1.5, 1.0]},
        barrier={"test": 0.25, "train": 0.25}, wall_time_s=0.5, rewind_step=k,
        children=[i, j])


def child(point_dir, i):
    run_dir = layout.child_dir(point_dir, i)
    return records.ChildRecord(child=i, run_dir=run_dir,
                               final_checkpoint=layout.final_checkpoint(run_dir),
                               metrics=metrics(), data_order_seed=11 + i, augment_seed=21 + i)


STAT = {"test": records.Stat(0.25, 0.0, 1), "train": records.Stat(0.25, 0.0, 1)}


def instability_results():
    point_dir = layout.rewind_point_dir(M, 0, 10)
    replicate = records.ReplicateRecord(replicate=0, children=[child(point_dir, 0),
                                                               child(point_dir, 1)],
                                        pairs=[pair(point_dir, k=10)], barrier=STAT)
    aggregate = {s: records.Aggregate(0.25, 0.0, 1, [STAT[s]]) for s in layout.SPLITS}
    point = records.RewindPointRecord(status="complete", rewind_step=10,
                                      replicates=[replicate], barrier=aggregate,
                                      children_error=STAT, stable=False)
    parent_dir = layout.parent_dir(M, 0)
    parent = records.ParentRecord(replicate=0, run_dir=parent_dir,
                                  final_checkpoint=layout.final_checkpoint(parent_dir),
                                  metrics=metrics(), init_seed=0, data_order_seed=0,
                                  augment_seed=0)
    independent = records.IndependentRecord(
        pairs=[dataclasses.replace(pair(M), rewind_step=None, children=None,
                                   replicates=[0, 1])], barrier=STAT)
    settings = records.InstabilitySettings(
        children=2, interpolation_points=3, stability_threshold=0.02, bn_mode="interpolate",
        replicates=1, child_optimizer_state="restore", train_eval_examples=100)
    return records.InstabilityResults(status="complete", settings=settings, parents=[parent],
                                      rewind_steps=[point], independent=independent,
                                      table="k ...", wall_time_s_last_session=1.5)


LOSS = {"test": 0.75, "train": 0.75}  # the loss curves of ``pair``: max − mean of ends


def instability_results_with_loss():
    """``instability_results`` as this release writes it: loss barriers on
    every pair and aggregate, and the children's --child_noise."""
    results = instability_results()
    point_dir = layout.rewind_point_dir(M, 0, 10)
    (point,) = results.rewind_steps
    (replicate,) = point.replicates
    stat = {s: records.Stat(LOSS[s], 0.0, 1) for s in layout.SPLITS}
    replicate = dataclasses.replace(
        replicate, loss_barrier=stat,
        children=[dataclasses.replace(c, child_noise="data_order") for c in replicate.children],
        pairs=[dataclasses.replace(pair(point_dir, k=10), loss_barrier=dict(LOSS),
                                   child_noise="data_order")])
    point = dataclasses.replace(point, replicates=[replicate], loss_barrier={
        s: records.Aggregate(LOSS[s], 0.0, 1, [stat[s]]) for s in layout.SPLITS})
    assert results.independent is not None
    independent = dataclasses.replace(
        results.independent, loss_barrier=stat,
        pairs=[dataclasses.replace(p, loss_barrier=dict(LOSS)) for p in results.independent.pairs])
    return dataclasses.replace(
        results, rewind_steps=[point], independent=independent,
        settings=dataclasses.replace(results.settings, child_noise="data_order"))


def imp_results():
    level_dir = layout.level_dir(M, 1)
    network = dict(level=1, density=0.8, remaining_weights=8, prunable_weights=10,
                   layer_density={"fc1/kernel": 0.8}, test_accuracy=0.7, test_error=0.3,
                   train_accuracy=0.75, train_error=0.25, wall_time_s=0.5)
    point_dir = layout.sparse_instability_dir(M, 1)
    sparse = records.SparseInstabilityRecord(
        status="complete", rewind_step=0, stable=True, barrier=STAT,
        children=[child(point_dir, 0), child(point_dir, 1)], pairs=[pair(point_dir)],
        layerwise=records.LayerwiseSummaryRecord(rewind_step=0, groups=["fc1", "logits"],
                                                 barrier={"fc1": STAT, "logits": STAT}))
    baseline = records.BaselineRecord(
        **network, run_dir=layout.baseline_dir(M, 1, "random_prune"), seed=5)
    level = records.LevelRecord(**network, run_dir=level_dir,
                                baselines={"random_prune": baseline}, instability=sparse)
    dense = records.LevelRecord(**{**network, "level": 0, "density": 1.0},
                                run_dir=layout.level_dir(M, 0))
    return records.ImpResults(status="running", rewind_step=0, prune_fraction=0.2,
                              pruning_scope="global", levels=[dense, level])


def run_record(run_dir):
    return records.RunRecord(
        status="complete", step=20, metrics=metrics(),
        rewind_checkpoints={0: layout.rewind_checkpoint(run_dir, 0),
                            10: layout.rewind_checkpoint(run_dir, 10)},
        final_checkpoint=layout.final_checkpoint(run_dir), data_order_seed=1,
        augment_seed=2, wall_time_s_last_session=3.0)


# -- round trip and relative paths -------------------------------------------------------

@pytest.mark.parametrize("make", [instability_results, instability_results_with_loss,
                                  imp_results,
                                  lambda: run_record(M),
                                  lambda: records.CheckpointMarker(
                                      10, layout.rewind_checkpoint(M, 10))])
def test_round_trip_with_paths_relative_to_the_root(make):
    record = make()
    stored = record.to_json(M)
    assert stored["schema"] == records.SCHEMA
    text = json.dumps(stored)
    assert M not in text  # nothing absolute: a moved model_dir still reads
    assert type(record).from_json(json.loads(text), M) == record
    moved = type(record).from_json(stored, NOW)
    assert json.dumps(moved.to_json(NOW)) == text


def instruments():
    """One of each record the instruments (issue 16) and alignment write."""
    point_dir = layout.rewind_point_dir(M, 0, 10)
    path = pair(point_dir, k=10)
    matching = records.MatchingRecord(iterations=3, converged=True, objective=[1.0, 2.5],
                                      groups=4, seed=1, wall_time_s=0.25,
                                      unsupported_layers=["bn"])
    aligned = records.AlignedPathRecord(error=path.error, loss=path.loss, barrier=LOSS,
                                        matching=matching, wall_time_s=0.5, loss_barrier=LOSS)
    group = records.LayerGroupPathRecord(name="fc1", layers=["fc1"], parameters=10,
                                         error=path.error, loss=path.loss, barrier=LOSS)
    layerwise = records.LayerwiseRecord(status="complete", endpoints=path.endpoints,
                                        bn_mode="interpolate", alphas=path.alphas,
                                        groups=[group], rewind_step=10, children=[0, 1],
                                        wall_time_s=2.0)
    summary = records.LayerwiseSummaryRecord(rewind_step=10, groups=["fc1", "logits"],
                                             barrier={"fc1": STAT, "logits": STAT})
    level_path = records.LevelPathRecord(
        status="complete", levels=[0, 2], densities=[1.0, 0.64],
        pair=dataclasses.replace(path, endpoints=[
            layout.final_checkpoint(layout.level_dir(M, a)) for a in (0, 2)],
            rewind_step=None, children=None))
    probe = records.OnsetProbeRecord(
        rewind_step=10, stable=False,
        barrier={s: records.Aggregate(0.25, 0.0, 1, [STAT[s]]) for s in layout.SPLITS})
    onset = records.OnsetResults(
        status="running", level=0, grid=[0, 10, 20], threshold=0.02, checks=1, children=2,
        replicates=1, probes=[probe], next_probe=20, bracket=[10, None],
        inconsistencies=[[0, 10]], outcome="searching", child_runs=2, full_grid_child_runs=6,
        table="k ...", layerwise=[summary])
    imp = dataclasses.replace(imp_results(), level_paths=[level_path])
    return [dataclasses.replace(path, aligned=aligned), layerwise, level_path, onset,
            records.ImpSweepResults(status="running", chains=[imp, imp_results()]),
            dataclasses.replace(instability_results_with_loss(), layerwise=[summary])]


def curve_record():
    """A fitted curve (issue 26, ``--curve``), as a rewind point embeds it."""
    point_dir = layout.rewind_point_dir(M, 0, 10)
    path = pair(point_dir, k=10)
    return records.CurveRecord(
        status="complete", endpoints=path.endpoints,
        bend=layout.final_checkpoint(layout.curve_dir(layout.curve_file(point_dir, 0, 1))),
        bn_mode="interpolate", alphas=path.alphas, error=path.error, loss=path.loss,
        barrier=LOSS, loss_barrier=LOSS, line_barrier=LOSS, steps=100, learning_rate=0.01,
        fit_loss=[[50.0, 0.5], [100.0, 0.25]], rewind_step=10, children=[0, 1],
        wall_time_s=1.5)


def surface():
    """A plane, a centroid and results that summarize centroids (issue 26)."""
    point_dir = layout.rewind_point_dir(M, 0, 10)
    ends = [layout.final_checkpoint(layout.child_dir(point_dir, c)) for c in (0, 1)]
    matching = records.MatchingRecord(iterations=2, converged=True, objective=[1.0, 2.0],
                                      groups=2, seed=0, wall_time_s=0.1)
    grid = {"test": [[0.1, 0.2], [0.3, 0.4]], "train": [[0.1, 0.1], [0.2, 0.2]]}
    plane = records.PlaneRecord(
        status="complete", plane="aligned", rewind_step=10, replicate=0,
        networks=["child 0", "child 1", "child 1 aligned"], endpoints=[*ends, ends[1]],
        coordinates=[[0.0, 0.0], [2.0, 0.0], [1.0, 1.5]], xs=[-0.5, 2.5], ys=[-0.3, 1.8],
        error=grid, loss=grid, network_error={"test": [0.1, 0.1, 0.1],
                                              "train": [0.0, 0.0, 0.0]},
        bn_mode="interpolate", grid=2, margin=0.2, matching=matching, wall_time_s=1.0)
    split = {"test": 0.1, "train": 0.05}
    metric = records.CentroidMetrics(error=split, loss=split, gap=split)
    centroid = records.CentroidRecord(
        status="complete", rewind_step=10, replicate=0, endpoints=ends,
        children_error=split, bn_recomputed=False, raw=metric, aligned=metric,
        matching=[matching], wall_time_s=1.0)
    summary = records.CentroidSummaryRecord(rewind_step=10, children_error=STAT, error=STAT,
                                            gap=STAT, aligned_error=STAT, aligned_gap=STAT)
    return [plane, centroid, dataclasses.replace(instability_results(), centroid=[summary])]


def test_every_record_class_round_trips():
    """Each class of records.py, met somewhere in these records, reads back
    equal from its JSON, and so does each of them (nested or not)."""
    met = set()

    def visit(value):
        if dataclasses.is_dataclass(value):
            met.add(type(value))
            kind = type(value)
            if isinstance(value, records.Record):
                assert kind.from_json(json.loads(json.dumps(value.to_json(M))), M) == value
            else:
                assert kind.from_json(json.loads(json.dumps(value.to_json()))) == value
            for field in dataclasses.fields(value):
                visit(getattr(value, field.name))
        elif isinstance(value, (list, tuple)):
            for v in value:
                visit(v)
        elif isinstance(value, dict):
            for v in value.values():
                visit(v)

    for record in (*instruments(), curve_record(), *surface(), imp_results(), run_record(M),
                   records.CheckpointMarker(10, layout.rewind_checkpoint(M, 10))):
        visit(record)
    every = {c for c in vars(records).values() if isinstance(c, type)
             and issubclass(c, (records.Record, records.Value))
             and c not in (records.Record, records.Value)}
    abstract = {records.ChildrenRecord, records.NetworkRecord}  # bases, never written alone
    assert every - abstract == met


def test_records_from_before_loss_barriers_and_child_noise_still_load():
    """A schema 2 record written before issue 24 has neither key: it reads
    as None (the settings: 'both', the only behaviour then), and reports."""
    new = instability_results_with_loss()
    stored = json.loads(json.dumps(new.to_json(M)))

    def drop(obj):
        if isinstance(obj, dict):
            return {k: drop(v) for k, v in obj.items() if k not in ("loss_barrier", "child_noise")}
        return [drop(v) for v in obj] if isinstance(obj, list) else obj

    old = records.InstabilityResults.from_json(drop(stored), M)
    assert old == instability_results() and old.settings.child_noise == "both"
    (point,) = old.rewind_steps
    assert point.loss_barrier is None and point.replicates[0].pairs[0].loss_barrier is None
    assert point.replicates[0].children[0].child_noise is None
    # The new record's loss barriers are those of its loss curves.
    (new_pair,) = new.rewind_steps[0].replicates[0].pairs
    assert new_pair.loss_barrier == {
        s: max(new_pair.loss[s]) - (new_pair.loss[s][0] + new_pair.loss[s][-1]) / 2
        for s in layout.SPLITS}


def test_experiment_results_are_read_as_their_experiment_wrote_them():
    for record in (instability_results(), imp_results(), run_record(M)):
        assert records.ExperimentResults.from_json(record.to_json(M), M) == record


def test_a_newer_schema_is_refused_not_misread():
    stored = {**run_record(M).to_json(M), "schema": records.SCHEMA + 1}
    with pytest.raises(ValueError, match="newer than this tf_lottery reads"):
        records.RunRecord.from_json(stored, M)


def test_one_shape_per_concept():
    """A child, a pair and a barrier are the same JSON in the instability
    experiment and in IMP's sparse instability."""
    dense = instability_results().to_json(M)["rewind_steps"][0]["replicates"][0]
    sparse = imp_results().to_json(M)["levels"][1]["instability"]
    assert sorted(dense["children"][0]) == sorted(sparse["children"][0])
    assert sorted(dense["pairs"][0]) == sorted(sparse["pairs"][0])
    assert dense["barrier"] == sparse["barrier"]


# -- release 0.1.0's records, migrated (schema 1 -> 2) ----------------------------------

def test_run_record_v1_absolute_checkpoints_become_the_run_dirs_own():
    run_dir = f"{NOW}/instability/replicate_1/k_000000010/child_0"
    old = fixture("instability/replicate_1/k_000000010/child_0/results.json")
    assert old["schema"] == 1 and old["final_checkpoint"].startswith(RECORDED)
    record = records.RunRecord.from_json(old, run_dir)  # no recorded root needed
    assert record.final_checkpoint == layout.final_checkpoint(run_dir)
    assert record.metrics.test_accuracy == old["metrics"]["test_accuracy"]
    parent = records.RunRecord.from_json(
        fixture("instability/replicate_0/parent/results.json"), "/p")
    assert parent.rewind_checkpoints == {0: layout.rewind_checkpoint("/p", 0),
                                         10: layout.rewind_checkpoint("/p", 10)}
    assert parent.to_json("/p")["final_checkpoint"] == "final/ckpt"


def test_checkpoint_marker_v1():
    marker = records.CheckpointMarker.from_json(
        fixture("instability/replicate_0/parent/rewind/step_000000010.json"), "/p")
    assert marker == records.CheckpointMarker(10, layout.rewind_checkpoint("/p", 10))
    final = records.CheckpointMarker.from_json(
        fixture("imp/level_01/final.json"), "/level")
    assert final.checkpoint == layout.final_checkpoint("/level")


def test_child_v1_of_the_instability_experiment():
    old = fixture("instability/results.json")["rewind_steps"][0]["replicates"][0]["children"][1]
    record = records.ChildRecord.from_json(old, f"{NOW}/instability",
                                           f"{RECORDED}/instability")
    assert record.run_dir == f"{NOW}/instability/replicate_0/k_000000000/child_1"
    assert record.final_checkpoint == layout.final_checkpoint(record.run_dir)
    assert record.metrics == records.Metrics.from_json(old["metrics"])
    assert (record.data_order_seed, record.augment_seed) == (old["data_order_seed"],
                                                             old["augment_seed"])


def test_child_v1_of_imp_sparse_instability_takes_the_one_child_shape():
    old = fixture("imp/level_01/instability.json")["children"][0]
    assert set(old) == {"child", "run_dir", "test_error", "train_error"}
    record = records.ChildRecord.from_json(old, f"{NOW}/imp", f"{RECORDED}/imp")
    assert record.run_dir == f"{NOW}/imp/level_01/instability/child_0"
    assert record.final_checkpoint == layout.final_checkpoint(record.run_dir)
    assert record.metrics.test_error == old["test_error"]
    assert record.metrics.test_accuracy == 1.0 - old["test_error"]
    assert record.metrics.train_accuracy == 1.0 - old["train_error"]
    assert record.metrics.test_loss is None and record.data_order_seed is None
    again = records.ChildRecord.from_json(record.to_json(NOW), NOW)
    assert again == record


def test_pair_v1_of_children_and_of_independent_parents():
    old = fixture("instability/replicate_0/k_000000010/pair_0_1.json")
    assert "schema" not in old
    record = records.PairRecord.from_json(old, f"{NOW}/instability",
                                          f"{RECORDED}/instability")
    assert record.endpoints[0] == f"{NOW}/instability/replicate_0/k_000000010/child_0/final/ckpt"
    assert record.error["test"] == old["test_error"] and record.alphas == old["alphas"]
    assert (record.rewind_step, record.children, record.replicates) == (10, [0, 1], None)
    assert record.loss_barrier is None and record.child_noise is None  # not recorded then
    independent = records.PairRecord.from_json(
        fixture("instability/independent/pair_0_1.json"), f"{NOW}/instability",
        f"{RECORDED}/instability")
    assert (independent.rewind_step, independent.children, independent.replicates) == (
        None, None, [0, 1])


def test_rewind_point_v1_file_and_results_entry():
    from_file = records.RewindPointRecord.from_json(
        fixture("instability/k_000000010.json"), NOW, f"{RECORDED}/instability")
    entry = fixture("instability/results.json")["rewind_steps"][1]
    assert "status" not in entry  # 0.1.0 dropped it where it embedded the point
    embedded = records.RewindPointRecord.from_json(entry, NOW, f"{RECORDED}/instability")
    assert embedded == from_file and embedded.status == "complete"
    assert embedded.barrier["test"].per_replicate[1] == records.Stat.from_json(
        entry["barrier"]["test"]["per_replicate"][1])
    assert embedded.replicates[1].children[0].run_dir == \
        f"{NOW}/replicate_1/k_000000010/child_0"


def test_sparse_instability_v1_named_its_pair_files():
    old = fixture("imp/level_02/instability.json")
    assert old["pairs"] == [f"{RECORDED}/imp/level_02/instability/pair_0_1.json"]
    record = records.SparseInstabilityRecord.from_json(old, NOW, f"{RECORDED}/imp")
    assert record.pairs is None  # the layout's pair files hold them
    assert record.status == "complete" and record.stable == old["stable"]
    assert [c.metrics.test_error for c in record.children] == [
        c["test_error"] for c in old["children"]]
    entry = fixture("imp/results.json")["levels"][2]["instability"]
    assert records.SparseInstabilityRecord.from_json(entry, NOW, f"{RECORDED}/imp") == record


def test_level_and_baseline_v1():
    old = fixture("imp/results.json")["levels"]
    dense = records.LevelRecord.from_json(old[0], NOW, f"{RECORDED}/imp")
    assert dense.baselines == {} and dense.run_dir == f"{NOW}/level_00"
    level = records.LevelRecord.from_json(old[1], NOW, f"{RECORDED}/imp")
    prune = level.baselines["random_prune"]
    assert isinstance(prune, records.BaselineRecord)
    assert prune.seed == old[1]["baselines"]["random_prune"]["seed"]
    assert prune.run_dir == f"{NOW}/level_01/random_prune"
    assert level.layer_density == old[1]["layer_density"]
    no_instability = {k: v for k, v in old[1].items() if k != "instability"}
    assert records.LevelRecord.from_json(no_instability, NOW).instability is None


@pytest.mark.parametrize("name,kind", [("instability", records.InstabilityResults),
                                       ("imp", records.ImpResults)])
def test_experiment_results_v1(name, kind):
    old = fixture(f"{name}/results.json")
    record = records.ExperimentResults.from_json(old, NOW, f"{RECORDED}/{name}")
    assert isinstance(record, kind) and record.status == "complete"
    stored = record.to_json(NOW)
    assert stored["schema"] == records.SCHEMA and RECORDED not in json.dumps(stored)
    assert kind.from_json(stored, NOW) == record


# -- on disk ----------------------------------------------------------------------------

def test_a_record_of_the_wrong_shape_is_damaged_and_set_aside(tmp_path):
    path = tmp_path / "pair_0_1.json"
    path.write_text(json.dumps({"status": "complete", "alphas": [0.0, 1.0]}))
    with pytest.raises(CorruptFileError, match="not the record expected there"):
        store.read(str(path), records.PairRecord, str(tmp_path))
    assert store.read_complete(str(path), records.PairRecord, str(tmp_path)) is None
    assert not path.exists() and len(list(tmp_path.glob("pair_0_1.json.corrupt-*"))) == 1
    assert store.read(str(path), records.PairRecord, str(tmp_path)) is None


def test_write_then_read_back(tmp_path):
    record = run_record(str(tmp_path))
    store.write_run(str(tmp_path), record)
    assert json.loads((tmp_path / "results.json").read_text())["final_checkpoint"] == \
        "final/ckpt"
    assert store.read_run(str(tmp_path)) == record


def corrupt(tmp_path, change):
    """The instability results with ``change`` applied to their JSON, on disk."""
    stored = json.loads(json.dumps(instability_results().to_json(str(tmp_path))))
    change(stored)
    path = tmp_path / "results.json"
    path.write_text(json.dumps(stored))
    return path


@pytest.mark.parametrize("change,says", [
    (lambda o: o["rewind_steps"][0]["replicates"][0]["pairs"][0]["alphas"].__setitem__(
        1, "half"),
     "expected a number, got 'half' @ $.rewind_steps[0].replicates[0].pairs[0].alphas[1]"),
    (lambda o: o["settings"].__setitem__("children", "2"),
     "expected an integer, got '2' @ $.settings.children"),
    (lambda o: o["parents"][0].__setitem__("init_seed", 1.5),
     "expected an integer, got 1.5 @ $.parents[0].init_seed"),
    (lambda o: o["rewind_steps"][0].__setitem__("stable", 0),
     "expected true or false, got 0 @ $.rewind_steps[0].stable"),
    (lambda o: o["parents"][0].__setitem__("run_dir", 7),
     "expected a string, got 7 @ $.parents[0].run_dir"),
    (lambda o: o["rewind_steps"][0]["barrier"]["test"].pop("mean"),
     "required field missing @ $.rewind_steps[0].barrier['test'].mean"),
    (lambda o: o.pop("table"), "required field missing @ $.table"),
    (lambda o: o["rewind_steps"][0].__setitem__("schema", records.SCHEMA + 1),
     "newer than this tf_lottery reads"),
])
def test_a_wrong_typed_or_missing_field_is_named_in_one_line(tmp_path, change, says):
    """Nothing is coerced (cattrs' defaults would read "2" as 2 and 1.5 as 1):
    the file is damaged, and the one-line error names it and the wrong key."""
    path = corrupt(tmp_path, change)
    with pytest.raises(CorruptFileError) as raised:
        store.read(str(path), records.ExperimentResults, str(tmp_path))
    message = str(raised.value)
    assert "\n" not in message and str(path) in message and says in message
    assert "not the record expected there: InstabilityResults: " in message


def test_an_integer_reads_as_a_float_field_and_writes_back_as_one():
    stored = json.loads(json.dumps(run_record(M).to_json(M)))
    stored["metrics"]["test_error"] = 0  # what another JSON writer may make of 0.0
    record = records.RunRecord.from_json(stored, M)
    assert type(record.metrics.test_error) is float
    assert record.to_json(M)["metrics"]["test_error"] == 0.0
