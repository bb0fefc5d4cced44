"""What the report's experiment-specific figure modules share: each run's
results, read past a damaged record (the main report names those), and
the names of one figure drawn for several runs."""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence

from matplotlib.figure import Figure

from tf_lottery.core import layout, records, store
from tf_lottery.errors import CorruptFileError

# (path, figure, description): one run's drawing of a named figure.
Drawn = tuple[str, Figure, str]


def results(paths: Sequence[str]) -> Iterator[tuple[str, records.Results]]:
    """(path, results) for every run at ``paths`` whose results.json is
    there and reads."""
    for path in paths:
        try:
            found = store.read(layout.results_file(path), records.ExperimentResults, path)
        except (CorruptFileError, ValueError, KeyError, TypeError):
            continue
        if found is not None:
            yield path, found


def numbered(found: Mapping[str, Sequence[Drawn]]) -> dict[str, tuple[Figure, str]]:
    """name -> (figure, description "...; from <path>"); a figure drawn for
    several runs is numbered (``name_0.png``, ``name_1.png``, ...)."""
    out = {}
    for name, drawn in found.items():
        for i, (path, fig, text) in enumerate(drawn):
            key = name if len(drawn) == 1 else name.replace(".png", f"_{i}.png")
            out[key] = (fig, f"{text}; from {path}")
    return out
