"""Plans the paper's experiments on N workers: accelerator-hours, critical path, makespan.

    python benchmarks/plan_cluster.py                        # every Table 1 recipe, gpu
    python benchmarks/plan_cluster.py --accelerator=tpu-v3-8 --markdown
    python benchmarks/plan_cluster.py --recipes=resnet20 --step_time=resnet20=0.018 \
        --workers=1,16 -- --replicates=1 --children=2

For each recipe (its flagfile under flags/) and experiment, the task graph
is ``tf_lottery.tasks.plan.plan(config)`` — the graph ``--list_tasks`` prints
and the executors run — and each task lasts its ``cost_steps`` times the
recipe's seconds per step on the chosen accelerator (plus
``--task_overhead_s`` per training task). The graph is then list-scheduled
(``tasks.schedule``: highest bottom level first, the rule the Ray executor
dispatches by) on 1, 8, 64 and 512 workers, one accelerator each.

Prints one JSON object per recipe and experiment: total accelerator-hours
(the sum of all task durations), the critical path (no number of workers
finishes sooner) and the makespan per worker count, in hours, plus where
the per-step time comes from. ``--markdown`` prints the table of
docs/tasks.md instead.

Per-step times: benchmarks/step_times.json, whose every entry says whether
it was measured (and where) or is an assumption; ``--step_times=FILE``
replaces that file, ``--step_time=MODEL=SECONDS`` overrides one model.
"""

from __future__ import annotations

import argparse
import json
import os
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

from tf_lottery import experiments as registry
from tf_lottery.tasks.graph import Graph  # noqa: E402
from tf_lottery.tasks.schedule import list_schedule  # noqa: E402

# Frankle et al. 2020, Table 1: the paper's recipes, as this repository's flagfiles.
RECIPES = {
    "lenet": "flags/lenet_mnist.cfg",
    "resnet20": "flags/resnet20_cifar10.cfg",
    "resnet20_low": "flags/resnet20_cifar10_low.cfg",
    "resnet20_warmup": "flags/resnet20_cifar10_warmup.cfg",
    "vgg16": "flags/vgg16_cifar10.cfg",
    "vgg16_low": "flags/vgg16_cifar10_low.cfg",
    "vgg16_warmup": "flags/vgg16_cifar10_warmup.cfg",
    "resnet50": "flags/resnet50_imagenet.cfg",
    "inception_v3": "flags/inception_v3_lmc.cfg",
}
STEP_TIMES = os.path.join(ROOT, "benchmarks", "step_times.json")


def recipe_config(flagfile: str, experiment: str, extra: list[str]):
    """The config of ``flagfile`` run as ``experiment`` (no data is read)."""
    from absl import flags

    from tf_lottery import config as config_lib

    fv = flags.FlagValues()
    config_lib.define_flags(fv)
    cwd = os.getcwd()
    os.chdir(ROOT)  # flagfiles include each other by paths relative to the repository
    try:
        fv(["plan_cluster", f"--flagfile={flagfile}", "--model_dir=/planned",
            f"--experiment={experiment}", *extra])
    finally:
        os.chdir(cwd)
    return config_lib.config_from_flags(fv)


def plan_graph(graph: Graph, seconds_per_step: float, workers: list[int],
               task_overhead_s: float = 0.0) -> dict:
    """Accelerator-hours, critical path and makespans of ``graph``, in hours."""
    durations = {t.id: t.cost_steps * seconds_per_step + (task_overhead_s if t.cost_steps
                                                          else 0.0) for t in graph}
    schedules = {n: list_schedule(graph, durations, n) for n in workers}
    one = next(iter(schedules.values()))
    return {
        "tasks": len(graph),
        "total_steps": graph.total_steps(),
        "accelerator_hours": one.busy / 3600,
        "critical_path_hours": one.critical_path / 3600,
        "makespan_hours": {str(n): s.makespan / 3600 for n, s in schedules.items()},
    }


def load_step_times(path: str, accelerator: str, overrides: list[str]) -> dict[str, dict]:
    with open(path) as f:
        table = json.load(f)
    if accelerator not in table:
        known = ", ".join(k for k in table if not k.startswith("_"))
        raise SystemExit(f"plan_cluster: error: --accelerator={accelerator} is not in "
                         f"{path} (it has {known})")
    times = dict(table[accelerator])
    for item in overrides:
        model, _, value = item.partition("=")
        try:
            times[model] = {"seconds_per_step": float(value), "source": "given: --step_time"}
        except ValueError:
            raise SystemExit(f"plan_cluster: error: --step_time={item}: expected "
                             "MODEL=SECONDS") from None
    return times


def _hours(h: float) -> str:
    if h < 1:
        return f"{h * 60:.1f} min"
    return f"{h:,.1f} h" if h < 100 else f"{h:,.0f} h"


def markdown(rows: list[dict], workers: list[int]) -> str:
    head = ["recipe", "experiment", "tasks", "accelerator-hours", "critical path",
            *(f"makespan, {n} worker{'s' * (n > 1)}" for n in workers), "s/step"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for r in rows:
        if "skipped" in r:
            continue
        cells = [r["recipe"], r["experiment"], str(r["tasks"]), _hours(r["accelerator_hours"]),
                 _hours(r["critical_path_hours"]),
                 *(_hours(r["makespan_hours"][str(n)]) for n in workers),
                 f"{r['seconds_per_step']:g} ({r['source'].split(':')[0]})"]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main(argv: list[str]) -> int:
    if "--" in argv:
        cut = argv.index("--")
        argv, extra = argv[:cut], argv[cut + 1:]
    else:
        extra = []
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--accelerator", default="gpu",
                   help="a column of --step_times (default: gpu)")
    p.add_argument("--recipes", default=",".join(RECIPES),
                   help=f"comma-separated, of {', '.join(RECIPES)}")
    p.add_argument("--experiments", default="instability,imp")
    p.add_argument("--workers", default="1,8,64,512")
    p.add_argument("--step_times", default=STEP_TIMES)
    p.add_argument("--step_time", action="append", default=[], metavar="MODEL=SECONDS")
    p.add_argument("--task_overhead_s", type=float, default=0.0,
                   help="seconds each training task adds (start-up, tracing)")
    p.add_argument("--markdown", action="store_true")
    args = p.parse_args(argv)
    workers = [int(n) for n in args.workers.split(",")]
    times = load_step_times(args.step_times, args.accelerator, args.step_time)
    rows = []
    for name in args.recipes.split(","):
        if name not in RECIPES:
            raise SystemExit(f"plan_cluster: error: --recipes: unknown recipe {name!r}")
        for experiment in args.experiments.split(","):
            config = recipe_config(RECIPES[name], experiment, extra)
            row = {"recipe": name, "experiment": experiment, "flagfile": RECIPES[name],
                   "model": config.model.name, "accelerator": args.accelerator}
            step = times.get(config.model.name)
            if step is None:
                row["skipped"] = f"no seconds per step for {config.model.name}"
            else:

                row.update(plan_graph(registry.plan(config), step["seconds_per_step"],
                                      workers, args.task_overhead_s),
                           seconds_per_step=step["seconds_per_step"], source=step["source"])
            rows.append(row)
            if not args.markdown:
                print(json.dumps(row), flush=True)
    if args.markdown:
        print(markdown(rows, workers))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
