"""Facies metrics of the F3 benchmark (Alaudah et al. 2019) from confusion matrices.

>>> cm = confusion_matrix(np.array([0, 0, 1, 1]), np.array([0, 1, 1, 1]), 2)
>>> cm.tolist()
[[1, 1], [0, 2]]
>>> {k: round(v, 3) for k, v in scores(cm).items() if not isinstance(v, list)}
{'pixel_accuracy': 0.75, 'mean_class_accuracy': 0.75, 'mean_iou': 0.583, 'frequency_weighted_iou': 0.583}
"""

from __future__ import annotations

import numpy as np


def confusion_matrix(truth: np.ndarray, predicted: np.ndarray, n_classes: int) -> np.ndarray:
    """Counts[true class, predicted class] over positions where truth >= 0."""
    valid = truth >= 0
    index = truth[valid].astype(np.int64) * n_classes + predicted[valid].astype(np.int64)
    return np.bincount(index, minlength=n_classes * n_classes).reshape(n_classes, n_classes)


def scores(confusion: np.ndarray) -> dict:
    """Pixel accuracy, mean class accuracy, per-class and mean IoU, frequency-weighted IoU.

    Classes absent from the truth are left out of the means (their IoU is NaN).
    """
    confusion = confusion.astype(np.float64)
    true_count = confusion.sum(axis=1)
    predicted_count = confusion.sum(axis=0)
    hits = np.diag(confusion)
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
