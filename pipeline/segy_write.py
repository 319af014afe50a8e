"""Writing SEG-Y: byte-exact export from a store, and cubes from numpy via segyio.

Export keeps the source's textual, binary and trace headers byte for byte and
writes each trace back at its original position, so an IEEE-float file comes
back byte-identical. Traces are written with ``os.pwrite`` at disjoint offsets,
so blocks can be written by many processes at once.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import numpy as np
import segyio

from . import segy_format as fmt


@dataclass(frozen=True)
class SegyWriteSpec:
    """Where traces go in an output file; small and picklable."""

    path: str
    data_offset: int
    n_samples: int
    sample_format: int
    endian: str

    @property
    def trace_size(self) -> int:
        return fmt.TRACE_HEADER_SIZE + self.n_samples * fmt.SAMPLE_FORMATS[self.sample_format][1]


def create_file(spec: SegyWriteSpec, head: bytes, n_traces: int) -> None:
    """Write the textual and binary headers and size the file for ``n_traces``.

    Parameters
    ----------
    spec : SegyWriteSpec
        The file to write and its layout (formats, sizes, byte order).
    head : bytes
    n_traces : int
    """
    with open(spec.path, "wb") as handle:
        handle.write(head)
        handle.truncate(spec.data_offset + n_traces * spec.trace_size)


def write_block(spec: SegyWriteSpec, trace_index: np.ndarray, headers: np.ndarray, values: np.ndarray) -> int:
    """Write the present traces of a grid block at their trace positions.

    ``trace_index`` is ``(il, xl)``, ``headers`` ``(il, xl, 240)`` and
    ``values`` ``(il, xl, ns)``. Returns the number of traces written.

    Parameters
    ----------
    spec : SegyWriteSpec
        The file to write and its layout (formats, sizes, byte order).
    trace_index : np.ndarray
        Trace position per (inline, crossline).
    headers : np.ndarray
        Trace headers.
    values : np.ndarray
        One trace's samples per row.

    Returns
    -------
    int
    """
    present = trace_index >= 0
    if not present.any():
        return 0
    numbers = trace_index[present]
    order = np.argsort(numbers)
    numbers = numbers[order]
    records = np.empty((len(numbers), spec.trace_size), np.uint8)
    records[:, : fmt.TRACE_HEADER_SIZE] = headers[present][order]
    records[:, fmt.TRACE_HEADER_SIZE :] = fmt.encode_samples(
        values[present][order].astype(np.float32), spec.sample_format, spec.endian
    )
    descriptor = os.open(spec.path, os.O_WRONLY)
    try:
        breaks = np.flatnonzero(np.diff(numbers) != 1) + 1
        for run in np.split(np.arange(len(numbers)), breaks):
            if len(run):
                offset = spec.data_offset + int(numbers[run[0]]) * spec.trace_size
                os.pwrite(descriptor, records[run].tobytes(), offset)
    finally:
        os.close(descriptor)
    return len(numbers)


def write_cube(
    path: str,
    cube: np.ndarray,
    *,
    inlines: np.ndarray,
    crosslines: np.ndarray,
    sample_interval_us: int = 4000,
    delay_ms: int = 0,
    sample_format: int = 5,
    endian: str = "big",
    sorting: str = "inline",
    trace_mask: np.ndarray | None = None,
    origin: tuple[float, float] = (600000.0, 6000000.0),
    spacing: float = 25.0,
    azimuth_deg: float = 30.0,
    iline_byte: int = fmt.INLINE_BYTE,
    xline_byte: int = fmt.CROSSLINE_BYTE,
    text: str | dict[int, str] = "seisfacies synthetic survey",
) -> None:
    """Write a ``(inline, crossline, sample)`` cube as post-stack SEG-Y with segyio.

    Used for synthetic surveys and tests: any format, byte order and sorting,
    with missing traces and rotated CDP coordinates (scalar -100, centimetres).

    Parameters
    ----------
    path : str
        The file or store.
    cube : np.ndarray
    inlines : np.ndarray
    crosslines : np.ndarray
    sample_interval_us : int
    delay_ms : int
    sample_format : int
        SEG-Y sample format code (binary header bytes 3225-3226).
    endian : str
        "big" or "little".
    sorting : str
        Inline or crossline sorted.
    trace_mask : np.ndarray | None
    origin : tuple[float, float]
        Where the values came from, for messages.
    spacing : float
    azimuth_deg : float
    iline_byte : int
        Trace header byte of the inline number.
    xline_byte : int
        Trace header byte of the crossline number.
    text : str | dict[int, str]
        The text to read.
    """
    n_il, n_xl, n_samples = cube.shape
    mask = np.ones((n_il, n_xl), bool) if trace_mask is None else trace_mask
    positions = [(i, j) for i in range(n_il) for j in range(n_xl)]
    if sorting == "crossline":
        positions = [(i, j) for j in range(n_xl) for i in range(n_il)]
    positions = [(i, j) for i, j in positions if mask[i, j]]
    spec = segyio.spec()
    spec.samples = list(range(n_samples))
    spec.format = sample_format
    spec.endian = endian
    spec.tracecount = len(positions)
    angle = np.deg2rad(azimuth_deg)
    with segyio.create(path, spec) as handle:
        lines = text if isinstance(text, dict) else {1: text}
        handle.text[0] = segyio.tools.create_text_header(lines)
        handle.bin.update(
            hdt=sample_interval_us, hns=n_samples, format=sample_format, tsort=2 if sorting == "inline" else 1
        )
        for number, (i, j) in enumerate(positions):
            x = origin[0] + spacing * (i * np.cos(angle) - j * np.sin(angle))
            y = origin[1] + spacing * (i * np.sin(angle) + j * np.cos(angle))
            handle.header[number] = {
                iline_byte: int(inlines[i]),
                xline_byte: int(crosslines[j]),
                segyio.TraceField.CDP_X: int(round(x * 100)),
                segyio.TraceField.CDP_Y: int(round(y * 100)),
                segyio.TraceField.SourceGroupScalar: -100,
                segyio.TraceField.TRACE_SAMPLE_COUNT: n_samples,
                segyio.TraceField.TRACE_SAMPLE_INTERVAL: sample_interval_us,
                segyio.TraceField.DelayRecordingTime: delay_ms,
                segyio.TraceField.TRACE_SEQUENCE_FILE: number + 1,
            }
            handle.trace[number] = np.ascontiguousarray(cube[i, j]).astype(handle.dtype)
