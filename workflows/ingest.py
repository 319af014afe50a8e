"""SEG-Y -> Zarr ingestion: scan headers, write the template, fill regions on workers."""

from __future__ import annotations

import math
import time
from dataclasses import dataclass
from pathlib import Path

import dask.array as da
import numpy as np

from ..pipeline import segy_format as fmt
from ..pipeline.blocks import Region, slab_regions
from ..pipeline.cluster import client_mapper, run_tasks
from ..pipeline.commit import check_output, commit_store, staged, writes
from ..pipeline.exceptions import SegyFormatError
from ..pipeline.mdio import dataset_attrs, file_header_attrs, header_dtype, headers_from_raw
from ..pipeline.regions import write_region
from ..pipeline.segy import SegyLayout, SegySurvey, read_block, scan_survey, survey_dataset
from ..pipeline.store import parse_chunks, write_template
from .config import IngestConfig

#: Bytes of samples one ingest task holds; bounds worker memory whatever the survey size.
TASK_BUDGET_BYTES = 64 * 2**20


@dataclass(frozen=True)
class RegionTask:
    """One column of chunks to copy: picklable, no open file inside."""

    store: str
    layout: SegyLayout
    region: Region  # inline and crossline slices
    trace_index: np.ndarray
    vertical: str


def fill_region(task: RegionTask) -> int:
    """Read a region's traces from the SEG-Y file and write them; returns non-finite count.

    Parameters
    ----------
    task : RegionTask
        What the task does: paths, region and options (picklable).

    Returns
    -------
    int
    """
    headers, samples = read_block(task.layout, task.trace_index)
    column = {**task.region, task.vertical: slice(None)}
    write_region(task.store, "amplitude", column, samples)
    write_region(task.store, "trace_headers", {**task.region, "header_byte": slice(None)}, headers)
    write_region(task.store, "headers", task.region, headers_from_raw(headers, task.layout.endian))
    return int(samples.size - np.isfinite(samples).sum())


def ingest_template(survey: SegySurvey, chunks: dict[str, int]):
    """The store layout with lazy (unwritten) amplitude and trace headers.

    It is also an MDIO v1 post-stack dataset: MDIO's root attributes, its
    structured ``headers`` and ``segy_file_header`` beside our raw ``trace_headers``.

    Parameters
    ----------
    survey : SegySurvey
        The survey's geometry.
    chunks : dict[str, int]
        Chunk size per dim name.
    """
    n_il, n_xl = survey.geometry.shape
    column_chunks = (chunks["inline"], chunks["crossline"])
    amplitude = da.zeros(
        (n_il, n_xl, survey.layout.n_samples),
        dtype=np.float32,
        chunks=(*column_chunks, chunks[survey.domain]),
    )
    dataset = survey_dataset(survey, amplitude)
    dataset["trace_headers"] = (
        ("inline", "crossline", "header_byte"),
        da.zeros((n_il, n_xl, fmt.TRACE_HEADER_SIZE), dtype=np.uint8, chunks=(*column_chunks, -1)),
        {"long_name": "Raw SEG-Y trace headers (240 bytes, source byte order)"},
    )
    dataset["trace_index"] = (
        ("inline", "crossline"),
        survey.geometry.trace_index,
        {"long_name": "Trace number in the source file (-1: no trace)"},
    )
    dataset["headers"] = (
        ("inline", "crossline"),
        da.zeros((n_il, n_xl), dtype=header_dtype(), chunks=column_chunks),
        {"long_name": "SEG-Y rev 1 trace header fields (MDIO)"},
    )
    binary = fmt.from_base64(survey.attrs["binary_header_bytes"])
    file_header = file_header_attrs(survey.attrs["textual_header"], binary, survey.layout.endian)
    dataset["segy_file_header"] = ((), "", file_header)
    dataset.attrs.update(dataset_attrs(survey.domain))
    return dataset


def ingest_plan(survey: SegySurvey, chunks: dict[str, int]) -> list[Region]:
    """Tasks: chunk-aligned slabs along the file's fast direction, within a memory budget.

    Parameters
    ----------
    survey : SegySurvey
        The survey's geometry.
    chunks : dict[str, int]
        Chunk size per dim name.

    Returns
    -------
    list[Region]
    """
    sizes = dict(zip(("inline", "crossline"), survey.geometry.shape))
    along = "inline" if survey.geometry.sorting == "crossline" else "crossline"
    bytes_per_trace = survey.layout.n_samples * 4 + fmt.TRACE_HEADER_SIZE
    return slab_regions(sizes, chunks, along, bytes_per_trace, TASK_BUDGET_BYTES)


@writes("store")
def segy_to_zarr(segy: str | Path, store: str | Path, config: IngestConfig, client=None) -> dict:
    """Ingest a SEG-Y file into a new Zarr v3 store; returns a small summary.

    Parameters
    ----------
    segy : str | Path
        The SEG-Y file.
    store : str | Path
        The Zarr store.
    config : IngestConfig
        The step's options.
    client
        The Dask client; None runs in this process.

    Returns
    -------
    dict
    """
    # absolute: tasks run on workers, whose working folder may differ
    store = check_output(store, config.overwrite)
    started = time.perf_counter()
    survey = scan_survey(
        segy,
        iline_byte=config.iline_byte,
        xline_byte=config.xline_byte,
        endian=config.endian,
        domain=config.domain,
        mapper=client_mapper(client),
        sample_interval=config.sample_interval,
    )
    chunks = parse_chunks(config.chunks, config.domain)
    with staged(store) as partial:
        write_template(ingest_template(survey, chunks), partial, chunks)
        plan = ingest_plan(survey, chunks)
        tasks = [
            RegionTask(
                str(partial),
                survey.layout,
                region,
                survey.geometry.trace_index[tuple(region.values())],
                config.domain,
            )
            for region in plan
        ]
        nonfinite = sum(run_tasks(fill_region, tasks, client, "ingest"))
        if nonfinite and config.nonfinite == "refuse":
            raise SegyFormatError(
                f"{segy}: {nonfinite} samples are NaN or infinite; fix the file or pass --nonfinite keep"
            )
        commit_store(partial, {"nonfinite_samples": nonfinite})
    n_il, n_xl = survey.geometry.shape
    return {
        "store": str(store),
        "shape": [n_il, n_xl, survey.layout.n_samples],
        "dims": ["inline", "crossline", config.domain],
        "chunks": chunks,
        "tasks": len(plan),
        "missing_traces": survey.geometry.n_missing,
        "nonfinite_samples": nonfinite,
        "sorting": survey.geometry.sorting,
        "sample_format": survey.layout.sample_format,
        "byte_order": survey.layout.endian,
        "seconds": round(time.perf_counter() - started, 3),
        "megabytes": round(survey.layout.file_size / 1e6, 1),
        "bytes_per_chunk": math.prod(chunks.values()) * 4,
    }
