"""Cluster helpers: connect to a scheduler or start a LocalCluster; run task lists.

The address is resolved once, on the client, by the CLI (option, then the
``DASK_SCHEDULER_ADDRESS`` variable); nothing here reads the environment.
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import threading
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass

import dask
import dask.threaded
from dask.callbacks import Callback
from tqdm.auto import tqdm

from .exceptions import ClusterError


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
    """A ``distributed.Client`` for ``spec``; a LocalCluster is closed on exit.

    Parameters
    ----------
    spec : ClusterSpec
        The cluster to connect to or start.

    Returns
    -------
    Iterator
    """
    from distributed import Client, LocalCluster

    if spec.address:
        check_address(spec.address)  # a Client half-built from a bad address can deadlock a later one
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
        with _workers_ignore_ctrl_c(), nanny_environment_undone():
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
    with nanny_environment_undone(), cluster, Client(cluster) as client:
        yield client


def started_here(client) -> bool:
    """Whether ``client``'s cluster is a LocalCluster this process started (its workers share this machine).

    Parameters
    ----------
    client : distributed.Client or None
        A client.

    Returns
    -------
    bool

    >>> started_here(None)
    False
    """
    from distributed import LocalCluster

    return isinstance(getattr(client, "cluster", None), LocalCluster)


#: Set in a worker's environment by a nanny (with the ``pre-spawn-environ`` settings).
NANNY_ADDED_VARIABLES = ("PYTHONHASHSEED",)


@contextlib.contextmanager
def nanny_environment_undone() -> Iterator[None]:
    """Give this process back its own environment once nannies have started workers from it.

    Start a LocalCluster inside it, and hold it around the cluster's whole life.

    A distributed Nanny sets ``distributed.nanny.pre-spawn-environ``
    (``OMP_NUM_THREADS=1``, ``MALLOC_TRIM_THRESHOLD_=65536``, ...) in
    ``os.environ`` of the process that starts it, for the worker it spawns, and
    never takes them back (distributed 2026.7). The client process kept them:
    every program it started afterwards ran on one OpenMP thread with glibc's
    eager trim, and a plain PyTorch script started after a LocalCluster ran
    3x slower than before it. Only those variables are restored, to their values
    from before; the workers keep theirs, and a nanny that restarts its worker
    sets them again for it.

    Returns
    -------
    Iterator
        A context manager.
    """
    names = (*dask.config.get("distributed.nanny.pre-spawn-environ", {}), *NANNY_ADDED_VARIABLES)
    saved = {name: os.environ.get(name) for name in names}
    try:
        yield
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


@contextlib.contextmanager
def _workers_ignore_ctrl_c() -> Iterator[None]:
    """Start worker processes with SIGINT ignored: Ctrl-C is the client's to handle.

    A terminal sends Ctrl-C to the whole process group; workers that took it
    would die mid-task with tracebacks of their own. Ignored signals survive
    the start of a new Python, so the nannies and their workers ignore it.
    """
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)


def check_address(address: str) -> None:
    """Refuse a scheduler address that cannot be parsed, before any connection is tried.

    Parameters
    ----------
    address : str
        ``tcp://HOST:PORT``, ``tls://HOST:PORT`` or ``HOST:PORT``.

    >>> check_address("tcp://127.0.0.1:8786")
    >>> check_address("foo:bar")  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    seisfacies.pipeline.exceptions.ClusterError: --scheduler ... 'foo:bar' is not ... address ...
    """
    from distributed.comm import parse_address
    from distributed.comm.addressing import parse_host_port

    try:
        protocol, location = parse_address(address)
        if protocol in ("tcp", "tls", "ws", "wss"):
            parse_host_port(location)
    except ValueError as error:
        raise ClusterError(
            f"--scheduler / DASK_SCHEDULER_ADDRESS {address!r} is not a scheduler address ({error}); "
            "give one like tcp://127.0.0.1:8786"
        ) from None


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


def live_workers(client) -> dict:
    """The workers the scheduler knows now, asked of the scheduler itself: address -> info.

    ``client.scheduler_info()`` is no use for liveness: it returns the client's
    cached identity, which the client's own periodic refresh replaces with one
    that lists no workers at all, so a check that reads it can see a live
    worker as gone (about 1 call in 10 with a refresh every 2 ms, rarely but
    surely over an hour of training at the default 2 s).

    Parameters
    ----------
    client : distributed.Client
        A synchronous client.

    Returns
    -------
    dict
        Worker address -> the scheduler's record of it (``resources``, ``nthreads``, ...).
    """
    return client.sync(client.scheduler.identity, n_workers=-1)["workers"]


class _TqdmCallback(Callback):
    """Progress of the local threaded scheduler, one tick per task."""

    def __init__(self, bar: tqdm):
        super().__init__()
        self.bar = bar

    def _posttask(self, key, result, dsk, state, worker_id):
        self.bar.update(1)


def run_tasks(
    function: Callable,
    items: Sequence,
    client=None,
    description: str = "",
    progress: bool = True,
    resources: dict | None = None,
    shared: dict | None = None,
) -> list:
    """Run ``function(item, **shared)`` for every item on ``client`` (or local threads).

    Results come back in the order of ``items``. Items must be picklable
    descriptions (paths, slices, small arrays), never open files or models.
    The first task that fails cancels the others and raises its error at once.

    Parameters
    ----------
    function : callable
        Applied to each item on a worker.
    items : sequence
        Picklable task descriptions.
    client : distributed.Client, optional
        Where to run; local threads without one.
    description : str
        Label of the progress bar.
    progress : bool
        Show a progress bar (where the output is a terminal).
    resources : dict, optional
        Worker resources each task holds while it runs (``{"GPU": 0.5}``);
        only workers that declare them run the tasks.
    shared : dict, optional
        Keyword arguments of every call, sent to each worker once (a
        checkpoint's bytes), not once per task.

    Returns
    -------
    list
        ``function(item)`` for every item, in order.
    """
    bar = tqdm(total=len(items), desc=description, unit="task", disable=not progress or None, leave=False)
    shared = shared or {}
    with bar:
        if client is None:
            tasks = [dask.delayed(function, pure=False)(item, **shared) for item in items]
            with _TqdmCallback(bar):
                # the scheduler itself, not its name: a name makes dask import distributed (0.3 s)
                # to look for a client, in commands that run on threads without one
                return list(dask.compute(*tasks, scheduler=dask.threaded.get))
        from distributed import as_completed

        sent = {name: client.scatter(value, broadcast=True, hash=False) for name, value in shared.items()}
        futures = client.map(function, items, pure=False, resources=resources, **sent)
        for future in as_completed(futures):
            if future.status == "error":
                error = future.exception()  # before cancelling: a cancelled future forgets it
                client.cancel(futures)  # fail fast: the rest would only be thrown away
                raise error.with_traceback(future.traceback())
            bar.update(1)
        return client.gather(futures)


def client_mapper(client) -> Callable:
    """A ``map``-like callable that runs on ``client`` (or local threads).

    Parameters
    ----------
    client
        The Dask client; None runs in this process.

    Returns
    -------
    Callable
    """

    def mapper(function: Callable, items) -> list:
        return run_tasks(function, list(items), client, progress=False)

    return mapper
