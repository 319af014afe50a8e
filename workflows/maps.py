"""``seisfacies map``: maps along a horizon, computed chunk by chunk on the workers.

Each task covers one chunk of traces: it reads the horizon there, then only
the samples its windows touch, and writes its piece of every map. The maps
are 2D variables of the store, ``map_<horizon>_<variable>`` (dims
``inline``, ``crossline``; facies and probability maps add ``class``).
"""

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
from ..pipeline.exceptions import ConfigError, StoreError
from ..pipeline.labels import class_attrs
from ..pipeline.maps import class_fractions, sample_range, window_bounds, window_mask, window_mean, window_rms
from ..pipeline.regions import read_region, write_region
from ..pipeline.store import add_variables_template, open_store, store_chunks, vertical_dim
from .config import MapConfig

#: The window when neither --window nor --to is given, in the store's units.
DEFAULT_WINDOW = (-20.0, 20.0)
CLASS_VARIABLES = ("facies", "labels")


@dataclass(frozen=True)
class MapTask:
    store: str
    variable: str
    kind: str  # "classes", "probability", "rms" or "mean"
    region: Region  # inline and crossline
    rows: tuple[int, ...]  # the horizon (and the other one) in the store's `horizon` dim
    window: tuple[float, float] | None
    vertical: np.ndarray  # the store's sample times or depths
    vertical_name: str
    outputs: tuple[str, ...]
    n_classes: int = 0


def map_names(horizon: str, variable: str, kind: str) -> tuple[str, ...]:
    """The store variables a map writes.

    Parameters
    ----------
    horizon : str
        The horizon's name.
    variable : str
        The mapped variable.
    kind : str
        How it is mapped.

    Returns
    -------
    tuple of str

    >>> map_names("top", "facies", "classes")
    ('map_top_facies', 'map_top_facies_fraction')
    """
    name = f"map_{horizon}_{variable}"
    return (name, f"{name}_fraction") if kind == "classes" else (name,)


def write_map_region(task: MapTask) -> None:
    """Compute every map of one chunk of traces and write it to the pending variables.

    Parameters
    ----------
    task : MapTask
        What the task does: paths, region and options (picklable).
    """
    lateral = {"horizon": slice(None), **task.region}
    horizons = read_region(task.store, "horizons", lateral)[list(task.rows)].astype(np.float64)
    other = horizons[1] if len(task.rows) > 1 else None
    upper, lower = window_bounds(horizons[0], task.window, other)
    live = read_region(task.store, "trace_mask", task.region).astype(bool)
    upper[~live] = np.nan
    samples = sample_range(task.vertical, upper, lower)
    inside = window_mask(task.vertical[samples], upper, lower, include_lower=other is None)
    region = {**task.region, task.vertical_name: samples}
    if task.kind == "probability":
        values = read_region(task.store, task.variable, {"class": slice(None), **region})
        results = [window_mean(values.astype(np.float32), inside)]
    elif task.kind == "classes":
        majority_and_fractions = class_fractions(
            read_region(task.store, task.variable, region), inside, task.n_classes
        )
        results = majority_and_fractions[::-1]
    else:
        values = read_region(task.store, task.variable, region).astype(np.float32)
        results = [(window_rms if task.kind == "rms" else window_mean)(values, inside)]
    for name, values in zip(task.outputs, results):
        extra = {"class": slice(None)} if values.ndim == 3 else {}
        write_region(task.store, pending_name(name), {**extra, **task.region}, values)


@writes("store")
def map_horizon(store: str | Path, config: MapConfig, client=None) -> dict:
    """Map a variable along a horizon: window statistics per trace, written as 2D store variables.

    Parameters
    ----------
    store : str | Path
        The Zarr store, with ``horizons`` and the variable to map.
    config : MapConfig
        The step's options.
    client
        The Dask client; None runs in this process.

    Returns
    -------
    dict
        The maps written, the window, and the share of traces each covers.
    """
    store = location.resolve(store)
    dataset = open_store(store, require=("amplitude", "horizons", config.variable))
    rows = _horizon_rows(dataset, config)
    kind = _kind(dataset, config.variable)
    outputs = map_names(config.horizon, config.variable, kind)
    check_new_variables(store, dataset, outputs, config.overwrite)
    check_store_writable(store)
    window = None if config.to else tuple(config.window or DEFAULT_WINDOW)
    names = _class_names(dataset, config.variable, kind)
    chunks = store_chunks(dataset)
    add_variables_template(_template(dataset, outputs, kind, names, config, window), store, chunks)
    vertical = vertical_dim(dataset)
    plan = regions({"inline": dataset.sizes["inline"], "crossline": dataset.sizes["crossline"]}, chunks)
    tasks = [
        MapTask(
            str(store),
            config.variable,
            kind,
            r,
            rows,
            window,
            dataset[vertical].values,
            vertical,
            outputs,
            len(names),
        )
        for r in plan
    ]
    run_tasks(write_map_region, tasks, client, "map")
    commit_variables(store, list(outputs))
    first = open_store(store, require=outputs)[outputs[0]]
    covered = float((first >= 0).mean() if kind == "classes" else first.notnull().mean())
    return {
        "store": str(store),
        "maps": list(outputs),
        "horizon": config.horizon,
        **({"to": config.to} if config.to else {"window": list(window)}),
        "units": dataset[vertical_dim(dataset)].attrs.get("units", ""),
        "covered": round(covered, 4),
    }


def _horizon_rows(dataset, config: MapConfig) -> tuple[int, ...]:
    if config.to is not None and config.window is not None:
        raise ConfigError("option --to: give --window or --to, not both")
    known = [str(name) for name in dataset.horizon.values]
    wanted = [config.horizon] + ([config.to] if config.to is not None else [])
    for option, name in zip(("--horizon", "--to"), wanted):
        if name not in known:
            raise ConfigError(f"option {option} {name!r}: not a horizon of the store ({', '.join(known)})")
    return tuple(known.index(name) for name in wanted)


def _kind(dataset, variable: str) -> str:
    dims = dataset[variable].dims
    if dims[-3:] != dataset.amplitude.dims:
        raise ConfigError(f"option --variable {variable!r}: not a volume of the store (dims {list(dims)})")
    if variable in CLASS_VARIABLES:
        return "classes"
    if "class" in dims:
        return "probability"
    return "rms" if variable == "amplitude" else "mean"


def _class_names(dataset, variable: str, kind: str) -> list[str]:
    if kind == "classes":
        return dataset[variable].attrs["flag_meanings"].split()
    if kind == "probability":
        return [str(name) for name in dataset["class"].values]
    return []


def _template(dataset, outputs, kind: str, names: list[str], config: MapConfig, window):
    lateral = ("inline", "crossline")
    shape = tuple(dataset.sizes[d] for d in lateral)
    units = dataset[vertical_dim(dataset)].attrs.get("units", "")
    where = (
        f"from {config.horizon!r} to {config.to!r}"
        if window is None
        else f"along {config.horizon!r}, {window[0]:+g} to {window[1]:+g} {units}"
    )
    source = dataset[config.variable].attrs.get("long_name", config.variable)
    about = {
        "horizon": config.horizon,
        "window": list(window) if window else config.to,
        "mapped_variable": config.variable,
        "units": "1",
    }
    if kind == "classes":
        variables = {
            outputs[0]: (
                lateral,
                da.full(shape, -1, dtype=np.int16),
                {
                    "long_name": f"Most common {config.variable} {where}",
                    **class_attrs(tuple(names)),
                    **about,
                },
            ),
            outputs[1]: (
                (_class_dim(config.variable), *lateral),
                da.zeros((len(names), *shape), dtype=np.float32),
                {
                    "long_name": f"Share of each {config.variable} class {where}",
                    **about,
                },
            ),
        }
    else:
        dims = ("class", *lateral) if kind == "probability" else lateral
        sizes = (len(names), *shape) if kind == "probability" else shape
        statistic = "RMS" if kind == "rms" else "Mean"
        units = "1" if kind != "rms" else dataset[config.variable].attrs.get("units", "1")
        variables = {
            outputs[0]: (
                dims,
                da.zeros(sizes, dtype=np.float32),
                {
                    "long_name": f"{statistic} of {source.lower()} {where}",
                    **about,
                    "units": units,
                },
            ),
        }
    template = dataset[[]].drop_vars(vertical_dim(dataset), errors="ignore").assign(variables)
    class_dim = _class_dim(config.variable)
    if class_dim in template.dims:
        if class_dim == "class":
            _check_classes(dataset, names)
        template = template.assign_coords({class_dim: (class_dim, np.array(names, dtype=object))})
    return template


def _class_dim(variable: str) -> str:
    """The class dim of a map: labels have classes of their own, facies and probability the model's."""
    return "label_class" if variable == "labels" else "class"


def _check_classes(dataset, names: list[str]) -> None:
    """A ``class`` coordinate already in the store (from ``probability``) must name the same classes."""
    if "class" in dataset.coords and [str(n) for n in dataset["class"].values] != names:
        raise StoreError(
            f"the store's class coordinate ({', '.join(map(str, dataset['class'].values))}) does not match "
            f"the classes mapped ({', '.join(names)}); re-run `seisfacies predict` first"
        )
