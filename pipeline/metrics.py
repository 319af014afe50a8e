"""Facies metrics of the F3 benchmark (Alaudah et al. 2019) from confusion matrices.

A voxel the model left unclassified (``-1``, where the input was not finite)
counts as wrong for its true class and has a column of its own, the last one.

>>> cm = confusion_matrix(np.array([0, 0, 1, 1]), np.array([0, 1, 1, -1]), 2)
>>> cm.tolist()  # columns: class 0, class 1, unclassified
[[1, 1, 0], [0, 1, 1]]
>>> {k: round(v, 3) for k, v in scores(cm).items() if not isinstance(v, list)}
{'pixel_accuracy': 0.5, 'mean_class_accuracy': 0.5, 'mean_iou': 0.417, 'frequency_weighted_iou': 0.417}
"""

from __future__ import annotations

import numpy as np

UNCLASSIFIED = "unclassified"


def confusion_matrix(truth: np.ndarray, predicted: np.ndarray, n_classes: int) -> np.ndarray:
    """Counts of (true class, predicted class) over the positions where ``truth >= 0``.

    Parameters
    ----------
    truth : numpy.ndarray
        True classes, ``-1`` where unknown (not counted).
    predicted : numpy.ndarray
        Predicted classes, ``-1`` where unclassified; same shape as ``truth``.
    n_classes : int
        Number of classes.

    Returns
    -------
    numpy.ndarray
        ``(n_classes, n_classes + 1)`` int64 counts; the last column counts
        unclassified voxels.
    """
    valid = truth >= 0
    columns = n_classes + 1
    chosen = predicted[valid].astype(np.int64)
    chosen = np.where(chosen < 0, n_classes, chosen)  # unclassified: the last column
    index = truth[valid].astype(np.int64) * columns + chosen
    return np.bincount(index, minlength=n_classes * columns).reshape(n_classes, columns)


def scores(confusion: np.ndarray) -> dict:
    """Pixel accuracy, mean class accuracy, per-class and mean IoU, frequency-weighted IoU.

    Classes absent from the truth are left out of the means (their IoU is NaN).

    Parameters
    ----------
    confusion : numpy.ndarray
        ``(n, n + 1)`` counts from :func:`confusion_matrix` (an ``(n, n)``
        matrix without the unclassified column is accepted too).

    Returns
    -------
    dict
        ``pixel_accuracy``, ``mean_class_accuracy``, ``mean_iou``,
        ``frequency_weighted_iou`` (floats), ``class_accuracy`` and
        ``class_iou`` (lists, None for absent classes).
    """
    confusion = confusion.astype(np.float64)
    n_classes = confusion.shape[0]
    true_count = confusion.sum(axis=1)  # unclassified voxels included: they are wrong
    predicted_count = confusion[:, :n_classes].sum(axis=0)
    hits = np.diag(confusion[:, :n_classes])
    present = true_count > 0
    with np.errstate(invalid="ignore", divide="ignore"):
        class_accuracy = hits / true_count
        iou = hits / (true_count + predicted_count - hits)
    total = max(confusion.sum(), 1.0)
    frequency = true_count / total
    return {
        "pixel_accuracy": float(hits.sum() / total),
        "mean_class_accuracy": float(np.nanmean(class_accuracy[present])) if present.any() else 0.0,
        "mean_iou": float(np.nanmean(iou[present])) if present.any() else 0.0,
        "frequency_weighted_iou": float(np.nansum(frequency[present] * iou[present])),
        "class_accuracy": [None if np.isnan(v) else float(v) for v in class_accuracy],
        "class_iou": [None if np.isnan(v) else float(v) for v in iou],
    }


def class_table(names: list[str], class_iou: list, class_accuracy: list, voxels: list[int]) -> str:
    """Per-class IoU, accuracy (recall) and true voxels, one class a line; ``-`` for an absent class.

    Parameters
    ----------
    names : list of str
        Class names.
    class_iou, class_accuracy : list
        One value (or None) per class, as :func:`scores` gives them.
    voxels : list of int
        True voxels of each class.

    Returns
    -------
    str

    >>> print(class_table(["sand", "shale"], [0.5, None], [0.75, None], [4000, 0]))
    class    IoU  accuracy     voxels
    sand   0.500     0.750      4,000
    shale      -         -          0
    """
    width = max(len("class"), *map(len, names))
    lines = [f"{'class':<{width}}  {'IoU':>5}  {'accuracy':>8}  {'voxels':>9}"]
    for name, iou, accuracy, count in zip(names, class_iou, class_accuracy, voxels):
        iou, accuracy = (f"{value:.3f}" if value is not None else "-" for value in (iou, accuracy))
        lines.append(f"{name:<{width}}  {iou:>5}  {accuracy:>8}  {count:>9,}")
    return "\n".join(lines)


def confusion_table(confusion: np.ndarray, names: list[str]) -> str:
    """The confusion matrix as a geophysicist reads it: rows are true classes, columns predicted ones.

    Each row is in percent of that true class's voxels; the last column is
    the voxels left unclassified.

    Parameters
    ----------
    confusion : numpy.ndarray
        ``(n, n + 1)`` counts from :func:`confusion_matrix`.
    names : list of str
        Class names.

    Returns
    -------
    str

    >>> print(confusion_table(np.array([[3, 1, 0], [0, 2, 2]]), ["sand", "shale"]))
    % of the true class     sand    shale  unclass
    sand                    75.0     25.0      0.0
    shale                    0.0     50.0     50.0
    """
    title = "% of the true class"
    width = max(len(title), *map(len, names))
    columns = [name[:7] for name in (*names, UNCLASSIFIED)]
    lines = [f"{title:<{width}}" + "".join(f"{column:>9}" for column in columns)]
    shares = 100 * confusion / np.maximum(confusion.sum(axis=1, keepdims=True), 1)
    for name, row in zip(names, shares):
        lines.append(f"{name:<{width}}" + "".join(f"{share:9.1f}" for share in row))
    return "\n".join(lines)
