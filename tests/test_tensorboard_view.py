"""TensorBoard as a researcher opens it: a finished small instability run and
a small IMP run under one logdir, served on 127.0.0.1 by TensorBoard itself
(its default loader), read back through its HTTP data API.

Checks that every custom-scalars chart has all its points (the values of
``results.json``), that the report's figures are images, and that the
hparams dashboard lists the session columns first.
"""

import json
import os
import re
import signal
import subprocess
import sys
import time
import urllib.parse
import urllib.request

import numpy as np
import pytest
import tensorflow as tf

from tests.conftest import parse_config, tiny_pipeline
from tests.test_report import COMMON, noisy_data
from tf_lottery import rundir
from tf_lottery.core import layout
from tf_lottery.experiments import imp
from tf_lottery.experiments import instability as analysis
from tf_lottery.summaries import dashboards

pytestmark = pytest.mark.slow

INSTABILITY = ("--experiment=instability", "--rewind_steps=0,6", "--replicates=2", *COMMON)
IMP = ("--experiment=imp", "--imp_levels=2", "--imp_baselines=random_prune,random_reinit",
       "--imp_baseline_levels=2", "--instability", "--imp_instability_levels=0,2", *COMMON)
PNG = b"\x89PNG\r\n\x1a\n"


def launch(flags, model_dir, experiment):
    c = parse_config(*flags, model_dir=str(model_dir))
    rundir.claim(c)
    return experiment(c, tf.distribute.get_strategy(), tiny_pipeline(c, noisy_data()))


class TensorBoard:
    """``tensorboard --logdir=...`` on 127.0.0.1, on a port the OS picks,
    stopped by its PID."""

    def __init__(self, logdir):
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "tensorboard.main", f"--logdir={logdir}",
             "--host=127.0.0.1", "--port=0", "--reload_interval=1"],
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        self.url = None
        for line in self.proc.stdout:
            found = re.search(r"(http://127\.0\.0\.1:\d+)/", line)
            if found:
                self.url = found.group(1)
                break
        assert self.url, "TensorBoard did not start"

    def get(self, route, **params):
        query = urllib.parse.urlencode(params)
        with urllib.request.urlopen(f"{self.url}/data/{route}?{query}", timeout=60) as r:
            body = r.read()
        return body if route.endswith("individualImage") else json.loads(body)

    def post(self, route, body):
        request = urllib.request.Request(f"{self.url}/data/{route}",
                                         data=json.dumps(body).encode(), method="POST",
                                         headers={"Content-Type": "application/json"})
        with urllib.request.urlopen(request, timeout=60) as r:
            return json.loads(r.read())

    def stop(self):
        os.kill(self.proc.pid, signal.SIGTERM)
        self.proc.wait(timeout=60)


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    root = tmp_path_factory.mktemp("tensorboard") / "runs"
    instability = launch(INSTABILITY, root / "instability", analysis.instability)
    imp_results = launch(IMP, root / "imp", imp.imp)
    board = TensorBoard(root)
    try:
        # The first load of the logdir: wait until both experiments' layouts are in.
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            titles = {c["title"] for c in board.get("plugin/custom_scalars/layout")
                      .get("category", [])}
            if {"instability", dashboards.IMP_CATEGORY} <= titles:
                break
            time.sleep(1)
        yield board, root, instability, imp_results
    finally:
        board.stop()


def expected_series(instability, imp_results):
    """(run, tag) -> {step: value} of every paper-level scalar, from results.json."""
    out = {}
    ks = [p.rewind_step for p in instability.rewind_steps]
    for split in ("test", "train"):
        out[("instability/summary", f"barrier/{split}")] = {
            p.rewind_step: p.barrier[split].mean for p in instability.rewind_steps}
        out[("instability/summary/independent", f"barrier/{split}")] = {
            k: instability.independent.barrier[split].mean for k in ks}
        for p in instability.rewind_steps:
            pairs = [pair for rep in p.replicates for pair in rep.pairs]
            mean = np.mean([pair.error[split] for pair in pairs], axis=0)
            out[("instability/summary", layout.mean_path_tag(p.rewind_step, split))] = {
                round(1000 * a): e for a, e in zip(pairs[0].alphas, mean, strict=True)}
        levels = imp_results.levels
        out[("imp/summary/imp", f"imp/{split}_accuracy")] = {
            lv.level: lv.accuracy(split) for lv in levels}
        out[("imp/summary/imp", f"imp_vs_pruned/{split}_accuracy")] = {
            layout.ppm_pruned(lv.density): lv.accuracy(split) for lv in levels}
        for name in ("random_prune", "random_reinit"):
            out[(f"imp/summary/{name}", f"imp/{split}_accuracy")] = {
                lv.level: lv.baselines[name].accuracy(split)
                for lv in levels if name in lv.baselines}
        out[("imp/summary/imp", f"imp/{split}_barrier")] = {
            lv.level: lv.instability.barrier[split].mean for lv in levels if lv.instability}
    out[("imp/summary", "imp/density")] = {lv.level: lv.density for lv in imp_results.levels}
    return out


def test_every_custom_scalars_chart_has_all_its_points(served):
    board, _, instability, imp_results = served
    runs = board.get("runs")
    expected = expected_series(instability, imp_results)
    assert {run for run, _ in expected} <= set(runs)
    seen = set()
    for category in board.get("plugin/custom_scalars/layout")["category"]:
        for chart in category["chart"]:
            matched = 0
            for regex in chart["multiline"]["tag"]:
                for run in runs:
                    body = board.get("plugin/custom_scalars/scalars", run=run, tag=regex)
                    assert body["regex_valid"], regex
                    for tag, events in body["tag_to_events"].items():
                        matched += 1
                        got = {step: value for _, step, value in events}
                        if (run, tag) in expected:
                            want = expected[(run, tag)]
                            assert sorted(got) == sorted(want), (chart["title"], run, tag)
                            np.testing.assert_allclose([got[s] for s in sorted(want)],
                                                       [want[s] for s in sorted(want)],
                                                       rtol=1e-6)
                            seen.add((run, tag))
            assert matched, f"chart {chart['title']!r} matches no series"
    assert seen == set(expected)


def test_the_reports_figures_are_images(served):
    board, *_ = served
    tags = board.get("plugin/images/tags")
    want = {"instability/summary": {"figures/instability", "figures/interpolation_k0",
                                    "figures/interpolation_k6", "figures/interpolation_all",
                                    "figures/interpolation_independent"},
            "imp/summary": {"figures/imp", "figures/instability", "figures/interpolation_k0"}}
    for run, names in want.items():
        assert names <= set(tags[run]), (run, sorted(tags[run]))
        for tag in names:
            images = board.get("plugin/images/images", run=run, tag=tag)
            steps = [i["step"] for i in images]
            assert steps == sorted(steps) and steps[-1] >= 1
            png = board.get("plugin/images/individualImage", **dict(
                urllib.parse.parse_qsl(images[-1]["query"])))
            assert png[:8] == PNG


def test_hparams_list_the_session_columns_first(served):
    board, *_ = served
    experiment = board.post("plugin/hparams/experiment", {"experimentName": ""})
    names = [h["name"] for h in experiment["hparamInfos"]]
    assert names[:len(dashboards.SESSION_FIELDS)] == sorted(dashboards.SESSION_FIELDS)
    assert all(h.get("differs") for h in experiment["hparamInfos"][:5])
    assert not any(h.get("differs") for h in experiment["hparamInfos"][5:])
    metrics = [m["name"]["tag"] for m in experiment["metricInfos"]]
    assert set(metrics) == set(dashboards.METRICS)
    groups = board.post("plugin/hparams/session_groups", {
        "experimentName": "", "allowedStatuses": ["STATUS_UNKNOWN"], "colParams": [],
        "startIndex": 0, "sliceSize": 100})
    names = {g["name"].split(" (recipe ")[0] for g in groups["sessionGroups"]}
    assert {"k=0", "k=6", "level 0 imp", "level 2 imp", "level 2 random_prune"} <= names


def test_summary_table_at_the_end_and_on_relaunch(served):
    """The table the CLI prints: the independent networks' row, no std for a
    single pair; printed again by a relaunch of the finished run."""
    from tf_lottery.reporting import console

    _, root, instability, imp_results = served
    text = console.summary(instability, str(root / "instability"))
    rows = {line.split()[0]: line for line in text.splitlines()[2:]}
    assert set(rows) == {"0", "6", "independent"}
    b = instability.independent.barrier["test"]
    assert b.n == 1 and f"{100 * b.mean:.2f}%" in rows["independent"]
    assert "±" not in rows["independent"]
    assert f"{100 * instability.rewind_steps[1].barrier['test'].std:.2f}%" in rows["6"]
    text = console.summary(imp_results, str(root / "imp"))
    header, *levels = text.splitlines()[1:]
    assert "random pruning" in header and "test barrier at k = 0" in header
    assert [line.split()[0] for line in levels] == ["0", "1", "2"]
    # IMP's sparse barrier and verdict, then each baseline's (level 2 has them).
    level = imp_results.levels[2]
    found = [level.instability, *(level.baselines[n].instability
                                  for n in ("random_prune", "random_reinit"))]
    assert "random reinitialization barrier" in header
    assert levels[2].split()[-6:] == [
        cell for record in found for cell in (f"{100 * record.barrier['test'].mean:.2f}%",
                                              "yes" if record.stable else "no")]

    again = subprocess.run(
        [sys.executable, "-m", "tests.mock_main", *INSTABILITY,
         f"--model_dir={root / 'instability'}"],
        cwd=os.path.dirname(os.path.dirname(os.path.abspath(__file__))),
        capture_output=True, text=True, timeout=600)
    assert again.returncode == 0, again.stderr[-2000:]
    assert "already complete" in again.stdout
    assert console.summary(instability, str(root / "instability")) in again.stdout
