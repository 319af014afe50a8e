"""How outputs are committed: one writer per output, and a write id per commit.

Every command that writes an output (a store, a variable added to a store, a
patch store, a checkpoint, an exported file, a workflow's step record) holds
the output's lock while it writes: a small JSON file ``.NAME.lock`` beside
the output naming its owner (host, process id and the process's start time,
when it began, which command). A second writer is refused in one line naming
that owner; a lock whose process is gone from this host is taken over. So two
commands never write one output at once, and a reader that finds an
incomplete variable can say whether a writer is still at work on it.

Every commit stamps a fresh write id (``seisfacies_write_id``) on what it
finished, so ``seisfacies run`` can tell one version of an output from
another without trusting sizes, times or metadata files that two different
surveys can share.

>>> holder = {"pid": 4242, "host": "node7", "since": "2026-12-04T18:00:00Z", "command": "seisfacies predict"}
>>> describe_holder(holder)
'being written by pid 4242 on node7 since 2026-12-04T18:00:00Z (seisfacies predict)'
>>> lock_path("s3://bucket/f3.zarr")
's3://bucket/.f3.zarr.lock'
"""

from __future__ import annotations

import contextlib
import functools
import inspect
import json
import os
import socket
import sys
import time
import uuid

import psutil

from seisfacies.pipeline import location
from seisfacies.pipeline.exceptions import StoreError

#: The attribute a commit stamps on the store root (a whole store) or on a variable.
WRITE_ID_ATTR = "seisfacies_write_id"

#: Locks this process holds, by lock path, with how many nested writers hold each.
_HELD: dict[str, list] = {}


def new_write_id() -> str:
    """A write id no other commit has: 32 hex digits.

    >>> len(new_write_id()), new_write_id() != new_write_id()
    (32, True)
    """
    return uuid.uuid4().hex


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
    """Who holds the lock of an output now: None where nobody does, or its owner is gone.

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
    holder = _read_lock(lock_path(path))
    return None if holder is None or _owner_gone(holder) else holder


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
    # object storage has no exclusive create everywhere: write, then read back who won
    if location.exists(lock):
        return False
    fs, inner = location.filesystem(lock)
    fs.pipe_file(inner, text)
    return (_read_lock(lock) or {}).get("token") == owner["token"]


def _refusal(path: str, lock: str, holder: dict) -> StoreError:
    elsewhere = holder.get("host") != socket.gethostname()
    hint = f"; if that process is gone, remove {lock}" if elsewhere else ""
    return StoreError(f"{path}: {describe_holder(holder)}; wait for it to finish or stop it{hint}")


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
    for _ in range(3):  # a stale lock removed by two takers at once: the loser tries again
        if _create_lock(lock, owner):
            _HELD[lock] = [owner, 1]
            return
        holder = _read_lock(lock)
        if holder is not None and not _owner_gone(holder):
            raise _refusal(path, lock, holder)
        with contextlib.suppress(FileNotFoundError):
            location.remove(lock)
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
