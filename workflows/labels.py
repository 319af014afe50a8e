"""``seisfacies labels``: validate a label source on the workers, then attach it."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import dask.array as da
import numpy as np

from ..pipeline import location
from ..pipeline.blocks import Region, regions
from ..pipeline.cluster import run_tasks
from ..pipeline.commit import check_store_writable, commit_variables, finished_variables, pending_name, writes
from ..pipeline.exceptions import LabelError, StoreError
from ..pipeline.labels import (
    LabelSource,
    class_attrs,
    open_label_source,
    parse_class_names,
    read_labels,
    to_classes,
)
from ..pipeline.regions import write_region
from ..pipeline.store import add_variables_template, open_store, store_chunks, vertical_dim
from .config import LabelsConfig


@dataclass(frozen=True)
class LabelTask:
    source: LabelSource
    region: Region
    n_classes: int | None
    keep_rows: np.ndarray | None = None  # inline indices that keep their labels
    store: str = ""


def region_classes(task: LabelTask) -> np.ndarray:
    """Validated classes of one region, -1 outside the kept inlines.

    Parameters
    ----------
    task : LabelTask
        What the task does: paths, region and options (picklable).

    Returns
    -------
    np.ndarray
    """
    classes = to_classes(read_labels(task.source, task.region), task.source.unlabelled, task.n_classes)
    if task.keep_rows is not None:
        rows = np.arange(task.region["inline"].start, task.region["inline"].stop)
        classes[~np.isin(rows, task.keep_rows)] = -1
    return classes


def region_class_counts(task: LabelTask) -> np.ndarray:
    """Validate one region; return its count of voxels per class.

    Parameters
    ----------
    task : LabelTask
        What the task does: paths, region and options (picklable).

    Returns
    -------
    np.ndarray
    """
    classes = region_classes(task)
    return np.bincount(classes[classes >= 0], minlength=task.n_classes or 0)


def write_label_region(task: LabelTask) -> None:
    """Write label region.

    Parameters
    ----------
    task : LabelTask
        What the task does: paths, region and options (picklable).
    """
    write_region(task.store, pending_name("labels"), task.region, region_classes(task))


@writes("store")
def attach_labels(store: str | Path, source: str | Path, config: LabelsConfig, client=None) -> dict:
    """Add ``labels`` (int16, -1 unlabelled) to a store from any label source.

    Parameters
    ----------
    store : str | Path
        The Zarr store.
    source : str | Path
        The input: a file, store or label source.
    config : LabelsConfig
        The step's options.
    client
        The Dask client; None runs in this process.

    Returns
    -------
    dict
    """
    # absolute: tasks run on workers, whose working folder may differ
    store, source = location.resolve(store), location.resolve(source)
    dataset = open_store(store)
    if finished_variables(dataset, ("labels",)) and not config.overwrite:
        raise StoreError(f"{store}: the store already has labels; pass --overwrite to replace them")
    check_store_writable(store)
    if source == store:
        raise LabelError(f"{source}: the label source is the store itself; give another file or store")
    names = parse_class_names(config.classes)
    label_source = open_label_source(source, dataset, config.unlabelled, names)
    names = names or label_source.class_names
    vertical = vertical_dim(dataset)
    chunks = store_chunks(dataset)
    plan = regions(dict(dataset.amplitude.sizes), chunks)
    n_classes = len(names) or None
    kept_rows = _kept_rows(dataset, config.inlines)
    try:
        counts = run_tasks(
            region_class_counts,
            [LabelTask(label_source, r, n_classes, kept_rows) for r in plan],
            client,
            "check labels",
        )
    except LabelError as error:
        raise LabelError(f"{source}: {error}") from None
    total = _sum_counts(counts)
    if not total.sum():
        raise LabelError(f"{source}: no labelled voxels; check --unlabelled")
    names = names or tuple(f"class_{n}" for n in range(len(total)))
    template = dataset[[]].assign(
        labels=(
            dataset.amplitude.dims,
            da.full(dataset.amplitude.shape, -1, dtype=np.int16, chunks=dataset.amplitude.chunks),
            {"long_name": "Facies labels (interpretation)", **class_attrs(names)},
        )
    )
    add_variables_template(template, store, chunks)
    tasks = [LabelTask(label_source, r, len(names), kept_rows, str(store)) for r in plan]
    run_tasks(write_label_region, tasks, client, "write labels")
    commit_variables(store, ["labels"], {"class_names": list(names)})
    counts_by_name = {name: int(total[n]) if n < len(total) else 0 for n, name in enumerate(names)}
    return {
        "store": str(store),
        "source": str(source),
        "kind": label_source.kind,
        "classes": counts_by_name,
        "labelled_fraction": round(float(total.sum()) / float(np.prod(dataset.amplitude.shape)), 4),
        "dims": list(dataset.amplitude.dims),
        "vertical": vertical,
    }


def _kept_rows(dataset, inlines: tuple[int, ...] | None) -> np.ndarray | None:
    if inlines is None:
        return None
    numbers = dataset.inline.values
    missing = sorted(set(inlines) - set(numbers.tolist()))
    if missing:
        raise LabelError(
            f"option --inlines: {missing[:5]} are not inlines of the store ({numbers[0]}..{numbers[-1]})"
        )
    return np.flatnonzero(np.isin(numbers, inlines))


def _sum_counts(counts: list[np.ndarray]) -> np.ndarray:
    size = max((len(c) for c in counts), default=0)
    return sum((np.pad(c, (0, size - len(c))) for c in counts), np.zeros(size, np.int64))
