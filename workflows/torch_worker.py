"""Per-process set-up for PyTorch work inside Dask workers, and a quick exit for any process.

Only the standard library is imported here (torch where it is used): the
command line calls :func:`skip_collection_at_exit` before it imports anything.
"""

from __future__ import annotations

import atexit
import ctypes
import ctypes.util
import functools
import gc

M_TRIM_THRESHOLD = -1
M_MMAP_THRESHOLD = -3
#: Freed blocks below this stay in the heap for reuse (see ``_relax_malloc``).
MALLOC_THRESHOLD_BYTES = 1 << 28


@functools.lru_cache(maxsize=1)
def _relax_malloc() -> bool:
    """Let glibc reuse freed tensor memory instead of unmapping it at once.

    Dask's nanny starts workers with ``MALLOC_TRIM_THRESHOLD_=65536`` so that
    memory goes back to the OS quickly. That also fixes glibc's mmap threshold,
    so every large tensor is mmapped and unmapped again: training and
    inference ran 2-3x slower in workers than in a plain process here
    (benchmarks/train.py). Raising both thresholds to 256 MiB restores full speed;
    ``release_freed_memory`` gives the kept memory back after each task.
    """
    libc = _libc()
    if libc is None:
        return False
    return bool(libc.mallopt(M_MMAP_THRESHOLD, MALLOC_THRESHOLD_BYTES)) and bool(
        libc.mallopt(M_TRIM_THRESHOLD, MALLOC_THRESHOLD_BYTES)
    )


@functools.lru_cache(maxsize=1)
def _libc():
    """Glibc with ``mallopt`` and ``malloc_trim``, or None on other C libraries."""
    name = ctypes.util.find_library("c")
    if not name:
        return None
    try:
        libc = ctypes.CDLL(name)
        return libc if hasattr(libc, "mallopt") and hasattr(libc, "malloc_trim") else None
    except OSError:
        return None


def prepare_torch_process(threads: int) -> None:
    """Threads for this process's share of the cores, and fast tensor allocation.

    Parameters
    ----------
    threads : int
        Threads for this process.
    """
    import torch  # imported already by the task that calls this

    torch.set_num_threads(max(1, threads))
    _relax_malloc()
    skip_collection_at_exit()


@functools.cache
def skip_collection_at_exit() -> None:
    """Let this process exit without the garbage collector walking the heap.

    A process that imported torch and its compiler stack took 0.75 s to exit
    here, nearly all of it in the collections the interpreter makes as it
    tears its modules down; a LocalCluster waits for that from every worker
    it closes, and a command for its own process. Freezing the heap in an
    exit handler skips them (0.15 s). The other exit handlers still run, and
    nothing here relies on a collection to finish a write: every output is
    closed and committed before its task or command returns.
    """
    atexit.register(gc.freeze)


def release_freed_memory() -> None:
    """Hand memory freed by a finished task back to the OS.

    With the relaxed thresholds above, glibc keeps freed heap pages for reuse;
    a worker whose resident size never falls would stay paused for good once it
    touched Dask's pause threshold. One ``malloc_trim`` per task costs little.
    """
    libc = _libc()
    if libc is not None:
        libc.malloc_trim(0)
