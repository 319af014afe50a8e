"""Helpers for tests and examples: small self-describing cubes and SEG-Y files.

Like segyio's ``make-file.py``, values encode their position so a misplaced
trace or sample is visible: ``value = inline_idx * 100 + crossline_idx + sample_idx / 64``,
exact in IBM floats too
(float formats) or a small integer mix (integer formats).
"""

from __future__ import annotations

import numpy as np
import segyio

from . import segy_format as fmt
from .segy_write import SegyWriteSpec, create_file, write_block, write_cube

INTEGER_FORMATS = (2, 3, 8, 9, 10, 11, 12, 16)


def position_cube(shape: tuple[int, int, int], sample_format: int = 5) -> np.ndarray:
    """A cube whose values tell where they are, exact in ``sample_format``.

    Parameters
    ----------
    shape : tuple[int, int, int]
        The array's shape.
    sample_format : int
        SEG-Y sample format code (binary header bytes 3225-3226).

    Returns
    -------
    np.ndarray

    >>> position_cube((2, 2, 3), 5)[1, 0].tolist()
    [100.0, 100.015625, 100.03125]
    >>> position_cube((2, 2, 3), 8)[1, 1].tolist()
    [16.0, 17.0, 18.0]
    """
    i, j, k = np.meshgrid(*(np.arange(n) for n in shape), indexing="ij")
    if sample_format in INTEGER_FORMATS:
        return ((i * 11 + j * 5 + k) % 100).astype(np.float32)
    return (i * 100 + j + k / 64).astype(np.float32)


def write_test_segy(
    path,
    shape=(6, 5, 10),
    *,
    sample_format=5,
    endian="big",
    sorting="inline",
    missing=(),
    inline_step=1,
    crossline_step=1,
    **kwargs,
) -> np.ndarray:
    """Write a position cube as SEG-Y; return the cube (zeros where traces are missing).

    Parameters
    ----------
    path
        The file or store.
    shape
        The array's shape.
    sample_format
        SEG-Y sample format code (binary header bytes 3225-3226).
    endian
        "big" or "little".
    sorting
        Inline or crossline sorted.
    missing
    inline_step
    crossline_step
    **kwargs

    Returns
    -------
    np.ndarray
    """
    cube = position_cube(shape, sample_format)
    mask = np.ones(shape[:2], bool)
    for i, j in missing:
        mask[i, j] = False
    write_cube(
        str(path),
        cube,
        inlines=np.arange(shape[0]) * inline_step + 1,
        crosslines=np.arange(shape[1]) * crossline_step + 20,
        sample_format=sample_format,
        endian=endian,
        sorting=sorting,
        trace_mask=mask,
        **kwargs,
    )
    return np.where(mask[..., None], cube, 0)


def segyio_grid(path, endian: str, iline=189, xline=193) -> dict:
    """Read a post-stack file with segyio only: the oracle the tests compare against.

    Parameters
    ----------
    path
        The file or store.
    endian : str
        "big" or "little".
    iline
    xline

    Returns
    -------
    dict
    """
    with segyio.open(str(path), ignore_geometry=True, endian=endian) as handle:
        ilines = handle.attributes(iline)[:]
        xlines = handle.attributes(xline)[:]
        traces = handle.trace.raw[:]
        samples = np.asarray(handle.samples)
    inlines, rows = np.unique(ilines, return_inverse=True)
    crosslines, cols = np.unique(xlines, return_inverse=True)
    cube = np.zeros((len(inlines), len(crosslines), traces.shape[1]), np.float32)
    cube[rows, cols] = traces
    return {"inlines": inlines, "crosslines": crosslines, "samples": samples, "cube": cube}


def write_large_segy(
    path, shape: tuple[int, int, int], seed: int = 0, block_inlines: int = 16, values=None
) -> None:
    """An IBM-float post-stack file written inline block by inline block (memory bounded).

    ``values(rng, block_shape)`` makes each block's samples (default: Gaussian
    noise); inline and crossline numbers start at 1, CDP x/y on a 25 m grid.

    Parameters
    ----------
    path
        The file or store.
    shape : tuple[int, int, int]
        The array's shape.
    seed : int
        Random seed.
    block_inlines : int
    values
        The samples.
    """
    n_il, n_xl, n_samples = shape
    binary = bytearray(400)
    for field, value in ((3217, 4000), (3221, n_samples), (3225, 1), (3229, 2)):
        binary[field - 3201 : field - 3199] = value.to_bytes(2, "big")
    spec = SegyWriteSpec(str(path), 3600, n_samples, 1, "big")
    create_file(spec, b"C".rjust(3200, b" ") + bytes(binary), n_il * n_xl)
    rng = np.random.default_rng(seed)
    values = values or (lambda generator, block: generator.normal(0, 1000, block).astype(np.float32))
    for start in range(0, n_il, block_inlines):
        rows = np.arange(start, min(start + block_inlines, n_il))
        index = rows[:, None] * n_xl + np.arange(n_xl)[None, :]
        headers = np.zeros((*index.shape, fmt.TRACE_HEADER_SIZE), np.uint8)
        _put_field(headers, fmt.INLINE_BYTE, rows[:, None] + 1, 4)
        _put_field(headers, fmt.CROSSLINE_BYTE, np.arange(n_xl)[None, :] + 1, 4)
        _put_field(headers, fmt.TRACE_SAMPLES_BYTE, n_samples, 2)
        _put_field(headers, fmt.COORDINATE_SCALAR_BYTE, 1, 2)  # 0 is refused by MDIO's reader
        _put_field(headers, fmt.CDP_X_BYTE, 600_000 + 25 * np.arange(n_xl)[None, :], 4)
        _put_field(headers, fmt.CDP_Y_BYTE, 6_000_000 + 25 * rows[:, None], 4)
        write_block(spec, index, headers, values(rng, (*index.shape, n_samples)))


def _put_field(headers: np.ndarray, byte: int, values, size: int) -> None:
    """Set a big-endian integer field of every trace header (``values`` broadcast over the traces)."""
    field = np.broadcast_to(values, headers.shape[:-1]).astype(f">i{size}")
    headers[..., byte - 1 : byte - 1 + size] = field[..., None].view(np.uint8)
