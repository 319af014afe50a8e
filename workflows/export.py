"""Zarr -> SEG-Y export with the source's headers, written region by region."""

from __future__ import annotations

from dataclasses import dataclass
from functools import partial
from pathlib import Path

import numpy as np

from ..pipeline import __version__, location
from ..pipeline import segy_format as fmt
from ..pipeline.blocks import Region, regions
from ..pipeline.cluster import run_tasks
from ..pipeline.commit import check_output, staged, write_file, writes
from ..pipeline.exceptions import HorizonError, SegyFormatError, StoreError
from ..pipeline.horizons import check_fit, fit_grid, node_coordinates
from ..pipeline.maps import map_text
from ..pipeline.mdio import binary_header_bytes, raw_from_headers
from ..pipeline.regions import read_region
from ..pipeline.segy_write import SegyWriteSpec, create_file, write_block
from ..pipeline.store import open_store, store_chunks, vertical_dim, vertical_units
from ..pipeline.survey import volume_statistics
from ..pipeline.vds import (
    NO_VALUE_CLASS,
    NO_VALUE_FLOAT,
    VdsAxis,
    VdsVolume,
    annotation_coordinate_system,
    brick_size,
    openvds_module,
    write_vds,
)
from .config import ExportConfig


@dataclass(frozen=True)
class ExportTask:
    store: str
    variable: str
    region: Region
    vertical: str
    spec: SegyWriteSpec
    class_index: int | None = None  # one class of `probability`
    #: A store without seisfacies' raw headers (made by MDIO): each of the region's
    #: inlines' first trace number, the headers then come from MDIO's ``headers``
    row_starts: np.ndarray | None = None


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
    trace_index, headers = _region_headers(task)
    region = {**task.region, task.vertical: slice(None)}
    if task.class_index is None:
        values = read_region(task.store, task.variable, region)
    else:
        one_class = slice(task.class_index, task.class_index + 1)
        values = read_region(task.store, task.variable, {"class": one_class, **region})[0]
    return write_block(task.spec, trace_index, headers, values)


def _region_headers(task: ExportTask) -> tuple[np.ndarray, np.ndarray]:
    """The region's trace numbers in the output and raw 240-byte headers."""
    if task.row_starts is None:
        trace_index = read_region(task.store, "trace_index", task.region)
        return trace_index, read_region(
            task.store, "trace_headers", {**task.region, "header_byte": slice(None)}
        )
    rows = {"inline": task.region["inline"], "crossline": slice(None)}
    live = read_region(task.store, "trace_mask", rows).astype(bool)
    before = np.cumsum(live, axis=1) - live  # live traces before each one on its inline
    trace_index = np.where(live, task.row_starts[:, None] + before, -1)[:, task.region["crossline"]]
    headers = raw_from_headers(read_region(task.store, "headers", task.region), task.spec.endian)
    return trace_index, headers


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
    if str(out).lower().endswith(".vds"):
        return export_vds(store, out, config, dataset)
    raw_headers = "trace_headers" in dataset.variables
    dataset = open_store(
        store,
        require=(
            config.variable,
            *(("trace_headers", "trace_index") if raw_headers else ("headers", "trace_mask")),
        ),
    )
    vertical = vertical_dim(dataset)
    dims = ("inline", "crossline", vertical)
    class_index = _volume_class(store, dataset, config)
    out = check_output(out, config.overwrite, "file")
    source = _source_file(dataset) if raw_headers else _mdio_file(dataset, vertical)
    # probabilities and uncertainty in an integer-sampled file would be rounded to 0 or 1
    fractions = config.variable != "amplitude" and np.issubdtype(dataset[config.variable].dtype, np.floating)
    sample_format = fmt.export_format(source.sample_format, fractions)
    head = source.head
    if sample_format != source.sample_format:
        head = fmt.with_sample_format(head, sample_format, source.byte_order)
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
                endian=source.byte_order,
            )
            create_file(spec, head, source.trace_count)
            tasks = [
                ExportTask(
                    store,
                    config.variable,
                    region,
                    vertical,
                    spec,
                    class_index,
                    None if source.row_starts is None else source.row_starts[region["inline"]],
                )
                for region in plan
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


@dataclass(frozen=True)
class _SourceFile:
    """What an exported file takes from its store: the file head, format, byte order, trace count."""

    head: bytes  # textual, binary and extended textual headers
    sample_format: int
    byte_order: str
    trace_count: int
    row_starts: np.ndarray | None = None  # see ExportTask


def _source_file(dataset) -> _SourceFile:
    """The SEG-Y file a store was ingested from, as ``ingest`` recorded it."""
    attrs = dataset.attrs
    textual = fmt.from_base64(attrs["textual_header_bytes"])
    binary = fmt.from_base64(attrs["binary_header_bytes"])
    head = textual[: fmt.TEXT_HEADER_SIZE] + binary + textual[fmt.TEXT_HEADER_SIZE :]
    return _SourceFile(head, attrs["sample_format"], attrs["byte_order"], attrs["trace_count"])


def _mdio_file(dataset, vertical: str) -> _SourceFile:
    """A big-endian IEEE-float file for a store made by MDIO: its file headers if it kept them.

    The live traces are written inline by inline; without ``segy_file_header``
    the textual header says where the file came from and the binary header
    holds the sample interval and count.
    """
    live_per_inline = dataset["trace_mask"].sum("crossline").values.astype(np.int64)
    row_starts = np.concatenate([[0], np.cumsum(live_per_inline)[:-1]])
    kept = dataset["segy_file_header"].attrs if "segy_file_header" in dataset.variables else {}
    step = (
        float(dataset[vertical].values[1] - dataset[vertical].values[0]) if dataset.sizes[vertical] > 1 else 0
    )
    fields = {
        "segy_revision_major": 1,
        "fixed_length_trace_flag": 1,
        **kept.get("binaryHeader", {}),
        "sample_interval": round(step * 1000),  # µs (or mm in depth)
        "samples_per_trace": dataset.sizes[vertical],
        "data_sample_format": fmt.FLOAT_FORMAT,
        "num_extended_text_headers": 0,
    }
    text = kept.get("textHeader") or f"C 1 {dataset.attrs.get('name', 'MDIO')} store exported by seisfacies"
    head = fmt.encode_text_header(text) + binary_header_bytes(fields, "big")
    return _SourceFile(head, fmt.FLOAT_FORMAT, "big", int(live_per_inline.sum()), row_starts)


def _volume_class(store: str, dataset, config: ExportConfig) -> int | None:
    """Which class of a per-class variable to write (None: not one); refuse what is not a volume."""
    dims = ("inline", "crossline", vertical_dim(dataset))
    class_index = _class_index(store, dataset, config)
    if dataset[config.variable].dims[1 if class_index is not None else 0 :] != dims:
        raise StoreError(
            f"{store}: variable {config.variable!r} has dims {dataset[config.variable].dims}; "
            f"export needs {dims} (one value per sample), e.g. --variable amplitude or facies"
        )
    return class_index


def export_vds(store: str, out: str, config: ExportConfig, dataset) -> dict:
    """Write one volume of a store as an OpenVDS file (``pip install "seisfacies[vds]"``).

    Axes inline, crossline and time/depth with their annotations and units,
    the survey's coordinate system from ``cdp_x``/``cdp_y``, no-value on dead
    traces (and unclassified voxels), class names for class volumes.

    Parameters
    ----------
    store : str
        The Zarr store.
    out : str
        The ``.vds`` file to write (an object-storage URL is written locally, then uploaded).
    config : ExportConfig
        The step's options.
    dataset : xarray.Dataset
        The store, opened.

    Returns
    -------
    dict
    """
    openvds_module()  # before any work: say how to install it
    class_index = _volume_class(store, dataset, config)
    out = check_output(out, config.overwrite, "file")
    volume, note = _vds_volume(store, dataset, config, class_index)
    column = partial(_vds_column, store, config.variable, class_index, vertical_dim(dataset), volume.discrete)
    extra = {"Variable": config.variable, "SourceStore": str(store), "SeisfaciesVersion": __version__}
    with staged(out, kind="file") as written:
        bricks = write_vds(str(written), volume, column, extra)
    return {
        "file": str(out),
        "variable": config.variable,
        **({"class": config.class_name} if class_index is not None else {}),
        "bricks": bricks,
        "brick_size": volume.brick,
        "axes": [f"{axis.name} {axis.first:g}..{axis.last:g} {axis.unit}" for axis in volume.axes],
        **({"note": note} if note else {}),
    }


def _vds_volume(store: str, dataset, config: ExportConfig, class_index: int | None) -> tuple[VdsVolume, str]:
    """The VDS description of a store variable, and a note when the map position cannot be written."""
    vertical = vertical_dim(dataset)
    variable = dataset[config.variable]
    names = tuple(str(name) for name in variable.attrs.get("flag_meanings", "").split())
    discrete = "flag_values" in variable.attrs and class_index is None
    axes = tuple(
        VdsAxis(
            name.capitalize(),
            vertical_units(dataset) if name == vertical else "unitless",
            dataset.sizes[name],
            float(dataset[name].values[0]),
            float(dataset[name].values[-1]),
        )
        for name in ("inline", "crossline", vertical)
    )
    if discrete:
        value_range = (0.0, float(max(len(names) - 1, 1)))
    elif class_index is not None or "valid_max" in variable.attrs:
        value_range = (
            float(variable.attrs.get("valid_min", 0.0)),
            float(variable.attrs.get("valid_max", 1.0)),
        )
    else:
        mean, std = volume_statistics(store, dataset, config.variable)
        value_range = (mean - 3 * std, mean + 3 * std)
    system, note = _coordinate_system(dataset)
    channel = "Amplitude" if config.variable == "amplitude" else config.variable
    if class_index is not None:
        channel = f"{channel} {config.class_name}"
    chunk = store_chunks(dataset)["crossline"]
    unit = str(variable.attrs.get("units", ""))
    volume = VdsVolume(axes, channel, unit, value_range, names if discrete else (), system, brick_size(chunk))
    return volume, note


def _coordinate_system(dataset) -> tuple[tuple | None, str]:
    """The VDS survey coordinate system from the fit of cdp_x/cdp_y to the grid, or why there is none."""
    try:
        fit = fit_grid(dataset.cdp_x.values, dataset.cdp_y.values, dataset.trace_mask.values)
        check_fit(fit, "the store")
    except HorizonError as error:
        return None, f"no survey coordinate system written: {error}"
    lines = [dataset[name].values for name in ("inline", "crossline")]
    steps = tuple(float(values[1] - values[0]) if len(values) > 1 else 1.0 for values in lines)
    first = (float(lines[0][0]), float(lines[1][0]))
    return annotation_coordinate_system(fit.origin, fit.axes[:, 0], fit.axes[:, 1], *first, steps), ""


def _vds_column(
    store: str, variable: str, class_index: int | None, vertical: str, discrete: bool, inlines, crosslines
) -> np.ndarray:
    """One column of a volume with the VDS no-value on dead traces (and unclassified voxels)."""
    region = {"inline": inlines, "crossline": crosslines, vertical: slice(None)}
    if class_index is None:
        values = read_region(store, variable, region)
    else:
        values = read_region(store, variable, {"class": slice(class_index, class_index + 1), **region})[0]
    live = read_region(store, "trace_mask", {"inline": inlines, "crossline": crosslines}).astype(bool)
    if discrete:
        keep = (values >= 0) & live[..., None]
        return np.where(keep, values, NO_VALUE_CLASS).astype(np.uint8)
    values = values.astype(np.float32)
    values[~np.isfinite(values)] = NO_VALUE_FLOAT
    values[~live] = NO_VALUE_FLOAT
    return values


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
