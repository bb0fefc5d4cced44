"""TensorBoard as a researcher opens it: a finished small instability run and
a small IMP run under one logdir, served on 127.0.0.1 by TensorBoard itself
(its default loader), read back through its HTTP data API and looked at in
headless Chromium (``tests/webdriver.py``) at 1600 px.

Checks that every custom-scalars chart has all its points (the values of
``results.json``), that the report's figures are images, and that the
hparams dashboard lists the session columns first; in the browser, with
default settings apart from docs/report.md's address (run filter
``summary``, smoothing 0), that
every paper chart draws its series, each in a colour of its own, within its
y range (outlier clipping left on), the threshold beside every barrier.

Screenshots of Custom Scalars, Images and HParams are kept in
``$TF_LOTTERY_SCREENSHOTS`` when set, else in the test's own temporary
folder (``<basetemp>/screenshots0``); the test prints where. The browser
tests skip, with the reason, only where chromium or chromedriver is absent
(``make test`` installs both).
"""

import json
import os
import pathlib
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
from tf_lottery.summaries import dashboards, paper

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
            if {paper.INSTABILITY_CATEGORY, dashboards.IMP_CATEGORY} <= titles:
                break
            time.sleep(1)
        yield board, root, instability, imp_results
    finally:
        board.stop()


def expected_series(instability, imp_results):
    """(run, tag) -> {step: value} of every paper-level scalar, from
    results.json: the paper's charts in percent (``summaries/paper.py``)."""
    out = {}
    ks = [p.rewind_step for p in instability.rewind_steps]
    for split in ("test", "train"):
        out[("instability/summary/dense", f"paper/{split}_barrier_pct")] = {
            p.rewind_step: 100 * p.barrier[split].mean for p in instability.rewind_steps}
        out[("instability/summary/threshold", f"paper/{split}_barrier_pct")] = {
            k: 100 * instability.settings.stability_threshold for k in (ks[0], ks[-1])}
        out[("instability/summary/independent", f"paper/independent_{split}_barrier_pct")] = {
            k: 100 * instability.independent.barrier[split].mean for k in (ks[0], ks[-1])}
        for p in instability.rewind_steps:
            pairs = [pair for rep in p.replicates for pair in rep.pairs]
            mean = np.mean([pair.error[split] for pair in pairs], axis=0)
            out[(f"instability/summary/{layout.k_name(p.rewind_step)}",
                 f"paper/path_{split}_error_pct")] = {
                round(1000 * a): 100 * e for a, e in zip(pairs[0].alphas, mean, strict=True)}
        levels = imp_results.levels
        out[("imp/summary/imp", f"imp/{split}_accuracy_pct")] = {
            lv.level: 100 * lv.accuracy(split) for lv in levels}
        out[("imp/summary/imp", f"imp_vs_pruned/{split}_accuracy_pct")] = {
            layout.ppm_pruned(lv.density): 100 * lv.accuracy(split) for lv in levels}
        dense = levels[0].accuracy(split)
        for run, value in (("dense_reference", dense), ("matching", dense - 0.005)):
            out[(f"imp/summary/{run}", f"imp/{split}_accuracy_pct")] = {
                level: 100 * value for level in (0, levels[-1].level)}
        for name in ("random_prune", "random_reinit"):
            out[(f"imp/summary/{name}", f"imp/{split}_accuracy_pct")] = {
                lv.level: 100 * lv.baselines[name].accuracy(split)
                for lv in levels if name in lv.baselines}
        out[("imp/summary/imp", f"imp/{split}_barrier_pct")] = {
            lv.level: 100 * lv.instability.barrier[split].mean for lv in levels
            if lv.instability}
        out[("imp/summary/threshold", f"imp/{split}_barrier_pct")] = {
            lv.level: 100 * instability.settings.stability_threshold for lv in levels
            if lv.instability}
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


# -- in the browser ------------------------------------------------------------------------

# Every custom-scalars card: its title, its y range, and each series as the
# chart draws it (run and tag, colour, y values). Cards load their data once
# scrolled into view, so each is scrolled to in turn (``arguments[0]``: its index).
CARDS_JS = """
const found = [];
const walk = (node) => {
  for (const el of node.querySelectorAll('*')) {
    if (el.tagName === arguments[1]) found.push(el);
    if (el.shadowRoot) walk(el.shadowRoot);
  }
};
walk(document);
if (arguments[0] >= 0) { found[arguments[0]].scrollIntoView(); }
return found.map((card) => {
  const charts = [];
  const inner = (node) => {
    for (const el of node.querySelectorAll('*')) {
      if (el.tagName === 'VZ-LINE-CHART2') charts.push(el);
      if (el.shadowRoot) inner(el.shadowRoot);
    }
  };
  inner(card.shadowRoot || card);
  const chart = charts.length ? charts[0]._chart : null;
  return {title: card.title, domain: chart ? chart.yScale.domain() : null,
          series: chart ? chart.datasets.map((d) => ({
            name: d.metadata().name, color: chart.colorScale.scale(d.metadata().name),
            ys: d.data().map((p) => p.scalar)})) : []};
});
"""
# Text and loaded images anywhere in the page (shadow roots included).
PAGE_JS = """
const texts = [], images = [];
const walk = (node) => {
  for (const el of node.querySelectorAll('*')) {
    if (el.tagName === 'IMG' && el.complete && el.naturalWidth > 0) images.push(el.src);
    if (el.shadowRoot) walk(el.shadowRoot);
  }
  for (const t of node.querySelectorAll('*')) {
    if (t.childElementCount === 0 && t.textContent.trim()) texts.push(t.textContent.trim());
  }
};
walk(document);
return {texts, images};
"""
CARD = "TF-CUSTOM-SCALAR-MULTI-LINE-CHART-CARD"
# docs/report.md's address of the paper's charts: the summary runs, no smoothing
# (smoothed curves set the y range, so a smoothed few-point curve hides its raw points).
DOCUMENTED = "/#custom_scalars&regexInput=summary&_smoothingWeight=0"


@pytest.fixture(scope="module")
def browser():
    from tests import webdriver

    reason = webdriver.missing()
    if reason:
        pytest.skip(reason)
    session = webdriver.Browser(1600, 1200)
    try:
        yield session
    finally:
        session.close()


@pytest.fixture(scope="module")
def screenshots(tmp_path_factory):
    where = os.environ.get("TF_LOTTERY_SCREENSHOTS")
    folder = pathlib.Path(where) if where else tmp_path_factory.mktemp("screenshots")
    folder.mkdir(parents=True, exist_ok=True)
    print(f"\nTensorBoard screenshots: {folder}")
    return folder


def custom_scalars_cards(browser, url):
    """Every card of the Custom Scalars tab once its series have loaded."""
    browser.open(url + DOCUMENTED)
    count = len(browser.wait_for(f"return (function() {{{CARDS_JS}}}).apply(null, [-1, "
                                 f"'{CARD}']).filter(c => c.series.length);", timeout=120))
    assert count, "Custom Scalars shows no chart with data"
    cards = []
    total = len(browser.run(CARDS_JS, -1, CARD))
    for i in range(total):
        # A card has loaded when its series stop changing (two equal reads).
        last = None
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            card = browser.run(CARDS_JS, i, CARD)[i]
            if card["series"] and card == last:
                break
            last = card
            time.sleep(0.5)
        cards.append(card)
    return cards


def run_of(series):
    """The run of a drawn series (``tag (run)``)."""
    return series["name"].rsplit(" (", 1)[1].rstrip(")")


def originals(card):
    """A card's series but the copies drawn over them (``paper.COPY``)."""
    return [s for s in card["series"]
            if not s["name"].rsplit(" (", 1)[0].endswith(paper.COPY)]


def test_the_paper_charts_in_chromium(served, browser, screenshots):
    board, _, instability, _ = served
    cards = custom_scalars_cards(browser, board.url)
    # The paper's central chart and IMP's first one, each at the top of the window.
    titles = [c["title"] for c in cards]
    for name, prefix in (("custom_scalars.png", "test error barrier (%) vs rewind step k"),
                         ("custom_scalars_imp.png", "test accuracy (%) vs level")):
        browser.run(CARDS_JS, next(i for i, t in enumerate(titles) if t.startswith(prefix)),
                    CARD)
        time.sleep(2)
        browser.screenshot(str(screenshots / name))
    paper_cards = [c for c in cards if "(%)" in c["title"]]
    assert len(paper_cards) >= 10, [c["title"] for c in cards]
    for card in paper_cards:
        assert card["series"], f"{card['title']!r} is empty"
        shown = originals(card)
        colours = [s["color"] for s in shown]
        assert len(set(colours)) == len(colours), (card["title"], shown)
        assert len({run_of(s) for s in shown}) == len(shown)
        if "along the" not in card["title"]:  # few-point charts: no point clipped
            low, high = card["domain"]
            for s in card["series"]:
                assert all(low <= y <= high for y in s["ys"]), (card["title"], s, low, high)
        if "barrier (%)" in card["title"] and "std" not in card["title"]:
            threshold = [s for s in card["series"] if run_of(s).endswith("/threshold")]
            assert threshold and set(threshold[0]["ys"]) == {2.0}, card["title"]

    # The paper's central chart: the dense barrier and the 2 % line, in %;
    # the independent networks' barrier on a chart of its own.
    (central,) = [c for c in cards if c["title"].startswith("test error barrier (%) vs "
                                                             "rewind step k")]
    runs = {run_of(s): s["ys"] for s in originals(central)}
    assert set(runs) == {"instability/summary/dense", "instability/summary/threshold"}
    np.testing.assert_allclose(
        sorted(set(runs["instability/summary/dense"])),
        sorted(100 * p.barrier["test"].mean for p in instability.rewind_steps), rtol=1e-6)
    (alone,) = [c for c in cards if c["title"].startswith("test error barrier (%) of "
                                                          "independently")]
    assert {run_of(s) for s in alone["series"]} == {"instability/summary/independent",
                                                    "instability/summary/threshold"}


def test_images_and_hparams_in_chromium(served, browser, screenshots):
    board, *_ = served
    browser.open(board.url + "/#images&regexInput=summary")
    page = browser.wait_for(f"const r = (function() {{{PAGE_JS}}})(); "
                            "return r.images.length >= 3 ? r : null;", timeout=120)
    assert page, "the Images tab shows no figure"
    browser.screenshot(str(screenshots / "images.png"))
    browser.open(board.url + "/#hparams")
    page = browser.wait_for(f"const r = (function() {{{PAGE_JS}}})(); "
                            "return r.texts.some(t => t.includes('accuracy (%)')) ? r : null;",
                            timeout=120)
    assert page, "the HParams tab shows no metric in %"
    browser.screenshot(str(screenshots / "hparams.png"))
    assert any("error barrier (%)" in t for t in page["texts"])
    for name in ("custom_scalars", "custom_scalars_imp", "images", "hparams"):
        shot = screenshots / f"{name}.png"
        assert shot.read_bytes()[:8] == PNG
