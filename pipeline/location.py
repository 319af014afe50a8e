"""Where files and stores live: a local path or an fsspec URL (``s3://``, ``gs://``, ``memory://``).

Paths travel as plain strings, so tasks stay picklable and workers on other
machines reach the same object store. URLs are opened with fsspec, configured
the standard way: ``AWS_ACCESS_KEY_ID``, ``AWS_SECRET_ACCESS_KEY``,
``AWS_ENDPOINT_URL`` and friends for S3, or a workflow file's
``storage_options``. Local paths behave as before (atomic renames, ``pread``).

>>> is_url("s3://bucket/f3.zarr"), is_url("/data/f3.zarr")
(True, False)
>>> join("s3://bucket/f3.zarr", "amplitude", "zarr.json")
's3://bucket/f3.zarr/amplitude/zarr.json'
>>> with_name("s3://bucket/work/f3.zarr", ".f3.zarr.partial"), name("s3://bucket/work/f3.zarr")
('s3://bucket/work/.f3.zarr.partial', 'f3.zarr')
"""

from __future__ import annotations

import hashlib
import os
import shutil
from pathlib import Path

import fsspec
import numpy as np
from fsspec.core import url_to_fs
from fsspec.utils import merge_offset_ranges

#: Ranges of a remote file closer than this are fetched in one request (latency beats bytes).
MERGE_GAP_BYTES = 8 * 2**20
#: No merged request is larger than this, so a task's memory stays bounded.
MAX_BLOCK_BYTES = 64 * 2**20


def is_url(path: str | os.PathLike) -> bool:
    """Whether ``path`` is an fsspec URL rather than a local path.

    Parameters
    ----------
    path : str or os.PathLike
        A path or URL.

    Returns
    -------
    bool
    """
    return "://" in str(path) and not str(path).startswith("file://")


def resolve(path: str | os.PathLike) -> str:
    """An absolute local path, or the URL without a trailing slash, as a string.

    Parameters
    ----------
    path : str or os.PathLike
        A path or URL; relative local paths are made absolute (tasks run elsewhere).

    Returns
    -------
    str
    """
    text = str(path)
    if is_url(text):
        return text.rstrip("/")
    return str(Path(text.removeprefix("file://")).absolute())


def join(path: str, *parts: str) -> str:
    """``path/part/...`` for a local path or a URL.

    Parameters
    ----------
    path : str
        A path or URL.
    *parts : str
        Names below it.

    Returns
    -------
    str
    """
    if is_url(path):
        return "/".join([str(path).rstrip("/"), *parts])
    return str(Path(path, *parts))


def name(path: str) -> str:
    """The last part of a path or URL.

    Parameters
    ----------
    path : str
        A path or URL.

    Returns
    -------
    str
    """
    return str(path).rstrip("/").rsplit("/", 1)[-1]


def parent(path: str) -> str:
    """The folder (or prefix) holding ``path``.

    Parameters
    ----------
    path : str
        A path or URL.

    Returns
    -------
    str
    """
    if is_url(path):
        return str(path).rstrip("/").rsplit("/", 1)[0]
    return str(Path(path).parent)


def with_name(path: str, new_name: str) -> str:
    """``path`` with its last part replaced.

    Parameters
    ----------
    path : str
        A path or URL.
    new_name : str
        The new last part.

    Returns
    -------
    str
    """
    return join(parent(path), new_name)


def filesystem(path: str):
    """The fsspec filesystem of a URL, and the path inside it.

    Parameters
    ----------
    path : str
        A URL.

    Returns
    -------
    tuple
        ``(fsspec.AbstractFileSystem, str)``.
    """
    return url_to_fs(str(path))


def _fresh(path: str):
    """:func:`filesystem`, with what it listed before about ``path`` and its parents forgotten.

    fsspec file systems are shared within a process and cache listings; one
    made earlier (zarr listing a group, a removal by another process) would
    answer "is it there" from the past. Every existence decision here asks
    the store itself.
    """
    fs, inner = filesystem(path)
    fs.invalidate_cache(inner)  # the path and every parent of it
    return fs, inner


def protocols(path: str | os.PathLike) -> tuple[str, ...]:
    """The fsspec protocols of a URL's file system (``("s3", "s3a")``); ``()`` for a local path.

    Parameters
    ----------
    path : str or os.PathLike
        A path or URL.

    Returns
    -------
    tuple of str

    >>> protocols("/data/f3.zarr")
    ()
    """
    if not is_url(path):
        return ()
    protocol = filesystem(path)[0].protocol
    return (protocol,) if isinstance(protocol, str) else tuple(protocol)


def exists(path: str | os.PathLike) -> bool:
    """Whether a file, folder or prefix exists.

    Parameters
    ----------
    path : str or os.PathLike
        A path or URL.

    Returns
    -------
    bool
    """
    if not is_url(path):
        return Path(path).exists()
    fs, inner = _fresh(path)
    return fs.exists(inner)


def glob(pattern: str) -> list[str]:
    """Paths or URLs matching a pattern with ``*`` in its last part, sorted.

    Parameters
    ----------
    pattern : str
        A path or URL, e.g. ``s3://bucket/.f3.zarr.partial-*``.

    Returns
    -------
    list of str
    """
    if not is_url(pattern):
        return sorted(str(found) for found in Path(parent(pattern)).glob(name(pattern)))
    fs, inner = filesystem(pattern)
    fs.invalidate_cache(parent(inner))
    return [join(parent(pattern), name(found)) for found in sorted(fs.glob(inner))]


def is_file(path: str | os.PathLike) -> bool:
    """Whether ``path`` is a file (an object, on object storage).

    Parameters
    ----------
    path : str or os.PathLike
        A path or URL.

    Returns
    -------
    bool
    """
    if not is_url(path):
        return Path(path).is_file()
    fs, inner = _fresh(path)
    return fs.isfile(inner)


def remove(path: str | os.PathLike) -> None:
    """Remove a file or a folder (prefix) and everything in it, if it exists.

    Parameters
    ----------
    path : str or os.PathLike
        A path or URL.
    """
    if is_url(path):
        fs, inner = _fresh(path)
        if fs.isdir(inner) and fs.isfile(f"{inner}/zarr.json"):  # a store stops being one at once
            fs.rm(f"{inner}/zarr.json")
        if fs.exists(inner):
            fs.rm(inner, recursive=True)
        return
    local = Path(path)
    if local.is_dir():
        shutil.rmtree(local, ignore_errors=True)
    elif local.exists():
        local.unlink()


def move(source: str | os.PathLike, target: str | os.PathLike) -> None:
    """Move a file or folder; atomic on a local file system, a copy and delete on object storage.

    Parameters
    ----------
    source, target : str or os.PathLike
        Paths or URLs on the same file system; ``target`` must not exist.
    """
    if not is_url(source):
        os.replace(source, target)
        return
    fs, inner = _fresh(source)
    _, inner_target = filesystem(target)
    keys = fs.find(inner) if fs.isdir(inner) else [inner]
    root = f"{inner}/zarr.json"
    # object by object (server-side copies; a recursive mv also tries to copy the prefix itself),
    # a store's root metadata last: until it lands, no reader takes the copy for a store
    first = [key for key in keys if key != root]
    if first:
        fs.copy(first, [inner_target + key[len(inner) :] for key in first])
    if root in keys:
        fs.copy(root, f"{inner_target}/zarr.json")
    remove(source)


def read_range(path: str, offset: int, size: int) -> bytes:
    """``size`` bytes at ``offset`` of a remote file: one ranged request, no download.

    Parameters
    ----------
    path : str
        A URL.
    offset, size : int
        Where and how much.

    Returns
    -------
    bytes
        Shorter than ``size`` only at the end of the file.
    """
    fs, inner = filesystem(path)
    return fs.cat_file(inner, start=offset, end=offset + size)


def read_ranges(path: str, ranges: list[tuple[int, int]]) -> list[bytes]:
    """Several ``(offset, size)`` ranges of a remote file, requested concurrently.

    Parameters
    ----------
    path : str
        A URL.
    ranges : list of tuple of int
        Offsets and sizes.

    Returns
    -------
    list of bytes
        One per range, in order.
    """
    if not ranges:
        return []
    fs, inner = filesystem(path)
    starts = [offset for offset, _ in ranges]
    ends = [offset + size for offset, size in ranges]
    # neighbours closer than MERGE_GAP_BYTES go in one request: a request costs more than the gap
    _, block_starts, block_ends = merge_offset_ranges(
        [inner] * len(ranges), starts, ends, max_gap=MERGE_GAP_BYTES, max_block=MAX_BLOCK_BYTES, sort=True
    )
    blocks = fs.cat_ranges([inner] * len(block_starts), block_starts, block_ends)
    which = np.searchsorted(np.asarray(block_starts), np.asarray(starts), side="right") - 1
    return [
        blocks[b][start - block_starts[b] : end - block_starts[b]]
        for b, start, end in zip(which, starts, ends)
    ]


def size_and_version(path: str) -> tuple[int, int]:
    """A remote file's size and a number that changes when the file is rewritten.

    Parameters
    ----------
    path : str
        A URL.

    Returns
    -------
    tuple of int
        Size in bytes, and a version (from the ETag or modification time).
    """
    fs, inner = filesystem(path)
    info = fs.info(inner)
    tag = str(info.get("ETag") or info.get("etag") or info.get("LastModified") or info.get("mtime") or "")
    return int(info["size"]), int(hashlib.sha256(tag.encode()).hexdigest()[:15], 16)


def open_file(path: str | os.PathLike, mode: str = "rb"):
    """Open a local or remote file (a context manager, as ``open`` gives).

    Parameters
    ----------
    path : str or os.PathLike
        A path or URL.
    mode : str
        ``rb``, ``wb``, ``r`` or ``w``.

    Returns
    -------
    file object
    """
    if not is_url(path):
        return open(path, mode)  # noqa: SIM115 (the caller closes it)
    return fsspec.open(str(path), mode).open()


def configure(storage_options: dict[str, dict]) -> None:
    """Default options per protocol for every filesystem fsspec opens in this process.

    Parameters
    ----------
    storage_options : dict
        Protocol -> options, e.g. ``{"s3": {"endpoint_url": "http://127.0.0.1:9000"}}``
        (a workflow file's ``storage_options``).
    """
    for protocol, options in storage_options.items():
        fsspec.config.conf.setdefault(protocol, {}).update(options)
        fsspec.get_filesystem_class(protocol).clear_instance_cache()  # the next open uses them
