"""Zarr -> SEG-Y export with the source's headers, written region by region."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..pipeline import location
from ..pipeline import segy_format as fmt
from ..pipeline.blocks import Region, regions
from ..pipeline.cluster import run_tasks
from ..pipeline.commit import check_output, staged, write_file, writes
from ..pipeline.exceptions import HorizonError, SegyFormatError, StoreError
from ..pipeline.horizons import node_coordinates
from ..pipeline.maps import map_text
from ..pipeline.regions import read_region
from ..pipeline.segy_write import SegyWriteSpec, create_file, write_block
from ..pipeline.store import open_store, vertical_dim
from .config import ExportConfig


@dataclass(frozen=True)
class ExportTask:
    store: str
    variable: str
    region: Region
    vertical: str
    spec: SegyWriteSpec
    class_index: int | None = None  # one class of `probability`


def write_export_region(task: ExportTask) -> int:
    """Read one region of headers and values from the store and write its traces.

    Parameters
    ----------
    task : ExportTask
        What the task does: paths, region and options (picklable).

    Returns
    -------
    int
    """
    trace_index = read_region(task.store, "trace_index", task.region)
    headers = read_region(task.store, "trace_headers", {**task.region, "header_byte": slice(None)})
    region = {**task.region, task.vertical: slice(None)}
    if task.class_index is None:
        values = read_region(task.store, task.variable, region)
    else:
        one_class = slice(task.class_index, task.class_index + 1)
        values = read_region(task.store, task.variable, {"class": one_class, **region})[0]
    return write_block(task.spec, trace_index, headers, values)


@writes("out")
def zarr_to_segy(store: str | Path, out: str | Path, config: ExportConfig, client=None) -> dict:
    """Write ``config.variable`` of a store as SEG-Y with the original headers.

    Parameters
    ----------
    store : str | Path
        The Zarr store.
    out : str | Path
        The output path.
    config : ExportConfig
        The step's options.
    client
        The Dask client; None runs in this process.

    Returns
    -------
    dict
    """
    # absolute: tasks run on workers, whose working folder may differ
    store, out = location.resolve(store), location.resolve(out)
    dataset = open_store(store, require=(config.variable,))
    if is_map(dataset[config.variable]):
        return export_map(store, out, config, dataset)
    dataset = open_store(store, require=(config.variable, "trace_headers", "trace_index"))
    vertical = vertical_dim(dataset)
    dims = ("inline", "crossline", vertical)
    class_index = _class_index(store, dataset, config)
    if dataset[config.variable].dims[1 if class_index is not None else 0 :] != dims:
        raise StoreError(
            f"{store}: variable {config.variable!r} has dims {dataset[config.variable].dims}; "
            f"export needs {dims} (one value per sample), e.g. --variable amplitude or facies"
        )
    out = check_output(out, config.overwrite, "file")
    attrs = dataset.attrs
    textual = fmt.from_base64(attrs["textual_header_bytes"])
    head = (
        textual[: fmt.TEXT_HEADER_SIZE]
        + fmt.from_base64(attrs["binary_header_bytes"])
        + textual[fmt.TEXT_HEADER_SIZE :]
    )
    # probabilities and uncertainty in an integer-sampled file would be rounded to 0 or 1
    fractions = config.variable != "amplitude" and np.issubdtype(dataset[config.variable].dtype, np.floating)
    sample_format = fmt.export_format(attrs["sample_format"], fractions)
    if sample_format != attrs["sample_format"]:
        head = fmt.with_sample_format(head, sample_format, attrs["byte_order"])
    chunks = dict(zip(dims, dataset["amplitude"].encoding["chunks"]))
    plan = regions({"inline": dataset.sizes["inline"], "crossline": dataset.sizes["crossline"]}, chunks)
    try:
        # SEG-Y is written by offset: to object storage it goes from a local file, in one upload
        with staged(out, kind="file") as partial:
            spec = SegyWriteSpec(
                path=str(partial),
                data_offset=len(head),
                n_samples=dataset.sizes[vertical],
                sample_format=sample_format,
                endian=attrs["byte_order"],
            )
            create_file(spec, head, attrs["trace_count"])
            tasks = [
                ExportTask(store, config.variable, region, vertical, spec, class_index) for region in plan
            ]
            remote = location.is_url(out)  # tasks on workers cannot write this machine's temporary file
            written = sum(run_tasks(write_export_region, tasks, None if remote else client, "export"))
    except SegyFormatError as error:
        raise StoreError(
            f"{out}: {config.variable!r} cannot be written in the source's format: {error}; "
            "export it from a store ingested from a float SEG-Y file"
        ) from None
    return {
        "file": str(out),
        "variable": config.variable,
        **({"class": config.class_name} if class_index is not None else {}),
        "traces": written,
        "sample_format": spec.sample_format,
    }


def _class_index(store: Path, dataset, config: ExportConfig) -> int | None:
    """Which class of ``probability`` ``--class`` picks; refuse it elsewhere or unknown."""
    has_classes = "class" in dataset[config.variable].dims
    if config.class_name is None:
        if has_classes:
            names = " ".join(map(str, dataset["class"].values)) if "class" in dataset.coords else "NAME"
            raise StoreError(
                f"{store}: {config.variable!r} holds one volume per class; pick one with --class ({names})"
            )
        return None
    if not has_classes:
        raise StoreError(f"option --class: {config.variable!r} has no classes; use --variable probability")
    names = [str(name) for name in dataset["class"].values] if "class" in dataset.coords else []
    if not names:  # a store from before the class coordinate: the names are in the attributes
        names = dataset[config.variable].attrs.get("flag_meanings", "").split()
    if config.class_name not in names:
        raise StoreError(f"option --class {config.class_name!r}: the classes are {', '.join(names)}")
    return names.index(config.class_name)


def is_map(variable) -> bool:
    """Whether a store variable is a map: ``(inline, crossline)``, or one per class before them.

    Parameters
    ----------
    variable : xarray.DataArray
        A variable of the store.

    Returns
    -------
    bool
    """
    return variable.dims[-2:] == ("inline", "crossline") and variable.ndim <= 3


def export_map(store: str, out: str, config: ExportConfig, dataset) -> dict:
    """Write a map (``seisfacies map``) as gridded ASCII: x, y, inline, crossline, value per line.

    Parameters
    ----------
    store : str
        The Zarr store.
    out : str
        The text file to write.
    config : ExportConfig
        The step's options (``--class`` picks one class of a fraction or probability map).
    dataset : xarray.Dataset
        The store, opened, with the map.

    Returns
    -------
    dict
    """
    variable = dataset[config.variable]
    if out.lower().endswith((".sgy", ".segy")):
        raise StoreError(f"{out}: a map is written as gridded text; name the file .txt, .xyz or .dat")
    if variable.ndim == 3:
        class_dim = variable.dims[0]
        names = [str(name) for name in dataset[class_dim].values]
        if config.class_name not in names:
            given = f" {config.class_name!r}" if config.class_name else ""
            raise StoreError(
                f"option --class{given}: {config.variable!r} holds one map per class; "
                f"pick one with --class ({', '.join(names)})"
            )
        variable = variable.isel({class_dim: names.index(config.class_name)})
    out = check_output(out, config.overwrite, "file")
    try:
        x, y, _ = node_coordinates(dataset.cdp_x.values, dataset.cdp_y.values, dataset.trace_mask.values)
    except HorizonError:  # one line, or coordinates that are not a grid: the traces' own, as they are
        x, y = dataset.cdp_x.values, dataset.cdp_y.values
    header = f"{variable.attrs.get('long_name', config.variable)}\nfrom {store} ({config.variable})"
    if "flag_meanings" in variable.attrs:
        classes = variable.attrs["flag_meanings"].split()
        header += "\nclasses: " + ", ".join(f"{n} {name}" for n, name in enumerate(classes))
    values = variable.values
    text = map_text(x, y, dataset.inline.values, dataset.crossline.values, values, header)
    write_file(out, text.encode())
    return {
        "file": str(out),
        "variable": config.variable,
        **({"class": config.class_name} if config.class_name else {}),
        "nodes": text.count("\n") - header.count("\n") - 2,
    }
