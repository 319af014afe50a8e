"""The seisfacies Zarr store: layout, template, region writes, completeness.

Layout (the contract users and later steps rely on; see docs/store.md):

* ``amplitude`` float32 ``(inline, crossline, time|depth)``
* ``cdp_x``, ``cdp_y`` float64 and ``trace_mask`` bool ``(inline, crossline)``
* ``trace_headers`` uint8 ``(inline, crossline, header_byte)``: the raw 240 bytes
* ``trace_index`` int64 ``(inline, crossline)``: trace number in the source, -1 if none
* later steps add ``labels``, ``facies`` and ``probability``.

How a store or an added variable becomes visible (temporary names, the
pending group, locks, write ids) is :mod:`seisfacies.pipeline.commit`.
"""

from __future__ import annotations

import os
import warnings
from pathlib import Path

import numpy as np
import xarray as xr
import zarr
from zarr.codecs import BloscCodec

from . import location
from .blocks import Region
from .commit import (
    INCOMPLETE_ATTR,
    PENDING_GROUP,
    ROOT_METADATA,
    abandon_variables,
    begin_variables,
    consolidate,
    consolidating,
    describe_holder,
    lock_holder,
    output_exists,
    zarr_store,
)
from .exceptions import StoreError

VERTICAL_DIMS = ("time", "depth")
#: The one place chunking is declared: inline, crossline, vertical.
DEFAULT_CHUNKS = (64, 64, 512)
#: Chosen by benchmarks: LZ4 after a bit shuffle gives a smaller store than zarr's
#: default zstd on float32 seismic (0.886 vs 0.929 of the raw size; byte shuffle
#: 0.910) and compresses fastest (984 MB/s on one core, byte shuffle 845, zstd
#: 668), and compression is what limits ingest on few cores.
COMPRESSOR = BloscCodec(cname="lz4", clevel=5, shuffle="bitshuffle")
#: Which command re-creates each variable, for "incomplete" messages.
PRODUCERS = {
    **dict.fromkeys(("amplitude", "trace_headers", "trace_index", "trace_mask"), "seisfacies ingest"),
    "labels": "seisfacies labels",
    "facies": "seisfacies predict",
    **dict.fromkeys(("probability", "class"), "seisfacies predict --probabilities"),
    "uncertainty": "seisfacies predict --uncertainty",
}


def vertical_dim(dataset: xr.Dataset) -> str:
    """The vertical dimension of a store: ``time`` or ``depth``.

    Parameters
    ----------
    dataset : xr.Dataset
        The store, opened as an xarray Dataset.

    Returns
    -------
    str
    """
    for dim in VERTICAL_DIMS:
        if dim in dataset.dims:
            return dim
    raise StoreError(f"the store has neither a 'time' nor a 'depth' dimension (dims: {list(dataset.dims)})")


def parse_chunks(text: str | None, vertical: str) -> dict[str, int]:
    """Chunk sizes from ``"64,64,256"`` or ``"inline=64,crossline=64,time=128"``.

    Parameters
    ----------
    text : str | None
        The text to read.
    vertical : str

    Returns
    -------
    dict[str, int]

    >>> parse_chunks("32,32,64", "time")
    {'inline': 32, 'crossline': 32, 'time': 64}
    >>> parse_chunks("crossline=16", "depth")
    {'inline': 64, 'crossline': 16, 'depth': 512}
    """
    dims = ("inline", "crossline", vertical)
    chunks = dict(zip(dims, DEFAULT_CHUNKS))
    if not text:
        return chunks
    parts = [part.strip() for part in text.split(",") if part.strip()]
    try:
        if all("=" in part for part in parts):
            for part in parts:
                name, value = part.split("=", 1)
                if name.strip() not in chunks:
                    raise ValueError(f"unknown dimension {name.strip()!r}")
                chunks[name.strip()] = int(value)
        elif len(parts) == 3:
            chunks = dict(zip(dims, (int(part) for part in parts)))
        else:
            raise ValueError("give three sizes or dim=size pairs")
    except ValueError as error:
        raise StoreError(
            f"--chunks {text!r}: {error}; "
            f"expected e.g. '64,64,256' or 'inline=64,crossline=64,{vertical}=256'"
        ) from None
    if min(chunks.values()) < 1:
        raise StoreError(f"--chunks {text!r}: chunk sizes must be positive")
    return chunks


def check_output(path: str | os.PathLike, overwrite: bool, what: str = "store") -> str:
    """Refuse to replace an existing output unless ``overwrite`` (mdio's rule).

    Parameters
    ----------
    path : str | os.PathLike
        The file or store.
    overwrite : bool
        Replace an existing output.
    what : str
        What the output is, for the message ("store", "file", "picture").

    Returns
    -------
    str
        The absolute path (or the URL).
    """
    path = location.resolve(path)
    if output_exists(path) and not overwrite:
        raise StoreError(f"{path}: the {what} already exists; pass --overwrite to replace it")
    check_folder_writable(path)
    return path


def check_folder_writable(path: str | os.PathLike) -> None:
    """Make an output's folder if missing; refuse one that cannot be written, before any work starts.

    Parameters
    ----------
    path : str or os.PathLike
        The file or store.
    """
    if location.is_url(path):  # object storage has no folders to make; its errors name the URL
        return
    path = Path(path)
    folder = path.parent
    if not folder.exists():  # an output folder that does not exist yet is made, as `mkdir -p` would
        try:
            folder.mkdir(parents=True)
        except OSError as error:
            raise StoreError(
                f"{path}: cannot create the folder {folder} ({error.strerror}); create it or choose another"
            ) from None
    if not folder.is_dir():
        raise StoreError(f"{path}: {folder} is not a folder; choose another output path")
    if not os.access(folder, os.W_OK | os.X_OK):
        raise StoreError(
            f"{path}: cannot write in the folder {folder.absolute()} (permission denied); "
            "choose another output folder or fix its permissions"
        )


def check_store_writable(path: str | os.PathLike) -> None:
    """Refuse to add variables to a store this user cannot write (the variables go in its root).

    Parameters
    ----------
    path : str or os.PathLike
        The file or store.
    """
    if location.is_url(path):
        return
    path = Path(path)
    if not (os.access(path, os.W_OK | os.X_OK) and os.access(path / "zarr.json", os.W_OK)):
        raise StoreError(
            f"{path}: the store is read-only for this user (permission denied); "
            "fix its permissions or copy it somewhere writable"
        )


def encoding_for(dataset: xr.Dataset, chunks: dict[str, int], uncompressed: tuple[str, ...] = ()) -> dict:
    """Zarr encoding: the declared chunking and the compressor for every variable.

    Parameters
    ----------
    dataset : xr.Dataset
        The store, opened as an xarray Dataset.
    chunks : dict[str, int]
        Chunk size per dim name.
    uncompressed : tuple[str, ...]

    Returns
    -------
    dict
    """
    encoding = {}
    for name, variable in dataset.variables.items():
        var_chunks = tuple(min(chunks.get(dim, size), size) for dim, size in variable.sizes.items())
        compressors = () if name in uncompressed else (COMPRESSOR,)
        encoding[name] = {"chunks": var_chunks, "compressors": compressors}
        if variable.dtype.kind in "iub":
            # no _FillValue: xarray would otherwise mask the value 0 and decode to float64
            encoding[name]["_FillValue"] = None
    return encoding


def store_chunks(dataset: xr.Dataset) -> dict[str, int]:
    """The chunk sizes the store's amplitude was written with, by dim name.

    Parameters
    ----------
    dataset : xr.Dataset
        The store, opened as an xarray Dataset.

    Returns
    -------
    dict[str, int]
    """
    return dict(zip(dataset.amplitude.dims, dataset.amplitude.encoding["chunks"]))


def write_template(
    dataset: xr.Dataset,
    path: str | os.PathLike,
    chunks: dict[str, int],
    mode: str = "w-",
    uncompressed: tuple[str, ...] = (),
) -> None:
    """Write metadata and the small eager variables; dask variables stay empty.

    Parameters
    ----------
    dataset : xr.Dataset
        The store, opened as an xarray Dataset.
    path : str or os.PathLike
        The file or store.
    chunks : dict[str, int]
        Chunk size per dim name.
    mode : str
    uncompressed : tuple[str, ...]
    """
    with consolidating():
        dataset.to_zarr(
            zarr_store(path),
            mode=mode,
            compute=False,
            zarr_format=3,
            consolidated=True,
            encoding=encoding_for(dataset, chunks, uncompressed),
        )


def add_variables_template(dataset: xr.Dataset, path: str | os.PathLike, chunks: dict[str, int]) -> None:
    """Add new (lazy) variables to a store's pending group, out of sight until they are committed.

    They are written under the store's pending group; the root and the
    variables it holds stay as they are.

    Parameters
    ----------
    dataset : xr.Dataset
        The new variables (lazy), with the store's coordinates.
    path : str or os.PathLike
        The store.
    chunks : dict[str, int]
        Chunk size per dim name.
    """
    extra_coords = [name for name in dataset.coords if name not in dataset.dims]  # already at the root
    template = dataset.drop_vars(extra_coords)
    names = [str(name) for name in template.variables]
    begin_variables(path, names)  # what an interrupted run left
    try:
        with consolidating():
            template.to_zarr(
                path,
                group=PENDING_GROUP,
                mode="a",
                compute=False,
                zarr_format=3,
                consolidated=False,
                encoding=encoding_for(template.drop_vars(list(template.coords)), chunks),
            )
        consolidate(path)
    except OSError:
        abandon_variables(path, names)
        raise


def write_region(path: str, variable: str, region: Region, values: np.ndarray) -> None:
    """Write ``values`` into ``region`` (dim -> slice, in the variable's dim order).

    Parameters
    ----------
    path : str
        The file or store.
    variable : str
        A store variable name.
    region : Region
        Index range per dim name.
    values : np.ndarray
        The region's values.
    """
    array = zarr.open_array(store=path, path=variable, mode="r+", zarr_format=3)
    array[tuple(region.values())] = values


def read_region(path: str, variable: str, region: Region) -> np.ndarray:
    """Read ``region`` (dim -> slice, in the variable's dim order) of one variable.

    Parameters
    ----------
    path : str
        The file or store.
    variable : str
        A store variable name.
    region : Region
        Index range per dim name.

    Returns
    -------
    np.ndarray
    """
    array = zarr.open_array(store=path, path=variable, mode="r", zarr_format=3)
    return array[tuple(region.values())]


def _has_consolidated(path: str | os.PathLike) -> bool:
    """Whether the root holds its consolidated metadata.

    A metadata update interrupted by a full disk can leave the root without it;
    the per-variable metadata still reads.
    """
    try:
        root = zarr.open_group(store=str(path), mode="r", zarr_format=3, use_consolidated=False)
        return root.metadata.consolidated_metadata is not None
    except (KeyError, ValueError, FileNotFoundError):
        return True  # let the main open report the problem


def open_store(path: str | os.PathLike, require: tuple[str, ...] = ("amplitude",)) -> xr.Dataset:
    """Open a finished store lazily; refuse missing, foreign or incomplete ones.

    Parameters
    ----------
    path : str | os.PathLike
        The file or store.
    require : tuple[str, ...]

    Returns
    -------
    xr.Dataset
    """
    path = location.resolve(path)
    if not location.is_file(location.join(path, ROOT_METADATA)):
        holder = lock_holder(path)
        if holder is not None:
            raise StoreError(f"{path}: the store is {describe_holder(holder)}; wait for it to finish")
        hint = (
            "run `seisfacies ingest SEGY STORE` first"
            if not location.exists(path)
            else "it is not a Zarr v3 store"
        )
        raise StoreError(f"{path}: not a seisfacies store; {hint}")
    try:
        with warnings.catch_warnings():  # a killed writer's temporary files, listed until the next writer
            warnings.filterwarnings(
                "ignore", message=".*is not recognized as a component of a Zarr hierarchy"
            )
            dataset = xr.open_zarr(path, consolidated=_has_consolidated(path), zarr_format=3)
    except (KeyError, ValueError, FileNotFoundError) as error:
        raise StoreError(f"{path}: cannot open the store ({error}); re-run `seisfacies ingest`") from None
    pending = dataset.attrs.get(INCOMPLETE_ATTR, [])
    for name in [*require, *pending]:
        if name in pending and (name in require or name == "amplitude"):
            raise _incomplete(path, name)
    missing = [name for name in require if name not in dataset.variables]
    holder = lock_holder(path) if missing else None
    if holder is not None:
        raise StoreError(f"{path}: {missing[0]!r} is not in the store yet: it is {describe_holder(holder)}")
    if missing:
        fix = f"; run `{PRODUCERS[missing[0]]}` first" if missing[0] in PRODUCERS else ""
        raise StoreError(f"{path}: the store has no {', '.join(map(repr, missing))}{fix}")
    return dataset


def _incomplete(path: str, name: str) -> StoreError:
    """The refusal for an incomplete variable: still being written, or left by a stopped run."""
    holder = lock_holder(path)
    if holder is not None:
        return StoreError(f"{path}: variable {name!r} is {describe_holder(holder)}; wait for it to finish")
    return StoreError(
        f"{path}: variable {name!r} is incomplete (a run stopped before it finished); "
        f"re-run `{PRODUCERS[name]}` with --overwrite"
    )


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


def survey_record(dataset: xr.Dataset) -> dict:
    """A store's geometry in plain data: vertical axis, its step and the sizes.

    Parameters
    ----------
    dataset : xr.Dataset
        A store (from :func:`open_store`).

    Returns
    -------
    dict
        ``vertical``, ``vertical_step`` and ``sizes``.
    """
    vertical = vertical_dim(dataset)
    values = dataset[vertical].values[:2]
    step = float(values[1] - values[0]) if len(values) > 1 else 0.0
    return {"vertical": vertical, "vertical_step": step, "sizes": dict(dataset.amplitude.sizes)}


def amplitude_statistics(store: str | os.PathLike, dataset: xr.Dataset, chunks: int = 4) -> dict:
    """Mean and standard deviation of the finite amplitudes in a few chunks spread over the volume.

    Parameters
    ----------
    store : str or os.PathLike
        The store.
    dataset : xr.Dataset
        The same store, opened (for its sizes and chunking).
    chunks : int
        How many chunks to read (bounded memory, whatever the survey's size).

    Returns
    -------
    dict
        ``amplitude_mean`` and ``amplitude_std``.
    """
    from .blocks import regions

    plan = regions(dict(dataset.amplitude.sizes), store_chunks(dataset))
    picks = [plan[int(i)] for i in np.linspace(0, len(plan) - 1, min(chunks, len(plan)))]
    values = np.concatenate([read_region(str(store), "amplitude", region).ravel() for region in picks])
    values = values[np.isfinite(values)]
    return {"amplitude_mean": float(values.mean()), "amplitude_std": float(values.std())}


#: How far a store may be from the training survey before predict warns.
STD_RATIO_WARN = 3.0
MEAN_SHIFT_WARN = 1.0  # in training standard deviations


def survey_differences(trained: dict, here: dict) -> list[str]:
    """Strong differences between the training survey and a store, as sentences.

    Parameters
    ----------
    trained : dict
        The checkpoint's ``training_survey``.
    here : dict
        The same fields for the store to predict.

    Returns
    -------
    list of str
        Empty when nothing differs strongly.

    >>> survey_differences({"vertical_step": 4.0, "amplitude_mean": 0.0, "amplitude_std": 1.0},
    ...                    {"vertical_step": 2.0, "amplitude_mean": 0.1, "amplitude_std": 9.0})
    ... # doctest: +NORMALIZE_WHITESPACE
    ['its sample interval is 2 where the model was trained on 4',
     "its amplitudes spread 9x as wide as the training survey's (std 9 against 1)"]
    """
    found = []
    step, step_here = trained.get("vertical_step"), here.get("vertical_step")
    if step and step_here and abs(step_here - step) > 0.01 * abs(step):
        found.append(f"its sample interval is {step_here:g} where the model was trained on {step:g}")
    std, std_here = trained.get("amplitude_std"), here.get("amplitude_std")
    if std and std_here:
        ratio = std_here / std
        if ratio > STD_RATIO_WARN or ratio < 1 / STD_RATIO_WARN:
            found.append(
                f"its amplitudes spread {ratio:.2g}x as wide as the training survey's "
                f"(std {std_here:.3g} against {std:.3g})"
            )
        shift = abs(here.get("amplitude_mean", 0.0) - trained.get("amplitude_mean", 0.0)) / std
        if shift > MEAN_SHIFT_WARN:
            found.append(f"its mean amplitude is {shift:.2g} training standard deviations off")
    return found
