"""A store's raw 240-byte trace headers, decoded into named fields (segyio's names) lazily."""

from __future__ import annotations

import os

import numpy as np
import xarray as xr

from .store import open_store


def trace_header_fields(dataset: xr.Dataset) -> xr.Dataset:
    """The raw trace headers of a store decoded into named fields (segyio's names), lazily.

    Parameters
    ----------
    dataset : xr.Dataset
        A store with ``trace_headers`` (from :func:`open_store`).

    Returns
    -------
    xr.Dataset
        One int32 ``(inline, crossline)`` variable per field (``INLINE_3D``,
        ``CDP_X``, ``SourceGroupScalar``, ...), computed chunk by chunk on access.
    """
    import segyio

    from . import segy_format as fmt

    raw = dataset["trace_headers"]
    endian = dataset.attrs["byte_order"]
    fields = {}
    for field in sorted(segyio.TraceField.enums(), key=int):
        byte, name = int(field), str(field)
        size = fmt.TRACE_FIELD_SIZES.get(byte)
        if size is None or name in fields:
            continue
        fields[name] = xr.apply_ufunc(
            _decode_field,
            raw,
            kwargs={"byte": byte, "size": size, "endian": endian},
            input_core_dims=[["header_byte"]],
            dask="parallelized",
            output_dtypes=[np.int32],
        ).assign_attrs(long_name=f"trace header bytes {byte}-{byte + size - 1}", byte=byte)
    return xr.Dataset(fields, attrs={"source_file": dataset.attrs.get("source_file", "")})


def _decode_field(raw: np.ndarray, byte: int, size: int, endian: str) -> np.ndarray:
    from .segy_format import header_field

    flat = raw.reshape(-1, raw.shape[-1])
    return header_field(flat, byte, size, endian).astype(np.int32).reshape(raw.shape[:-1])


def open_trace_headers(store: str | os.PathLike) -> xr.Dataset:
    """Open a store's trace headers as named fields: one call, nothing read yet.

    Parameters
    ----------
    store : str or os.PathLike
        A store written by ``seisfacies ingest``.

    Returns
    -------
    xr.Dataset
        See :func:`trace_header_fields`.
    """
    return trace_header_fields(open_store(store, require=("trace_headers",)))
