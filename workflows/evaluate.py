"""``seisfacies evaluate``: F3-benchmark metrics of ``facies`` against a truth, on the workers."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..pipeline import location
from ..pipeline.blocks import Region, regions
from ..pipeline.cluster import run_tasks
from ..pipeline.exceptions import ConfigError
from ..pipeline.labels import LabelSource, open_label_source, read_labels, to_classes
from ..pipeline.metrics import UNCLASSIFIED, class_table, confusion_matrix, confusion_table, scores
from ..pipeline.regions import read_region
from ..pipeline.store import open_store, store_chunks
from .config import EvaluateConfig


@dataclass(frozen=True)
class ConfusionTask:
    store: str
    region: Region
    n_classes: int
    truth: LabelSource | None  # None: the store's own labels
    where: str


def region_confusion(task: ConfusionTask) -> np.ndarray:
    """The confusion matrix of one region: true classes by rows, predicted by columns.

    Parameters
    ----------
    task : ConfusionTask
        What the task does: paths, region and options (picklable).

    Returns
    -------
    np.ndarray
    """
    predicted = read_region(task.store, "facies", task.region)
    if task.truth is None:
        truth = read_region(task.store, "labels", task.region).astype(np.int64)
    else:
        truth = to_classes(
            read_labels(task.truth, task.region), task.truth.unlabelled, task.n_classes
        ).astype(np.int64)
    if task.where != "all":
        training = read_region(task.store, "labels", task.region) >= 0
        truth = np.where(training if task.where == "labelled" else ~training, truth, -1)
    return confusion_matrix(truth, predicted, task.n_classes)


def evaluate_store(store: str | Path, config: EvaluateConfig, client=None) -> dict:
    """Pixel accuracy, mean class accuracy, (frequency-weighted) IoU and the confusion matrix.

    Parameters
    ----------
    store : str | Path
        The Zarr store.
    config : EvaluateConfig
        The step's options.
    client
        The Dask client; None runs in this process.

    Returns
    -------
    dict
    """
    store = location.resolve(store)  # tasks run on workers, whose working folder may differ
    needs_labels = config.truth is None or config.where != "all"
    dataset = open_store(store, require=("facies", "labels") if needs_labels else ("facies",))
    names = dataset.facies.attrs["flag_meanings"].split()
    if config.truth is None and config.where == "unlabelled":
        raise ConfigError(
            "option --where unlabelled: the store's labels are the training labels; "
            "give the interpretation to score against with --truth SOURCE"
        )
    truth = (
        open_label_source(config.truth, dataset, config.unlabelled, tuple(names)) if config.truth else None
    )
    plan = regions(dict(dataset.amplitude.sizes), store_chunks(dataset))
    tasks = [ConfusionTask(str(store), region, len(names), truth, config.where) for region in plan]
    confusion = np.sum(run_tasks(region_confusion, tasks, client, "evaluate"), axis=0)
    result = scores(confusion)
    warnings = []
    if config.truth is None:  # the store's labels are what the model was trained on
        warnings.append(
            "scored against the store's own labels, the ones the model was trained on: this measures fit, "
            "not generalisation; pass --truth SOURCE --where unlabelled for held-out scores"
        )
    if "model_partial" in dataset.facies.attrs:  # predicted with --allow-partial
        warnings.append(
            f"the facies come from a partial checkpoint ({dataset.facies.attrs['model_partial']} of a "
            f"training that stopped early, {dataset.facies.attrs.get('model_file')}): finish it with "
            "`seisfacies train ... --resume` and predict again"
        )
    return {
        **({"warning": "; ".join(warnings)} if warnings else {}),
        "store": str(store),
        "truth": config.truth or "store labels",
        "where": config.where,
        "voxels": int(confusion.sum()),
        "pixel_accuracy": round(result["pixel_accuracy"], 4),
        "mean_class_accuracy": round(result["mean_class_accuracy"], 4),
        "mean_iou": round(result["mean_iou"], 4),
        "frequency_weighted_iou": round(result["frequency_weighted_iou"], 4),
        "class_iou": {
            name: None if v is None else round(v, 4) for name, v in zip(names, result["class_iou"])
        },
        "class_accuracy": {
            name: None if v is None else round(v, 4) for name, v in zip(names, result["class_accuracy"])
        },
        "confusion_matrix": confusion.tolist(),
        "classes": names,
        "confusion_columns": [*names, UNCLASSIFIED],
        "unclassified_voxels": int(confusion[:, -1].sum()),
    }


#: Entries of :func:`evaluate_store`'s summary that :func:`report` shows as tables, not lines.
TABLED = ("class_iou", "class_accuracy", "confusion_matrix", "classes", "confusion_columns")


def report(summary: dict) -> str:
    """The summary for people: the scores, then a per-class table and the confusion matrix.

    Parameters
    ----------
    summary : dict
        What :func:`evaluate_store` returned.

    Returns
    -------
    str
    """
    names = summary["classes"]
    confusion = np.array(summary["confusion_matrix"])
    lines = [f"{key}: {value}" for key, value in summary.items() if key not in TABLED and key != "warning"]
    per_class = class_table(
        names,
        [summary["class_iou"][name] for name in names],
        [summary["class_accuracy"][name] for name in names],
        confusion.sum(axis=1).tolist(),
    )
    return "\n".join([*lines, "", per_class, "", confusion_table(confusion, names)])
