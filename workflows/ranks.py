"""Training ranks on a Dask cluster: one PyTorch process-group rank per worker.

The client finds a rendezvous address on the first worker and submits one
task per rank, pinned to its worker. Each rank reads its own shards of the
patch store and calls :func:`seisfacies.models.training.fit`; the first rank
writes a checkpoint every epoch and reports progress through a
``distributed.Queue``. A lost rank fails the run (or restarts it, see
:mod:`seisfacies.workflows.train`).
"""

from __future__ import annotations

import contextlib
import json
import os
import socket
import time
from dataclasses import dataclass
from datetime import timedelta

import numpy as np
import torch
import torch.distributed as dist
import zarr

from ..models.calibration import fit_sample, fit_temperature, held_out_logits
from ..models.checkpoint import checkpoint_bytes, load_checkpoint
from ..models.inference import relative_depth
from ..models.parallel import gathered, global_batch_norm, gradient_bytes, ranks_that_pay, training_flops
from ..models.registry import create_model_for_patches, model_entry
from ..models.training import FitOptions, NonFiniteLoss, class_weights, fit, local_batch, to_tensors
from ..pipeline import location
from ..pipeline.cluster import live_workers
from ..pipeline.commit import write_file
from ..pipeline.exceptions import ClusterError, ConfigError, ModelError, SeisFaciesError
from ..pipeline.patches import window_start
from .config import TrainConfig
from .devices import (
    cluster_gpus,
    gpu_resources,
    host_of,
    host_ranks,
    local_device,
    pick_workers,
    plan_devices,
    rank_capacity,
)
from .torch_worker import prepare_torch_process

#: Patch-store rows read at a time when counting labels.
LABEL_READ_ROWS = 4096
#: Seconds between the monitor's looks at the ranks and the scheduler's list of live workers.
MONITOR_POLL_S = 0.5
#: Seconds to wait, once a rank failed, for the others' errors: the real cause may come second.
PEER_ERROR_GRACE_S = 3.0
#: Text of errors a rank raises because another rank failed, not for a cause of its own.
PEER_FAILURE_MARKS = ("Connection closed by peer", "Connection reset by peer", "gloo", "NCCL", "ProcessGroup")


@dataclass(frozen=True)
class RankJob:
    """Everything one rank needs; picklable (paths and config, no model)."""

    patches: str
    out: str
    config: TrainConfig
    rank: int
    world: int
    init_method: str | None
    queue: str | None
    run_id: str = ""  # a restart resumes only from a checkpoint of the same run
    survey: dict | None = None  # the training survey's geometry and statistics, for predict's check
    device: str | None = None  # planned on the client ("cpu", "cuda:1"); None: chosen in this process
    host_ranks: int = 1  # ranks on this rank's host, which share its cores


#: What a checkpoint keeps of its patches' attributes: what predict needs to cut the same inputs,
#: and whether the labels were stratigraphic intervals (``predict --class-order auto``).
PATCH_GEOMETRY = (
    "kind",
    "size",
    "orientations",
    "dense",
    "volume_dims",
    "neighbours",
    "inputs",
    "classes_in_depth_order",
)


def patch_attrs(patches: str) -> dict:
    """The attributes of a patch store: kind, size, classes, mean and std, ...

    Parameters
    ----------
    patches : str
        The patch store.

    Returns
    -------
    dict
    """
    attrs = dict(zarr.open_group(store=patches, mode="r").attrs)
    attrs.setdefault("neighbours", 0)  # patch stores written before neighbours existed
    attrs.setdefault("inputs", ["amplitude"])  # ... and before the depth input
    attrs.setdefault("classes_in_depth_order", False)  # ... and before the labels' order was checked
    return attrs


def input_channels(attrs: dict) -> int:
    """Input channels of a model for these patches: the section and its neighbours, other inputs, depth.

    Parameters
    ----------
    attrs : dict
        The patch store's attributes.

    Returns
    -------
    int

    >>> input_channels({"neighbours": 2}), input_channels({"inputs": ["amplitude", "envelope", "depth"]})
    (5, 3)
    """
    return 2 * attrs.get("neighbours", 0) + len(attrs.get("inputs", ("amplitude",)))


def model_for(config: TrainConfig, attrs: dict) -> torch.nn.Module:
    """The model ``config`` asks for, sized for these patches; bad options are one line.

    Parameters
    ----------
    config : TrainConfig
        ``model``, ``activation`` and ``model_options``.
    attrs : dict
        The patch store's attributes.

    Returns
    -------
    torch.nn.Module
    """
    try:
        return create_model_for_patches(
            config.model,
            len(attrs["class_names"]),
            attrs["size"],
            config.activation,
            in_channels=input_channels(attrs),
            **config.model_options,
        )
    except (ValueError, TypeError) as error:
        raise ConfigError(f"option --model-options: {error}") from None


def resolve_ranks(config: TrainConfig, client, attrs: dict, n_train: int) -> tuple[TrainConfig, str]:
    """``--workers auto`` made a number: the ranks that pay on this cluster, and why fewer where fewer.

    Ranks are capped by :func:`~seisfacies.workflows.devices.rank_capacity`
    (a GPU each, or a host's cores each) and kept only where the model's step
    outweighs its gradient all-reduce (:func:`~seisfacies.models.parallel.ranks_that_pay`).
    An explicit number is returned as it is.

    Parameters
    ----------
    config : TrainConfig
        The options; ``model`` and ``device`` are checked.
    client : distributed.Client or None
        The cluster; None trains in this process (one rank).
    attrs : dict
        The patch store's attributes (kind, size, inputs).
    n_train : int
        Training patches (a ``gd`` step takes them all).

    Returns
    -------
    tuple
        The config with ``workers`` a number, and a note for the summary ("" when every worker trains).
    """
    if config.workers != "auto":
        return config, ""
    names = live_workers(client) if client is not None else []
    if len(names) <= 1:
        return config.model_copy(update={"workers": 1}), ""
    seen = cluster_gpus(client) if config.device != "cpu" else {}
    capacity, device_type = rank_capacity(config.device, {name: seen.get(name, ()) for name in names})
    if capacity == 1:
        return config.model_copy(update={"workers": 1}), _fewer_ranks_note(1, len(names), 1, device_type, 0.0)
    model = model_for(config, attrs)
    sample = model_entry(config.model).sample_shape(attrs["kind"], attrs["size"], input_channels(attrs))
    step_flops = training_flops(model, sample) * (n_train if config.optimizer == "gd" else config.batch_size)
    ranks = ranks_that_pay(
        step_flops,
        gradient_bytes(model),
        min(capacity, len(names), n_train),
        device_type,
        allowed=lambda n: config.shards is None or config.shards % n == 0,
    )
    return config.model_copy(update={"workers": ranks}), _fewer_ranks_note(
        ranks, len(names), capacity, device_type, step_flops
    )


def _fewer_ranks_note(ranks: int, workers: int, capacity: int, device_type: str, step_flops: float) -> str:
    if ranks == workers:
        return ""
    if ranks < capacity:
        why = (
            f"a step ({step_flops / 1e9:.2g} GFLOP) is too small to outweigh the gradient all-reduce "
            "every further rank would wait for"
        )
    elif device_type == "cuda":
        why = f"the cluster has {capacity} GPU(s), one per rank"
    else:
        why = "one rank per host: ranks on one host share its cores, adding an all-reduce a step, no compute"
    return (
        f"--workers auto trained on {ranks} of {workers} workers: {why}; pass --workers {workers} to use all"
    )


def shard_rows(rows: np.ndarray, shard: int, shards: int) -> np.ndarray:
    """Contiguous shards of the rows, sizes differing by at most one; every row is in one.

    Parameters
    ----------
    rows : numpy.ndarray
        Row numbers of one split.
    shard, shards : int
        Which shard, of how many.

    Returns
    -------
    numpy.ndarray
        The shard's rows.

    >>> [shard_rows(np.arange(7), s, 3).tolist() for s in range(3)]
    [[0, 1, 2], [3, 4], [5, 6]]
    """
    return np.array_split(rows, shards)[shard]


def shard_count(n_train: int, workers: int, shards: int | None) -> int:
    """How many shards to cut the training split into: a multiple of the ranks, none empty.

    Parameters
    ----------
    n_train : int
        Training patches.
    workers : int
        Data-parallel ranks.
    shards : int, optional
        Asked for (default: one per rank).

    Returns
    -------
    int
        The shard count; a bad request is a one-line ConfigError.

    >>> shard_count(100, 2, None), shard_count(100, 2, 4)
    (2, 4)
    """
    shards = shards or workers
    if shards % workers:
        raise ConfigError(
            f"option --shards {shards}: must be a multiple of --workers {workers} so every rank "
            "holds the same number of shards"
        )
    if n_train < shards:
        raise ConfigError(
            f"{n_train} training patches cannot fill {shards} shards; use fewer --workers or cut more patches"
        )
    return shards


def training_count(patches: str) -> int:
    """Patches in the training split of a patch store.

    Parameters
    ----------
    patches : str
        The patch store.

    Returns
    -------
    int
    """
    return int((zarr.open_group(store=patches, mode="r")["split"][:] == 0).sum())


def load_shard(patches: str, split: int, shard: int, shards: int, config: TrainConfig, attrs: dict):
    """One shard of one split, read straight from the patch store, as the model's tensors.

    Parameters
    ----------
    patches : str
        The patch store.
    split : int
        0 training, 1 validation.
    shard, shards : int
        Which shard, of how many.
    config : TrainConfig
        For the model name.
    attrs : dict
        The store's attributes (mean and std).

    Returns
    -------
    tuple of torch.Tensor or None
        Inputs and targets; None for an empty shard.
    """
    group = zarr.open_group(store=patches, mode="r")
    rows = shard_rows(np.flatnonzero(group["split"][:] == split), shard, shards)
    if not len(rows):
        return None
    # the shard's rows straight into one array: a read of their span, then a pick, was two fresh copies
    x, y = (group[name].get_orthogonal_selection((rows,)) for name in ("x", "y"))
    depth = None
    if "depth" in attrs["inputs"]:  # the windows' vertical positions in the survey's traces
        starts = window_start(group["sample_index"].get_orthogonal_selection((rows,)), attrs["size"])
        depth = relative_depth(starts, attrs["size"], attrs["volume_shape"][2])
    stacked = attrs["neighbours"] > 0
    statistics = attrs.get("input_statistics", {})  # inputs beside the amplitude, in channel order
    extras = group["x_inputs"].get_orthogonal_selection((rows,)) if statistics else None
    return to_tensors(
        x,
        y,
        config.model,
        attrs["mean"],
        attrs["std"],
        stacked=stacked,
        depth=depth,
        extras=extras,
        extra_statistics=[(value["mean"], value["std"]) for value in statistics.values()],
        owned=True,
    )


def _training_labels(patches: str):
    group = zarr.open_group(store=patches, mode="r")
    train = group["split"][:] == 0
    for start in range(0, len(train), LABEL_READ_ROWS):
        yield group["y"][start : start + LABEL_READ_ROWS][train[start : start + LABEL_READ_ROWS]]


def train_rank(job: RankJob) -> dict:
    """Train as one rank; returns the history (rank 0) or an empty dict.

    Parameters
    ----------
    job : RankJob
        The rank's paths, config and place in the process group.

    Returns
    -------
    dict
        ``{"history": [...]}`` on rank 0.
    """
    torch.manual_seed(job.config.seed)
    prepare_torch_process((os.cpu_count() or 1) // job.host_ranks)
    device = torch.device(job.device or local_device(job.config.device))
    if device.type == "cuda":
        torch.cuda.set_device(device)  # NCCL and the allocator use the current device
    if job.world > 1:
        dist.init_process_group(
            "nccl" if device.type == "cuda" else "gloo",
            init_method=job.init_method,
            rank=job.rank,
            world_size=job.world,
            timeout=timedelta(seconds=job.config.timeout),
        )
    try:
        return _train(job, patch_attrs(job.patches), device)
    except NonFiniteLoss as error:
        raise ModelError(str(error)) from None
    finally:
        if job.world > 1 and dist.is_initialized():
            dist.destroy_process_group()


def _train(job: RankJob, attrs: dict, device: torch.device) -> dict:
    config = job.config
    n_train = training_count(job.patches)
    shards = shard_count(n_train, job.world, config.shards)
    own = [job.rank * (shards // job.world) + s for s in range(shards // job.world)]
    train = {s: load_shard(job.patches, 0, s, shards, config, attrs) for s in own}
    valid = [part for s in own if (part := load_shard(job.patches, 1, s, shards, config, attrs))]
    valid = (torch.cat([p[0] for p in valid]), torch.cat([p[1] for p in valid])) if valid else None
    model = model_for(config, attrs).to(device)
    if job.world > 1:  # statistics over the global batch, so ranks train as one process would
        model = global_batch_norm(model)
    state = {}
    if config.resume and location.exists(job.out):
        state = load_checkpoint(job.out)
        model.load_state_dict(state["state_dict"])
    weights = class_weights(_training_labels(job.patches), len(attrs["class_names"]), config.class_weights)
    batching = local_batch(config.optimizer, config.batch_size, n_train, shards)
    options = FitOptions.from_options(dict(config))
    queue = _queue(job.queue) if job.rank == 0 else None

    last = {}

    def on_epoch(history, model, optimizer):
        last["optimizer"] = optimizer
        if job.rank == 0:
            _save(job, model, optimizer.state_dict(), attrs, history[-1]["epoch"], history)
            if queue is not None:
                queue.put(history[-1])

    kept = []  # the last validation pass's logits: the temperature needs no pass of its own
    history = fit(model, train, valid, weights, batching, options, device, state, on_epoch, kept)
    # a resumed run with no epochs left still finishes a checkpoint cut off before its final save
    if history and ("optimizer" in last or not state.get("final", True)):
        held_out = fit_sample(kept) if kept else _held_out(model, valid, len(attrs["class_names"]))
        # every rank: the held-out logits are gathered from all of them
        temperature = fit_temperature(*gathered(*held_out))
        if job.rank == 0:  # the final checkpoint holds T, fitted on every rank's held-out patches
            optimizer_state = (
                last["optimizer"].state_dict() if "optimizer" in last else state["optimizer_state"]
            )
            _save(job, model, optimizer_state, attrs, history[-1]["epoch"], history, temperature, final=True)
    return {"history": history} if job.rank == 0 else {}


def _held_out(model, valid, n_classes: int):
    """The held-out logits and classes of one rank; empty where its validation shard is."""
    if valid is None:
        return torch.empty(0, n_classes), torch.empty(0, dtype=torch.int64)
    return held_out_logits(model, valid)


def _save(
    job: RankJob,
    model,
    optimizer_state: dict,
    attrs: dict,
    epoch: int,
    history: list,
    temperature: float = 1.0,
    final: bool = False,
) -> None:
    """Write the checkpoint: partial after each epoch, final once training and calibration are done."""
    payload = checkpoint_bytes(
        model,
        job.config.model,
        class_names=list(attrs["class_names"]),
        normalisation={
            "mean": float(attrs["mean"]),
            "std": float(attrs["std"]),
            **({"inputs": attrs["input_statistics"]} if "input_statistics" in attrs else {}),
        },
        patch={key: attrs[key] for key in PATCH_GEOMETRY},
        optimizer_name=job.config.optimizer,
        run_id=job.run_id,
        patch_store=job.patches,
        source_store=attrs.get("source_store"),
        optimizer_state=optimizer_state,
        epoch=epoch,
        epochs=job.config.epochs,
        final=final,
        history=history,
        train_config=json.loads(job.config.model_dump_json()),
        training_survey=job.survey or {},
        temperature=float(temperature),  # divides the logits before softmax (1.0: not calibrated yet)
    )
    write_file(job.out, payload)


def _queue(name: str | None):
    if name is None:
        return None
    from distributed import Queue

    return Queue(name)


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("", 0))
        return probe.getsockname()[1]


def _rendezvous(client, workers: list[str]) -> str:
    """A TCP rendezvous on the first rank's host, on a port free there."""
    host = host_of(workers[0])
    port = client.run(_free_port, workers=[workers[0]])[workers[0]]
    return f"tcp://{host}:{port}"


def run_ranks(
    patches: str, out: str, config: TrainConfig, client, progress, run_id: str, survey: dict | None = None
) -> dict:
    """One attempt: submit the ranks, follow their progress, fail fast if one fails.

    A rank's own error (bad option, bad data) is raised as it is; a lost worker
    or an unexpected failure is a ClusterError naming the rank and the cause.

    Parameters
    ----------
    patches, out : str
        The patch store and the checkpoint file (absolute paths).
    config : TrainConfig
        The training options.
    client : distributed.Client or None
        None trains in this process.
    progress : callable
        Called with each epoch's record.
    run_id : str
        The run's id, recorded in the checkpoint.
    survey : dict, optional
        The training survey's record (:func:`seisfacies.workflows.predict.survey_record`).

    Returns
    -------
    dict
        Rank 0's result.
    """
    if client is None:
        return train_rank(RankJob(patches, out, config, 0, 1, None, None, run_id, survey))
    from distributed import Queue, wait

    seen = cluster_gpus(client) if config.device != "cpu" else {}
    names = live_workers(client)
    chosen = pick_workers(config.device, config.workers, {a: seen.get(a, ()) for a in names})
    devices = plan_devices(config.device, chosen)  # before any rank starts: one line if impossible
    workers = [place.address for place in chosen]
    sharing = host_ranks(workers)
    init_method = _rendezvous(client, workers) if config.workers > 1 else None
    queue_name = f"seisfacies-train-{os.getpid()}-{time.time_ns()}"
    queue = Queue(queue_name, client=client)
    resources = gpu_resources(client, workers) if devices[0] != "cpu" else None
    futures = [
        client.submit(
            train_rank,
            RankJob(
                patches,
                out,
                config,
                rank,
                config.workers,
                init_method,
                queue_name,
                run_id,
                survey,
                device=devices[rank],
                host_ranks=sharing[rank],
            ),
            workers=[address],
            allow_other_workers=False,
            resources=resources,
            pure=False,
            retries=0,
            key=f"train-rank-{rank}-{queue_name}",
        )
        for rank, address in enumerate(workers)
    ]
    while True:
        with contextlib.suppress(TimeoutError):
            wait(futures, timeout=MONITOR_POLL_S, return_when="FIRST_COMPLETED")
        while queue.qsize():
            progress(queue.get())
        failed = [f for f in futures if f.status == "error"]
        # a rank pinned to a worker that died waits for that worker for ever: count it as lost
        alive = set(live_workers(client))
        lost = [
            f
            for f, address in zip(futures, workers)
            if f.status in ("lost", "cancelled") or (f.status == "pending" and address not in alive)
        ]
        if failed or lost:
            rank, error = _first_cause(futures, failed) if failed else (futures.index(lost[0]), None)
            client.cancel(futures)
            if isinstance(error, SeisFaciesError):  # the rank's own one-line error: no restart helps
                raise type(error)(f"training rank {rank}: {error}") from None
            reason = describe(error) if failed else "its worker was lost"
            raise ClusterError(f"training rank {rank} failed: {reason}{_timeout_hint(error, config)}")
        if all(f.status == "finished" for f in futures):
            return futures[0].result()


def _first_cause(futures: list, failed: list) -> tuple[int, BaseException]:
    """The failed rank whose own error caused the others': not a peer's broken connection.

    One rank's real error makes the others fail in their next collective with
    a communication error; those are given a moment to arrive, and then the
    first error that is not one of them is the one reported.
    """
    from distributed import wait

    with contextlib.suppress(TimeoutError):  # the peers' errors follow within the timeout
        wait(futures, timeout=PEER_ERROR_GRACE_S, return_when="ALL_COMPLETED")
    # read the exceptions before cancelling: a cancelled future has none
    errors = [(futures.index(f), f.exception()) for f in futures if f.status == "error"] or [
        (futures.index(failed[0]), failed[0].exception())
    ]
    own = [(rank, error) for rank, error in errors if not is_peer_failure(error)]
    return (own or errors)[0]


def _timeout_hint(error: BaseException | None, config: TrainConfig) -> str:
    """What to change when a rank gave up waiting for the others: the option and its value."""
    text = str(error).lower()
    if error is None or not ("timed out" in text or "timeout" in text):
        return ""
    return (
        f"; a rank waited --timeout {config.timeout:g} s for the others (a busy machine, or a slow "
        "checkpoint write); raise --timeout"
    )


def is_peer_failure(error: BaseException | None) -> bool:
    """Whether a rank's error only says that another rank went away (a broken collective).

    Parameters
    ----------
    error : BaseException or None
        A rank's exception.

    Returns
    -------
    bool

    >>> is_peer_failure(RuntimeError("[gloo/transport/tcp/pair.cc:534] Connection closed by peer"))
    True
    >>> is_peer_failure(KeyError("x"))
    False
    """
    if isinstance(error, dist.DistError):
        return True
    text = str(error)
    return isinstance(error, RuntimeError) and any(mark in text for mark in PEER_FAILURE_MARKS)


def one_line(reason) -> str:
    """The first line of an error's text (at most 300 characters).

    Parameters
    ----------
    reason : object
        An exception or message.

    Returns
    -------
    str
    """
    text = str(reason).strip().splitlines()
    return (text[0] if text else type(reason).__name__)[:300]


def describe(error: BaseException | None) -> str:
    """``Type: first line`` of a rank's exception.

    Parameters
    ----------
    error : BaseException or None
        The rank's exception.

    Returns
    -------
    str

    >>> describe(RuntimeError("CUDA error: no kernel image"))
    'RuntimeError: CUDA error: no kernel image'
    """
    if error is None:
        return "no exception was reported"
    return f"{type(error).__name__}: {one_line(error)}"
