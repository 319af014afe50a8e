"""Where to label next: the inlines whose labels would help the model most.

An interpreter's next hour is best spent on an inline where the model is
unsure, and not next to one that is already labelled or already suggested
(neighbouring inlines look alike, so their labels teach little more). The
score of an inline is its mean ``uncertainty`` times how far it is from the
nearest labelled or chosen inline, relative to an even spacing.
"""

from __future__ import annotations

import numpy as np

from seisfacies.pipeline.store import vertical_dim


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
    """Greedy picks: the most uncertain inline, discounted near labelled and chosen ones.

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
        Inline positions (0-based) and their scores, best first; fewer when
        every remaining inline scores 0.

    The two most uncertain inlines are neighbours: only one of them is chosen,
    and the next pick is the far, less uncertain one.

    >>> doubt = np.array([0.1, 0.9, 0.85, 0.1, 0.1, 0.1, 0.1, 0.5, 0.1, 0.1])
    >>> [position for position, _ in choose_inlines(doubt, np.zeros(10, bool), 2)]
    [1, 7]
    >>> labelled = np.zeros(10, bool); labelled[2] = True
    >>> [position for position, _ in choose_inlines(doubt, labelled, 1)]
    [7]
    """
    size = len(uncertainty)
    spacing = max(1.0, size / (count + int(labelled.sum()) + 1))  # the gap an even spread leaves
    taken = list(np.flatnonzero(labelled))
    values = np.nan_to_num(np.asarray(uncertainty, float), nan=0.0)
    positions = np.arange(size)
    picks = []
    for _ in range(count):
        if taken:
            distance = np.min(np.abs(positions[:, None] - np.array(taken)[None, :]), axis=1)
            weight = np.minimum(1.0, distance / spacing)
        else:
            weight = np.ones(size)
        score = values * weight
        best = int(np.argmax(score))
        if score[best] <= 0:
            break
        picks.append((best, round(float(score[best]), 4)))
        taken.append(best)
    return picks
