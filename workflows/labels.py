"""``seisfacies labels``: validate a label source on the workers, then attach it."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import dask.array as da
import numpy as np

from ..pipeline import location
from ..pipeline.blocks import Region, regions
from ..pipeline.cluster import run_tasks
from ..pipeline.commit import (
    check_new_variables,
    check_store_writable,
    commit_variables,
    pending_name,
    writes,
)
from ..pipeline.exceptions import LabelError
from ..pipeline.labels import (
    LabelSource,
    class_attrs,
    horizon_source,
    open_label_source,
    parse_class_names,
    read_labels,
    to_classes,
)
from ..pipeline.maps import maps_of
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
    keep_columns: np.ndarray | None = None  # crossline indices that keep their labels


def region_classes(task: LabelTask) -> np.ndarray:
    """Validated classes of one region, -1 off the kept inlines and crosslines.

    Parameters
    ----------
    task : LabelTask
        What the task does: paths, region and options (picklable).

    Returns
    -------
    np.ndarray
    """
    classes = to_classes(read_labels(task.source, task.region), task.source.unlabelled, task.n_classes)
    if task.keep_rows is None and task.keep_columns is None:
        return classes
    kept = np.zeros(classes.shape[:2], bool)
    for axis, (dim, lines) in enumerate((("inline", task.keep_rows), ("crossline", task.keep_columns))):
        if lines is not None:
            numbers = np.arange(task.region[dim].start, task.region[dim].stop)
            kept |= np.expand_dims(np.isin(numbers, lines), 1 - axis)
    classes[~kept] = -1
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
    store = location.resolve(store)
    dataset = open_store(store, require=("amplitude", "horizons") if config.between else ("amplitude",))
    check_new_variables(store, dataset, ("labels",), config.overwrite)
    check_store_writable(store)
    names = parse_class_names(config.classes)
    if config.between:
        if source is not None:
            raise LabelError(f"{source}: give a label source or --between horizons, not both")
        label_source = horizon_source(store, dataset, list(config.between), names)
        source = f"{store}/horizons"
    elif source is None:
        raise LabelError("seisfacies labels: give a label SOURCE, or --between horizons of the store")
    else:
        source = location.resolve(source)
        if source == store:
            raise LabelError(f"{source}: the label source is the store itself; give another file or store")
        label_source = open_label_source(source, dataset, config.unlabelled, names)
    names = names or label_source.class_names
    vertical = vertical_dim(dataset)
    chunks = store_chunks(dataset)
    plan = regions(dict(dataset.amplitude.sizes), chunks)
    n_classes = len(names) or None
    kept_rows = _kept_lines(dataset, "inline", config.inlines)
    kept_columns = _kept_lines(dataset, "crossline", config.crosslines)
    try:
        counts = run_tasks(
            region_class_counts,
            [LabelTask(label_source, r, n_classes, kept_rows, keep_columns=kept_columns) for r in plan],
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
    tasks = [LabelTask(label_source, r, len(names), kept_rows, str(store), kept_columns) for r in plan]
    run_tasks(write_label_region, tasks, client, "write labels")
    stale_maps = maps_of(dataset, ("labels",))  # made from the labels these replace
    commit_variables(store, ["labels"], {"class_names": list(names)}, retire=(*stale_maps, "label_class"))
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


def _kept_lines(dataset, dim: str, lines: tuple[int, ...] | None) -> np.ndarray | None:
    """Indices along ``dim`` of the line numbers whose labels are kept (None: keep every line)."""
    if lines is None:
        return None
    numbers = dataset[dim].values
    missing = sorted(set(lines) - set(numbers.tolist()))
    if missing:
        raise LabelError(
            f"option --{dim}s: {missing[:5]} are not {dim}s of the store ({numbers[0]}..{numbers[-1]})"
        )
    return np.flatnonzero(np.isin(numbers, lines))


def _sum_counts(counts: list[np.ndarray]) -> np.ndarray:
    size = max((len(c) for c in counts), default=0)
    return sum((np.pad(c, (0, size - len(c))) for c in counts), np.zeros(size, np.int64))
