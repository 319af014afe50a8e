"""Where to label next: the inlines whose labels would help the model most.

An interpreter's next hour is best spent where the model is unsure and no
labelled inline is near: a label teaches most about the inlines around it,
and an inline right beside a labelled one looks much like it. So the picks
minimise the sum over all inlines of their doubt times their distance to the
nearest labelled (or already chosen) inline, less :data:`COVERED` inlines
(those the model sees with a labelled one as input neighbours). An inline's
doubt is its mean ``uncertainty`` above that of the survey's surest inline:
the floor every inline shares (noise, facies boundaries everywhere) is not
what a new label removes, and a tenth of the whole doubt is added, so that
flat doubt gives evenly spaced picks. Each greedy pick removes the largest
share of the sum; doubt pulls the picks towards where the model is unsure.
Edge inlines, which serve only one side, count for what they cover.
"""

from __future__ import annotations

import numpy as np

from .store import vertical_dim


def inline_profiles(dataset) -> tuple[np.ndarray, np.ndarray]:
    """Mean uncertainty of every inline, and which inlines hold labels (streamed by chunks).

    Parameters
    ----------
    dataset : xarray.Dataset
        A store with ``uncertainty`` (and perhaps ``labels``), opened lazily.

    Returns
    -------
    tuple of numpy.ndarray
        float per inline (NaN where no voxel has a value), bool per inline.
    """
    import dask

    across = ("crossline", vertical_dim(dataset))
    mean = dataset.uncertainty.astype("float32").mean(dim=across, skipna=True)
    if "labels" in dataset.variables:
        labelled = (dataset.labels >= 0).any(dim=across)
        mean, labelled = dask.compute(mean.data, labelled.data)
        return np.asarray(mean), np.asarray(labelled, bool)
    return np.asarray(dask.compute(mean.data)[0]), np.zeros(dataset.sizes["inline"], bool)


def choose_inlines(uncertainty: np.ndarray, labelled: np.ndarray, count: int) -> list[tuple[int, float]]:
    """Greedy picks that most lower the doubt-weighted distance from every inline to its nearest label.

    Parameters
    ----------
    uncertainty : numpy.ndarray
        Mean uncertainty per inline position (NaN: no value).
    labelled : numpy.ndarray
        Whether each inline position already has labels.
    count : int
        How many to choose.

    Returns
    -------
    list of (int, float)
        Inline positions (0-based) and their scores, best first: the share of
        the doubt-weighted distance (before any pick) each pick removes.
        Fewer when no inline removes any.

    With the same doubt everywhere, the picks fill the largest gaps:

    >>> labelled = np.zeros(13, bool); labelled[[0, 12]] = True
    >>> [position for position, _ in choose_inlines(np.full(13, 0.5), labelled, 1)]
    [6]

    Doubt on one side pulls the first pick there, and the second fills the other side:

    >>> labelled = np.zeros(31, bool); labelled[[0, 30]] = True
    >>> doubt = np.full(31, 0.1); doubt[6:10] = 0.9
    >>> choose_inlines(doubt, labelled, 2)
    [(8, 0.9596), (19, 0.0271)]
    """
    values = np.asarray(uncertainty, float)
    measured = np.isfinite(values)  # NaN: an inline without a value, not a sure one
    values = np.where(measured, values, 0.0)
    floor = values[measured].min() if measured.any() else 0.0
    # the doubt above the surest inline's (the floor is everywhere), plus a share of the whole
    # doubt, which spreads the picks evenly where the doubt is flat
    values = np.where(measured, values - floor + FLAT_SHARE * values, 0.0)
    positions = np.arange(len(values))
    taken = np.flatnonzero(labelled)
    if len(taken):
        distance = np.abs(positions[:, None] - taken[None, :]).min(axis=1).astype(float)
    else:  # nothing labelled yet: every inline is as far from a label as the survey is wide
        distance = np.full(len(values), float(len(values)))
    total = float((values * _beyond_cover(distance)).sum())
    picks = []
    for _ in range(count):
        gain = _gains(values, distance, positions)
        best = int(np.lexsort((distance, gain))[-1])  # ties: the one farthest from a label
        if total <= 0 or gain[best] <= 0:
            break
        picks.append((best, round(float(gain[best]) / total, 4)))
        distance = np.minimum(distance, np.abs(positions - best))
    return picks


#: The share of the whole doubt added to the doubt above the floor: even spacing where it is flat.
FLAT_SHARE = 0.1
#: Inlines this close to a label count as labelled: the default section patches carry
#: two neighbouring sections on each side, and a label beside a label teaches little.
COVERED = 2
#: Candidate inlines scored at once: bounds the (candidates x inlines) array.
CANDIDATE_BLOCK = 512


def _gains(values: np.ndarray, distance: np.ndarray, positions: np.ndarray) -> np.ndarray:
    """How much labelling each inline would lower sum(values * uncovered distance to the nearest label)."""
    gains = np.empty(len(positions))
    now = _beyond_cover(distance)[None, :]
    for first in range(0, len(positions), CANDIDATE_BLOCK):
        candidates = positions[first : first + CANDIDATE_BLOCK, None]
        closer = np.maximum(now - _beyond_cover(np.abs(candidates - positions[None, :])), 0.0)
        gains[first : first + CANDIDATE_BLOCK] = closer @ values
    return gains


def _beyond_cover(distance: np.ndarray) -> np.ndarray:
    return np.maximum(distance - COVERED, 0.0)
