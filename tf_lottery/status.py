"""``python -m tf_lottery.status --model_dir=DIR [--workers=N] [--json]``: where an
experiment stands, whichever executors run it.

Reads ``config.json``, plans the experiment's task graph (``tasks.plan``)
and reads each task's record and lease: tasks done, running (host, pid and
since when, from the task's ``lease.json``) and pending; the measured rate
in estimated steps per second (finished tasks' recorded wall times against
their estimated cost, ``tasks.progress``); and the ETA of what remains,
list-scheduled on ``--workers`` workers. Writes nothing. ``--json`` prints
the same as one JSON object.
"""

from __future__ import annotations

import tf_lottery  # noqa: F401  (selects Keras 2 before TensorFlow loads)

# isort: split

import dataclasses
import datetime
import json
import sys
from typing import Any

from absl import app, flags

from tf_lottery import experiments, files, provenance
from tf_lottery.config import config_from_json
from tf_lottery.core import layout
from tf_lottery.errors import ConfigError, CorruptFileError
from tf_lottery.tasks import plan as plan_lib
from tf_lottery.tasks.graph import DONE, PENDING, RUNNING
from tf_lottery.tasks.progress import Progress, format_duration
from tf_lottery.tasks.worker import running_holder

FLAGS = flags.FLAGS


def define_flags(fv: flags.FlagValues = FLAGS) -> None:
    flags.DEFINE_string("model_dir", None, "Status: the experiment's --model_dir.",
                        flag_values=fv)
    flags.DEFINE_integer("workers", 1, "Status: workers the ETA assumes (tasks at once).",
                         lower_bound=1, flag_values=fv)
    flags.DEFINE_boolean("json", False, "Status: print one JSON object instead of text.",
                         flag_values=fv)


def status(model_dir: str, workers: int = 1) -> dict[str, Any]:
    """The experiment in ``model_dir``: its tasks' states, rate and ETA."""
    path = layout.config_file(model_dir)
    try:
        obj = files.read_json(path)
    except CorruptFileError as e:
        raise ConfigError(str(e)) from None
    if obj is None:
        raise ConfigError(f"--model_dir={model_dir} holds no experiment ({path} not found)")
    recorded = config_from_json(json.dumps(obj))
    # Planned where the model_dir is now (it may have been copied or moved).
    config = dataclasses.replace(
        recorded, runtime=dataclasses.replace(recorded.runtime, model_dir=model_dir))
    experiment = experiments.get(config.experiment)
    graph = plan_lib.plan(experiment, config)
    tasks, done = [], set()
    for task in graph:
        entry: dict[str, Any] = {"id": task.id, "kind": task.kind,
                                 "cost_steps": task.cost_steps}
        if plan_lib.is_done(experiment, config, task):
            entry["status"] = DONE
            done.add(task.id)
            seconds = plan_lib.recorded_seconds_of(experiment, config, task)
            if seconds is not None:
                entry["seconds"] = seconds
        else:
            holder = running_holder(model_dir, task.id)
            entry["status"] = RUNNING if holder else PENDING
            if holder:
                entry.update(host=holder.get("host"), pid=holder.get("pid"),
                             since=holder.get("started"))
        tasks.append(entry)
    progress = Progress(graph, done, workers=workers, log=lambda line: None)
    for entry in tasks:
        if "seconds" in entry:
            progress.measure(entry["id"], entry["seconds"])
    steps_done, steps_total = progress.steps()
    counts = {state: sum(1 for t in tasks if t["status"] == state)
              for state in (DONE, RUNNING, PENDING)}
    first = provenance.recorded_numerics(obj)
    return {"model_dir": model_dir, "experiment": config.experiment, "tasks": tasks,
            "counts": counts, "steps_done": steps_done, "steps_total": steps_total,
            "steps_per_s": progress.rate, "workers": workers, "eta_s": progress.eta_s(),
            "numerics": first.describe() if first else None}


def render(found: dict[str, Any]) -> str:
    """``status``'s object as text: a line per running task, then the totals."""
    counts, lines = found["counts"], []
    lines.append(f"{found['model_dir']}: {found['experiment']} experiment, "
                 f"{len(found['tasks'])} tasks: {counts[DONE]} done, {counts[RUNNING]} "
                 f"running, {counts[PENDING]} pending")
    for t in found["tasks"]:
        if t["status"] == RUNNING:
            since = datetime.datetime.fromtimestamp(t.get("since") or 0,
                                                    datetime.timezone.utc)
            lines.append(f"  running  {t['id']}  on {t.get('host')} (pid {t.get('pid')}) "
                         f"since {since:%Y-%m-%d %H:%M:%S} UTC")
    lines.append(f"numerics: {found['numerics'] or 'not recorded (a release before 0.2)'}"
                 " (the first launch's; docs/numerics.md)")
    pending = [t["id"] for t in found["tasks"] if t["status"] == PENDING]
    if pending:
        more = f" (+{len(pending) - 5} more)" if len(pending) > 5 else ""
        lines.append(f"  pending  {', '.join(pending[:5])}{more}")
    total = max(found["steps_total"], 1)
    lines.append(f"steps (estimated): {found['steps_done']:,}/{found['steps_total']:,} "
                 f"({100.0 * found['steps_done'] / total:.0f}%)")
    if found["steps_per_s"] is None:
        lines.append("rate: not measured yet (no finished task recorded its wall time)")
    else:
        lines.append(f"rate: {found['steps_per_s']:.1f} steps/s (finished tasks' records)")
        workers = found["workers"]
        lines.append(f"ETA: {format_duration(found['eta_s'])} on {workers} "
                     f"worker{'s' if workers > 1 else ''}")
    return "\n".join(lines)


def main(argv: list[str]) -> int:
    if len(argv) > 1:
        print(f"tf_lottery.status: error: unexpected argument(s) {' '.join(argv[1:])!r}: "
              "every setting is a flag (--name=value)", file=sys.stderr)
        return 2
    try:
        if not FLAGS.model_dir:
            raise ConfigError("--model_dir is required: the experiment to report on")
        found = status(FLAGS.model_dir, FLAGS.workers)
    except ConfigError as e:
        print(f"tf_lottery.status: error: {e}", file=sys.stderr)
        return 2
    print(json.dumps(found) if FLAGS.json else render(found))
    return 0


if __name__ == "__main__":
    define_flags(FLAGS)
    app.run(main)
