"""How an output becomes visible: the one commit protocol every writer calls.

Four mechanisms, each in one place here:

* **One writer per output.** A writer holds ``.NAME.lock`` beside its output
  (host, process id and start time, since when, which command). A second
  writer is refused in one line naming the owner; a lock whose process is gone
  from this host is taken over. On object storage the lock is created with a
  conditional write (``If-None-Match: *``), so two writers cannot both win.
* **Whole outputs** (a store, a patch store, a checkpoint, an exported file, a
  record) are written by :func:`staged` where no reader takes them for
  finished, and appear at their name whole: locally under a hidden sibling
  swapped into place in one rename (the old output stays until then); on
  object storage a new store is written in place with its root metadata set
  aside until the end (written once, no copy), a replaced one under a hidden
  prefix moved in with its root metadata last (the old store comes back if the
  move fails); a file is one upload.
* **Variables added to a store** are written in the store's pending group and
  switched in by :func:`commit_variables`: the old variable stays readable
  until the new one is whole, and plain ``xarray.open_zarr`` never lists a
  half-written one.
* **Write ids.** Every commit stamps a fresh ``seisfacies_write_id`` on what it
  finished, so ``seisfacies run`` tells one version of an output from another
  without trusting sizes, times or metadata files that two surveys can share.

>>> holder = {"pid": 4242, "host": "node7", "since": "2026-12-04T18:00:00Z", "command": "seisfacies predict"}
>>> describe_holder(holder)
'being written by pid 4242 on node7 since 2026-12-04T18:00:00Z (seisfacies predict)'
>>> lock_path("s3://bucket/f3.zarr")
's3://bucket/.f3.zarr.lock'
"""

from __future__ import annotations

import contextlib
import ctypes
import functools
import inspect
import json
import os
import re
import shutil
import socket
import sys
import tempfile
import time
import uuid
import warnings
from collections.abc import Iterator
from pathlib import Path

import psutil
import zarr
from zarr.errors import UnstableSpecificationWarning
from zarr.storage import FsspecStore, WrapperStore

from . import location
from .exceptions import StoreError

#: The attribute a commit stamps on the store root (a whole store) or on a variable.
WRITE_ID_ATTR = "seisfacies_write_id"
#: Root attribute listing variables caught between the old version and the new by a stopped switch.
INCOMPLETE_ATTR = "seisfacies_incomplete"
#: New variables are written inside this group and switched to the root when complete:
#: plain ``xarray.open_zarr`` reads only the root's arrays, so it never sees a half-written one.
PENDING_GROUP = "_pending"
#: A store's root metadata; a store is a store once it exists.
ROOT_METADATA = "zarr.json"
#: Where a store written in place on object storage keeps its root metadata until its commit.
ROOT_ASIDE = "zarr.json.unfinished"

#: Locks this process holds, by lock path, with how many nested writers hold each.
_HELD: dict[str, list] = {}
#: Temporary outputs of this process not yet committed, for cleanup after Ctrl-C.
_UNFINISHED: set[str] = set()
#: Stores this process writes in place on object storage (their root metadata set aside).
_IN_PLACE: set[str] = set()


# ---------------------------------------------------------------- write ids


def new_write_id() -> str:
    """A write id no other commit has: 32 hex digits.

    >>> len(new_write_id()), new_write_id() != new_write_id()
    (32, True)
    """
    return uuid.uuid4().hex


# ---------------------------------------------------------------- one writer per output


def lock_path(path: str | os.PathLike) -> str:
    """The lock file beside an output: ``.NAME.lock`` in the same folder or prefix.

    Parameters
    ----------
    path : str or os.PathLike
        The output.

    Returns
    -------
    str

    >>> lock_path("/data/f3.zarr")
    '/data/.f3.zarr.lock'
    """
    path = location.resolve(path)
    return location.with_name(path, f".{location.name(path)}.lock")


def describe_holder(holder: dict) -> str:
    """Who writes an output, for the refusal and for readers.

    Parameters
    ----------
    holder : dict
        What :func:`lock_holder` returned.

    Returns
    -------
    str
    """
    return (
        f"being written by pid {holder.get('pid')} on {holder.get('host')} "
        f"since {holder.get('since')} ({holder.get('command') or 'seisfacies'})"
    )


def lock_holder(path: str | os.PathLike) -> dict | None:
    """Who else holds the lock of an output now: None where nobody does, its owner is gone, or it is us.

    A writer reading its own output (``labels`` opening the store it adds to)
    is not kept waiting by its own lock.

    Parameters
    ----------
    path : str or os.PathLike
        The output (not its lock file).

    Returns
    -------
    dict or None
        The owner's ``host``, ``pid``, ``started`` (process start time),
        ``since`` and ``command``.
    """
    lock = lock_path(path)
    holder = _read_lock(lock)
    if holder is None or _owner_gone(holder):
        return None
    if holder.get("pid") == os.getpid() and holder.get("host") == socket.gethostname():
        return None  # ours: held by this very writer, or left by one of ours that could not remove it
    return holder


def _read_lock(lock: str) -> dict | None:
    try:
        with location.open_file(lock, "rb") as handle:
            return json.loads(handle.read() or b"{}")
    except FileNotFoundError:
        return None
    except (ValueError, OSError):  # half-written by a writer killed while taking it: nobody's
        return {}


def _owner_gone(holder: dict) -> bool:
    """True where the lock's process no longer runs on this host (another host cannot be asked)."""
    if holder.get("host") != socket.gethostname():
        return not holder  # an empty or unreadable lock is nobody's
    try:
        return abs(psutil.Process(int(holder["pid"])).create_time() - float(holder["started"])) > 1
    except (psutil.NoSuchProcess, KeyError, TypeError, ValueError):
        return True


def _this_process(command: str) -> dict:
    return {
        "host": socket.gethostname(),
        "pid": os.getpid(),
        "started": psutil.Process().create_time(),
        "since": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "command": command,
        "token": new_write_id(),
    }


def _create_lock(lock: str, owner: dict) -> bool:
    """Create the lock file if no one else has; False where it exists."""
    text = json.dumps(owner).encode()
    if not location.is_url(lock):
        try:
            os.makedirs(os.path.dirname(lock), exist_ok=True)
            descriptor = os.open(lock, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
        except FileExistsError:
            return False
        with os.fdopen(descriptor, "wb") as handle:
            handle.write(text)
        return True
    fs, inner = location.filesystem(lock)
    if "s3" in location.protocols(lock):  # an exclusive create: of two writers at once, one wins
        try:
            fs.pipe_file(inner, text, IfNoneMatch="*")
        except FileExistsError:
            return False
        return True
    # other object stores: write, then read back who won (two writers within one request can both win)
    if location.exists(lock):
        return False
    fs.pipe_file(inner, text)
    return (_read_lock(lock) or {}).get("token") == owner["token"]


def _refusal(path: str, lock: str, holder: dict) -> StoreError:
    elsewhere = holder.get("host") != socket.gethostname()
    hint = f"; if that process is gone, remove {lock}" if elsewhere else ""
    return StoreError(f"{path}: {describe_holder(holder)}; wait for it to finish or stop it{hint}")


def check_not_being_written(path: str | os.PathLike) -> None:
    """Refuse an output another running process writes, in the words its lock would refuse it.

    For the checks a command makes before it takes the lock: a refusal for
    some other reason (the file exists; pass ``--overwrite``) would send the
    user the wrong way.

    Parameters
    ----------
    path : str or os.PathLike
        The output.

    Raises
    ------
    StoreError
        Naming the writer: its pid, host, start and command.
    """
    path = location.resolve(path)
    holder = lock_holder(path)
    if holder is not None:
        raise _refusal(path, lock_path(path), holder)


@contextlib.contextmanager
def writing(path: str | os.PathLike, command: str):
    """Hold the lock of ``path`` while the block writes it; refuse a second writer in one line.

    Nested use by the same process (``run`` calling a step, ``train`` cutting
    its patches) is allowed. A lock left by a process that no longer runs on
    this host is taken over.

    Parameters
    ----------
    path : str or os.PathLike
        The output.
    command : str
        What writes it (``"seisfacies predict"``), for the messages others get.
    """
    path = location.resolve(path)
    lock = lock_path(path)
    if lock in _HELD:
        _HELD[lock][1] += 1
    else:
        try:
            _take(path, lock, command)
        except PermissionError:  # an unwritable folder: the writer's own checks say so in one line
            _HELD[lock] = [None, 1]
    try:
        yield
    finally:
        _HELD[lock][1] -= 1
        if _HELD[lock][1] == 0:
            owner = _HELD.pop(lock)[0]
            if owner is not None and (_read_lock(lock) or {}).get("token") == owner["token"]:
                location.remove(lock)


def _take(path: str, lock: str, command: str) -> None:
    owner = _this_process(command)
    taken_over = False
    for _ in range(3):  # a stale lock removed by two takers at once: the loser tries again
        if _create_lock(lock, owner):
            _HELD[lock] = [owner, 1]
            if taken_over:  # a killed writer's leftovers are ours to clear now (a training's too)
                _recover(path)
            return
        holder = lock_holder(path)  # not ours: this process holds none it did not count in _HELD
        if holder is not None:
            raise _refusal(path, lock, holder)
        with contextlib.suppress(FileNotFoundError):
            location.remove(lock)
        taken_over = True
    raise StoreError(f"{path}: could not take the lock {lock}; try again")


def writes(argument: str, command: str | None = None):
    """Decorate a workflow function so that it holds the lock of the output named by ``argument``.

    Parameters
    ----------
    argument : str
        The function's parameter that holds the output path.
    command : str, optional
        What the messages call the writer; by default the command line's
        program and subcommand (``seisfacies predict``).
    """

    def decorate(function):
        signature = inspect.signature(function)

        @functools.wraps(function)
        def locked(*args, **kwargs):
            output = signature.bind(*args, **kwargs).arguments[argument]
            with writing(output, command or _command_name()):
                return function(*args, **kwargs)

        return locked

    return decorate


def _command_name() -> str:
    """What this process runs: ``seisfacies predict``, or the program's name."""
    program = os.path.basename(sys.argv[0]) if sys.argv and sys.argv[0] else "python"
    words = [word for word in sys.argv[1:2] if not word.startswith("-")]
    return f"seisfacies {words[0]}" if program == "seisfacies" and words else program


# ---------------------------------------------------------------- whole outputs


def output_exists(path: str | os.PathLike) -> bool:
    """Whether a finished output stands at ``path``: a file, or a store with its root metadata.

    What a stopped in-place write left on object storage (objects under the
    prefix, no root metadata) is not an output.

    Parameters
    ----------
    path : str or os.PathLike
        A file or store.

    Returns
    -------
    bool
    """
    if not location.is_url(path):
        return Path(path).exists()
    return location.is_file(path) or location.is_file(location.join(str(path), ROOT_METADATA))


def temporary_path(path: str | os.PathLike) -> str:
    """A hidden sibling path to write into before the output is committed.

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


@contextlib.contextmanager
def staged(path: str | os.PathLike, kind: str = "store") -> Iterator[str]:
    """Where to write a whole output so that it appears at ``path`` only once the block ends.

    The caller holds the output's lock (:func:`writing`). If the block raises
    (or the process dies), nothing at ``path`` changes: the old output, if
    any, stays whole.

    Parameters
    ----------
    path : str or os.PathLike
        The output.
    kind : {"store", "file"}
        A Zarr store (a folder or prefix) or one file.

    Yields
    ------
    str
        Where to write: a hidden sibling; a local file for a file on object
        storage (uploaded whole); the store itself for a new store on object
        storage (its root metadata set aside until the end).
    """
    path = location.resolve(path)
    _recover(path)
    if location.is_url(path) and kind == "file":
        folder = tempfile.mkdtemp(prefix="seisfacies-upload-")
        partial, publish = os.path.join(folder, location.name(path)), _upload
        _UNFINISHED.add(folder)
    elif location.is_url(path) and not output_exists(path):
        location.remove(path)  # what a stopped in-place write left: we hold the lock
        partial, publish = path, _publish_in_place
        _IN_PLACE.add(path)
    else:
        partial, publish = temporary_path(path), replace_path
    try:
        yield partial
        publish(partial, path)
    except BaseException:
        discard(partial)
        raise
    finally:
        _IN_PLACE.discard(path)
        if location.is_url(path) and kind == "file":
            discard(os.path.dirname(partial))


def _recover(path: str) -> None:
    """Undo what a killed writer of this output left (its lock is ours now).

    Its temporary outputs go, and those of the files it writes beside the
    output (``NAME.*``). An old version it had set aside whole (an
    object-storage replace stopped between its two moves) comes back where
    no output stands at the name, so the old output is never lost.
    """
    name = location.name(path)
    for leftover in location.glob(location.with_name(path, f".{name}.partial-*")):
        location.remove(leftover)
    # files written beside it under its lock (a training's MODEL.pt.history.json); a folder there
    # (MODEL.pt.patches.zarr) is another output with a lock of its own, recovered by its next writer
    for leftover in location.glob(location.with_name(path, f".{name}.*.partial-*")):
        if location.is_file(leftover):
            location.remove(leftover)
    if location.is_url(path) and output_exists(path):  # the root set aside of a committed in-place store
        location.remove(location.join(path, ROOT_ASIDE))
    for backup in location.glob(location.with_name(path, f".{name}.old-*")):
        whole = location.is_file(backup) or location.is_file(location.join(backup, ROOT_METADATA))
        if whole and not output_exists(path):
            location.remove(path)
            location.move(backup, path)
        else:
            location.remove(backup)


def _upload(local: str, url: str) -> None:
    """One upload: an object appears whole once its (multipart) upload completes."""
    fs, inner = location.filesystem(url)
    fs.put_file(local, inner)


def _publish_in_place(store: str, _: str) -> None:
    """The root metadata set aside lands: from now on the store is a store (the commit point)."""
    fs, inner = location.filesystem(store)
    fs.copy(f"{inner}/{ROOT_ASIDE}", f"{inner}/{ROOT_METADATA}")
    with contextlib.suppress(OSError):  # committed already: a leftover is cleared by the next writer
        fs.rm(f"{inner}/{ROOT_ASIDE}")


def write_file(path: str | os.PathLike, data: bytes) -> None:
    """Write a small file (a checkpoint, a record, a picture) so readers see the old bytes or the new.

    Parameters
    ----------
    path : str or os.PathLike
        The file.
    data : bytes
        Its whole content.
    """
    path = location.resolve(path)
    if location.is_url(path):  # a single request: the object appears whole or not at all
        fs, inner = location.filesystem(path)
        fs.pipe_file(inner, data)
        return
    partial = Path(path).with_name(f".{Path(path).name}.partial-{uuid.uuid4().hex[:8]}")
    try:
        partial.write_bytes(data)
        os.replace(partial, path)
    finally:
        partial.unlink(missing_ok=True)


def replace_path(source: str | os.PathLike, target: str | os.PathLike) -> None:
    """Move a finished output into place, removing what was there; the old one comes back on failure.

    A file is replaced in one rename. A local folder is swapped with the old
    one in one rename where the system can (Linux), so a reader sees the old
    store or the new one, never neither. On object storage the old store is
    set aside first and the new one's root metadata lands last; a failure
    while copying puts the old store back.

    Parameters
    ----------
    source : str or os.PathLike
        The finished output under its temporary name.
    target : str or os.PathLike
        Where it belongs.
    """
    source, target = location.resolve(source), location.resolve(target)
    _UNFINISHED.discard(source)
    if not location.exists(target):
        location.move(source, target)
        return
    if not location.is_url(target):
        if Path(target).is_file():
            os.replace(source, target)
            return
        if _exchange(source, target):  # the temporary name now holds the old store
            discard(source)
            return
    backup = location.with_name(target, f".{location.name(target)}.old-{uuid.uuid4().hex[:8]}")
    try:
        location.move(target, backup)
        location.move(source, target)
    except BaseException:
        _restore(backup, target)
        raise
    discard(backup)


def _restore(backup: str, target: str) -> None:
    """After a failed replace: the old output back in place if it had been set aside whole."""
    if location.is_file(backup) or location.is_file(location.join(backup, ROOT_METADATA)):  # root lands last
        discard(target)
        location.move(backup, target)
    else:  # the old output never left its place
        discard(backup)


def _exchange(first: str, second: str) -> bool:
    """Swap two local paths in one step (Linux ``renameat2(RENAME_EXCHANGE)``); False where unsupported."""
    if sys.platform != "linux":
        return False
    libc = ctypes.CDLL(None, use_errno=True)
    if not hasattr(libc, "renameat2"):
        return False
    at_cwd, rename_exchange = -100, 2
    done = libc.renameat2(at_cwd, os.fsencode(first), at_cwd, os.fsencode(second), rename_exchange)
    return done == 0


def discard(path: str | os.PathLike) -> None:
    """Remove an unfinished output (a file, folder or prefix), if it exists.

    It stays listed for :func:`remove_unfinished`: after Ctrl-C a task still
    running on a worker may write into it again.

    Parameters
    ----------
    path : str or os.PathLike
        The temporary output.
    """
    location.remove(path)


def remove_unfinished() -> list[str]:
    """Remove every temporary output this process made and never committed.

    Called once the workers have stopped (after Ctrl-C): a task still running
    when the command's own cleanup ran may have written into it again.

    Returns
    -------
    list of str
        What was removed.
    """
    removed = [path for path in sorted(_UNFINISHED) if location.exists(path)]
    for path in removed:
        location.remove(path)
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


# ---------------------------------------------------------------- the root of a store


class _RootAside(WrapperStore):
    """A store on object storage whose root metadata lives under :data:`ROOT_ASIDE` until its commit.

    Readers (ours and plain ``xarray.open_zarr``) find no store there, while the
    arrays and their chunks are written at their final keys, once.
    """

    @staticmethod
    def _key(key: str) -> str:
        return ROOT_ASIDE if key == ROOT_METADATA else key

    async def get(self, key, prototype, byte_range=None):
        return await self._store.get(self._key(key), prototype, byte_range)

    async def exists(self, key):
        return await self._store.exists(self._key(key))

    async def set(self, key, value):
        await self._store.set(self._key(key), value)

    async def set_if_not_exists(self, key, value):  # how zarr makes an array's parent groups
        await self._store.set_if_not_exists(self._key(key), value)

    async def get_partial_values(self, prototype, key_ranges):
        return await self._store.get_partial_values(prototype, [(self._key(k), r) for k, r in key_ranges])

    async def delete(self, key):
        await self._store.delete(self._key(key))

    async def list_dir(self, prefix):
        async for key in self._store.list_dir(prefix):
            yield ROOT_METADATA if not prefix and key == ROOT_ASIDE else key


def zarr_store(path: str | os.PathLike):
    """What zarr and xarray should open for a store: its path, or, while it is written in place, its view.

    Parameters
    ----------
    path : str or os.PathLike
        A store.

    Returns
    -------
    str or zarr.abc.store.Store
    """
    path = str(path)
    if path not in _IN_PLACE:
        return path
    store = FsspecStore.from_url(path)
    store.fs.invalidate_cache()  # zarr's own file system instance may have listed what was removed since
    return _RootAside(store)


def root_group(path: str | os.PathLike, mode: str = "r+", consolidated: bool | None = None) -> zarr.Group:
    """The root group of a store (through :func:`zarr_store`).

    Parameters
    ----------
    path : str or os.PathLike
        A store.
    mode : str
        ``r`` or ``r+``.
    consolidated : bool or None
        Zarr's ``use_consolidated``: None reads the consolidated copy where the
        root holds one; False leaves it out (and out of a rewrite of the root).

    Returns
    -------
    zarr.Group
    """
    return zarr.open_group(store=zarr_store(path), mode=mode, zarr_format=3, use_consolidated=consolidated)


def update_root_attrs(path: str | os.PathLike, attrs: dict) -> None:
    """Set root attributes; the root metadata is rewritten without its consolidated copy.

    A commit changes root variables only after its incomplete mark, so
    while the root has no copy, and :func:`consolidate` writes a fresh copy
    last: until then readers (plain ``xr.open_zarr`` too) read each
    variable's own metadata, never a copy older than the variables, even
    after a writer killed in between.

    Parameters
    ----------
    path : str or os.PathLike
        A store.
    attrs : dict
        The attributes to set.
    """
    with consolidating():
        root_group(path, consolidated=False).update_attributes(attrs)  # one write, not one per key


@contextlib.contextmanager
def consolidating():
    """Zarr warns that v3 consolidated metadata is an extension; we rely on it knowingly.

    So is the structured dtype of MDIO's ``headers`` (and its string ``segy_file_header``),
    which MDIO itself writes.
    """
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="Consolidated metadata is currently not part")
        warnings.filterwarnings("ignore", category=UnstableSpecificationWarning)
        yield


def consolidate(path: str | os.PathLike) -> None:
    """Rewrite the consolidated metadata after variables or attributes change.

    Parameters
    ----------
    path : str or os.PathLike
        A store.
    """
    with consolidating():
        zarr.consolidate_metadata(zarr_store(path), zarr_format=3)


def commit_store(path: str | os.PathLike, attrs: dict | None = None) -> None:
    """Finish a whole store written under :func:`staged`: its attributes and a write id for all of it.

    Parameters
    ----------
    path : str or os.PathLike
        Where :func:`staged` writes the store.
    attrs : dict, optional
        Root attributes to set.
    """
    update_root_attrs(path, {**(attrs or {}), WRITE_ID_ATTR: new_write_id(), INCOMPLETE_ATTR: []})
    consolidate(path)


# ---------------------------------------------------------------- variables added to a store


def pending_name(variable: str) -> str:
    """Where a variable is written until :func:`commit_variables` switches it in.

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


def begin_variables(path: str | os.PathLike, variables: list[str]) -> None:
    """Clear what an interrupted writer left, before a new template goes to the pending group.

    Its variables in the pending group go, and so do zarr's own temporary
    metadata files (``zarr.HEX.partial``) that a killed writer left beside
    the root's and the pending group's metadata.

    Parameters
    ----------
    path : str or os.PathLike
        The store (its lock held).
    variables : list of str
        The variables about to be written.
    """
    pending = location.join(str(path), PENDING_GROUP)
    if not location.exists(location.join(pending, ROOT_METADATA)):  # a group killed before its metadata
        location.remove(pending)
    for name in variables:
        location.remove(location.join(pending, name))
    for folder in (str(path), pending):
        for leftover in location.glob(location.join(folder, "zarr.*.partial")):
            location.remove(leftover)


def abandon_variables(path: str | os.PathLike, variables: list[str]) -> None:
    """Undo a failed variable template; the root and its old variables stay as they were.

    Parameters
    ----------
    path : str or os.PathLike
        The store.
    variables : list of str
        The variables whose template failed.
    """
    with contextlib.suppress(OSError):
        begin_variables(path, variables)
        pending = location.join(str(path), PENDING_GROUP)
        if not location.exists(location.join(pending, ROOT_METADATA)):  # a group that never got metadata
            location.remove(pending)
        consolidate(path)


def commit_variables(
    path: str | os.PathLike, variables: list[str], attrs: dict | None = None, retire: tuple[str, ...] = ()
) -> None:
    """Switch finished variables from the pending group to the root, each with a new write id.

    The old versions stay readable until this switch. During it the names
    are listed under :data:`INCOMPLETE_ATTR`, so a switch stopped half-way is
    refused by readers instead of read as a mix; a local switch is one rename
    per variable.

    Parameters
    ----------
    path : str or os.PathLike
        The store (its lock held).
    variables : list of str
        The finished variables, in the pending group.
    attrs : dict, optional
        Root attributes to set with the switch.
    retire : tuple of str
        Root variables the new ones make stale (an old ``probability`` a new
        prediction does not write): removed in the switch.
    """
    path = str(path)
    pending = location.join(path, PENDING_GROUP)
    waiting = set(root_group(pending, mode="r").array_keys()) if location.exists(pending) else set()
    moving = [name for name in variables if name in waiting]
    moving += [name for name in _dims_of(pending, moving) if name in waiting and name not in moving]
    stale = [name for name in retire if name not in moving and location.exists(location.join(path, name))]
    mark_incomplete(path, [*moving, *stale])
    for name in moving:
        _switch(location.join(pending, name), location.join(path, name))
    for name in stale:
        location.remove(location.join(path, name))
    write_id = new_write_id()
    for name in variables:  # each commit's own id: `seisfacies run` tells versions apart by it
        set_variable_attrs(path, name, {WRITE_ID_ATTR: write_id})
    done = {*moving, *stale, *variables}
    still = [name for name in incomplete_variables(path) if name not in done]
    update_root_attrs(path, {**(attrs or {}), INCOMPLETE_ATTR: still})
    if waiting and waiting <= set(moving):  # nothing else waits there (re-listing could read a stale cache)
        location.remove(pending)
    consolidate(path)


def _dims_of(group: str, variables: list[str]) -> set[str]:
    """The dimensions of some arrays of a group: their coordinates (``class``) travel with them."""
    root = root_group(group, mode="r")
    return {dim for name in variables for dim in (root[name].metadata.dimension_names or ())}


def _switch(new: str, old: str) -> None:
    """Put ``new`` where ``old`` is: one exchange of names locally, then the old one goes."""
    if location.is_url(old) or not os.path.exists(old):
        location.remove(old)
        location.move(new, old)
    elif _exchange(new, old):
        shutil.rmtree(new)
    else:
        shutil.rmtree(old)
        os.replace(new, old)


def incomplete_variables(path: str | os.PathLike) -> list[str]:
    """Variables of the store at ``path`` that a stopped switch left between versions.

    Parameters
    ----------
    path : str or os.PathLike
        A store.

    Returns
    -------
    list of str
        Names listed in the root attribute ``seisfacies_incomplete``.
    """
    return list(root_group(path, mode="r").attrs.get(INCOMPLETE_ATTR, []))


def mark_incomplete(path: str | os.PathLike, variables: list[str]) -> list[str]:
    """List ``variables`` as incomplete in the root attributes; returns every name listed.

    Parameters
    ----------
    path : str or os.PathLike
        A store.
    variables : list of str
        Variable names.

    Returns
    -------
    list of str
    """
    listed = sorted(set(incomplete_variables(path)) | set(variables))
    update_root_attrs(path, {INCOMPLETE_ATTR: listed})  # no consolidated copy until the switch is done
    return listed


def set_variable_attrs(path: str | os.PathLike, variable: str, attrs: dict) -> None:
    """Update one variable's attributes (through the array itself: the root's view may be stale).

    One write of its metadata, however many attributes (zarr's ``attrs.update``
    writes it once per key: four requests for a prediction's provenance).

    Parameters
    ----------
    path : str or os.PathLike
        A store.
    variable : str
        The variable's path in the store (``facies`` or ``_pending/facies``).
    attrs : dict
        Attributes to set.
    """
    with consolidating():
        array = zarr.open_array(store=zarr_store(path), path=variable, mode="r+", zarr_format=3)
        array.update_attributes(attrs)


def finished_variables(dataset, names: tuple[str, ...]) -> list[str]:
    """Which of ``names`` a store holds whole (not caught in a stopped switch).

    Parameters
    ----------
    dataset : xarray.Dataset
        The store, opened.
    names : tuple of str
        Variable names.

    Returns
    -------
    list of str
    """
    listed = set(dataset.attrs.get(INCOMPLETE_ATTR, []))
    return [name for name in names if name in dataset.variables and name not in listed]


# ---------------------------------------------------------------- before any work: may the output be written?


def check_new_variables(path: str | os.PathLike, dataset, names: tuple[str, ...], overwrite: bool) -> None:
    """Refuse to replace variables a store already holds whole, unless ``overwrite``.

    Parameters
    ----------
    path : str or os.PathLike
        The store, for the message.
    dataset : xarray.Dataset
        The store, opened.
    names : tuple of str
        The variables about to be written.
    overwrite : bool
        Whether replacing them was asked for.
    """
    existing = finished_variables(dataset, tuple(names))
    if existing and not overwrite:
        raise StoreError(f"{path}: the store already has {existing[0]!r}; pass --overwrite to replace it")


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
