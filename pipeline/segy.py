"""SEG-Y reading: file layout, parallel header scan, trace reads, xarray backend.

``xr.open_dataset(path, engine="segy", chunks={})`` gives a lazy Dataset with
dims ``inline``, ``crossline`` and ``time`` (or ``depth``). Only picklable
descriptions (:class:`SegyLayout`, numpy arrays) cross task boundaries; each
process opens the file itself, read-only, and caches the descriptor.
"""

from __future__ import annotations

import functools
import os
import threading
from collections import OrderedDict
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import xarray as xr
from xarray.backends import BackendArray, BackendEntrypoint
from xarray.core import indexing

from . import __version__, location
from . import segy_format as fmt
from .exceptions import SegyFormatError
from .geometry import Geometry, infer_geometry

VERTICAL_UNITS = {"time": "ms", "depth": "m"}
VERTICAL_NAMES = {"time": "Two-way travel time", "depth": "Depth"}
#: Bytes of traces read and decoded at a time: small enough to stay in the CPU's cache.
READ_PIECE_BYTES = 4 * 2**20
#: Traces per header-scan task: big enough to amortise a task, small enough to spread.
SCAN_BATCH_TRACES = 65536
#: Bytes one header-scan read holds (whole traces are read, headers kept), so
#: scan memory does not grow with trace length or survey size.
SCAN_READ_BYTES = 32 * 2**20


@dataclass(frozen=True)
class SegyLayout:
    """Everything needed to find any trace's bytes; small and picklable."""

    path: str
    endian: str
    sample_format: int
    n_samples: int
    sample_interval: int  # microseconds (or mm, in depth)
    n_extended_headers: int
    data_offset: int
    trace_size: int
    n_traces: int
    file_size: int
    mtime_ns: int

    @property
    def itemsize(self) -> int:
        return fmt.SAMPLE_FORMATS[self.sample_format][1]


class DescriptorCache:
    """Read-only descriptors per file version, the least recently used closed beyond ``size``.

    ``functools.lru_cache`` would drop an evicted descriptor without closing
    it, leaking one per file beyond its size in long-lived workers.

    >>> cache = DescriptorCache(size=1)
    >>> first = cache.get(__file__, 0)
    >>> cache.get(__file__, 0) == first, len(cache)
    (True, 1)
    >>> _ = cache.get(__file__, 1)  # another version: the first descriptor is closed
    >>> len(cache)
    1
    >>> cache.close_all()
    """

    def __init__(self, size: int = 32):
        self.size = size
        self._open: OrderedDict[tuple[str, int], int] = OrderedDict()
        self._lock = threading.Lock()  # a worker's threads share the cache

    def __len__(self) -> int:
        return len(self._open)

    def get(self, path: str, mtime_ns: int) -> int:
        """The descriptor of ``path`` as of ``mtime_ns``, opened on first use.

        Parameters
        ----------
        path : str
            The file.
        mtime_ns : int
            Its modification time: a rewritten file gets a new descriptor.

        Returns
        -------
        int
            An open, read-only file descriptor (pread needs no seek).
        """
        key = (path, mtime_ns)
        with self._lock:
            if key in self._open:
                self._open.move_to_end(key)
                return self._open[key]
            descriptor = os.open(path, os.O_RDONLY)
            self._open[key] = descriptor
            while len(self._open) > self.size:
                _, oldest = self._open.popitem(last=False)
                os.close(oldest)
            return descriptor

    def close_all(self) -> None:
        """Close every cached descriptor."""
        with self._lock:
            while self._open:
                os.close(self._open.popitem()[1])


_DESCRIPTORS = DescriptorCache()


def _descriptor(path: str, mtime_ns: int) -> int:
    return _DESCRIPTORS.get(path, mtime_ns)


def _pread(layout: SegyLayout, size: int, offset: int) -> bytes:
    if location.is_url(layout.path):  # object storage: one ranged request, never the whole file
        data = location.read_range(layout.path, offset, size)
    else:
        data = os.pread(_descriptor(layout.path, layout.mtime_ns), size, offset)
    if len(data) != size:
        raise _truncated(layout, offset, len(data), size)
    return data


def _truncated(layout: SegyLayout, offset: int, got: int, size: int) -> SegyFormatError:
    return SegyFormatError(
        f"{layout.path}: the file ended at byte {offset + got} while reading "
        f"{size} bytes at {offset}; it was truncated or changed during the run"
    )


def _read_ranges(layout: SegyLayout, ranges: list[tuple[int, int]], all_at_once: bool = True):
    """The bytes of each ``(offset, size)``, in order.

    A local file's ranges all land in one buffer, so each must be used up
    before the next is asked for. On object storage the requests go out all
    at once, or one at a time (``all_at_once=False``: memory of one range).
    """
    if not location.is_url(layout.path):
        return _read_local_ranges(layout, ranges)
    if not all_at_once:
        return (_pread(layout, size, offset) for offset, size in ranges)
    # one request per run would wait on each in turn: a slab of a big survey is hundreds of runs
    blocks = location.read_ranges(layout.path, ranges)
    for (offset, size), data in zip(ranges, blocks):
        if len(data) != size:
            raise _truncated(layout, offset, len(data), size)
    return blocks


def _read_local_ranges(layout: SegyLayout, ranges: list[tuple[int, int]]):
    # a new bytes object per read first-touches its pages, which costs 5x the copy from the
    # page cache: the scan of a 358 MB file took 0.22 s that way, 0.04 s into one buffer
    buffer = memoryview(bytearray(max((size for _, size in ranges), default=0)))
    descriptor = _descriptor(layout.path, layout.mtime_ns)
    for offset, size in ranges:
        done = 0
        while done < size:
            got = os.preadv(descriptor, [buffer[done:size]], offset + done)
            if got == 0:
                raise _truncated(layout, offset, done, size)
            done += got
        yield buffer[:size]


def _read_head(path) -> tuple[bytes, tuple[int, int]]:
    """The textual and binary headers, and the file's (size, version)."""
    try:
        if location.is_url(path):
            stat = location.size_and_version(str(path))
            head = location.read_range(str(path), 0, fmt.TEXT_HEADER_SIZE + fmt.BINARY_HEADER_SIZE)
        else:
            status = path.stat()
            stat = (status.st_size, status.st_mtime_ns)
            with path.open("rb") as handle:
                head = handle.read(fmt.TEXT_HEADER_SIZE + fmt.BINARY_HEADER_SIZE)
    except FileNotFoundError:
        raise SegyFormatError(f"{path}: no such file; check the path") from None
    except IsADirectoryError:
        raise SegyFormatError(f"{path}: is a folder, not a SEG-Y file") from None
    except PermissionError:
        raise SegyFormatError(f"{path}: permission denied; make the file readable") from None
    if len(head) < fmt.TEXT_HEADER_SIZE + fmt.BINARY_HEADER_SIZE:
        raise SegyFormatError(
            f"{path}: only {len(head)} bytes; a SEG-Y file starts with 3600 bytes of "
            "textual and binary header. Is this a SEG-Y file?"
        )
    return head, stat


def read_layout(
    path: str | os.PathLike, endian: str = "auto", sample_interval: float | None = None
) -> SegyLayout:
    """Read the headers that fix where every trace is, and check the file size.

    Parameters
    ----------
    path : str or os.PathLike
        The SEG-Y file.
    endian : {"auto", "big", "little"}
        Byte order; "auto" reads it off the binary header's format code.
    sample_interval : float, optional
        Sample interval in ms (or m) to use instead of the headers' one, for
        files whose headers give none.

    Returns
    -------
    SegyLayout
        Where every trace's bytes are.
    """
    path = path if location.is_url(path) else Path(path)
    head, (file_size, version) = _read_head(path)
    binary = head[fmt.TEXT_HEADER_SIZE :]
    if endian == "auto":
        try:
            endian = fmt.detect_endian(binary)
        except SegyFormatError as error:
            raise SegyFormatError(f"{path}: not a SEG-Y file? {error}") from None
    summary = fmt.summarise_binary_header(binary, endian)
    if summary.sample_format not in fmt.SAMPLE_FORMATS:
        raise SegyFormatError(
            f"{path}: sample format code {summary.sample_format} read as {endian}-endian is not "
            f"one of {sorted(fmt.SAMPLE_FORMATS)}; try --endian {'little' if endian == 'big' else 'big'}"
        )
    if summary.n_extended_headers < 0:
        raise SegyFormatError(
            f"{path}: the binary header announces a variable number of extended textual "
            "headers (-1), which seisfacies does not read; rewrite the file with a fixed count"
        )
    data_offset = len(head) + fmt.TEXT_HEADER_SIZE * summary.n_extended_headers
    if file_size <= data_offset:
        raise SegyFormatError(
            f"{path}: the file holds headers but no traces ({file_size} bytes); "
            "export the volume again with its traces"
        )
    first_header = _read_bytes(path, data_offset, fmt.TRACE_HEADER_SIZE)
    n_samples, interval = _samples_and_interval(path, summary, first_header, endian, sample_interval)
    itemsize = fmt.SAMPLE_FORMATS[summary.sample_format][1]
    trace_size = fmt.TRACE_HEADER_SIZE + n_samples * itemsize
    n_traces, remainder = divmod(file_size - data_offset, trace_size)
    if remainder or n_traces == 0:
        raise SegyFormatError(
            f"{path}: {file_size - data_offset} bytes of traces is not a whole number of "
            f"{trace_size}-byte traces ({n_samples} samples of {itemsize} bytes); the file is "
            "truncated, its traces vary in length, or --endian is wrong"
        )
    return SegyLayout(
        path=location.resolve(path),
        endian=endian,
        sample_format=summary.sample_format,
        n_samples=n_samples,
        sample_interval=interval,
        n_extended_headers=summary.n_extended_headers,
        data_offset=data_offset,
        trace_size=trace_size,
        n_traces=n_traces,
        file_size=file_size,
        mtime_ns=version,
    )


def _read_bytes(path, offset: int, size: int) -> bytes:
    if location.is_url(path):
        data = location.read_range(str(path), offset, size)
    else:
        with path.open("rb") as handle:
            handle.seek(offset)
            data = handle.read(size)
    if len(data) != size:
        raise SegyFormatError(f"{path}: the file ends inside the first trace header; it is truncated")
    return data


def _samples_and_interval(path, summary, first_header: bytes, endian: str, override) -> tuple[int, int]:
    header = np.frombuffer(first_header, np.uint8)[None, :]
    trace_samples = int(fmt.header_field(header, fmt.TRACE_SAMPLES_BYTE, 2, endian)[0]) & 0xFFFF
    trace_interval = int(fmt.header_field(header, fmt.TRACE_INTERVAL_BYTE, 2, endian)[0]) & 0xFFFF
    n_samples = summary.n_samples or trace_samples
    if n_samples == 0:
        raise SegyFormatError(
            f"{path}: neither the binary header nor the first trace header gives the number "
            "of samples per trace; the file is not valid SEG-Y"
        )
    if override is not None:
        return n_samples, round(override * 1000)
    # two's complement 16-bit fields: 32768 and above read as negative, so as no interval
    binary_interval, trace_interval = (
        value if value < 0x8000 else 0 for value in (summary.sample_interval, trace_interval)
    )
    if binary_interval and trace_interval and binary_interval != trace_interval:
        raise SegyFormatError(  # segyio would silently take 4 ms here too
            f"{path}: the binary header gives a sample interval of {binary_interval} us and the "
            f"first trace header {trace_interval} us; pass --sample-interval MS to say which is right"
        )
    interval = binary_interval or trace_interval
    if not interval:  # segyio would silently take 4 ms here
        raise SegyFormatError(
            f"{path}: the binary and trace headers give a sample interval of 0 (or none that is valid); "
            "pass --sample-interval MS (ms, or m in depth) to set it"
        )
    return n_samples, interval


def scan_trace_headers(
    layout: SegyLayout, start: int, stop: int, fields: dict[str, tuple[int, int]]
) -> dict[str, np.ndarray]:
    """Read integer header fields of traces ``start:stop``, in byte ranges of bounded size.

    ``fields`` maps a name to ``(byte position, size)``.

    Parameters
    ----------
    layout : SegyLayout
        The file's byte layout.
    start : int
        First index.
    stop : int
        Index past the last.
    fields : dict[str, tuple[int, int]]

    Returns
    -------
    dict[str, np.ndarray]
    """
    step = max(1, SCAN_READ_BYTES // layout.trace_size)
    firsts = range(start, stop, step)
    ranges = [
        (
            layout.data_offset + first * layout.trace_size,
            layout.trace_size * (min(first + step, stop) - first),
        )
        for first in firsts
    ]
    headers = np.empty((stop - start, fmt.TRACE_HEADER_SIZE), np.uint8)
    for first, data in zip(firsts, _read_ranges(layout, ranges, all_at_once=False)):
        traces = np.frombuffer(data, np.uint8).reshape(-1, layout.trace_size)
        headers[first - start : first - start + len(traces)] = traces[:, : fmt.TRACE_HEADER_SIZE]
    return {
        name: fmt.header_field(headers, byte, size, layout.endian) for name, (byte, size) in fields.items()
    }


def _contiguous_runs(sorted_indices: np.ndarray) -> list[tuple[int, int]]:
    """Split sorted trace numbers into ``(first, stop)`` runs of neighbours.

    >>> _contiguous_runs(np.array([2, 3, 4, 9, 10]))
    [(2, 5), (9, 11)]
    """
    if len(sorted_indices) == 0:
        return []
    breaks = np.flatnonzero(np.diff(sorted_indices) != 1) + 1
    starts = np.concatenate([[0], breaks])
    stops = np.concatenate([breaks, [len(sorted_indices)]])
    return [(int(sorted_indices[a]), int(sorted_indices[b - 1]) + 1) for a, b in zip(starts, stops)]


def read_traces(layout: SegyLayout, indices: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Raw 240-byte headers and float32 samples of the given traces, in that order.

    Parameters
    ----------
    layout : SegyLayout
        The file's byte layout.
    indices : np.ndarray

    Returns
    -------
    tuple[np.ndarray, np.ndarray]
    """
    indices = np.asarray(indices)
    order = np.argsort(indices, kind="stable")
    in_order = bool(np.all(order == np.arange(len(order))))  # a slab of a sorted file: the usual case
    sorted_indices = indices[order]
    headers = np.empty((len(indices), fmt.TRACE_HEADER_SIZE), np.uint8)
    samples = np.empty((len(indices), layout.n_samples), np.float32)
    position = 0
    # pieces of a few MiB: each is decoded while its bytes are still in the CPU's cache
    runs = _split_runs(_contiguous_runs(sorted_indices), max(1, READ_PIECE_BYTES // layout.trace_size))
    ranges = [
        (layout.data_offset + first * layout.trace_size, (stop - first) * layout.trace_size)
        for first, stop in runs
    ]
    for (first, stop), data in zip(runs, _read_ranges(layout, ranges)):
        count = stop - first
        traces = np.frombuffer(data, np.uint8).reshape(count, layout.trace_size)
        rows = slice(position, position + count) if in_order else order[position : position + count]
        headers[rows] = traces[:, : fmt.TRACE_HEADER_SIZE]
        raw = traces[:, fmt.TRACE_HEADER_SIZE :]
        if in_order:  # decoded straight into the output rows
            fmt.decode_samples(raw, layout.sample_format, layout.endian, out=samples[rows])
        else:
            samples[rows] = fmt.decode_samples(raw, layout.sample_format, layout.endian)
        position += count
    return headers, samples


def _split_runs(runs: list[tuple[int, int]], most: int) -> list[tuple[int, int]]:
    """Runs of at most ``most`` traces, in order.

    >>> _split_runs([(0, 5), (9, 11)], 2)
    [(0, 2), (2, 4), (4, 5), (9, 11)]
    """
    return [(start, min(start + most, stop)) for first, stop in runs for start in range(first, stop, most)]


def read_block(layout: SegyLayout, trace_index: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Headers ``(il, xl, 240)`` and samples ``(il, xl, ns)`` of a grid block.

    Missing traces (index -1) come back as zero headers and zero samples.

    Parameters
    ----------
    layout : SegyLayout
        The file's byte layout.
    trace_index : np.ndarray
        Trace position per (inline, crossline).

    Returns
    -------
    tuple[np.ndarray, np.ndarray]
    """
    present = trace_index >= 0
    if present.all():  # a full grid: the traces in grid order, without copying them again
        headers, samples = read_traces(layout, trace_index.ravel())
        return (
            headers.reshape(*trace_index.shape, fmt.TRACE_HEADER_SIZE),
            samples.reshape(*trace_index.shape, layout.n_samples),
        )
    headers = np.zeros((*trace_index.shape, fmt.TRACE_HEADER_SIZE), np.uint8)
    samples = np.zeros((*trace_index.shape, layout.n_samples), np.float32)
    headers[present], samples[present] = read_traces(layout, trace_index[present])
    return headers, samples


@dataclass(frozen=True)
class SegySurvey:
    """A scanned SEG-Y file: byte layout, grid, coordinates and header metadata."""

    layout: SegyLayout
    geometry: Geometry
    cdp_x: np.ndarray
    cdp_y: np.ndarray
    vertical: np.ndarray
    domain: str
    attrs: dict = field(default_factory=dict)


Mapper = Callable[[Callable, Iterable], Iterable]


def scan_survey(
    path: str | os.PathLike,
    *,
    iline_byte: int = fmt.INLINE_BYTE,
    xline_byte: int = fmt.CROSSLINE_BYTE,
    endian: str = "auto",
    domain: str = "time",
    mapper: Mapper = map,
    sample_interval: float | None = None,
) -> SegySurvey:
    """Scan all trace headers (batches run through ``mapper``) and infer the grid.

    Parameters
    ----------
    path : str or os.PathLike
        The SEG-Y file.
    iline_byte, xline_byte : int
        Trace header bytes of the inline and crossline numbers.
    endian : {"auto", "big", "little"}
        Byte order.
    domain : {"time", "depth"}
        Name of the vertical dim.
    mapper : callable
        A ``map``-like callable that runs the header-scan batches (e.g. on a cluster).
    sample_interval : float, optional
        Sample interval (ms or m) to use instead of the headers' one.

    Returns
    -------
    SegySurvey
        Layout, grid, coordinates and header metadata.
    """
    if domain not in VERTICAL_UNITS:
        raise SegyFormatError(f"domain {domain!r} is not one of {sorted(VERTICAL_UNITS)}")
    layout = read_layout(path, endian, sample_interval)
    fields = {
        "inline": (iline_byte, fmt.trace_field_size(iline_byte, "--iline-byte")),
        "crossline": (xline_byte, fmt.trace_field_size(xline_byte, "--xline-byte")),
        "cdp_x": (fmt.CDP_X_BYTE, 4),
        "cdp_y": (fmt.CDP_Y_BYTE, 4),
        "scalar": (fmt.COORDINATE_SCALAR_BYTE, 2),
        "offset": (fmt.OFFSET_BYTE, 4),
        "delay": (fmt.DELAY_BYTE, 2),
        "time_scalar": (fmt.TIME_SCALAR_BYTE, 2),
    }
    batches = [
        (start, min(start + SCAN_BATCH_TRACES, layout.n_traces))
        for start in range(0, layout.n_traces, SCAN_BATCH_TRACES)
    ]
    scan = functools.partial(_scan_batch, layout, fields)
    parts = list(mapper(scan, batches))
    values = {name: np.concatenate([part[name] for part in parts]) for name in fields}
    geometry = infer_geometry(values["inline"], values["crossline"], values["offset"], source=layout.path)
    scale = _coordinate_scale(values["scalar"])
    # the delay is scaled like coordinates (bytes 215-216), as segyio's ``samples`` does
    delay = float(values["delay"][0] * _coordinate_scale(values["time_scalar"][:1])[0])
    step = layout.sample_interval / 1000.0
    return SegySurvey(
        layout=layout,
        geometry=geometry,
        cdp_x=_on_grid(values["cdp_x"] * scale, geometry),
        cdp_y=_on_grid(values["cdp_y"] * scale, geometry),
        vertical=delay + step * np.arange(layout.n_samples, dtype=np.float64),
        domain=domain,
        attrs=_file_attrs(layout, iline_byte, xline_byte, geometry),
    )


def _scan_batch(layout, fields, batch):
    return scan_trace_headers(layout, batch[0], batch[1], fields)


def _coordinate_scale(scalar: np.ndarray) -> np.ndarray:
    """SEG-Y coordinate scalars: positive multiplies, negative divides, 0 is 1.

    >>> _coordinate_scale(np.array([0, 10, -100])).tolist()
    [1.0, 10.0, 0.01]
    """
    scalar = scalar.astype(np.float64)
    return np.where(scalar > 0, scalar, np.where(scalar < 0, -1.0 / np.where(scalar < 0, scalar, -1), 1.0))


def _on_grid(per_trace: np.ndarray, geometry: Geometry) -> np.ndarray:
    grid = np.full(geometry.shape, np.nan)
    present = geometry.trace_mask
    grid[present] = per_trace[geometry.trace_index[present]]
    return grid


def _file_attrs(layout: SegyLayout, iline_byte: int, xline_byte: int, geometry: Geometry) -> dict:
    head = _pread(layout, layout.data_offset, 0)
    textual = head[: fmt.TEXT_HEADER_SIZE] + head[fmt.TEXT_HEADER_SIZE + fmt.BINARY_HEADER_SIZE :]
    binary = head[fmt.TEXT_HEADER_SIZE : fmt.TEXT_HEADER_SIZE + fmt.BINARY_HEADER_SIZE]
    return {
        "textual_header": fmt.decode_text_header(head[: fmt.TEXT_HEADER_SIZE]),
        "extended_textual_headers": [
            fmt.decode_text_header(textual[start : start + fmt.TEXT_HEADER_SIZE])
            for start in range(fmt.TEXT_HEADER_SIZE, len(textual), fmt.TEXT_HEADER_SIZE)
        ],
        "textual_header_bytes": fmt.to_base64(textual),
        "binary_header": fmt.binary_header_fields(binary, layout.endian),
        "binary_header_bytes": fmt.to_base64(binary),
        "source_file": location.name(layout.path),
        "source_size": layout.file_size,
        "sample_format": layout.sample_format,
        "sample_format_name": fmt.SAMPLE_FORMAT_NAMES[layout.sample_format],
        "byte_order": layout.endian,
        "trace_sorting": geometry.sorting,
        "trace_count": layout.n_traces,
        "missing_traces": geometry.n_missing,
        "inline_byte": iline_byte,
        "crossline_byte": xline_byte,
        "seisfacies_version": __version__,
    }


def survey_dataset(survey: SegySurvey, amplitude) -> xr.Dataset:
    """The store layout around an amplitude array (lazy, dask or numpy).

    Parameters
    ----------
    survey : SegySurvey
        The survey's geometry.
    amplitude

    Returns
    -------
    xr.Dataset
    """
    geometry = survey.geometry
    dims = ("inline", "crossline", survey.domain)
    coords = {
        "inline": ("inline", geometry.inlines.astype(np.int32), {"long_name": "Inline number"}),
        "crossline": ("crossline", geometry.crosslines.astype(np.int32), {"long_name": "Crossline number"}),
        survey.domain: (
            survey.domain,
            survey.vertical,
            {"units": VERTICAL_UNITS[survey.domain], "long_name": VERTICAL_NAMES[survey.domain]},
        ),
    }
    units = {1: "m", 2: "ft"}.get(survey.attrs["binary_header"].get("MeasurementSystem"), "m")
    # coordinates, so a selection of amplitude (or facies) carries where it is
    coords["cdp_x"] = (dims[:2], survey.cdp_x, {"long_name": "CDP X coordinate", "units": units})
    coords["cdp_y"] = (dims[:2], survey.cdp_y, {"long_name": "CDP Y coordinate", "units": units})
    data_vars = {
        "amplitude": (dims, amplitude, {"long_name": "Seismic amplitude", "units": "1"}),
        "trace_mask": (dims[:2], geometry.trace_mask, {"long_name": "Trace present in the source file"}),
    }
    return xr.Dataset(data_vars, coords=coords, attrs=dict(survey.attrs))


class SegyBackendArray(BackendArray):
    """Lazy amplitude array: reads the traces of the requested grid cells."""

    def __init__(self, layout: SegyLayout, trace_index: np.ndarray):
        self.layout = layout
        self.trace_index = trace_index
        self.shape = (*trace_index.shape, layout.n_samples)
        self.dtype = np.dtype(np.float32)

    def __getitem__(self, key: indexing.ExplicitIndexer) -> np.ndarray:
        return indexing.explicit_indexing_adapter(
            key, self.shape, indexing.IndexingSupport.OUTER, self._raw_indexing_method
        )

    def _raw_indexing_method(self, key: tuple) -> np.ndarray:
        rows = np.atleast_1d(np.arange(self.shape[0])[key[0]])
        cols = np.atleast_1d(np.arange(self.shape[1])[key[1]])
        _, samples = read_block(self.layout, self.trace_index[np.ix_(rows, cols)])
        squeeze = tuple(axis for axis in (0, 1) if isinstance(key[axis], (int, np.integer)))
        return samples[..., key[2]].squeeze(axis=squeeze)


def open_segy_dataset(
    path: str | os.PathLike,
    *,
    iline_byte: int = fmt.INLINE_BYTE,
    xline_byte: int = fmt.CROSSLINE_BYTE,
    endian: str = "auto",
    domain: str = "time",
    sample_interval: float | None = None,
) -> xr.Dataset:
    """Open a SEG-Y file as a lazily loaded Dataset in the store layout.

    Parameters
    ----------
    path, iline_byte, xline_byte, endian, domain, sample_interval
        As for :func:`scan_survey`.

    Returns
    -------
    xarray.Dataset
        Lazy ``amplitude`` with dims (inline, crossline, time/depth) and coordinates.
    """
    survey = scan_survey(
        path,
        iline_byte=iline_byte,
        xline_byte=xline_byte,
        endian=endian,
        domain=domain,
        sample_interval=sample_interval,
    )
    backend_array = SegyBackendArray(survey.layout, survey.geometry.trace_index)
    amplitude = indexing.LazilyIndexedArray(backend_array)
    return survey_dataset(survey, amplitude)


class SegyBackendEntrypoint(BackendEntrypoint):
    """xarray backend ``engine="segy"``; stateless, as xarray requires."""

    description = "Open post-stack 3D SEG-Y files (inline, crossline, time/depth) with seisfacies"
    url = "https://github.com/seisfacies/seisfacies"
    open_dataset_parameters = (
        "filename_or_obj",
        "drop_variables",
        "iline_byte",
        "xline_byte",
        "endian",
        "domain",
        "sample_interval",
    )

    def open_dataset(
        self,
        filename_or_obj,
        *,
        drop_variables=None,
        iline_byte: int = fmt.INLINE_BYTE,
        xline_byte: int = fmt.CROSSLINE_BYTE,
        endian: str = "auto",
        domain: str = "time",
        sample_interval: float | None = None,
    ) -> xr.Dataset:
        """Open a SEG-Y file lazily; see :func:`open_segy_dataset` for the parameters."""
        dataset = open_segy_dataset(
            filename_or_obj,
            iline_byte=iline_byte,
            xline_byte=xline_byte,
            endian=endian,
            domain=domain,
            sample_interval=sample_interval,
        )
        return dataset.drop_vars(drop_variables or [], errors="ignore")

    def guess_can_open(self, filename_or_obj) -> bool:
        try:
            path = filename_or_obj if location.is_url(filename_or_obj) else Path(filename_or_obj)
        except TypeError:
            return False
        if str(path).lower().endswith((".sgy", ".segy")):
            return True
        try:
            head, _ = _read_head(path)
            fmt.detect_endian(head[fmt.TEXT_HEADER_SIZE :])
        except (SegyFormatError, OSError):
            return False
        return True
