"""Per-process set-up for PyTorch work inside Dask workers."""

from __future__ import annotations

import ctypes
import ctypes.util
import functools

import torch

M_TRIM_THRESHOLD = -1
M_MMAP_THRESHOLD = -3


@functools.lru_cache(maxsize=1)
def _relax_malloc() -> bool:
    """Let glibc reuse freed tensor memory instead of unmapping it at once.

    Dask's nanny starts workers with ``MALLOC_TRIM_THRESHOLD_=65536`` so that
    memory goes back to the OS quickly. That also fixes glibc's mmap threshold,
    so every large tensor is mmapped and unmapped again: training and
    inference ran 2-3x slower in workers than in a plain process here
    (benchmarks/train.py). Raising both thresholds to 256 MiB restores full speed.
    """
    name = ctypes.util.find_library("c")
    if not name:
        return False
    try:
        libc = ctypes.CDLL(name)
        return bool(libc.mallopt(M_MMAP_THRESHOLD, 1 << 28)) and bool(libc.mallopt(M_TRIM_THRESHOLD, 1 << 28))
    except (OSError, AttributeError):  # not glibc: nothing to tune
        return False


def prepare_torch_process(threads: int) -> None:
    """Threads for this process's share of the cores, and fast tensor allocation."""
    torch.set_num_threads(max(1, threads))
    _relax_malloc()
