"""``seisfacies attributes``: attributes of the amplitude, whole traces per task, as store variables."""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

import dask.array as da
import numpy as np

from ..pipeline import location
from ..pipeline.attributes import attribute_attrs, compute, parse_attributes
from ..pipeline.blocks import Region, regions
from ..pipeline.cluster import run_tasks
from ..pipeline.commit import (
    check_new_variables,
    check_store_writable,
    commit_variables,
    pending_name,
    writes,
)
from ..pipeline.regions import read_region, write_region
from ..pipeline.store import add_variables_template, open_store, store_chunks, vertical_dim
from .config import AttributesConfig


@dataclass(frozen=True)
class AttributeTask:
    store: str
    region: Region  # inline and crossline; whole traces
    vertical: str
    attributes: dict  # name -> RMS window in samples (or None)
    sample_interval: float


def write_attribute_region(task: AttributeTask) -> None:
    """Read one chunk of whole traces and write each attribute of them, an inline at a time.

    Parameters
    ----------
    task : AttributeTask
        What the task does: paths, region and options (picklable).
    """
    region = {**task.region, task.vertical: slice(None)}
    amplitude = read_region(task.store, "amplitude", region)
    for name, window in task.attributes.items():
        values = np.empty(amplitude.shape, np.float32)
        for row in range(len(amplitude)):  # an inline of traces at a time: the transform's memory stays small
            values[row] = compute(name, amplitude[row], task.sample_interval, task.vertical, window)
        write_region(task.store, pending_name(name), region, values)


@writes("store")
def add_attributes(store: str | Path, config: AttributesConfig, client=None) -> dict:
    """Compute attributes of a store's amplitude along its traces; each becomes a variable of the store.

    Parameters
    ----------
    store : str | Path
        The Zarr store.
    config : AttributesConfig
        The step's options.
    client
        The Dask client; None runs in this process.

    Returns
    -------
    dict
    """
    started = time.perf_counter()
    store = location.resolve(store)
    dataset = open_store(store)
    vertical = vertical_dim(dataset)
    axis = dataset[vertical].values
    sample_interval = float(axis[1] - axis[0]) if len(axis) > 1 else 1.0
    attributes = parse_attributes(config.add, sample_interval)
    check_new_variables(store, dataset, tuple(attributes), config.overwrite)
    check_store_writable(store)
    chunks = store_chunks(dataset)
    shape, blocks = dataset.amplitude.shape, dataset.amplitude.chunks
    template = dataset[[]].assign(
        {
            name: (
                dataset.amplitude.dims,
                da.zeros(shape, dtype=np.float32, chunks=blocks),
                attribute_attrs(name, vertical, window, sample_interval),
            )
            for name, window in attributes.items()
        }
    )
    add_variables_template(template, store, chunks)
    plan = regions({"inline": shape[0], "crossline": shape[1]}, chunks)
    tasks = [AttributeTask(str(store), region, vertical, attributes, sample_interval) for region in plan]
    run_tasks(write_attribute_region, tasks, client, "attributes")
    commit_variables(store, list(attributes))
    return {
        "store": str(store),
        "variables": list(attributes),
        **({"rms_window_samples": attributes["rms"]} if attributes.get("rms") else {}),
        "seconds": round(time.perf_counter() - started, 2),
    }
