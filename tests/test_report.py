"""The report: figures and tables from real (tiny) runs, partial runs, event files."""

import contextlib
import csv
import itertools
import json
import os
import shutil
import struct
import subprocess
import sys
from unittest import mock

import numpy as np
import pytest
import tensorflow as tf
from tensorboard.backend.event_processing import event_accumulator
from tensorboard.plugins.custom_scalar import layout_pb2
from tensorboard.plugins.hparams import metadata as hparams_metadata

from tests.conftest import parse_config, tiny_data, tiny_pipeline
from tf_lottery import report, rundir
from tf_lottery.core import layout
from tf_lottery.data.sources import InMemoryData
from tf_lottery.errors import ConfigError
from tf_lottery.experiments import imp
from tf_lottery.experiments import instability as analysis
from tf_lottery.reporting import collect, figures
from tf_lottery.training.trainer import Trainer

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
COMMON = ("--train_steps=12", "--batch_size=20", "--eval_batch_size=50",
          "--train_eval_examples=100", "--steps_per_loop=6", "--checkpoint_every=6",
          "--log_every=6", "--eval_every=12", "--interpolation_points=5",
          "--learning_rate=0.01")  # children at k=0 then differ: barriers well above 0
INSTABILITY = ("--experiment=instability", "--rewind_steps=0,6", *COMMON)
IMP = ("--experiment=imp", "--imp_levels=2", "--imp_baselines=random_prune,random_reinit",
       "--imp_baseline_levels=2", "--instability", "--imp_instability_levels=2", *COMMON)
PNG = b"\x89PNG\r\n\x1a\n"


def noisy_data() -> InMemoryData:
    """tiny_data with a quarter of the labels replaced: errors stay well above 0."""
    d = tiny_data()
    rng = np.random.default_rng(7)

    def noisy(labels):
        return np.where(rng.random(labels.shape) < 0.25,
                        rng.integers(0, 10, labels.shape), labels).astype(labels.dtype)

    return InMemoryData(d.train_images, noisy(d.train_labels), d.test_images,
                        noisy(d.test_labels))


class Interrupted(Exception):
    pass


@contextlib.contextmanager
def interrupted_at_train_call(n):
    """Kills the experiment when it starts its n-th training run (like a preemption
    between two runs: everything finished before stays on disk)."""
    original, calls = Trainer.train, itertools.count(1)

    def train(self, spec, *args, **kwargs):
        if next(calls) == n:
            raise Interrupted(spec.run_dir)
        return original(self, spec, *args, **kwargs)

    with mock.patch.object(Trainer, "train", train), pytest.raises(Interrupted):
        yield


def launch(flags, model_dir, experiment):
    c = parse_config(*flags, model_dir=str(model_dir))
    rundir.claim(c)
    return experiment(c, tf.distribute.get_strategy(), tiny_pipeline(c, noisy_data()))


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """An instability run and an IMP run under one folder, each first killed
    part-way (report taken then), then resumed to completion."""
    root = tmp_path_factory.mktemp("report") / "runs"
    # Parent, two children at k=0, then the kill before k=6's first child.
    with interrupted_at_train_call(4):
        launch(INSTABILITY, root / "instability", analysis.instability)
    # Levels 0 and 1, then the kill before level 2.
    with interrupted_at_train_call(3):
        launch(IMP, root / "imp", imp.imp)
    partial = report.build(str(root))
    instability = launch(INSTABILITY, root / "instability", analysis.instability)
    imp_results = launch(IMP, root / "imp", imp.imp)
    return root, partial, instability, imp_results


def pct(x):
    return f"{100 * x:.2f}%"


def md_row(text, first_cell):
    rows = [line for line in text.splitlines() if line.startswith(f"| {first_cell} |")]
    assert rows, f"no table row starting with {first_cell!r}"
    return [c.strip() for c in rows[0].strip("|").split("|")]


def png_size(path):
    with open(path, "rb") as f:
        head = f.read(24)
    assert head[:8] == PNG and head[12:16] == b"IHDR"
    return struct.unpack(">II", head[16:24])


def legend(where):
    """The legend texts of an axes, or of a figure's own legend (below its panels)."""
    box = where.legends[0] if hasattr(where, "legends") and where.legends else where.get_legend()
    return [t.get_text() for t in box.get_texts()]


def assert_legends_clear_of_data(fig):
    """No legend overlaps an axes' plotting area (legends sit outside the
    data), and every legend lies inside the canvas (none is cut off)."""
    fig.canvas.draw()
    boxes = [*fig.legends, *(ax.get_legend() for ax in fig.axes if ax.get_legend())]
    assert boxes
    canvas = fig.bbox
    for box in boxes:
        extent = box.get_window_extent()
        assert (extent.x0 >= canvas.x0 and extent.x1 <= canvas.x1
                and extent.y0 >= canvas.y0 and extent.y1 <= canvas.y1), (
            legend(box.axes or fig), extent, canvas)
        for ax in fig.axes:
            area = ax.get_window_extent()
            overlap = (min(extent.x1, area.x1) - max(extent.x0, area.x0),
                       min(extent.y1, area.y1) - max(extent.y0, area.y0))
            assert min(overlap) <= 0, (legend(box.axes or fig), ax.get_title())


def test_cli_report_of_finished_runs_has_every_figure_and_the_summaries_numbers(
        runs, tmp_path):
    root, _, instability, imp_results = runs
    out = tmp_path / "report"
    proc = subprocess.run(
        [sys.executable, "-m", "tf_lottery.report", f"--model_dir={root}", f"--out={out}"],
        cwd=REPO, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "2 experiment(s)" in proc.stdout and "missing" not in proc.stdout
    expected = {"instability.png", "interpolation_k0.png", "interpolation_k6.png", "imp.png",
                "interpolation_all.png", "report.md", "report.json", "instability.csv",
                "imp.csv", "stable_and_matching.csv", "paths.csv"}
    assert set(os.listdir(out)) == expected
    for name in (n for n in expected if n.endswith(".png")):
        width, height = png_size(out / name)
        assert 500 <= width <= 2000 and 400 <= height <= 1000, (name, width, height)

    text = (out / "report.md").read_text()
    dense_text, imp_text = text.split("## IMP with rewinding")
    tables = json.loads((out / "report.json").read_text())
    # k -> barrier (train, test) -> stable, exactly as in the instability summary.
    records = instability.rewind_steps
    rows = tables["instability"][0]["rows"]
    assert [r["k"] for r in rows] == [0, 6]
    for row, record in zip(rows, records, strict=True):
        for split in ("test", "train"):
            assert row["barrier"][split] == {key: getattr(record.barrier[split], key)
                                             for key in ("mean", "std", "n")}
        assert row["stable"] == record.stable
        children = [c.metrics.test_accuracy for c in record.replicates[0].children]
        assert row["children_accuracy"]["mean"] == pytest.approx(np.mean(children), abs=1e-12)
        cells = md_row(dense_text, record.rewind_step)
        assert cells[1:4] == [pct(record.barrier["test"].mean),
                              pct(record.barrier["train"].mean),
                              "yes" if record.stable else "no"]
        # The loss barrier beside it, as the run recorded it.
        assert record.loss_barrier is not None
        for split in ("test", "train"):
            assert row["loss_barrier"][split] == {
                key: getattr(record.loss_barrier[split], key) for key in ("mean", "std", "n")}
        assert cells[5:7] == [f"{record.loss_barrier[s].mean:.4f}" for s in ("test", "train")]
    assert any(r.barrier["test"].mean > 0 for r in records)  # measured, not zeros

    # level -> density -> accuracy, baselines and sparse barrier as in the IMP summary.
    levels = imp_results.levels
    imp_rows = tables["imp"][0]["rows"]
    assert [r["level"] for r in imp_rows] == [0, 1, 2]
    for row, level in zip(imp_rows, levels, strict=True):
        assert row["density"] == level.density
        assert row["test_accuracy"]["mean"] == level.test_accuracy
        assert row["train_accuracy"]["mean"] == level.train_accuracy
        for name, b in level.baselines.items():
            assert row["baselines"][name]["mean"] == b.test_accuracy
        cells = md_row(imp_text, level.level)
        assert cells[1:4] == [pct(level.density), pct(level.test_accuracy),
                              pct(level.train_accuracy)]
    sparse = levels[2].instability.barrier
    assert imp_rows[2]["barrier"] == {s: {k: getattr(sparse[s], k) for k in ("mean", "std", "n")}
                                      for s in ("test", "train")}
    # IMP's barriers and verdict, then each baseline's test, train barrier and verdict.
    assert md_row(imp_text, 2)[-9:-7] == [pct(sparse["test"].mean), pct(sparse["train"].mean)]
    for i, name in enumerate(("random_prune", "random_reinit")):
        found = levels[2].baselines[name].instability
        assert md_row(imp_text, 2)[-6 + 3 * i:][:3] == [
            pct(found.barrier["test"].mean), pct(found.barrier["train"].mean),
            "yes" if found.stable else "no"]
    dense = levels[0].test_accuracy
    assert [r["matching"] for r in imp_rows] == [
        r.test_accuracy >= dense - 0.005 for r in levels]
    family = tables["stable_and_matching"][0]
    assert family["level"] == 2 and [r["k"] for r in family["rows"]] == [0]
    assert "## Missing" in text and "Nothing: every experiment is complete." in text

    # The CSVs hold the same numbers as report.json, unrounded.
    with open(out / "instability.csv") as f:
        dense = list(csv.DictReader(f))
    assert [int(r["k"]) for r in dense] == [0, 6]
    for row, record in zip(dense, records, strict=True):
        assert float(row["test_barrier_mean"]) == record.barrier["test"].mean
        assert row["stable"] == str(record.stable)
    with open(out / "imp.csv") as f:
        imp_csv = list(csv.DictReader(f))
    assert [float(r["test_accuracy_mean"]) for r in imp_csv] == [
        lv.test_accuracy for lv in levels]
    assert float(imp_csv[2]["random_prune_test_accuracy_mean"]) == \
        levels[2].baselines["random_prune"].test_accuracy
    assert float(imp_csv[2]["test_barrier_mean"]) == sparse["test"].mean
    with open(out / "paths.csv") as f:
        paths = list(csv.DictReader(f))
    pair = records[0].replicates[0].pairs[0]
    k0 = [r for r in paths if r["network"] == "dense" and r["k"] == "0"
          and r["split"] == "test"]
    assert [float(r["error_mean"]) for r in k0] == pair.error["test"]


def test_figures_have_the_expected_series(runs):
    root, *_ = runs
    built = report.build(str(root))
    assert set(built.figures) == {"instability.png", "interpolation_k0.png",
                                  "interpolation_k6.png", "interpolation_all.png", "imp.png"}
    for fig in built.figures.values():
        assert_legends_clear_of_data(fig)
    density = 100 * built.imp[0].rows[2].density
    fig = built.figures["instability.png"]
    test, train = fig.axes
    assert legend(fig) == ["dense", f"IMP subnetwork, {density:.3g}% weights (level 2)",
                           "stability threshold (2%)"]
    for ax, split in ((test, "test"), (train, "train")):
        dense, sparse = ax.get_lines()[:2]
        assert list(dense.get_xdata()) == [0, 6] and list(sparse.get_xdata()) == [0]
        assert ax.get_xscale() == "symlog"
        assert ax.get_xlabel().startswith("rewind step k")
        assert ax.get_ylabel() == f"{split} error barrier (%)"
    np.testing.assert_allclose(
        test.get_lines()[0].get_ydata(), [100 * r.barrier["test"].mean
                                          for r in built.instability[0].rows])

    fig = built.figures["interpolation_k0.png"]
    (ax,) = fig.axes
    assert legend(fig) == ["test error, dense (n=1)", "train error, dense (n=1)",
                           f"test error, IMP level 2, {density:.3g}% weights (n=1)",
                           f"train error, IMP level 2, {density:.3g}% weights (n=1)"]
    assert all(len(line.get_xdata()) == 5 for line in ax.get_lines())
    assert (ax.get_xlabel(), ax.get_ylabel()) == ("interpolation α", "error (%)")
    pair = built.instability[0].paths[0][0]
    np.testing.assert_allclose(ax.get_lines()[0].get_ydata(),
                               [100 * e for e in pair.error["test"]])
    (ax6,) = built.figures["interpolation_k6.png"].axes
    assert len(legend(built.figures["interpolation_k6.png"])) == 2
    for each in (ax, ax6):  # each k on its own scale: 0 to its own top (n = 1, no band)
        top = max(max(line.get_ydata()) for line in each.get_lines())
        assert each.get_ylim() == pytest.approx((0.0, 1.05 * top))

    # Every k's mean path on one shared y axis, a panel per split.
    fig = built.figures["interpolation_all.png"]
    test, train = fig.axes
    assert test.get_ylim() == train.get_ylim()
    assert legend(fig) == ["k = 0, dense (n=1)",
                           f"k = 0, IMP level 2, {density:.3g}% weights (n=1)",
                           "k = 6, dense (n=1)"]
    assert [line.get_label() for line in train.get_lines()] == legend(fig)
    top = test.get_ylim()[1]
    for line in (*test.get_lines(), *train.get_lines()):
        assert max(line.get_ydata()) <= top

    fig = built.figures["imp.png"]
    ax, barrier_ax = fig.axes
    # One legend below both panels (no blank column between them).
    assert legend(fig) == [
        "IMP, rewind to k = 0", "random pruning", "random reinitialization",
        "dense (level 0)", "matching (within τ = 0.5 percentage points of dense)",
        "IMP test barrier at k = 0", "IMP train barrier at k = 0",
        "random pruning test barrier", "random reinitialization test barrier",
        "stability threshold (2%)"]
    assert [t.get_text() for t in ax.get_xticklabels()] == [
        f"{100 * r.density:.1f}" for r in built.imp[0].rows]
    imp_line, prune, reinit = ax.get_lines()[:3]
    assert list(imp_line.get_xdata()) == [100 * r.density for r in built.imp[0].rows]
    assert list(prune.get_xdata()) == list(reinit.get_xdata()) == [density]
    assert ax.get_xscale() == "log" and ax.get_xlim()[0] > ax.get_xlim()[1]  # dense left
    dense = built.imp[0].dense.mean
    (band,) = [p for p in ax.patches if p.get_label().startswith("matching")]
    assert band.get_y() == pytest.approx(100 * (dense - 0.005))
    assert band.get_y() + band.get_height() == pytest.approx(100 * dense)
    assert barrier_ax.get_ylabel() == "error barrier (%)"
    # One series per branch: IMP's test and train barrier, each baseline's test barrier.
    assert [line.get_label() for line in barrier_ax.get_lines()] == [
        "IMP test barrier at k = 0", "IMP train barrier at k = 0",
        "random pruning test barrier", "random reinitialization test barrier",
        "stability threshold (2%)"]
    assert list(barrier_ax.get_lines()[4].get_ydata()) == [2.0, 2.0]
    assert all(list(line.get_xdata()) == [density] for line in barrier_ax.get_lines()[:4])
    row = built.imp[0].rows[2]
    for name, line in zip(("random_prune", "random_reinit"), barrier_ax.get_lines()[2:4],
                          strict=True):
        assert list(line.get_ydata()) == [100 * row.baseline_barriers[name]["test"].mean]


def test_independent_barrier_off_scale_keeps_the_dense_curve_readable():
    """An independent-networks barrier far above the dense curve is named in
    the legend with its value, not drawn: the dense 0-2 % range stays readable."""
    dense = figures.Series("dense", [0, 100, 500], [0.009, 0.004, 0.001], [0.002, 0.001, 0.0])
    near = figures.Reference("near", 0.015, linestyle=":")
    far = figures.Reference("independent networks", 0.257, 0.01, linestyle=":")
    fig = figures.instability({"test": [dense]}, 0.02, {"test": [near, far]})
    (ax,) = fig.axes
    assert ax.get_ylim()[1] < 5  # percent: the curve spans the axis, not 0.4 % of it
    assert legend(fig) == ["dense", "stability threshold (2%)", "near",
                           "independent networks: 25.70% ± 1.00% (off scale)"]
    drawn = [line.get_ydata()[0] for line in ax.get_lines() if line.get_label() == "near"]
    assert drawn == [1.5]
    assert_legends_clear_of_data(fig)


def test_partly_finished_runs_plot_what_exists_and_name_what_is_missing(runs):
    _, partial, *_ = runs
    assert set(partial.figures) == {"instability.png", "interpolation_k0.png", "imp.png"}
    names = {e.name: e for e in partial.experiments}
    assert not names["instability"].complete and not names["imp"].complete
    missing = "\n".join(partial.missing)
    assert "instability: k=6 is not finished (0 of 1 pairs evaluated)" in missing
    assert "imp: level(s) 2 not trained" in missing
    assert "instability: results.json does not say complete" in missing
    assert "## Missing" in partial.markdown and "k=6 is not finished" in partial.markdown
    assert [r.k for r in partial.instability[0].rows] == [0]
    assert [r.level for r in partial.imp[0].rows] == [0, 1]
    # The instability figure holds the dense point at k=0 only: no IMP level 2 yet.
    assert legend(partial.figures["instability.png"]) == ["dense", "stability threshold (2%)"]


def copy_summaries(src, dst, drop):
    """The run's JSON and event files (no checkpoints), minus names in ``drop``."""
    shutil.copytree(src, dst, ignore=lambda d, names: [
        n for n in names if n in ("checkpoints", "rewind", "final") or n.endswith(".npz")
        or n in drop or (n.startswith("pair_") and n.endswith(".json") and "pair" in drop)
        or (n.startswith("k_") and n.endswith(".json") and "k" in drop)])


def test_missing_summaries_are_read_back_from_event_files(runs, tmp_path):
    root, _, instability, imp_results = runs
    copy_summaries(root / "instability", tmp_path / "runs" / "instability",
                   {"results.json", "k", "pair"})
    copy_summaries(root / "imp", tmp_path / "runs" / "imp", {"results.json"})
    built = report.build(str(tmp_path / "runs"))
    f32 = np.float32

    section = built.instability[0]
    for row, record in zip(section.rows, instability.rewind_steps, strict=True):
        assert row.source == "event files"
        for split in ("test", "train"):
            assert f32(row.barrier[split].mean) == f32(record.barrier[split].mean)
            assert f32(row.barrier[split].std) == f32(record.barrier[split].std)
        (path,) = section.paths[row.k]  # from the pair's own event files
        pair = record.replicates[0].pairs[0]
        np.testing.assert_array_equal(f32(path.error["test"]), f32(pair.error["test"]))
        np.testing.assert_array_equal(f32(path.alphas), f32(pair.alphas))

    imp_rows = built.imp[0].rows
    for row, level in zip(imp_rows, imp_results.levels, strict=True):
        assert row.source == "event files"
        assert f32(row.density) == f32(level.density)
        assert f32(row.test_accuracy.mean) == f32(level.test_accuracy)
        for name, b in level.baselines.items():
            assert f32(row.baselines[name].mean) == f32(b.test_accuracy)
    sparse = imp_results.levels[2].instability.barrier["test"].mean
    assert f32(imp_rows[2].barrier["test"].mean) == f32(sparse)
    assert set(built.figures) >= {"instability.png", "imp.png", "interpolation_k0.png"}


def test_a_model_dir_on_another_filesystem_goes_through_gfile(runs):
    """ram:// stands in for gs://: nothing may use local-only file APIs, and
    paths recorded in the summaries are re-rooted to where the runs now are."""
    root, *_ = runs
    target = "ram://report_test/runs"
    for directory, _, names in tf.io.gfile.walk(str(root)):
        if "checkpoints" in directory or "/rewind" in directory or "/final" in directory:
            continue
        here = target + directory[len(str(root)):]
        tf.io.gfile.makedirs(here)
        for name in names:
            tf.io.gfile.copy(os.path.join(directory, name), f"{here}/{name}", overwrite=True)
    built = report.build(target)
    assert built.tables["instability"] == report.build(str(root)).tables["instability"]
    written = report.write(built, "ram://report_test/out")
    assert set(tf.io.gfile.listdir("ram://report_test/out")) == {
        os.path.basename(p) for p in written}
    with tf.io.gfile.GFile("ram://report_test/out/imp.png", "rb") as f:
        assert f.read(8) == PNG
    assert layout.resolve(target, "/old/run/level_02/x.json", "/old/run") == \
        target + "/level_02/x.json"


def test_several_model_dirs_given_by_commas(runs, tmp_path):
    root, *_ = runs
    built = report.build(f"{root / 'instability'},{root / 'imp'}")
    assert [e.name for e in built.experiments] == ["instability", "imp"]
    assert built.tables["instability"] == report.build(str(root)).tables["instability"]
    proc = subprocess.run(
        [sys.executable, "-m", "tf_lottery.report",
         f"--model_dir={root / 'instability'},{root / 'imp'}"],
        cwd=REPO, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 2 and "--out is required" in proc.stderr
    with pytest.raises(ConfigError, match="not a directory"):
        report.build(f"{root / 'imp'},{tmp_path / 'absent'}")


def test_an_empty_or_absent_model_dir_is_a_one_line_error(tmp_path):
    with pytest.raises(ConfigError, match="not a directory"):
        report.build(str(tmp_path / "absent"))
    with pytest.raises(ConfigError, match="holds no experiment"):
        report.build(str(tmp_path))


def test_tensorboard_sessions_and_layouts_read_like_the_paper(runs):
    root, _, instability, imp_results = runs

    def read(run_dir):
        acc = event_accumulator.EventAccumulator(
            str(run_dir), size_guidance={event_accumulator.TENSORS: 0})
        acc.Reload()
        return acc

    def session(run_dir):
        acc = read(run_dir)
        info = hparams_metadata.parse_session_start_info_plugin_data(
            acc.PluginTagToContent("hparams")[hparams_metadata.SESSION_START_INFO_TAG])
        hparams = {k: getattr(v, v.WhichOneof("kind")) for k, v in info.hparams.items()}
        metrics = {t: float(tf.make_ndarray(acc.Tensors(t)[-1].tensor_proto))
                   for t in acc.Tags()["tensors"] if t.startswith("session/")}
        return info.group_name, hparams, metrics

    group, hparams, metrics = session(root / "instability" / "replicate_0" / "k_000000006")
    record = instability.rewind_steps[1]
    assert group.startswith("k=6 (recipe ") and hparams["session.rewind_step"] == 6
    assert hparams["session.experiment"] == "instability"
    assert hparams["session.branch"] == "dense" and hparams["model.name"] == "lenet_300_100"
    assert metrics["session/test_barrier_pct"] == np.float32(100 * record.barrier["test"].mean)

    level = imp_results.levels[2]
    for branch, run_dir in (("imp", level.run_dir),
                            ("random_prune", level.baselines["random_prune"].run_dir)):
        group, hparams, metrics = session(run_dir)
        assert group.startswith(f"level 2 {branch} (recipe ") and hparams["session.level"] == 2
        assert hparams["session.density"] == pytest.approx(level.density)
        network = level if branch == "imp" else level.baselines[branch]
        assert metrics["session/test_accuracy_pct"] == np.float32(100 * network.test_accuracy)
        # Each branch's row holds its own sparse barrier (--instability at level 2).
        assert metrics.keys() == {"session/test_accuracy_pct", "session/train_accuracy_pct",
                                  "session/test_barrier_pct", "session/train_barrier_pct"}
        assert metrics["session/test_barrier_pct"] == np.float32(
            100 * network.instability.barrier["test"].mean)

    for model_dir, category in ((root / "imp", "IMP with rewinding (%)"),
                                (root / "instability", "instability (%)")):
        acc = read(model_dir / "summary")
        layout = layout_pb2.Layout()
        layout.ParseFromString(tf.make_ndarray(
            acc.Tensors("custom_scalars__config__")[0].tensor_proto).item())
        assert category in [c.title for c in layout.category]
        assert hparams_metadata.EXPERIMENT_TAG in acc.PluginTagToContent("hparams")


def test_an_experiment_given_as_the_model_dir_goes_by_its_folders_name(runs):
    root, *_ = runs
    built = report.build(str(root / "instability"))
    assert [e.name for e in built.experiments] == ["instability"]
    assert "- `instability`:" in built.markdown and "`.`" not in built.markdown


def test_figure_details_a_reader_sees():
    # One tick format along the density axis: "41.0" beside "51.2", never "41".
    assert figures.density_labels([100.0, 51.2, 41.0, 3.52, 0.0536]) == [
        "100.0", "51.2", "41.0", "3.5", "0.054"]
    # A ± std band never goes below 0 % (a barrier, an error is never negative).
    fig = figures.instability({"test": [figures.Series("dense", [0, 6], [0.001, 0.01],
                                                       [0.02, 0.0])]}, 0.02)
    (band,) = fig.axes[0].collections
    assert band.get_paths()[0].vertices[:, 1].min() == 0.0
    # The independent networks' path (four times higher) gets a panel of its own scale.
    per_k = [figures.Series("k = 0", [0.0, 0.5, 1.0], [0.10, 0.11, 0.10], marker=None)]
    independent = [figures.Series("independent", [0.0, 0.5, 1.0], [0.10, 0.45, 0.10],
                                  marker=None)]
    fig = figures.paths_overlay({"test": per_k, "train": per_k}, independent)
    test, train, alone = fig.axes
    assert test.get_ylim() == train.get_ylim() == pytest.approx((0.0, 1.05 * 11))
    assert alone.get_ylim() == pytest.approx((0.0, 1.05 * 45))
    assert_legends_clear_of_data(fig)


def test_level_lists_and_png_writer(tmp_path):
    assert collect.level_list([5, 1, 2, 3, 9, 10]) == "1-3, 5, 9-10"
    fig = figures.interpolation("t", [figures.Series("a", [0, 1], [0.1, 0.2], [0.01, 0.02])])
    figures.save(fig, str(tmp_path / "a.png"))
    assert png_size(tmp_path / "a.png") == (720, 528)
