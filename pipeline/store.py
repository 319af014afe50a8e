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
import shutil
import uuid
import warnings
from pathlib import Path

import numpy as np
import xarray as xr
import zarr
from zarr.codecs import BloscCodec

from pipeline.blocks import Region
from pipeline.exceptions import StoreError

VERTICAL_DIMS = ("time", "depth")
#: The one place chunking is declared: inline, crossline, vertical.
DEFAULT_CHUNKS = (64, 64, 512)
#: Chosen by benchmarks/ingest.py: byte shuffle + LZ4 gives a smaller store than
#: zarr's default zstd on float32 seismic (0.905 vs 0.929 of the raw size) and
#: compresses about twice as fast, which is what limits ingest on few cores.
COMPRESSOR = BloscCodec(cname="lz4", clevel=5, shuffle="shuffle")
INCOMPLETE_ATTR = "seisfacies_incomplete"
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


def consolidate(path: Path) -> None:
    """Rewrite the consolidated metadata after variables or attributes change."""
    with _consolidating():
        zarr.consolidate_metadata(str(path), zarr_format=3)


def vertical_dim(dataset: xr.Dataset) -> str:
    """The vertical dimension of a store: ``time`` or ``depth``."""
    for dim in VERTICAL_DIMS:
        if dim in dataset.dims:
            return dim
    raise StoreError(f"the store has neither a 'time' nor a 'depth' dimension (dims: {list(dataset.dims)})")


def parse_chunks(text: str | None, vertical: str) -> dict[str, int]:
    """Chunk sizes from ``"64,64,256"`` or ``"inline=64,crossline=64,time=128"``.

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


def check_output(path: str | os.PathLike, overwrite: bool, what: str = "store") -> Path:
    """Refuse to replace an existing output unless ``overwrite`` (mdio's rule)."""
    path = Path(path)
    if path.exists() and not overwrite:
        raise StoreError(f"{path}: the {what} already exists; pass --overwrite to replace it")
    check_folder_writable(path)
    return path


def check_folder_writable(path: Path) -> None:
    """Refuse an output whose folder is missing or not writable, before any work starts."""
    folder = path.parent
    if not folder.is_dir():
        raise StoreError(f"{path}: the folder {folder} does not exist; create it first")
    if not os.access(folder, os.W_OK | os.X_OK):
        raise StoreError(
            f"{path}: cannot write in the folder {folder.absolute()} (permission denied); "
            "choose another output folder or fix its permissions"
        )


def check_store_writable(path: Path) -> None:
    """Refuse to add variables to a store this user cannot write (the variables go in its root)."""
    if not (os.access(path, os.W_OK | os.X_OK) and os.access(path / "zarr.json", os.W_OK)):
        raise StoreError(
            f"{path}: the store is read-only for this user (permission denied); "
            "fix its permissions or copy it somewhere writable"
        )


#: Temporary outputs of this process not yet moved into place, for cleanup after Ctrl-C.
_UNFINISHED: set[Path] = set()


def temporary_path(path: Path) -> Path:
    """A hidden sibling path to write into before renaming into place.

    Parameters
    ----------
    path : pathlib.Path
        The output it stands for.

    Returns
    -------
    pathlib.Path
        ``.NAME.partial-XXXXXXXX`` beside ``path``.
    """
    partial = path.with_name(f".{path.name}.partial-{uuid.uuid4().hex[:8]}")
    _UNFINISHED.add(partial)
    return partial


def remove_unfinished() -> list[Path]:
    """Remove every temporary output this process made and never moved into place.

    Called once the workers have stopped (after Ctrl-C): a task still running
    when the command's own cleanup ran may have written into it again.

    Returns
    -------
    list of pathlib.Path
        What was removed.
    """
    removed = [path for path in sorted(_UNFINISHED) if path.exists()]
    for path in removed:
        remove_path(path)
    _UNFINISHED.clear()
    return removed


def output_path_of(filename: str) -> str:
    """Name the output a path inside a :func:`temporary_path` stands for, for messages.

    >>> output_path_of("/data/.f3.zarr.partial-0a1b2c3d/amplitude/c/0/0/0")
    '/data/f3.zarr/amplitude/c/0/0/0'
    >>> output_path_of("/data/f3.zarr/zarr.json")
    '/data/f3.zarr/zarr.json'
    """
    return re.sub(r"(^|/)\.([^/]+)\.partial-[0-9a-f]{8}(?=/|$)", r"\1\2", filename)


def replace_path(source: Path, target: Path) -> None:
    """Move a finished output into place, removing what was there."""
    _UNFINISHED.discard(source)
    if target.exists():
        backup = target.with_name(f".{target.name}.old-{uuid.uuid4().hex[:8]}")
        target.rename(backup)
        source.rename(target)
        remove_path(backup)
    else:
        source.rename(target)


def remove_path(path: Path) -> None:
    """Remove a file or folder if it exists (cleanup of partial outputs)."""
    if path.is_dir():
        shutil.rmtree(path, ignore_errors=True)
    elif path.exists():
        path.unlink()


def encoding_for(dataset: xr.Dataset, chunks: dict[str, int], uncompressed: tuple[str, ...] = ()) -> dict:
    """Zarr encoding: the declared chunking and the compressor for every variable."""
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
    """The chunk sizes the store's amplitude was written with, by dim name."""
    return dict(zip(dataset.amplitude.dims, dataset.amplitude.encoding["chunks"]))


def write_template(
    dataset: xr.Dataset,
    path: Path,
    chunks: dict[str, int],
    mode: str = "w-",
    uncompressed: tuple[str, ...] = (),
) -> None:
    """Write metadata and the small eager variables; dask variables stay empty."""
    with _consolidating():
        dataset.to_zarr(
            path,
            mode=mode,
            compute=False,
            zarr_format=3,
            consolidated=True,
            encoding=encoding_for(dataset, chunks, uncompressed),
        )


def add_variables_template(dataset: xr.Dataset, path: Path, chunks: dict[str, int]) -> None:
    """Add new (lazy) variables to an existing store, marked incomplete.

    The mark is set before the template is written, so a failure while creating
    the arrays keeps it; the template carries it too, because xarray replaces the
    root attributes with the template's.
    """
    pending = mark_incomplete(path, list(dataset.data_vars))
    marked = dataset.assign_attrs({INCOMPLETE_ATTR: pending})
    try:
        with _consolidating():
            marked.to_zarr(
                path,
                mode="a",
                compute=False,
                zarr_format=3,
                consolidated=True,
                encoding=encoding_for(dataset.drop_vars(list(dataset.coords)), chunks),
            )
    except OSError:
        _clean_up_failed_template(path, list(dataset.data_vars))
        raise


def _clean_up_failed_template(path: Path, variables: list[str]) -> None:
    """Undo what a failed variable template left, keeping the incomplete mark.

    Folders of variables whose metadata never got written go; the consolidated
    metadata goes back if the disk allows.
    """
    for name in variables:
        if not (path / name / "zarr.json").exists():
            remove_path(path / name)
    with contextlib.suppress(OSError):
        consolidate(path)


def write_region(path: str, variable: str, region: Region, values: np.ndarray) -> None:
    """Write ``values`` into ``region`` (dim -> slice, in the variable's dim order)."""
    array = zarr.open_array(store=path, path=variable, mode="r+", zarr_format=3)
    array[tuple(region.values())] = values


def read_region(path: str, variable: str, region: Region) -> np.ndarray:
    """Read ``region`` (dim -> slice, in the variable's dim order) of one variable."""
    array = zarr.open_array(store=path, path=variable, mode="r", zarr_format=3)
    return array[tuple(region.values())]


def _root(path: Path, mode: str = "r+") -> zarr.Group:
    return zarr.open_group(store=str(path), mode=mode, zarr_format=3)


def incomplete_variables(path: Path) -> list[str]:
    """Variables of the store at ``path`` that a stopped run left incomplete.

    Parameters
    ----------
    path : pathlib.Path
        A store.

    Returns
    -------
    list of str
        Names listed in the root attribute ``seisfacies_incomplete``.
    """
    return list(_root(path, mode="r").attrs.get(INCOMPLETE_ATTR, []))


def mark_incomplete(path: Path, variables: list[str]) -> list[str]:
    """List ``variables`` as incomplete in the root attributes; returns every pending name."""
    pending = sorted(set(incomplete_variables(path)) | set(variables))
    _root(path).attrs[INCOMPLETE_ATTR] = pending
    consolidate(path)
    return pending


def mark_complete(path: Path, variables: list[str], attrs: dict | None = None) -> None:
    """Clear the incomplete mark (and set root attributes) once every region is in."""
    root = _root(path)
    pending = [name for name in root.attrs.get(INCOMPLETE_ATTR, []) if name not in variables]
    updates = dict(attrs or {})
    updates[INCOMPLETE_ATTR] = pending
    root.attrs.update(updates)
    consolidate(path)


def set_variable_attrs(path: Path, variable: str, attrs: dict) -> None:
    zarr.open_array(store=str(path), path=variable, mode="r+", zarr_format=3).attrs.update(attrs)


def delete_variables(path: Path, variables: list[str]) -> None:
    """Drop variables from a store (before rewriting them with --overwrite)."""
    root = _root(path)
    for name in variables:
        if name in root:
            del root[name]
    consolidate(path)


def finished_variables(dataset: xr.Dataset, names: tuple[str, ...]) -> list[str]:
    """Which of ``names`` exist and were completed (an interrupted one is not an output yet)."""
    pending = set(dataset.attrs.get(INCOMPLETE_ATTR, []))
    return [name for name in names if name in dataset.variables and name not in pending]


def _has_consolidated(path: Path) -> bool:
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
    """Open a finished store lazily; refuse missing, foreign or incomplete ones."""
    path = Path(path)
    if not (path / "zarr.json").is_file():
        hint = (
            "run `seisfacies ingest SEGY STORE` first" if not path.exists() else "it is not a Zarr v3 store"
        )
        raise StoreError(f"{path}: not a seisfacies store; {hint}")
    try:
        dataset = xr.open_zarr(path, consolidated=_has_consolidated(path), zarr_format=3)
    except (KeyError, ValueError, FileNotFoundError) as error:
        raise StoreError(f"{path}: cannot open the store ({error}); re-run `seisfacies ingest`") from None
    pending = dataset.attrs.get(INCOMPLETE_ATTR, [])
    for name in [*require, *pending]:
        if name in pending and (name in require or name == "amplitude"):
            raise StoreError(
                f"{path}: variable {name!r} is incomplete (a run stopped before it finished); "
                f"re-run `{PRODUCERS.get(name, 'the command that writes it')}` with --overwrite"
            )
    missing = [name for name in require if name not in dataset.variables]
    if missing:
        raise StoreError(
            f"{path}: the store has no {', '.join(map(repr, missing))}; "
            f"run `{PRODUCERS.get(missing[0], 'the step that makes it')}` first"
        )
    return dataset
