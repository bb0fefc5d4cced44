"""The layout module: every name under a model_dir, paths in records, tags, docs."""

import pathlib
import re
import subprocess
import sys

import pytest

from tf_lottery.core import layout

ROOT = pathlib.Path(__file__).resolve().parents[1]
M = "/runs/lenet"


def test_names_are_zero_padded_so_that_they_sort():
    assert layout.rewind_checkpoint(M, 100) == "/runs/lenet/rewind/step_000000100/ckpt"
    assert layout.marker_file(layout.rewind_dir(M, 100)) == \
        "/runs/lenet/rewind/step_000000100.json"
    assert layout.final_checkpoint(M) == "/runs/lenet/final/ckpt"
    assert layout.marker_file(layout.final_dir(M)) == "/runs/lenet/final.json"
    point = layout.rewind_point_dir(M, 1, 2000)
    assert point == "/runs/lenet/replicate_1/k_000002000"
    assert layout.child_dir(point, 0) == point + "/child_0"
    assert layout.pair_file(point, 0, 1) == point + "/pair_0_1.json"
    assert layout.pair_events_dir(layout.pair_file(point, 0, 1)) == point + "/pair_0_1"
    assert layout.parent_dir(M, 0) == "/runs/lenet/replicate_0/parent"
    assert layout.rewind_point_file(M, 25) == "/runs/lenet/k_000000025.json"
    assert layout.independent_pair_file(M, 0, 2) == "/runs/lenet/independent/pair_0_2.json"
    assert layout.level_dir(M, 3) == "/runs/lenet/level_03"
    assert layout.baseline_dir(M, 3, "random_prune") == "/runs/lenet/level_03/random_prune"
    assert layout.mask_file(layout.level_dir(M, 3)) == "/runs/lenet/level_03/mask.npz"
    assert layout.sparse_instability_dir(M, 3) == "/runs/lenet/level_03/instability"
    assert layout.sparse_instability_file(M, 3) == "/runs/lenet/level_03/instability.json"
    assert layout.results_file(M) == "/runs/lenet/results.json"
    assert layout.config_file(M) == "/runs/lenet/config.json"
    assert layout.lease_file(M) == "/runs/lenet/lease.json"
    assert layout.resume_state_file(M) == "/runs/lenet/checkpoints/checkpoint"
    assert sorted([layout.k_name(k) for k in (100, 25, 2000)]) == [
        layout.k_name(k) for k in (25, 100, 2000)]


def test_names_are_read_back_from_paths():
    assert layout.rewind_step_of_marker(layout.marker_file(layout.rewind_dir(M, 42))) == 42
    with pytest.raises(ValueError):
        layout.rewind_step_of_marker("/runs/lenet/final.json")
    assert layout.resume_step("/runs/lenet/checkpoints/ckpt-40") == 40
    assert layout.resume_step("/runs/lenet/checkpoints/other") is None
    assert layout.run_relative_checkpoint(layout.rewind_checkpoint("/a/child_0", 7)) == \
        "rewind/step_000000007/ckpt"
    assert layout.run_relative_checkpoint("/a/child_0/final/ckpt") == "final/ckpt"
    assert layout.run_relative_checkpoint("/a/elsewhere/ckpt") is None
    assert layout.interpolation_figure_step(layout.interpolation_figure(2000)) == 2000
    assert layout.interpolation_figure_step(layout.IMP_FIGURE) is None


@pytest.mark.parametrize("root", ["/runs/lenet", "/runs/lenet/", "gs://bucket/lenet",
                                  "runs/lenet"])
def test_record_paths_are_relative_to_their_root_and_resolve_where_it_is_now(root):
    path = layout.child_dir(layout.rewind_point_dir(root, 0, 0), 1)
    stored = layout.relative(root, path)
    assert stored == "replicate_0/k_000000000/child_1"
    assert layout.resolve(root, stored) == path
    assert layout.resolve("/moved/here", stored) == "/moved/here/" + stored
    assert layout.relative(root, root) == "."
    assert layout.resolve("/moved/here", ".") == "/moved/here"


def test_paths_outside_the_root_and_release_0_1_absolute_paths():
    assert layout.relative("/runs/lenet", "/elsewhere/ckpt") == "/elsewhere/ckpt"
    assert layout.relative("/runs/lenet", "/runs/lenet2/ckpt") == "/runs/lenet2/ckpt"
    assert layout.resolve("/now", "/elsewhere/ckpt") == "/elsewhere/ckpt"
    # 0.1.0 recorded absolute paths under the model_dir it was launched with.
    assert layout.resolve("gs://b/now", "/old/run/level_02/x.json", "/old/run") == \
        "gs://b/now/level_02/x.json"
    assert layout.resolve("/now", "/old/run2/x.json", "/old/run") == "/old/run2/x.json"


def test_tags_and_the_charts_that_select_them():
    assert layout.path_tag(25, "test_error") == "interpolation/k_000000025/test_error"
    assert layout.path_tag(None, "alpha") == "interpolation/independent/alpha"
    assert layout.barrier_tag("test") == "barrier/test"
    assert layout.barrier_tag("train", std=True) == "barrier/train_std"
    assert layout.imp_tag("test_accuracy") == "imp/test_accuracy"
    assert layout.imp_tag("test_accuracy", "random_prune", vs_density=True) == \
        "imp_vs_density/random_prune/test_accuracy"
    assert layout.eval_tag("test", "accuracy") == "eval/test_accuracy"
    assert layout.session_metric("test", "barrier") == "session/test_barrier"
    # IMP: one summary run per branch, the same tags in each.
    assert layout.summary_run("/m", "random_prune") == "/m/summary/random_prune"
    assert layout.branch_tag("test_accuracy") == "imp/test_accuracy"
    assert layout.branch_tag("test_accuracy", vs_pruned=True) == "imp_vs_pruned/test_accuracy"
    assert [layout.ppm_pruned(d) for d in (1.0, 0.8, 0.64)] == [0, 200_000, 360_000]
    barriers = layout.tag_pattern(layout.branch_tag("{split}_barrier"))
    assert barriers == "^imp/(test|train)_barrier$"
    assert all(re.match(barriers, layout.branch_tag(f"{s}_barrier")) for s in layout.SPLITS)
    paths = layout.mean_path_pattern("test")
    assert re.match(paths, layout.mean_path_tag(0, "test"))
    assert re.match(paths, layout.mean_path_tag(None, "test"))
    assert not re.match(paths, layout.mean_path_tag(0, "train"))
    assert layout.figure_tag(layout.IMP_FIGURE) == "figures/imp"
    assert layout.session_group("0123456789ab", k=6) == "k=6 (recipe 01234567)"
    assert layout.session_group("0123456789ab", level=2, branch="imp") == \
        "level 2 imp (recipe 01234567)"
    assert layout.tag_pattern(layout.path_tag(0, "{split}_error")) == \
        "^interpolation/k_000000000/(test|train)_error$"
    assert re.match(layout.tag_pattern(layout.imp_layer_density_tag(""), prefix_only=True),
                    layout.imp_layer_density_tag("fc1/kernel"))


def test_completion_is_a_records_status():
    class Piece:
        def __init__(self, status):
            self.status = status

    assert layout.is_complete(Piece("complete"))
    assert not layout.is_complete(Piece("running"))
    assert not layout.is_complete(None)


@pytest.mark.parametrize("experiment", ["train", "instability", "imp", "imp_sweep", "onset"])
def test_docs_show_the_layout_this_module_writes(experiment):
    """docs/outputs.md holds ``layout.tree`` of each experiment verbatim
    (``python -m tf_lottery.core.layout`` prints them)."""
    docs = (ROOT / "docs" / "outputs.md").read_text()
    assert f"```\n{layout.tree(experiment)}\n```" in docs, layout.tree(experiment)


def test_layout_and_records_need_no_tensorflow():
    code = ("import sys; import tf_lottery.core.layout, tf_lottery.core.records; "
            "assert 'tensorflow' not in sys.modules, 'tensorflow imported'")
    done = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True,
                          text=True)
    assert done.returncode == 0, done.stderr
