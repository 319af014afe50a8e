"""Cluster helpers: connect to a scheduler or start a LocalCluster; run task lists.

The address is resolved once, on the client, by the CLI (option, then the
``DASK_SCHEDULER_ADDRESS`` variable); nothing here reads the environment.
"""

from __future__ import annotations

import contextlib
import logging
import os
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass

import dask
from dask.callbacks import Callback
from tqdm.auto import tqdm

from pipeline.exceptions import ClusterError


@dataclass(frozen=True)
class ClusterSpec:
    """Where to run: an existing scheduler, or a LocalCluster of this size."""

    address: str | None = None
    n_workers: int | None = None
    threads_per_worker: int = 1
    memory_limit: str | float | None = "auto"
    security: object | None = None  # distributed.security.Security for TLS
    processes: bool = True

    def describe(self) -> str:
        return self.address or f"LocalCluster({self.n_workers or os.cpu_count()} worker processes)"


@contextlib.contextmanager
def connect(spec: ClusterSpec) -> Iterator:
    """A ``distributed.Client`` for ``spec``; a LocalCluster is closed on exit."""
    from distributed import Client, LocalCluster

    if spec.address:
        try:
            client = Client(spec.address, timeout="20s", security=spec.security)
        except (OSError, TimeoutError) as error:
            raise ClusterError(
                f"cannot reach the Dask scheduler at {spec.address} ({error}); "
                "check --scheduler / DASK_SCHEDULER_ADDRESS and that `dask scheduler` runs"
            ) from None
        with client:
            yield client
        return
    try:
        cluster = LocalCluster(
            n_workers=spec.n_workers or os.cpu_count(),
            threads_per_worker=spec.threads_per_worker,
            processes=spec.processes,
            memory_limit=spec.memory_limit,
            dashboard_address=":0",
            # a failed task reaches the user as the command's one-line error; the
            # workers' warnings would repeat it with a traceback
            silence_logs=logging.CRITICAL,
        )
    except (RuntimeError, OSError, TimeoutError) as error:  # distributed: "Nanny failed to start."
        raise ClusterError(
            f"cannot start a local Dask cluster ({_first_cause(error)}); check the Dask configuration "
            "(worker preload, ports, temporary folder) or pass --scheduler ADDRESS"
        ) from None
    with cluster, Client(cluster) as client:
        yield client


def _first_cause(error: BaseException) -> str:
    """Give the innermost cause of a chained error as ``Type: message`` on one line.

    >>> try:
    ...     try:
    ...         import no_such_module
    ...     except ImportError as inner:
    ...         raise RuntimeError("Nanny failed to start.") from inner
    ... except RuntimeError as outer:
    ...     print(_first_cause(outer))
    ModuleNotFoundError: No module named 'no_such_module'
    """
    while error.__cause__ is not None or error.__context__ is not None:
        error = error.__cause__ or error.__context__
    message = (str(error).strip().splitlines() or [""])[0]
    return f"{type(error).__name__}: {message}" if message else type(error).__name__


class _TqdmCallback(Callback):
    """Progress of the local threaded scheduler, one tick per task."""

    def __init__(self, bar: tqdm):
        super().__init__()
        self.bar = bar

    def _posttask(self, key, result, dsk, state, worker_id):
        self.bar.update(1)


def run_tasks(
    function: Callable, items: Sequence, client=None, description: str = "", progress: bool = True
) -> list:
    """Run ``function(item)`` for every item on ``client`` (or local threads).

    Results come back in the order of ``items``. Items must be picklable
    descriptions (paths, slices, small arrays), never open files or models.
    """
    bar = tqdm(total=len(items), desc=description, unit="task", disable=not progress or None, leave=False)
    with bar:
        if client is None:
            tasks = [dask.delayed(function, pure=False)(item) for item in items]
            with _TqdmCallback(bar):
                return list(dask.compute(*tasks, scheduler="threads"))
        from distributed import as_completed

        futures = client.map(function, items, pure=False)
        for _ in as_completed(futures):
            bar.update(1)
        return client.gather(futures)


def client_mapper(client) -> Callable:
    """A ``map``-like callable that runs on ``client`` (or local threads)."""

    def mapper(function: Callable, items) -> list:
        return run_tasks(function, list(items), client, progress=False)

    return mapper
