"""The seisfacies Zarr store: layout, template, region writes, completeness.

Layout (the contract users and later steps rely on; see the README):

* ``amplitude`` float32 ``(inline, crossline, time|depth)``
* ``cdp_x``, ``cdp_y`` float64 and ``trace_mask`` bool ``(inline, crossline)``
* ``trace_headers`` uint8 ``(inline, crossline, header_byte)``: the raw 240 bytes
* ``trace_index`` int64 ``(inline, crossline)``: trace number in the source, -1 if none
* later steps add ``labels``, ``facies`` and ``probability``.

Writes go to a hidden temporary folder renamed into place at the end, or, for a
variable added to an existing store, are listed under the root attribute
``seisfacies_incomplete`` until the last region is written.
"""

from __future__ import annotations

import contextlib
import os
import re
import uuid
import warnings
from pathlib import Path

import numpy as np
import xarray as xr
import zarr
from zarr.codecs import BloscCodec

from seisfacies.pipeline import location
from seisfacies.pipeline.blocks import Region
from seisfacies.pipeline.commit import WRITE_ID_ATTR, describe_holder, lock_holder, new_write_id
from seisfacies.pipeline.exceptions import StoreError

VERTICAL_DIMS = ("time", "depth")
#: The one place chunking is declared: inline, crossline, vertical.
DEFAULT_CHUNKS = (64, 64, 512)
#: Chosen by benchmarks: LZ4 after a bit shuffle gives a smaller store than zarr's
#: default zstd on float32 seismic (0.886 vs 0.929 of the raw size; byte shuffle
#: 0.910) and compresses fastest (984 MB/s on one core, byte shuffle 845, zstd
#: 668), and compression is what limits ingest on few cores.
COMPRESSOR = BloscCodec(cname="lz4", clevel=5, shuffle="bitshuffle")
INCOMPLETE_ATTR = "seisfacies_incomplete"
#: New variables are written inside this group and moved to the root when complete:
#: plain ``xarray.open_zarr`` reads only the root's arrays, so it never sees a half-written one.
PENDING_GROUP = "_pending"
#: Which command re-creates each variable, for "incomplete" messages.
PRODUCERS = {
    "amplitude": "seisfacies ingest",
    "labels": "seisfacies labels",
    "facies": "seisfacies predict",
    "probability": "seisfacies predict --probabilities",
}


@contextlib.contextmanager
def _consolidating():
    """Zarr warns that v3 consolidated metadata is an extension; we rely on it knowingly."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="Consolidated metadata is currently not part")
        yield


def consolidate(path: str | os.PathLike) -> None:
    """Rewrite the consolidated metadata after variables or attributes change.

    Parameters
    ----------
    path : str or os.PathLike
        The file or store.
    """
    with _consolidating():
        zarr.consolidate_metadata(str(path), zarr_format=3)


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
    if location.exists(path) and not overwrite:
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


#: Temporary outputs of this process not yet moved into place, for cleanup after Ctrl-C.
_UNFINISHED: set[str] = set()


def temporary_path(path: str | os.PathLike) -> str:
    """A hidden sibling path to write into before renaming into place.

    Parameters
    ----------
    path : str or os.PathLike
        The output it stands for.

    Returns
    -------
    str
        ``.NAME.partial-XXXXXXXX`` beside ``path``.
    """
    path = location.resolve(path)
    partial = location.with_name(path, f".{location.name(path)}.partial-{uuid.uuid4().hex[:8]}")
    _UNFINISHED.add(partial)
    return partial


def remove_unfinished() -> list[str]:
    """Remove every temporary output this process made and never moved into place.

    Called once the workers have stopped (after Ctrl-C): a task still running
    when the command's own cleanup ran may have written into it again.

    Returns
    -------
    list of str
        What was removed.
    """
    removed = [path for path in sorted(_UNFINISHED) if location.exists(path)]
    for path in removed:
        remove_path(path)
    _UNFINISHED.clear()
    return removed


def output_path_of(filename: str) -> str:
    """Name the output a path inside a :func:`temporary_path` stands for, for messages.

    Parameters
    ----------
    filename : str
        A path from an error.

    Returns
    -------
    str
        The path as the user knows it: no temporary folder, no pending group.

    >>> output_path_of("/data/.f3.zarr.partial-0a1b2c3d/amplitude/c/0/0/0")
    '/data/f3.zarr/amplitude/c/0/0/0'
    >>> output_path_of("/data/f3.zarr/_pending/facies/c/0/0/0")
    '/data/f3.zarr/facies/c/0/0/0'
    >>> output_path_of("/data/f3.zarr/_pending/zarr.0123456789abcdef0123456789abcdef.partial")
    '/data/f3.zarr/zarr.json'
    """
    named = re.sub(r"(^|/)\.([^/]+)\.partial-[0-9a-f]{8}(?=/|$)", r"\1\2", filename)
    named = re.sub(r"/zarr\.[0-9a-f]{32}\.partial$", "/zarr.json", named)  # zarr's own temporary name
    return re.sub(rf"/{PENDING_GROUP}/", "/", named)


def replace_path(source: str | os.PathLike, target: str | os.PathLike) -> None:
    """Move a finished output into place, removing what was there.

    Parameters
    ----------
    source : str or os.PathLike
        The input: a file, store or label source.
    target : str or os.PathLike
    """
    source, target = location.resolve(source), location.resolve(target)
    _UNFINISHED.discard(source)
    if location.exists(target):
        backup = location.with_name(target, f".{location.name(target)}.old-{uuid.uuid4().hex[:8]}")
        location.move(target, backup)
        location.move(source, target)
        remove_path(backup)
    else:
        location.move(source, target)


def remove_path(path: str | os.PathLike) -> None:
    """Remove a file or folder if it exists (cleanup of partial outputs).

    Parameters
    ----------
    path : str or os.PathLike
        The file or store.
    """
    location.remove(path)


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
    with _consolidating():
        dataset.to_zarr(
            path,
            mode=mode,
            compute=False,
            zarr_format=3,
            consolidated=True,
            encoding=encoding_for(dataset, chunks, uncompressed),
        )


def pending_name(variable: str) -> str:
    """Where a variable is written until :func:`mark_complete` moves it to the root.

    Parameters
    ----------
    variable : str
        The variable's final name.

    Returns
    -------
    str

    >>> pending_name("facies")
    '_pending/facies'
    """
    return f"{PENDING_GROUP}/{variable}"


def add_variables_template(dataset: xr.Dataset, path: str | os.PathLike, chunks: dict[str, int]) -> None:
    """Add new (lazy) variables to a store, out of sight until complete.

    They are written under :data:`PENDING_GROUP` and listed as incomplete in
    the root attributes (the mark is set first, so a failure while creating
    the arrays keeps it); :func:`mark_complete` moves them to the root.

    Parameters
    ----------
    dataset : xr.Dataset
        The new variables (lazy), with the store's coordinates.
    path : str or os.PathLike
        The store.
    chunks : dict[str, int]
        Chunk size per dim name.
    """
    names = list(dataset.data_vars)
    _remove_pending(path, names)  # what an interrupted run left
    mark_incomplete(path, names)
    extra_coords = [name for name in dataset.coords if name not in dataset.dims]  # already at the root
    template = dataset.drop_vars(extra_coords)
    try:
        with _consolidating():
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
        _clean_up_failed_template(path, names)
        raise


def _clean_up_failed_template(path: str | os.PathLike, variables: list[str]) -> None:
    """Undo what a failed variable template left, keeping the incomplete mark.

    The consolidated metadata goes back if the disk allows.
    """
    with contextlib.suppress(OSError):
        _remove_pending(path, variables)
        pending = location.join(str(path), PENDING_GROUP)
        if not location.exists(location.join(pending, "zarr.json")):  # a group that never got metadata
            remove_path(pending)
        consolidate(path)


def _remove_pending(path: str | os.PathLike, variables: list[str]) -> None:
    for name in variables:
        remove_path(location.join(str(path), PENDING_GROUP, name))


def _commit_pending(path: str | os.PathLike, variables: list[str]) -> None:
    """Move finished variables (and coordinates only they use) from the pending group to the root."""
    path = str(path)
    pending = location.join(path, PENDING_GROUP)
    if not location.exists(pending):
        return
    root = set(_root(path, mode="r").array_keys())
    waiting = set(_root(pending, mode="r").array_keys())
    moving = [name for name in variables if name in waiting]
    moving += [name for name in ("class",) if name in waiting and name not in root]
    for name in moving:
        remove_path(location.join(path, name))
        location.move(location.join(pending, name), location.join(path, name))
    others = [name for name in incomplete_variables(path) if name not in variables and name in waiting]
    if not others:
        remove_path(pending)


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


def _root(path: str | os.PathLike, mode: str = "r+") -> zarr.Group:
    return zarr.open_group(store=str(path), mode=mode, zarr_format=3)


def incomplete_variables(path: str | os.PathLike) -> list[str]:
    """Variables of the store at ``path`` that a stopped run left incomplete.

    Parameters
    ----------
    path : str or os.PathLike
        A store.

    Returns
    -------
    list of str
        Names listed in the root attribute ``seisfacies_incomplete``.
    """
    return list(_root(path, mode="r").attrs.get(INCOMPLETE_ATTR, []))


def mark_incomplete(path: str | os.PathLike, variables: list[str]) -> list[str]:
    """List ``variables`` as incomplete in the root attributes; returns every pending name.

    Parameters
    ----------
    path : str or os.PathLike
        The file or store.
    variables : list[str]
        Store variable names.

    Returns
    -------
    list[str]
    """
    pending = sorted(set(incomplete_variables(path)) | set(variables))
    _root(path).attrs[INCOMPLETE_ATTR] = pending
    consolidate(path)
    return pending


def mark_complete(path: str | os.PathLike, variables: list[str], attrs: dict | None = None) -> None:
    """Clear the incomplete mark (and set root attributes) once every region is in; stamp a write id.

    The committed variables get a new ``seisfacies_write_id``; a commit of no
    variables (a whole store, finished under its temporary name) stamps it on
    the root.

    Parameters
    ----------
    path : str or os.PathLike
        The file or store.
    variables : list[str]
        Store variable names.
    attrs : dict | None
        Attributes.
    """
    _commit_pending(path, variables)
    root = _root(path)
    write_id = new_write_id()
    for name in variables:  # each commit's own id: `seisfacies run` tells versions apart by it
        if location.exists(location.join(str(path), name, "zarr.json")):  # the root's view may be stale
            set_variable_attrs(path, name, {WRITE_ID_ATTR: write_id})
    pending = [name for name in root.attrs.get(INCOMPLETE_ATTR, []) if name not in variables]
    updates = dict(attrs or {})
    updates[INCOMPLETE_ATTR] = pending
    if not variables:  # the whole store: its arrays share the root's id
        updates[WRITE_ID_ATTR] = write_id
    root.attrs.update(updates)
    consolidate(path)


def set_variable_attrs(path: str | os.PathLike, variable: str, attrs: dict) -> None:
    """Set variable attrs.

    Parameters
    ----------
    path : str or os.PathLike
        The file or store.
    variable : str
        A store variable name.
    attrs : dict
        Attributes.
    """
    zarr.open_array(store=str(path), path=variable, mode="r+", zarr_format=3).attrs.update(attrs)


def delete_variables(path: str | os.PathLike, variables: list[str]) -> None:
    """Drop variables from a store (before rewriting them with --overwrite).

    Parameters
    ----------
    path : str or os.PathLike
        The file or store.
    variables : list[str]
        Store variable names.
    """
    root = _root(path)
    for name in variables:
        if name in root:
            del root[name]
    _remove_pending(path, variables)
    consolidate(path)


def finished_variables(dataset: xr.Dataset, names: tuple[str, ...]) -> list[str]:
    """Which of ``names`` exist and were completed (an interrupted one is not an output yet).

    Parameters
    ----------
    dataset : xr.Dataset
        The store, opened as an xarray Dataset.
    names : tuple[str, ...]
        Class names.

    Returns
    -------
    list[str]
    """
    pending = set(dataset.attrs.get(INCOMPLETE_ATTR, []))
    return [name for name in names if name in dataset.variables and name not in pending]


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
    if not location.is_file(location.join(path, "zarr.json")):
        hint = (
            "run `seisfacies ingest SEGY STORE` first"
            if not location.exists(path)
            else "it is not a Zarr v3 store"
        )
        raise StoreError(f"{path}: not a seisfacies store; {hint}")
    try:
        dataset = xr.open_zarr(path, consolidated=_has_consolidated(path), zarr_format=3)
    except (KeyError, ValueError, FileNotFoundError) as error:
        raise StoreError(f"{path}: cannot open the store ({error}); re-run `seisfacies ingest`") from None
    pending = dataset.attrs.get(INCOMPLETE_ATTR, [])
    for name in [*require, *pending]:
        if name in pending and (name in require or name == "amplitude"):
            raise _incomplete(path, name)
    missing = [name for name in require if name not in dataset.variables]
    if missing:
        raise StoreError(
            f"{path}: the store has no {', '.join(map(repr, missing))}; "
            f"run `{PRODUCERS.get(missing[0], 'the step that makes it')}` first"
        )
    return dataset


def _incomplete(path: str, name: str) -> StoreError:
    """The refusal for an incomplete variable: still being written, or left by a stopped run."""
    holder = lock_holder(path)
    if holder is not None:
        return StoreError(f"{path}: variable {name!r} is {describe_holder(holder)}; wait for it to finish")
    return StoreError(
        f"{path}: variable {name!r} is incomplete (a run stopped before it finished); "
        f"re-run `{PRODUCERS.get(name, 'the command that writes it')}` with --overwrite"
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

    from seisfacies.pipeline import segy_format as fmt

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
    from seisfacies.pipeline.segy_format import header_field

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
    from seisfacies.pipeline.blocks import regions

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
