"""The seisfacies Zarr store: its layout, the template written first, and opening it whole.

Layout (the contract users and later steps rely on; see docs/store.md):

* ``amplitude`` float32 ``(inline, crossline, time|depth)``
* ``cdp_x``, ``cdp_y`` float64 and ``trace_mask`` bool ``(inline, crossline)``
* ``trace_headers`` uint8 ``(inline, crossline, header_byte)``: the raw 240 bytes
* ``trace_index`` int64 ``(inline, crossline)``: trace number in the source, -1 if none
* later steps add ``labels``, ``facies``, ``probability`` and ``uncertainty``;
  ``horizons`` (``horizon``, ``inline``, ``crossline``), maps ``map_<horizon>_<variable>``
  (``inline``, ``crossline``) and attributes (``envelope``, ``phase``, ``frequency``, ``rms``).

Next door: reading and writing one region is :mod:`.regions`; the trace
headers as named fields, :mod:`.trace_headers`; what a model knows of its
training survey, :mod:`.survey`; how a store or an added variable becomes
visible (temporary names, the pending group, locks, write ids, refusing an
existing output), :mod:`.commit`.
"""

from __future__ import annotations

import os
import warnings

import xarray as xr
from zarr.codecs import BloscCodec

from . import location
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
    zarr_store,
)
from .exceptions import StoreError
from .mdio import V0_KEYS, data_variable

VERTICAL_DIMS = ("time", "depth")
#: The one place chunking is declared: inline, crossline, vertical.
DEFAULT_CHUNKS = (64, 64, 512)
#: Chosen by benchmarks: LZ4 after a bit shuffle gives a smaller store than zarr's
#: default zstd on float32 seismic (0.886 vs 0.929 of the raw size; byte shuffle
#: 0.910) and compresses fastest (984 MB/s on one core, byte shuffle 845, zstd
#: 668), and compression is what limits ingest on few cores.
COMPRESSOR = BloscCodec(cname="lz4", clevel=5, shuffle="bitshuffle")
#: MDIO's structured trace headers (232-byte records): a byte shuffle packs them 2.4x smaller
#: than a bit shuffle, as fast.
RECORD_COMPRESSOR = BloscCodec(cname="lz4", clevel=5, shuffle="shuffle")
#: Values in a chunk of a variable the template writes whole (coordinates, ``trace_mask``,
#: ``trace_index``, a patch store's positions), at most: one file each costs as much as a
#: column's (a 560 x 560 survey's template wrote 343 files in 0.9 s), and no task writes them.
WHOLE_CHUNK_VALUES = 2**20
#: The dims along which such variables are widened: the lateral grid and a patch store's rows.
WIDENED_DIMS = frozenset({"inline", "crossline", "patch"})
#: Which command re-creates each variable, for "incomplete" messages.
PRODUCERS = {
    **dict.fromkeys(("amplitude", "trace_headers", "trace_index", "trace_mask"), "seisfacies ingest"),
    "labels": "seisfacies labels",
    "facies": "seisfacies predict",
    **dict.fromkeys(("probability", "class"), "seisfacies predict --probabilities"),
    "uncertainty": "seisfacies predict --uncertainty",
    "horizons": "seisfacies horizons",
    **{name: f"seisfacies attributes --add {name}" for name in ("envelope", "phase", "frequency", "rms")},
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


def vertical_units(dataset: xr.Dataset) -> str:
    """The vertical axis' units: its CF ``units``, MDIO's ``unitsV1``, else ms for time and m for depth.

    Parameters
    ----------
    dataset : xr.Dataset
        The store, opened as an xarray Dataset.

    Returns
    -------
    str
    """
    vertical = vertical_dim(dataset)
    attrs = dataset[vertical].attrs
    mdio_units = attrs.get("unitsV1", {})
    fallback = next(iter(mdio_units.values()), None) if isinstance(mdio_units, dict) else None
    return str(attrs.get("units") or fallback or {"time": "ms", "depth": "m"}[vertical])


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


def encoding_for(dataset: xr.Dataset, chunks: dict[str, int], uncompressed: tuple[str, ...] = ()) -> dict:
    """Zarr encoding: the declared chunking and the compressor for every variable.

    Variables held in memory along the lateral grid or a patch store's rows
    (``trace_mask``, ``cdp_x``, the lateral coordinates, the patches'
    positions), which the template writes whole, get chunks of up to
    :data:`WHOLE_CHUNK_VALUES` values (:func:`whole_chunk`); every variable
    that tasks write keeps the declared ones.

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
        if variable.chunks is None and variable.ndim and set(variable.dims) <= WIDENED_DIMS:
            widest = round(WHOLE_CHUNK_VALUES ** (1 / variable.ndim))
            widened = (whole_chunk(chunk, widest) for chunk in var_chunks)
            var_chunks = tuple(map(min, widened, variable.shape))
        compressors = (RECORD_COMPRESSOR if variable.dtype.kind == "V" else COMPRESSOR,)
        compressors = () if name in uncompressed else compressors
        encoding[name] = {"chunks": var_chunks, "compressors": compressors}
        if variable.dtype.kind in "iub":
            # no _FillValue: xarray would otherwise mask the value 0 and decode to float64
            encoding[name]["_FillValue"] = None
    return encoding


def whole_chunk(chunk: int, widest: int) -> int:
    """A dim's chunk in a variable written whole: the largest multiple of ``chunk`` up to ``widest``.

    A multiple, so each of its chunks holds whole chunks of the variables tasks write.

    Parameters
    ----------
    chunk : int
        The declared chunk along the dim.
    widest : int
        The most it may grow to.

    Returns
    -------
    int

    >>> whole_chunk(64, 1024), whole_chunk(100, 1024), whole_chunk(2000, 1024)
    (1024, 1000, 2000)
    """
    return max(chunk, widest // chunk * chunk)


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

    No consolidated copy of the metadata: the store is staged, and
    :func:`~seisfacies.pipeline.commit.commit_store` writes the copy once
    it is whole (a copy here too cost a listing and a read of every
    variable's metadata: 13 requests of an ingest on object storage).

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
            consolidated=False,
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
        if any(location.is_file(location.join(path, key)) for key in V0_KEYS):
            raise StoreError(
                f"{path}: an MDIO v0 store (Zarr v2); seisfacies reads MDIO v1: convert it with MDIO 1.x "
                "or export it to SEG-Y and run `seisfacies ingest`"
            )
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
            # a root without its consolidated copy (a commit under way or stopped): each variable's own
            warnings.filterwarnings("ignore", message="Failed to open Zarr store with consolidated metadata")
            dataset = xr.open_zarr(path, consolidated=None, zarr_format=3)
    except (KeyError, ValueError, FileNotFoundError) as error:
        raise StoreError(f"{path}: cannot open the store ({error}); re-run `seisfacies ingest`") from None
    samples = data_variable(dataset.attrs)
    if samples != "amplitude" and samples in dataset.variables:  # an MDIO store's own name for them
        dataset = dataset.rename_vars({samples: "amplitude"})
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
