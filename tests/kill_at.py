"""Run ``seisfacies ARGS`` and kill it (SIGKILL, no cleanup) at its Nth change to the file system.

    python tests/kill_at.py N FOLDER seisfacies-args...

Counts, through Python's audit hooks, every change under FOLDER the command
makes in any of its threads (a file opened for writing, a rename, a removal,
a folder removed) and every foreign call once the first change was
counted (the one-step exchange of two folders). At the Nth it kills itself;
N = 0 kills nothing and prints the count on exit, so a test can first count
the steps of a command and then stop it at each in turn.
"""

from __future__ import annotations

import os
import signal
import sys

WRITING_FLAGS = os.O_WRONLY | os.O_RDWR | os.O_CREAT | os.O_APPEND | os.O_TRUNC
#: Not ``os.mkdir``: threads writing chunks race to make the same folders, so the attempts (failed ones
#: included) varied by 30 between two runs, and a kill point past the commit in one run fell before it in
#: the next; a kill at the change after a mkdir stops at the same state.
CHANGES = ("os.rename", "os.remove", "os.rmdir", "shutil.rmtree", "os.truncate")


def main() -> None:
    kill_at, folder, args = int(sys.argv[1]), os.path.realpath(sys.argv[2]), sys.argv[3:]
    count = 0

    def under(path) -> bool:
        return isinstance(path, (str, bytes, os.PathLike)) and os.path.realpath(os.fsdecode(path)).startswith(
            folder
        )

    def changes(event: str, args: tuple) -> bool:
        if event == "open":
            path, mode, flags = args
            writing = any(c in mode for c in "wax+") if isinstance(mode, str) else bool(flags & WRITING_FLAGS)
            return writing and under(path)
        if event in CHANGES:
            return any(under(arg) for arg in args[:2])
        return event == "ctypes.call_function" and count > 0

    def hook(event: str, args: tuple) -> None:
        nonlocal count
        if changes(event, args):
            count += 1
            if count == kill_at:
                os.kill(os.getpid(), signal.SIGKILL)

    sys.addaudithook(hook)
    sys.argv = ["seisfacies", *args]
    from seisfacies.workflows.cli import main as seisfacies

    try:
        seisfacies()
    finally:
        print(f"changes: {count}", file=sys.stderr)


if __name__ == "__main__":
    main()
