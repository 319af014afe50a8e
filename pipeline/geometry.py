"""Pure geometry inference: trace header values -> a regular 3D grid.

>>> g = infer_geometry(np.array([1, 1, 3, 3]), np.array([10, 12, 10, 12]))
>>> g.inlines.tolist(), g.crosslines.tolist(), g.sorting
([1, 3], [10, 12], 'inline')
>>> g.trace_index.tolist()
[[0, 1], [2, 3]]
"""

from __future__ import annotations

from dataclasses import dataclass
from math import gcd

import numpy as np

from .exceptions import GeometryError

#: A grid with more than this many cells per trace is not a survey but
#: garbage line numbers (usually the wrong header byte positions).
MAX_CELLS_PER_TRACE = 4


@dataclass(frozen=True)
class Geometry:
    """Where each trace of a file sits on the inline x crossline grid."""

    inlines: np.ndarray
    crosslines: np.ndarray
    trace_index: np.ndarray  # (n_inlines, n_crosslines) int64, -1 where no trace
    sorting: str  # "inline", "crossline" or "unsorted"

    @property
    def shape(self) -> tuple[int, int]:
        return (len(self.inlines), len(self.crosslines))

    @property
    def trace_mask(self) -> np.ndarray:
        return self.trace_index >= 0

    @property
    def n_missing(self) -> int:
        return int((self.trace_index < 0).sum())


def line_axis(values: np.ndarray, name: str, max_lines: int | None = None) -> np.ndarray:
    """The regular axis of line numbers that holds every value given.

    The step is the greatest common divisor of the gaps, so lines missing in
    the middle of a survey stay on the grid.

    Parameters
    ----------
    values : np.ndarray
        Line number of each trace.
    name : str
        ``inline`` or ``crossline``, for messages.
    max_lines : int | None

    Returns
    -------
    np.ndarray

    >>> line_axis(np.array([5, 1, 9, 9]), "inline").tolist()
    [1, 5, 9]
    >>> line_axis(np.array([7]), "inline").tolist()
    [7]
    """
    unique = np.unique(values)
    if len(unique) == 1:
        return unique.astype(np.int64)
    step = 0
    for gap in np.diff(unique):
        step = gcd(step, int(gap))
    count = (int(unique[-1]) - int(unique[0])) // step + 1
    if max_lines is not None and count > max_lines:
        raise GeometryError(
            f"{name} numbers from {unique[0]} to {unique[-1]} in steps of {step} would make {count} lines "
            f"for {len(values)} traces: not a regular 3D grid; check --iline-byte and --xline-byte"
        )
    return np.arange(unique[0], unique[-1] + step, step, dtype=np.int64)


def trace_sorting(inline_values: np.ndarray, crossline_values: np.ndarray) -> str:
    """Which line number changes slowest along the file.

    Parameters
    ----------
    inline_values : np.ndarray
        Inline number of each trace.
    crossline_values : np.ndarray
        Crossline number of each trace.

    Returns
    -------
    str

    >>> trace_sorting(np.array([1, 1, 2, 2]), np.array([1, 2, 1, 2]))
    'inline'
    >>> trace_sorting(np.array([1, 2, 1, 2]), np.array([1, 1, 2, 2]))
    'crossline'
    """

    def monotonic(values: np.ndarray) -> bool:
        steps = np.diff(values)
        return bool((steps >= 0).all() or (steps <= 0).all())

    if monotonic(inline_values):
        return "inline"
    if monotonic(crossline_values):
        return "crossline"
    return "unsorted"


def infer_geometry(
    inline_values: np.ndarray,
    crossline_values: np.ndarray,
    offsets: np.ndarray | None = None,
    source: str = "the file",
) -> Geometry:
    """Place traces on the grid their line numbers describe.

    Raises :class:`GeometryError` for duplicate positions (or pre-stack
    gathers) and for line numbers that do not form a regular grid.

    Parameters
    ----------
    inline_values : np.ndarray
        Inline number of each trace.
    crossline_values : np.ndarray
        Crossline number of each trace.
    offsets : np.ndarray | None
    source : str
        The input: a file, store or label source.

    Returns
    -------
    Geometry
    """
    n_traces = len(inline_values)
    limit = MAX_CELLS_PER_TRACE * n_traces
    inlines = line_axis(inline_values, f"{source}: inline", limit)
    crosslines = line_axis(crossline_values, f"{source}: crossline", limit)
    n_cells = len(inlines) * len(crosslines)
    if n_cells > MAX_CELLS_PER_TRACE * n_traces:
        raise GeometryError(
            f"{source}: the inline/crossline numbers do not form a regular 3D grid "
            f"({n_traces} traces would fill {n_traces / n_cells:.1%} of a "
            f"{len(inlines)} x {len(crosslines)} grid); check --iline-byte and --xline-byte"
        )
    rows = np.searchsorted(inlines, inline_values)
    cols = np.searchsorted(crosslines, crossline_values)
    cell = rows * len(crosslines) + cols
    counts = np.bincount(cell, minlength=n_cells)
    if counts.max() > 1:
        _raise_duplicates(counts, offsets, inlines, crosslines, source)
    trace_index = np.full(n_cells, -1, dtype=np.int64)
    trace_index[cell] = np.arange(n_traces)
    return Geometry(
        inlines=inlines,
        crosslines=crosslines,
        trace_index=trace_index.reshape(len(inlines), len(crosslines)),
        sorting=trace_sorting(inline_values, crossline_values),
    )


def _raise_duplicates(counts, offsets, inlines, crosslines, source) -> None:
    worst = int(np.argmax(counts))
    where = f"inline {inlines[worst // len(crosslines)]}, crossline {crosslines[worst % len(crosslines)]}"
    if offsets is not None and len(np.unique(offsets)) > 1:
        raise GeometryError(
            f"{source}: pre-stack data ({len(np.unique(offsets))} offsets, up to "
            f"{counts.max()} traces at {where}); seisfacies ingests post-stack volumes: "
            "stack the gathers first"
        )
    raise GeometryError(
        f"{source}: {int((counts > 1).sum())} inline/crossline positions hold more than one "
        f"trace (e.g. {counts.max()} at {where}); check --iline-byte and --xline-byte"
    )
