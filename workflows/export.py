"""Zarr -> SEG-Y export with the source's headers, written region by region."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from pipeline import segy_format as fmt
from pipeline.blocks import Region, regions
from pipeline.cluster import run_tasks
from pipeline.exceptions import SegyFormatError, StoreError
from pipeline.segy_write import SegyWriteSpec, create_file, write_block
from pipeline.store import (
    check_output,
    open_store,
    read_region,
    remove_path,
    replace_path,
    temporary_path,
    vertical_dim,
)
from workflows.config import ExportConfig


@dataclass(frozen=True)
class ExportTask:
    store: str
    variable: str
    region: Region
    vertical: str
    spec: SegyWriteSpec


def write_export_region(task: ExportTask) -> int:
    """Read one region of headers and values from the store and write its traces."""
    trace_index = read_region(task.store, "trace_index", task.region)
    headers = read_region(task.store, "trace_headers", {**task.region, "header_byte": slice(None)})
    values = read_region(task.store, task.variable, {**task.region, task.vertical: slice(None)})
    return write_block(task.spec, trace_index, headers, values)


def zarr_to_segy(store: str | Path, out: str | Path, config: ExportConfig, client=None) -> dict:
    """Write ``config.variable`` of a store as SEG-Y with the original headers."""
    # absolute: tasks run on workers, whose working folder may differ
    store, out = Path(store).absolute(), Path(out).absolute()
    dataset = open_store(store, require=(config.variable, "trace_headers", "trace_index"))
    vertical = vertical_dim(dataset)
    dims = ("inline", "crossline", vertical)
    if dataset[config.variable].dims != dims:
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
    partial = temporary_path(out)
    spec = SegyWriteSpec(
        path=str(partial),
        data_offset=len(head),
        n_samples=dataset.sizes[vertical],
        sample_format=attrs["sample_format"],
        endian=attrs["byte_order"],
    )
    chunks = dict(zip(dims, dataset["amplitude"].encoding["chunks"]))
    plan = regions({"inline": dataset.sizes["inline"], "crossline": dataset.sizes["crossline"]}, chunks)
    tasks = [ExportTask(str(Path(store)), config.variable, region, vertical, spec) for region in plan]
    try:
        create_file(spec, head, attrs["trace_count"])
        written = sum(run_tasks(write_export_region, tasks, client, "export"))
        replace_path(partial, out)
    except SegyFormatError as error:
        remove_path(partial)
        raise StoreError(
            f"{out}: {config.variable!r} cannot be written in the source's format: {error}; "
            "export it from a store ingested from a float SEG-Y file"
        ) from None
    except BaseException:
        remove_path(partial)
        raise
    return {
        "file": str(out),
        "variable": config.variable,
        "traces": written,
        "sample_format": spec.sample_format,
    }
