"""Picked horizons: the ASCII files interpretation software exports, placed on the store's grid.

A pick file has one pick per line, whitespace or comma separated, in the
columns the user names (``inline,crossline,time`` or ``x,y,time``, with an
optional ``name`` column when one file holds several horizons). Header lines
before the first pick and comment lines (``#``, ``!``) are skipped. Picks
land on the store's ``(inline, crossline)`` grid, by number or through an
affine fit of the store's ``cdp_x``/``cdp_y``; every refusal names the file,
the line and the value. The intervals between horizons become classes with
:func:`interval_classes`.

Pure functions on arrays, apart from :func:`read_picks`, which reads one file.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from . import location
from .exceptions import HorizonError

LATERAL_COLUMNS = (("inline", "crossline"), ("x", "y"))
VERTICAL_COLUMNS = ("time", "depth", "z")
#: Column names a pick file may have; ``skip`` ignores a column.
COLUMN_NAMES = {*LATERAL_COLUMNS[0], *LATERAL_COLUMNS[1], *VERTICAL_COLUMNS, "name", "skip"}
#: A fit of cdp_x/cdp_y whose residual exceeds this share of a bin is not a regular grid.
MAX_FIT_RESIDUAL = 0.1
SEPARATORS = re.compile(r"[\s,;]+")
HORIZON_NAME = re.compile(r"[A-Za-z0-9_\-]+")


def parse_columns(text: str) -> tuple[str, ...]:
    """Check a ``--columns`` value: a lateral pair, one vertical column, maybe ``name`` and ``skip``.

    Parameters
    ----------
    text : str
        Comma-separated column names, in file order.

    Returns
    -------
    tuple of str

    >>> parse_columns("name, x, y, time")
    ('name', 'x', 'y', 'time')
    >>> parse_columns("inline,x,time")  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    seisfacies.pipeline.exceptions.HorizonError: option --columns 'inline,x,time': ...
    """
    columns = tuple(part.strip().lower() for part in text.split(",") if part.strip())
    unknown = [name for name in columns if name not in COLUMN_NAMES]
    has_pair = [set(pair) <= set(columns) for pair in LATERAL_COLUMNS]
    vertical = [name for name in columns if name in VERTICAL_COLUMNS]
    named = [name for name in columns if name != "skip"]
    if unknown or sum(has_pair) != 1 or len(vertical) != 1 or len(set(named)) != len(named):
        problem = f"unknown column {unknown[0]!r}" if unknown else "columns must name each once"
        raise HorizonError(
            f"option --columns {text!r}: {problem}; give inline,crossline or x,y, one of time, depth or z, "
            "and optionally name and skip, e.g. inline,crossline,time"
        )
    return columns


@dataclass(frozen=True)
class Picks:
    """One horizon's picks as read from a file: where, how deep, and on which line."""

    name: str
    file: str
    lines: np.ndarray  # (n,) int64: the line number of each pick
    lateral: np.ndarray  # (n, 2) float64: inline/crossline numbers, or x/y
    z: np.ndarray  # (n,) float64: time or depth, the store's units
    by_number: bool  # lateral holds inline/crossline numbers (else x/y)


def read_picks(path: str, columns: tuple[str, ...], name: str, null: float | None) -> list[Picks]:
    """Read the picks of a file: one horizon, or one per value of its ``name`` column.

    Parameters
    ----------
    path : str
        The pick file (a path or URL).
    columns : tuple of str
        The file's columns, from :func:`parse_columns`.
    name : str
        The horizon's name when the file has no ``name`` column.
    null : float, optional
        The value that marks a missing pick (Petrel writes -999.25); such picks are skipped.

    Returns
    -------
    list of Picks
        In order of first appearance.
    """
    try:
        with location.open_file(path) as handle:
            text = handle.read().decode("utf-8", errors="replace")
    except OSError as error:
        raise HorizonError(f"{path}: cannot read the pick file ({error.strerror or error})") from None
    by_number = "inline" in columns
    wanted = [columns.index(c) for c in (*LATERAL_COLUMNS[0 if by_number else 1], _vertical(columns))]
    name_at = columns.index("name") if "name" in columns else None
    rows: dict[str, list[tuple[int, float, float, float]]] = {}
    started = False
    for number, line in enumerate(text.splitlines(), start=1):
        fields = SEPARATORS.split(line.strip())
        if not fields[0] or fields[0].startswith(("#", "!")):
            continue
        values = _numbers(fields, wanted)
        if values is None:
            if started:
                raise HorizonError(
                    f"{path}:{number}: {line.strip()[:60]!r} is not a pick in the columns "
                    f"{','.join(columns)}; fix the line or --columns"
                )
            continue  # a header line
        started = True
        if null is not None and null in values or not np.all(np.isfinite(values)):
            continue
        horizon = fields[name_at] if name_at is not None and len(fields) > name_at else name
        if not HORIZON_NAME.fullmatch(horizon):  # it names store variables (map_<horizon>_facies)
            raise HorizonError(
                f"{path}:{number}: horizon name {horizon!r} is not a word (letters, digits, _, -); rename it"
            )
        rows.setdefault(horizon, []).append((number, *values))
    if not rows:
        raise HorizonError(
            f"{path}: no picks in the columns {','.join(columns)}; check the file and --columns"
        )
    return [_picks(horizon, path, found, by_number) for horizon, found in rows.items()]


def _vertical(columns: tuple[str, ...]) -> str:
    return next(name for name in columns if name in VERTICAL_COLUMNS)


def _numbers(fields: list[str], wanted: list[int]) -> tuple[float, ...] | None:
    try:
        return tuple(float(fields[n]) for n in wanted)
    except (IndexError, ValueError):
        return None


def _picks(name: str, path: str, rows: list, by_number: bool) -> Picks:
    table = np.array(rows, dtype=np.float64)
    return Picks(name, path, table[:, 0].astype(np.int64), table[:, 1:3], table[:, 3], by_number)


def picks_text(surfaces: np.ndarray, names: list[str], inlines, crosslines, header: str = "") -> str:
    """Horizons as a pick file with a name column (``name inline crossline z``); NaN nodes left out.

    The inverse of :func:`read_picks` with ``--columns name,inline,crossline,time``.

    Parameters
    ----------
    surfaces : numpy.ndarray
        ``(n_horizons, inline, crossline)`` times or depths.
    names : list of str
        The horizons' names.
    inlines, crosslines : array-like
        Line numbers.
    header : str
        A comment line.

    Returns
    -------
    str

    >>> print(picks_text(np.array([[[8.0, np.nan]]]), ["top"], [100], [300, 301], "demo"), end="")
    # demo
    name inline crossline time
    top 100 300 8.00
    """
    lines = [f"# {header}"] if header else []
    lines.append("name inline crossline time")
    for name, surface in zip(names, surfaces):
        for i, j in np.argwhere(np.isfinite(surface)):
            lines.append(f"{name} {inlines[i]} {crosslines[j]} {surface[i, j]:.2f}")
    return "\n".join(lines) + "\n"


@dataclass(frozen=True)
class GridFit:
    """An affine map from grid indices (inline index, crossline index) to map coordinates (x, y).

    >>> fit = fit_grid(*rotated_grid(4, 3, spacing=25.0, azimuth_deg=30.0))
    >>> [round(float(v), 3) for v in fit.bin_sizes], round(fit.residual, 6)
    ([25.0, 25.0], 0.0)
    >>> [round(float(v), 6) for v in fit.to_grid(*fit.to_xy(2.0, 1.0))]
    [2.0, 1.0]
    """

    origin: np.ndarray  # (2,): x, y of index (0, 0)
    axes: np.ndarray  # (2, 2): columns are the x/y steps of one inline and one crossline index
    residual: float  # RMS distance of the live traces from the fit, in coordinate units

    @property
    def bin_sizes(self) -> np.ndarray:
        """The distance between neighbouring inlines and neighbouring crosslines."""
        return np.hypot(*self.axes)

    def to_xy(self, inline_index, crossline_index) -> tuple[np.ndarray, np.ndarray]:
        """Map coordinates of (fractional) grid indices."""
        x, y = self.origin[:, None] + self.axes @ np.vstack(
            [np.ravel(inline_index), np.ravel(crossline_index)]
        )
        return x.reshape(np.shape(inline_index)), y.reshape(np.shape(inline_index))

    def to_grid(self, x, y) -> tuple[np.ndarray, np.ndarray]:
        """Fractional grid indices of map coordinates."""
        offsets = np.vstack([np.ravel(x), np.ravel(y)]) - self.origin[:, None]
        i, j = np.linalg.solve(self.axes, offsets)
        return i.reshape(np.shape(x)), j.reshape(np.shape(x))


def rotated_grid(n_inlines: int, n_crosslines: int, spacing: float = 25.0, azimuth_deg: float = 30.0):
    """CDP coordinates of a regular grid turned by ``azimuth_deg`` (for examples and tests).

    Parameters
    ----------
    n_inlines, n_crosslines : int
        Grid size.
    spacing : float
        Bin size in both directions.
    azimuth_deg : float
        Rotation, counter-clockwise.

    Returns
    -------
    cdp_x, cdp_y : numpy.ndarray
        ``(n_inlines, n_crosslines)``, origin at (600000, 6000000).
    """
    i, j = np.meshgrid(np.arange(n_inlines), np.arange(n_crosslines), indexing="ij")
    angle = np.deg2rad(azimuth_deg)
    x = 600000.0 + spacing * (i * np.cos(angle) - j * np.sin(angle))
    y = 6000000.0 + spacing * (i * np.sin(angle) + j * np.cos(angle))
    return x, y


def fit_grid(cdp_x: np.ndarray, cdp_y: np.ndarray, live: np.ndarray | None = None) -> GridFit:
    """Least-squares affine fit of the traces' coordinates to their grid indices.

    Parameters
    ----------
    cdp_x, cdp_y : numpy.ndarray
        ``(inline, crossline)`` coordinates; NaN where there is no trace.
    live : numpy.ndarray, optional
        Traces to fit (default: every finite one).

    Returns
    -------
    GridFit
    """
    live = np.isfinite(cdp_x) & np.isfinite(cdp_y) & (True if live is None else live)
    i, j = np.nonzero(live)
    if len(i) < 3 or len(np.unique(i)) < 2 or len(np.unique(j)) < 2:
        raise HorizonError(
            "the store's cdp_x/cdp_y hold fewer than two inlines and two crosslines of coordinates"
        )
    design = np.column_stack([np.ones(len(i)), i, j])
    target = np.column_stack([cdp_x[live], cdp_y[live]])
    solution, *_ = np.linalg.lstsq(design, target, rcond=None)
    residual = float(np.sqrt(np.mean(np.sum((design @ solution - target) ** 2, axis=1))))
    return GridFit(solution[0], solution[1:].T, residual)


def node_coordinates(cdp_x: np.ndarray, cdp_y: np.ndarray, live: np.ndarray | None = None):
    """x/y of every grid node: the traces' own where present, the grid fit's where not.

    Parameters
    ----------
    cdp_x, cdp_y : numpy.ndarray
        ``(inline, crossline)``; NaN (or a dead trace) where there is no trace.
    live : numpy.ndarray, optional
        Which traces exist.

    Returns
    -------
    x, y : numpy.ndarray
    fit : GridFit
        The fit, checked for regularity.

    >>> x, y = rotated_grid(3, 2)
    >>> x[1, 1] = np.nan
    >>> filled_x, filled_y, fit = node_coordinates(x, y)
    >>> round(float(filled_x[1, 1]), 3) == round(float(rotated_grid(3, 2)[0][1, 1]), 3)
    True
    """
    fit = fit_grid(cdp_x, cdp_y, live)
    check_fit(fit, "the store")
    known = np.isfinite(cdp_x) & np.isfinite(cdp_y) & (True if live is None else live)
    i, j = np.indices(cdp_x.shape)
    fitted_x, fitted_y = fit.to_xy(i, j)
    return np.where(known, cdp_x, fitted_x), np.where(known, cdp_y, fitted_y), fit


def check_fit(fit: GridFit, where: str) -> None:
    """Refuse a fit too poor (or too degenerate) to place x/y picks on the grid.

    Parameters
    ----------
    fit : GridFit
        From :func:`fit_grid`.
    where : str
        The store, for the message.
    """
    smallest = float(fit.bin_sizes.min())
    if (
        smallest <= 0
        or abs(np.linalg.det(fit.axes)) < 1e-9 * smallest**2
        or fit.residual > MAX_FIT_RESIDUAL * smallest
    ):
        raise HorizonError(
            f"{where}: cdp_x/cdp_y are not a regular grid (fit residual {fit.residual:.3g}, bins "
            f"{' x '.join(f'{b:.3g}' for b in fit.bin_sizes)}); give the picks as inline,crossline instead"
        )


@dataclass(frozen=True)
class Grid:
    """The store's lateral grid and vertical axis, as much of it as placing picks needs."""

    inlines: np.ndarray
    crosslines: np.ndarray
    vertical: np.ndarray  # sample times (or depths), increasing
    vertical_name: str = "time"
    fit: GridFit | None = None  # for x/y picks

    @property
    def shape(self) -> tuple[int, int]:
        return len(self.inlines), len(self.crosslines)


@dataclass(frozen=True)
class Surface:
    """One horizon on the grid: its values (NaN where not picked) and the line each came from."""

    name: str
    file: str
    values: np.ndarray  # (inline, crossline) float64
    lines: np.ndarray  # (inline, crossline) int64, 0 where not picked
    merged: int = 0  # x/y picks that fell on an already picked node and were averaged into it

    def where(self, i: int, j: int) -> str:
        """``file:line`` of the pick at a node (or that the node was filled)."""
        return f"{self.file}:{self.lines[i, j]}" if self.lines[i, j] else f"{self.file} (filled by --fill)"


def place_picks(picks: Picks, grid: Grid) -> Surface:
    """Put picks on the grid; refuse picks off the grid, outside the vertical range, or picked twice.

    Inline/crossline picks must be line numbers of the store. x/y picks go
    to the nearest node through ``grid.fit``; several on one node are
    averaged. A node picked twice by number with values more than half a
    sample apart is refused.

    Parameters
    ----------
    picks : Picks
        From :func:`read_picks`.
    grid : Grid
        The store's grid.

    Returns
    -------
    Surface

    >>> grid = Grid(np.array([10, 11, 12]), np.array([5, 6]), np.arange(0.0, 100.0, 4.0))
    >>> where, depth = np.array([[10.0, 5], [12, 6]]), np.array([40.0, 48])
    >>> picks = Picks("top", "top.txt", np.array([3, 4]), where, depth, True)
    >>> place_picks(picks, grid).values.tolist()
    [[40.0, nan], [nan, nan], [nan, 48.0]]
    """
    if picks.by_number:
        i, j = _line_indices(picks, grid)
    else:
        i, j = _nearest_nodes(picks, grid)
    _check_vertical(picks, grid)
    values = np.full(grid.shape, np.nan)
    lines = np.zeros(grid.shape, np.int64)
    flat = np.ravel_multi_index((i, j), grid.shape)
    order = np.argsort(flat, kind="stable")
    unique, first, counts = np.unique(flat[order], return_index=True, return_counts=True)
    sums = np.add.reduceat(picks.z[order], first)
    if picks.by_number and (counts > 1).any():
        _check_repeats(picks, flat, order, first, counts, grid)
    values.flat[unique] = sums / counts
    lines.flat[unique] = picks.lines[order][first]
    merged = int((counts - 1).sum()) if not picks.by_number else 0
    return Surface(picks.name, picks.file, values, lines, merged)


def _line_indices(picks: Picks, grid: Grid) -> tuple[np.ndarray, np.ndarray]:
    indices = []
    for column, (name, numbers) in enumerate((("inline", grid.inlines), ("crossline", grid.crosslines))):
        wanted = picks.lateral[:, column]
        found = np.searchsorted(numbers, wanted).clip(0, len(numbers) - 1)
        bad = np.flatnonzero(numbers[found] != wanted)
        if len(bad):
            n = bad[0]
            raise HorizonError(
                f"{picks.file}:{picks.lines[n]}: {name} {wanted[n]:g} is not on the store's grid "
                f"({name}s {numbers[0]}..{numbers[-1]}); check --columns or the survey"
            )
        indices.append(found)
    return indices[0], indices[1]


def _nearest_nodes(picks: Picks, grid: Grid) -> tuple[np.ndarray, np.ndarray]:
    i, j = grid.fit.to_grid(picks.lateral[:, 0], picks.lateral[:, 1])
    outside = (i < -0.5) | (i > grid.shape[0] - 0.5) | (j < -0.5) | (j > grid.shape[1] - 0.5)
    if outside.any():
        n = int(np.flatnonzero(outside)[0])
        x, y = picks.lateral[n]
        raise HorizonError(
            f"{picks.file}:{picks.lines[n]}: x {x:.10g}, y {y:.10g} is off the store's grid "
            f"(nearest inline index {i[n]:.1f}, crossline index {j[n]:.1f}); check --columns or the survey"
        )
    return np.rint(i).astype(np.int64), np.rint(j).astype(np.int64)


def _check_vertical(picks: Picks, grid: Grid) -> None:
    low, high = float(grid.vertical[0]), float(grid.vertical[-1])
    outside = np.flatnonzero((picks.z < low) | (picks.z > high))
    if len(outside):
        n = outside[0]
        raise HorizonError(
            f"{picks.file}:{picks.lines[n]}: {grid.vertical_name} {picks.z[n]:g} is outside the store's "
            f"range {low:g}..{high:g}; picks must be in the store's units"
        )


def _check_repeats(picks: Picks, flat, order, first, counts, grid: Grid) -> None:
    half_sample = float(np.diff(grid.vertical[:2])[0]) / 2 if len(grid.vertical) > 1 else 0.0
    spans = np.maximum.reduceat(picks.z[order], first) - np.minimum.reduceat(picks.z[order], first)
    bad = np.flatnonzero(spans > half_sample)
    if len(bad):
        members = order[first[bad[0]] : first[bad[0]] + counts[bad[0]]]
        a, b = members[0], members[np.argmax(np.abs(picks.z[members] - picks.z[members[0]]))]
        il, xl = picks.lateral[a]
        raise HorizonError(
            f"{picks.file}:{picks.lines[b]}: inline {il:g} crossline {xl:g} is picked twice, at "
            f"{picks.z[a]:g} (line {picks.lines[a]}) and {picks.z[b]:g}; keep one pick per trace"
        )


def order_surfaces(surfaces: list[Surface]) -> list[Surface]:
    """Sort horizons shallow to deep; refuse two that cross.

    Two horizons cross when each lies below the other somewhere. The message
    names the pick where the one that is deeper on average lies above the other.

    Parameters
    ----------
    surfaces : list of Surface
        Placed horizons.

    Returns
    -------
    list of Surface
        Shallowest (on average) first.

    >>> a = Surface("a", "a.txt", np.array([[10.0, 20.0]]), np.array([[1, 2]]))
    >>> b = Surface("b", "b.txt", np.array([[30.0, 15.0]]), np.array([[7, 8]]))
    >>> order_surfaces([a, b])  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    seisfacies.pipeline.exceptions.HorizonError: a.txt:2: horizon 'a' at 20 lies below horizon 'b' ...
    """
    ordered = sorted(
        surfaces, key=lambda s: float(np.nanmean(s.values)) if np.isfinite(s.values).any() else 0.0
    )
    for n, upper in enumerate(ordered):
        for lower in ordered[n + 1 :]:
            crossed = np.argwhere(upper.values > lower.values)
            if len(crossed):
                i, j = crossed[0]
                raise HorizonError(
                    f"{upper.where(i, j)}: horizon {upper.name!r} at {upper.values[i, j]:g} lies below "
                    f"horizon {lower.name!r} ({lower.values[i, j]:g}, {lower.where(i, j)}), which is "
                    "deeper elsewhere: the horizons cross; fix the picks"
                )
    return ordered


def fill_gaps(values: np.ndarray, method: str) -> tuple[np.ndarray, int]:
    """Fill a horizon's unpicked nodes: ``nearest`` pick, or ``linear`` inside the picks (nearest beyond).

    Parameters
    ----------
    values : numpy.ndarray
        ``(inline, crossline)``, NaN where not picked.
    method : str
        ``nearest`` or ``linear``.

    Returns
    -------
    filled : numpy.ndarray
    count : int
        Nodes filled.

    >>> filled, count = fill_gaps(np.array([[0.0, np.nan, 4.0]]), "linear")
    >>> filled.tolist(), count
    ([[0.0, 2.0, 4.0]], 1)
    """
    from scipy.interpolate import LinearNDInterpolator, NearestNDInterpolator, interp1d

    known = np.isfinite(values)
    gaps = ~known
    if not gaps.any() or not known.any():
        return values, 0
    points, found = np.argwhere(known), values[known]
    wanted = np.argwhere(gaps)
    filled = values.copy()
    guess = np.full(len(wanted), np.nan)
    if method == "linear":
        varying = [axis for axis in range(2) if len(np.unique(points[:, axis])) > 1]
        if len(varying) == 2:
            guess = LinearNDInterpolator(points, found)(wanted)
        elif len(varying) == 1 and len(points) > 1:  # picks along one line: interpolate along it
            axis = varying[0]
            guess = interp1d(points[:, axis], found, bounds_error=False)(wanted[:, axis])
    missing = ~np.isfinite(guess)
    if missing.any():
        guess[missing] = NearestNDInterpolator(points, found)(wanted[missing])
    filled[gaps] = guess
    return filled, int(gaps.sum())


def interval_classes(surfaces: np.ndarray, vertical: np.ndarray) -> np.ndarray:
    """The interval each sample lies in: 0 above the first horizon, ``n`` below the last.

    A sample at a horizon belongs to the interval below it. Where a horizon
    bounding the sample's interval is missing (NaN) the sample is ``-1``.

    Parameters
    ----------
    surfaces : numpy.ndarray
        ``(n_horizons, inline, crossline)``, shallow to deep.
    vertical : numpy.ndarray
        ``(samples,)`` the samples' times or depths.

    Returns
    -------
    numpy.ndarray
        ``(inline, crossline, samples)`` int16.

    >>> tops = np.array([[[8.0]], [[np.nan]], [[16.0]]])  # three horizons, one trace; the middle one missing
    >>> interval_classes(tops, np.arange(0.0, 24.0, 4.0))[0, 0].tolist()
    [0, 0, -1, -1, 3, 3]
    """
    n = len(surfaces)
    samples = np.asarray(vertical, dtype=np.float64)[None, None, :]
    classes = np.full((*surfaces.shape[1:], samples.shape[-1]), -1, np.int16)
    for interval in range(n + 1):
        inside = np.ones(classes.shape, bool)
        if interval > 0:
            inside &= samples >= surfaces[interval - 1][..., None]  # NaN compares False: unlabelled
        if interval < n:
            inside &= samples < surfaces[interval][..., None]
        classes[inside] = interval
    return classes


def check_between(surfaces: np.ndarray, names: list[str], where: str) -> None:
    """Refuse ``--between`` horizons given out of order (shallow to deep, as the intervals are named).

    Parameters
    ----------
    surfaces : numpy.ndarray
        ``(n, inline, crossline)`` in the order given.
    names : list of str
        Their names.
    where : str
        The store, for the message.
    """
    for n in range(len(names) - 1):
        above = surfaces[n] > surfaces[n + 1]
        if above.any():
            i, j = np.argwhere(above)[0]
            raise HorizonError(
                f"option --between: {names[n]!r} lies below {names[n + 1]!r} in {where} "
                f"(inline index {i}, crossline index {j}); list the horizons shallow to deep"
            )


def default_interval_names(names: list[str]) -> tuple[str, ...]:
    """Class names of the intervals around horizons, when ``--classes`` is not given.

    Parameters
    ----------
    names : list of str
        The horizons, shallow to deep.

    Returns
    -------
    tuple of str

    >>> default_interval_names(["top", "base"])
    ('above_top', 'top_to_base', 'below_base')
    """
    inner = [f"{a}_to_{b}" for a, b in zip(names, names[1:])]
    return (f"above_{names[0]}", *inner, f"below_{names[-1]}")


def file_stem(path: str) -> str:
    """A horizon's default name: the file's name without its extension, other characters made ``_``.

    Parameters
    ----------
    path : str
        The pick file (a path or URL).

    Returns
    -------
    str

    >>> file_stem("s3://bucket/picks/top chalk (v2).xyz")
    'top_chalk__v2_'
    """
    return re.sub(r"[^A-Za-z0-9_\-]", "_", Path(path.rstrip("/").rsplit("/", 1)[-1]).stem)
