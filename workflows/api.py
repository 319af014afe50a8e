"""The Python API: the chain as functions that mirror the CLI.

Each function takes the command's paths, then keyword arguments named like
its options (``--per-class`` is ``per_class``), validated by the same
pydantic models as the CLI and the workflow files. Work goes to ``client``
(a ``distributed.Client``), else to the current client, else runs in this
process. Exposed as ``import seisfacies as sf``; ``sf.train(...)`` is
:func:`train`.
"""

from __future__ import annotations

import contextlib
import inspect
import os
import textwrap
from collections.abc import Callable, Iterator
from pathlib import Path

from .options import build_config
from .steps import STEPS, Step


def _config(config_class: type, options: dict):
    """Validate keyword options; a bad one is a ConfigError naming the keyword.

    Paths given as ``pathlib.Path`` (``truth=folder / "labels.sgy"``) are taken as their text.
    """
    options = {
        key: os.fspath(value) if isinstance(value, os.PathLike) else value for key, value in options.items()
    }
    return build_config(config_class, spell=str, **options)


def current_client(client=None):
    """The client to run on: the one given, else the current one, else None (this process).

    Parameters
    ----------
    client : distributed.Client, optional
        A client to use as it is.

    Returns
    -------
    distributed.Client or None
    """
    if client is not None:
        return client
    try:
        from distributed import default_client

        return default_client()
    except ValueError:  # no client: run in this process
        return None


@contextlib.contextmanager
def local_cluster(
    workers: int | None = None, *, threads_per_worker: int = 1, memory_limit: str = "auto"
) -> Iterator:
    """A LocalCluster of worker processes and a client on it, closed quietly on exit.

    Unlike a bare ``LocalCluster``, its workers ignore Ctrl-C (the client
    handles it) and their logs are silenced, so closing it prints no worker
    tracebacks; a task's failure still reaches the caller as one exception.
    In a script, call it under ``if __name__ == "__main__":``: Dask starts
    each worker by importing the script again.

    Parameters
    ----------
    workers : int, optional
        Worker processes; default one per core.
    threads_per_worker : int
        Threads in each worker process.
    memory_limit : str
        Each worker's memory limit, as Dask takes it (``"4GiB"``, ``"auto"``).

    Yields
    ------
    distributed.Client
        The client, also the current one: ``sf.*`` calls use it without ``client=``.
    """
    from ..pipeline.cluster import ClusterSpec, connect

    spec = ClusterSpec(n_workers=workers, threads_per_worker=threads_per_worker, memory_limit=memory_limit)
    with connect(spec) as client:
        yield client


def step_function(step: Step) -> Callable[..., dict]:
    """The ``sf.<api_name>`` function of a step: its paths, then its options as keywords.

    Parameters
    ----------
    step : Step
        A row of :data:`~seisfacies.workflows.steps.STEPS`.

    Returns
    -------
    callable
        ``function(*paths, client=None, **options) -> dict``, with a signature
        and a numpydoc docstring made from the step's row and config.
    """
    names = step.python_names or step.arguments

    def function(*paths, client=None, **options) -> dict:
        given = [*paths, *(options.pop(name) for name in names[len(paths) :] if name in options)]
        given += [None for argument in step.arguments[len(given) :] if argument in step.optional]
        if len(given) != len(names):
            raise TypeError(f"{step.api_name}() takes the paths {', '.join(names)}; {len(given)} given")
        config = _config(step.config, options)
        return step.call(given, config, current_client(client) if step.client else None)

    parameters = [inspect.Parameter(name, inspect.Parameter.POSITIONAL_OR_KEYWORD) for name in names]
    if step.client:
        parameters.append(inspect.Parameter("client", inspect.Parameter.KEYWORD_ONLY, default=None))
    parameters.append(inspect.Parameter("options", inspect.Parameter.VAR_KEYWORD))
    function.__signature__ = inspect.Signature(parameters, return_annotation=dict)
    function.__name__ = function.__qualname__ = step.api_name
    function.__doc__ = _docstring(step, names)
    return function


def _docstring(step: Step, names: tuple[str, ...]) -> str:
    lines = [step.summary, "", "Parameters", "----------"]
    for name, text in zip(names, step.argument_help):
        lines += [f"{name} : str or Path", f"    {text}"]
    if step.client:
        lines += [
            "client : distributed.Client, optional",
            "    Default: the current client, else this process.",
        ]
    options = ", ".join(f"``{field}``" for field in step.config.model_fields)
    text = f"The options of ``seisfacies {step.name}``, by field name: {options}."
    lines += ["**options", textwrap.fill(text, 96, initial_indent="    ", subsequent_indent="    ")]
    return "\n".join([*lines, "", "Returns", "-------", "dict", f"    {step.returns}", ""])


globals().update({step.api_name: step_function(step) for step in STEPS.values()})


def open_store(store: str | Path, require: tuple[str, ...] = ("amplitude",)):
    """Open a store lazily as an ``xarray.Dataset``; refuse incomplete variables.

    Parameters
    ----------
    store : str or Path
        The store.
    require : tuple of str
        Variables that must be there and complete.

    Returns
    -------
    xarray.Dataset
    """
    from ..pipeline.store import open_store as open_dataset

    return open_dataset(store, require)


def run_workflow(
    workflow: str | Path, *, client=None, force: bool = False, echo: Callable[[str], None] = print
) -> dict:
    """Run a workflow file (YAML), every step in order.

    Parameters
    ----------
    workflow : str or Path
        The workflow file.
    client : distributed.Client, optional
        Default: the current client, else this process.
    force : bool
        Run every step, even those whose outputs are up to date.
    echo : callable
        Where progress lines go.

    Returns
    -------
    dict
        The run record.
    """
    from .run import run_workflow as run

    return run(workflow, current_client(client), force=force, echo=echo)
