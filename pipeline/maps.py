"""Maps along a horizon: statistics of a volume in a vertical window around it, trace by trace.

A window is either fixed around one horizon (``--window -20,20``: from 20
above to 20 below, both ends included) or the interval between two horizons
(``--to``: from the shallower, included, to the deeper, excluded, as the
intervals of ``labels --between``). Pure functions on arrays; the command that
plans them over a store's chunks is :mod:`seisfacies.workflows.maps`.

>>> vertical = np.arange(0.0, 40.0, 4.0)                      # ten samples, 4 ms apart
>>> inside = window_mask(vertical, np.array([[8.0]]), np.array([[20.0]]), include_lower=True)
>>> inside[0, 0].astype(int).tolist()
[0, 0, 1, 1, 1, 1, 0, 0, 0, 0]
>>> classes = np.array([[[0, 0, 1, 1, 2, 1, 0, 0, 0, 0]]])
>>> fractions, majority = class_fractions(classes, inside, 3)
>>> fractions[:, 0, 0].tolist(), majority.tolist()
([0.0, 0.75, 0.25], [[1]])
"""

from __future__ import annotations

import numpy as np


def window_bounds(
    horizon: np.ndarray, window: tuple[float, float] | None, other: np.ndarray | None
) -> tuple[np.ndarray, np.ndarray]:
    """The upper and lower edge of the window at every trace (NaN where a horizon is missing).

    Parameters
    ----------
    horizon : numpy.ndarray
        ``(inline, crossline)`` the map's horizon.
    window : tuple of float, optional
        Offsets from the horizon (negative: shallower), with ``other`` None.
    other : numpy.ndarray, optional
        A second horizon: the window is the interval between the two.

    Returns
    -------
    upper, lower : numpy.ndarray

    >>> window_bounds(np.array([100.0]), (-20.0, 8.0), None)
    (array([80.]), array([108.]))
    >>> window_bounds(np.array([100.0]), None, np.array([60.0]))
    (array([60.]), array([100.]))
    """
    if other is None:
        return horizon + window[0], horizon + window[1]
    return np.minimum(horizon, other), np.maximum(horizon, other)  # NaN where either is


def window_mask(
    vertical: np.ndarray, upper: np.ndarray, lower: np.ndarray, include_lower: bool
) -> np.ndarray:
    """Which samples of each trace lie in the window.

    Parameters
    ----------
    vertical : numpy.ndarray
        ``(samples,)`` times or depths.
    upper, lower : numpy.ndarray
        ``(inline, crossline)`` the window's edges (NaN: no window).
    include_lower : bool
        Whether a sample at ``lower`` is inside.

    Returns
    -------
    numpy.ndarray
        ``(inline, crossline, samples)`` bool.
    """
    samples = np.asarray(vertical)[None, None, :]
    below_top = samples >= upper[..., None]
    above_base = samples <= lower[..., None] if include_lower else samples < lower[..., None]
    return below_top & above_base


def class_fractions(classes: np.ndarray, inside: np.ndarray, n_classes: int) -> tuple[np.ndarray, np.ndarray]:
    """Each class's share of the classified samples in the window, and the most common class.

    Parameters
    ----------
    classes : numpy.ndarray
        ``(inline, crossline, samples)`` classes, ``-1`` unclassified (not counted).
    inside : numpy.ndarray
        The window, from :func:`window_mask`.
    n_classes : int
        Number of classes.

    Returns
    -------
    fractions : numpy.ndarray
        ``(n_classes, inline, crossline)`` float32, NaN where the window holds no classified sample.
    majority : numpy.ndarray
        ``(inline, crossline)`` int16, ``-1`` there; ties go to the lower class number.
    """
    counted = inside & (classes >= 0)
    counts = np.stack([(counted & (classes == c)).sum(axis=-1) for c in range(n_classes)])
    total = counts.sum(axis=0)
    with np.errstate(invalid="ignore", divide="ignore"):
        fractions = (counts / total).astype(np.float32)
    majority = np.where(total > 0, counts.argmax(axis=0), -1).astype(np.int16)
    return fractions, majority


def window_mean(values: np.ndarray, inside: np.ndarray) -> np.ndarray:
    """The mean of the finite values in the window along the last axis (NaN where none).

    Parameters
    ----------
    values : numpy.ndarray
        ``(..., inline, crossline, samples)``.
    inside : numpy.ndarray
        ``(inline, crossline, samples)`` from :func:`window_mask`.

    Returns
    -------
    numpy.ndarray
        float32, ``values``' shape without the last axis.

    >>> window_mean(np.array([[[1.0, 3.0, 9.0]]]), np.array([[[True, True, False]]])).tolist()
    [[2.0]]
    """
    counted = inside & np.isfinite(values)
    total = np.where(counted, values, 0.0).sum(axis=-1, dtype=np.float64)
    with np.errstate(invalid="ignore", divide="ignore"):
        return (total / counted.sum(axis=-1)).astype(np.float32)


def window_rms(values: np.ndarray, inside: np.ndarray) -> np.ndarray:
    """The root mean square of the finite values in the window (NaN where none).

    Parameters
    ----------
    values : numpy.ndarray
        ``(inline, crossline, samples)``.
    inside : numpy.ndarray
        From :func:`window_mask`.

    Returns
    -------
    numpy.ndarray
        ``(inline, crossline)`` float32.

    >>> round(float(window_rms(np.array([[[3.0, -4.0, 100.0]]]), np.array([[[True, True, False]]]))[0, 0]), 4)
    3.5355
    """
    return np.sqrt(window_mean(np.square(values, dtype=np.float64), inside)).astype(np.float32)


def sample_range(vertical: np.ndarray, upper: np.ndarray, lower: np.ndarray) -> slice:
    """The samples any window of a block can touch, to read no more of the volume than that.

    Parameters
    ----------
    vertical : numpy.ndarray
        ``(samples,)`` increasing.
    upper, lower : numpy.ndarray
        The windows' edges (NaN ignored).

    Returns
    -------
    slice
        Empty where no trace has a window.

    >>> sample_range(np.arange(0.0, 40.0, 4.0), np.array([9.0, np.nan]), np.array([14.0, np.nan]))
    slice(3, 4, None)
    """
    known = np.isfinite(upper) & np.isfinite(lower)
    if not known.any():
        return slice(0, 0)
    start = int(np.searchsorted(vertical, np.min(upper[known]), side="left"))
    stop = int(np.searchsorted(vertical, np.max(lower[known]), side="right"))
    return slice(start, max(start, stop))


def maps_of(dataset, variables: tuple[str, ...]) -> list[str]:
    """The maps of a store made from ``variables``: stale once those are written again.

    Parameters
    ----------
    dataset : xarray.Dataset
        The store, opened.
    variables : tuple of str
        Volume variables (``facies``, ``labels``, ...).

    Returns
    -------
    list of str
        Map variables whose ``mapped_variable`` attribute names one of them.
    """
    return [
        str(name)
        for name, array in dataset.data_vars.items()
        if array.attrs.get("mapped_variable") in variables
    ]


def map_text(x, y, inlines, crosslines, values: np.ndarray, header: str) -> str:
    """A map as the gridded ASCII interpretation software imports: x, y, inline, crossline, value.

    Nodes without a value (NaN, or ``-1`` in a class map) are left out.

    Parameters
    ----------
    x, y : numpy.ndarray
        ``(inline, crossline)`` node coordinates.
    inlines, crosslines : numpy.ndarray
        The line numbers.
    values : numpy.ndarray
        ``(inline, crossline)`` the map.
    header : str
        Comment lines (without ``#``) written first.

    Returns
    -------
    str

    >>> print(map_text(np.array([[10.0, 20.0]]), np.array([[5.0, 5.0]]), [7], [1, 2],
    ...                np.array([[0.25, np.nan]]), "top: RMS amplitude"), end="")
    # top: RMS amplitude
    # x y inline crossline value
    10.00 5.00 7 1 0.25
    """
    integers = np.issubdtype(values.dtype, np.integer)
    found = values >= 0 if integers else np.isfinite(values)
    i, j = np.nonzero(found)
    lines = [f"# {line}" for line in header.splitlines()] + ["# x y inline crossline value"]
    number = "{:d}" if integers else "{:.6g}"
    lines += [
        f"{x[a, b]:.2f} {y[a, b]:.2f} {inlines[a]} {crosslines[b]} " + number.format(values[a, b].item())
        for a, b in zip(i, j)
    ]
    return "\n".join(lines) + "\n"
