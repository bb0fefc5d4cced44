"""``python -m tf_lottery.report --model_dir=DIR --out=REPORT_DIR``: the paper's
figures and tables from whatever experiments DIR holds.

DIR is one experiment's ``--model_dir`` or a folder of several (searched a
few levels deep for ``config.json``), or a comma-separated list of such
folders (then ``--out`` is required), local or ``gs://``. Runs whose recipes
differ only in their seeds are pooled as replicates. Written to REPORT_DIR:

- ``instability.png``: test and train error barrier vs rewind step k, mean ±
  std band, the stability threshold; dense networks (instability
  experiments) and IMP subnetworks (IMP runs with ``--instability``, one
  point per rewind step) — the paper's Figures 3 and 5;
- ``interpolation_k<k>.png``: test and train error along the path between
  children spawned at k, mean ± std over pairs (and
  ``interpolation_independent.png`` for independently trained networks),
  all on one y scale; ``interpolation_all.png``: every k's mean path
  overlaid on that shared axis (the paper's Figures 2 and 4);
- ``imp.png``: test accuracy vs percent of weights remaining (log scale),
  IMP vs random pruning vs random reinitialization, dense accuracy line and
  matching band (and the sparse barrier of IMP and of each analysed
  baseline against the same axis);
- ``imp_rewind.png``: an IMP family measured at two or more k (the chains
  of ``--experiment=imp_sweep``, or separate runs of one recipe): its
  subnetwork's test accuracy and test barrier against k;
- ``aligned_barrier.png`` (experiments run with ``--align=weights``): raw
  vs aligned barrier vs k and for independent networks
  (``reporting.alignment_figures``), with its table in ``report.md``;
- ``report.md``: recipe, k → barrier → stable table, level → density →
  accuracy table, when the network becomes stable and matching, what is
  missing; ``report.json``: the same tables, unrounded; a CSV per table
  (``reporting/csv_tables.py``), with the values behind the path figures.

A partly finished experiment gives the figures of what exists; what is not
there yet is named in ``report.md`` and on stdout.
"""

from __future__ import annotations

import sys

from absl import app, flags, logging

from tf_lottery.core import layout
from tf_lottery.errors import ConfigError
from tf_lottery.reporting.build import FIGURE_TEXT, Report, build, roots, write

__all__ = ["FIGURE_TEXT", "Report", "build", "define_flags", "main", "roots", "write"]


# -- command line --------------------------------------------------------------------

def define_flags(fv: flags.FlagValues) -> None:
    flags.DEFINE_string("model_dir", None, "Report: an experiment's --model_dir, or a "
                        "folder of several, or a comma-separated list of such folders "
                        "(local or gs://).", flag_values=fv)
    flags.DEFINE_string("out", None, "Report: output folder (default: <model_dir>/report; "
                        "required with several --model_dir folders).", flag_values=fv)
    flags.DEFINE_float("matching_tolerance", 0.005,
                       "Report: τ of 'matching' (accuracy within τ of the dense network's) "
                       "when there is a single dense run; with replicate runs τ is one std "
                       "of their accuracy.", flag_values=fv)
    flags.DEFINE_integer("sparse_level", None,
                         "Report: IMP level whose sparse barrier is drawn against k "
                         "(default: the sparsest level measured).", flag_values=fv)


FLAGS = flags.FLAGS


def main(argv: list[str]) -> int:
    if len(argv) > 1:
        print(f"tf_lottery.report: error: unexpected argument(s) {' '.join(argv[1:])!r}: "
              "every setting is a flag (--name=value); see --helpfull", file=sys.stderr)
        return 2
    try:
        if not FLAGS.model_dir:
            raise ConfigError("--model_dir is required: the experiment(s) to report on")
        if FLAGS.matching_tolerance < 0:
            raise ConfigError(f"--matching_tolerance must be >= 0, got "
                              f"{FLAGS.matching_tolerance}")
        folders = roots(FLAGS.model_dir)
        if len(folders) > 1 and not FLAGS.out:
            raise ConfigError(f"--out is required with several --model_dir folders "
                              f"({len(folders)} given): where should the report go?")
        out = FLAGS.out or layout.report_dir(folders[0])
        report = build(FLAGS.model_dir, FLAGS.matching_tolerance, FLAGS.sparse_level)
        written = write(report, out)
    except ConfigError as e:
        print(f"tf_lottery.report: error: {e}", file=sys.stderr)
        return 2
    logging.info("Wrote %s", ", ".join(written))
    print(f"tf_lottery.report: {len(report.experiments)} experiment(s) under "
          f"{FLAGS.model_dir}; wrote {len(written)} files to {out}")
    for item in report.missing:
        print(f"tf_lottery.report: missing: {item}")
    return 0


if __name__ == "__main__":
    define_flags(FLAGS)  # here, not at import: tf_lottery.main defines --model_dir too
    app.run(main)
