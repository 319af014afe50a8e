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
import os
from collections.abc import Callable, Iterator
from pathlib import Path

from . import config as cfg
from .options import build_config


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


def synth(out_dir: str | Path, **options) -> dict:
    """Write a synthetic labelled survey: ``seismic.sgy`` and ``labels.sgy`` in ``out_dir``.

    Parameters
    ----------
    out_dir : str or Path
        The folder to write.
    **options
        ``shape``, ``seed``, ``overwrite`` (see ``seisfacies synth --help``).

    Returns
    -------
    dict
        Paths and class names.
    """
    from .synth import write_synthetic_survey

    return write_synthetic_survey(out_dir, _config(cfg.SynthConfig, options))


def ingest(segy: str | Path, store: str | Path, *, client=None, **options) -> dict:
    """Ingest a post-stack SEG-Y file into a chunked Zarr v3 store.

    Parameters
    ----------
    segy : str or Path
        The SEG-Y file.
    store : str or Path
        The store to write.
    client : distributed.Client, optional
        Default: the current client, else this process.
    **options
        ``chunks``, ``iline_byte``, ``xline_byte``, ``endian``, ``domain``,
        ``nonfinite``, ``sample_interval``, ``overwrite``.

    Returns
    -------
    dict
        The ingest summary (geometry, sizes, seconds).
    """
    from .ingest import segy_to_zarr

    return segy_to_zarr(segy, store, _config(cfg.IngestConfig, options), current_client(client))


def attach_labels(store: str | Path, source: str | Path, *, client=None, **options) -> dict:
    """Attach labels (SEG-Y volume, .npy, Zarr or CSV points) to a store.

    Parameters
    ----------
    store : str or Path
        A store written by :func:`ingest`.
    source : str or Path
        The label source.
    client : distributed.Client, optional
        Default: the current client, else this process.
    **options
        ``classes``, ``unlabelled``, ``inlines``, ``overwrite``.

    Returns
    -------
    dict
        Classes and labelled voxels per class.
    """
    from .labels import attach_labels as attach

    return attach(store, source, _config(cfg.LabelsConfig, options), current_client(client))


def extract_patches(store: str | Path, patches: str | Path, *, client=None, **options) -> dict:
    """Cut class-balanced training patches from a labelled store.

    Parameters
    ----------
    store : str or Path
        A store with labels.
    patches : str or Path
        The patch store to write.
    client : distributed.Client, optional
        Default: the current client, else this process.
    **options
        ``kind``, ``size``, ``stride``, ``per_class``, ``orientation``, ...

    Returns
    -------
    dict
        Patch counts per split and class.
    """
    from .patches import extract_patches as extract

    return extract(store, patches, _config(cfg.PatchesConfig, options), current_client(client))


def train(source: str | Path, model_path: str | Path, *, client=None, **options) -> dict:
    """Train a model on a patch store, or on a labelled store (patches are cut first).

    Parameters
    ----------
    source : str or Path
        A patch store or a store with labels.
    model_path : str or Path
        The checkpoint to write.
    client : distributed.Client, optional
        Default: the current client, else this process.
    **options
        ``model``, ``optimizer``, ``epochs``, ``lr``, ``workers``, ...

    Returns
    -------
    dict
        Final losses and accuracies, epochs, seconds and file names.
    """
    from .train import train_model

    return train_model(source, model_path, _config(cfg.TrainConfig, options), current_client(client))


def predict(store: str | Path, model_path: str | Path, *, client=None, **options) -> dict:
    """Classify every voxel of a store (writes ``facies``, and ``probability`` if asked).

    Parameters
    ----------
    store : str or Path
        The store.
    model_path : str or Path
        A checkpoint written by :func:`train`.
    client : distributed.Client, optional
        Default: the current client, else this process.
    **options
        ``probabilities``, ``uncertainty``, ``batch_size``, ``device``, ``precision``, ``overwrite``.

    Returns
    -------
    dict
        Variables written, tasks and the model's provenance.
    """
    from .predict import predict_volume

    return predict_volume(store, model_path, _config(cfg.PredictConfig, options), current_client(client))


def evaluate(store: str | Path, *, client=None, **options) -> dict:
    """Pixel accuracy, class accuracy, IoU, FWIoU and the confusion matrix of ``facies``.

    Parameters
    ----------
    store : str or Path
        A store with ``facies``.
    client : distributed.Client, optional
        Default: the current client, else this process.
    **options
        ``truth``, ``where``, ``unlabelled``.

    Returns
    -------
    dict
        The metrics.
    """
    from .evaluate import evaluate_store

    return evaluate_store(store, _config(cfg.EvaluateConfig, options), current_client(client))


def suggest(store: str | Path, **options) -> dict:
    """The inlines to label next, from the store's ``uncertainty`` (``predict(..., uncertainty=True)``).

    Parameters
    ----------
    store : str or Path
        A store with ``uncertainty``.
    **options
        ``count``.

    Returns
    -------
    dict
        ``inlines`` (numbers, best first) and ``scores``.
    """
    from .suggest import suggest_inlines

    return suggest_inlines(store, _config(cfg.SuggestConfig, options))


def export(store: str | Path, out: str | Path, *, client=None, **options) -> dict:
    """Write a store variable as SEG-Y with the source file's headers.

    Parameters
    ----------
    store : str or Path
        The store.
    out : str or Path
        The SEG-Y file to write.
    client : distributed.Client, optional
        Default: the current client, else this process.
    **options
        ``variable``, ``class_name`` (one class of ``probability``), ``overwrite``.

    Returns
    -------
    dict
        What was written.
    """
    from .export import zarr_to_segy

    return zarr_to_segy(store, out, _config(cfg.ExportConfig, options), current_client(client))


def plot(store: str | Path, out: str | Path, **options) -> dict:
    """Draw a section with the predicted facies (and the labels beside it).

    Parameters
    ----------
    store : str or Path
        The store.
    out : str or Path
        The picture to write (PNG).
    **options
        ``inline``, ``crossline``, ``time``, ``overwrite``.

    Returns
    -------
    dict
        The picture's path.
    """
    from .plot import plot_section

    return plot_section(store, out, _config(cfg.PlotConfig, options))


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
