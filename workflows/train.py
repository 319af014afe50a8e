"""``seisfacies train``: data-parallel training, one PyTorch DDP rank per Dask worker.

The client validates everything, finds a rendezvous address on the first
worker and submits one task per rank, pinned to its worker. Each rank reads
its own shard of the patch store from Zarr, trains with DistributedDataParallel
(gloo on CPU, nccl on GPUs) and the first rank writes a checkpoint every epoch.
Progress comes back through a ``distributed.Queue``. A lost rank fails the
run within the process-group timeout, or restarts it from the last checkpoint.
"""

from __future__ import annotations

import contextlib
import json
import os
import socket
import time
import uuid
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

import numpy as np
import torch
import torch.distributed as dist
import torch.nn.functional as F
import zarr
from torch.nn.parallel import DistributedDataParallel
from tqdm.auto import tqdm

from models import create_model, model_entry
from models.checkpoint import build_model, load_checkpoint, package_version, save_checkpoint
from models.optim import create_optimizer, learning_rate_factor
from models.parallel import global_batch_norm
from pipeline.blocks import normalise_finite
from pipeline.exceptions import ClusterError, ConfigError, ModelError, SeisFaciesError
from pipeline.store import check_folder_writable
from workflows.config import PatchesConfig, TrainConfig
from workflows.torch_worker import prepare_torch_process

#: Which patch kind each model family trains on when given a volume store.
PATCH_KIND = {"mlp": "trace", "cnn2d": "section", "cnn2d_patch": "section", "cnn3d": "cube"}


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


def patch_attrs(patches: str) -> dict:
    return dict(zarr.open_group(store=patches, mode="r").attrs)


def check_compatible(config: TrainConfig, attrs: dict) -> None:
    """Refuse a model that cannot eat these patches, with the allowed values."""
    try:
        entry = model_entry(config.model)
    except ValueError as error:
        raise ConfigError(f"option --model: {error}") from None
    if attrs["kind"] not in entry.patch_kinds:
        fitting = [name for name, kind in PATCH_KIND.items() if kind == attrs["kind"]]
        raise ConfigError(
            f"option --model: {config.model} trains on {'/'.join(entry.patch_kinds)} patches "
            f"but the patch store holds {attrs['kind']} patches; "
            f"use --model {' or '.join(fitting)} or cut {entry.patch_kinds[0]} patches"
        )
    if entry.dense and attrs["kind"] == "section" and not attrs["dense"]:
        raise ConfigError("option --model: cnn2d needs dense section labels")


def _model_for(config: TrainConfig, attrs: dict) -> torch.nn.Module:
    options = dict(config.model_options)
    options["n_classes"] = len(attrs["class_names"])
    if config.activation:
        options["activation"] = config.activation
    if config.model == "mlp":
        options["in_samples"] = attrs["size"]
    try:
        return create_model(config.model, **options)
    except (ValueError, TypeError) as error:
        raise ConfigError(f"option --model-options: {error}") from None


def _tensors(
    x: np.ndarray, y: np.ndarray, config: TrainConfig, attrs: dict
) -> tuple[torch.Tensor, torch.Tensor]:
    """Patch arrays -> model input (normalised, channel axis) and targets (-1 ignored)."""
    x = x.astype(np.float32)  # a copy: x comes from the patch store (raw, unnormalised)
    normalise_finite(x, attrs["mean"], attrs["std"])
    entry = model_entry(config.model)
    inputs = torch.from_numpy(x if config.model == "mlp" else x[:, None])
    y = y.astype(np.int64)
    if not entry.dense and y.ndim > 1:
        y = y[(slice(None),) + tuple(size // 2 for size in y.shape[1:])]  # the centre's class
    elif entry.dense and y.ndim == 1:  # centre labels for a dense model: only the centre counts
        dense = np.full(x.shape, -1, np.int64)
        dense[(slice(None),) + tuple(size // 2 for size in x.shape[1:])] = y
        y = dense
    return inputs, torch.from_numpy(y)


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


def load_shard(patches: str, split: int, shard: int, shards: int, config: TrainConfig, attrs: dict):
    """Read one shard of one split straight from the patch store (bounded by the shard)."""
    group = zarr.open_group(store=patches, mode="r")
    rows = shard_rows(np.flatnonzero(group["split"][:] == split), shard, shards)
    if not len(rows):
        return None
    span = slice(int(rows[0]), int(rows[-1]) + 1)
    pick = rows - rows[0]
    return _tensors(group["x"][span][pick], group["y"][span][pick], config, attrs)


def class_weights(patches: str, n_classes: int, mode: str) -> torch.Tensor:
    """Inverse-frequency weights from the training split (mean 1), or ones."""
    if mode == "none":
        return torch.ones(n_classes)
    group = zarr.open_group(store=patches, mode="r")
    train = group["split"][:] == 0
    counts = np.zeros(n_classes)
    for start in range(0, len(train), 4096):
        y = group["y"][start : start + 4096][train[start : start + 4096]]
        counts += np.bincount(y[y >= 0].ravel(), minlength=n_classes)[:n_classes]
    weights = np.where(counts > 0, counts.sum() / np.maximum(counts, 1) / n_classes, 0.0)
    return torch.tensor(weights / max(weights[weights > 0].mean(), 1e-12), dtype=torch.float32)


def _device(config: TrainConfig, rank: int) -> torch.device:
    if config.device == "cpu" or (config.device == "auto" and not torch.cuda.is_available()):
        return torch.device("cpu")
    if not torch.cuda.is_available():
        raise ConfigError(
            f"option --device cuda: no CUDA device on the worker of rank {rank}; use --device cpu"
        )
    return torch.device("cuda", rank % torch.cuda.device_count())


def train_rank(job: RankJob) -> dict:
    """Train as one rank; returns the history (rank 0) or an empty dict."""
    config, attrs = job.config, patch_attrs(job.patches)
    torch.manual_seed(config.seed)
    prepare_torch_process((os.cpu_count() or 1) // job.world)
    device = _device(config, job.rank)
    if job.world > 1:
        backend = "nccl" if device.type == "cuda" else "gloo"
        dist.init_process_group(
            backend,
            init_method=job.init_method,
            rank=job.rank,
            world_size=job.world,
            timeout=timedelta(seconds=config.timeout),
        )
    try:
        return _train_loop(job, attrs, device)
    finally:
        if job.world > 1 and dist.is_initialized():
            dist.destroy_process_group()


def plan_shards(n_train: int, workers: int, shards: int | None) -> int:
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

    >>> plan_shards(100, 2, None), plan_shards(100, 2, 4)
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


def _train_loop(job: RankJob, attrs: dict, device: torch.device) -> dict:
    config = job.config
    n_train = int((zarr.open_group(store=job.patches, mode="r")["split"][:] == 0).sum())
    shards = plan_shards(n_train, job.world, config.shards)
    per_rank = shards // job.world
    own = [job.rank * per_rank + s for s in range(per_rank)]
    train = {s: load_shard(job.patches, 0, s, shards, config, attrs) for s in own}
    valid = _concat([load_shard(job.patches, 1, s, shards, config, attrs) for s in own])
    model = _model_for(config, attrs).to(device)
    if job.world > 1:  # statistics over the global batch, so ranks train as one process would;
        model = global_batch_norm(model)  # before the optimizer takes the parameters
    start_epoch, history = 0, []
    optimizer = create_optimizer(
        config.optimizer, model.parameters(), config.lr, config.weight_decay, config.beta
    )
    if config.resume and Path(job.out).exists():
        payload = load_checkpoint(job.out)
        model.load_state_dict(payload["state_dict"])
        optimizer.load_state_dict(payload["optimizer_state"])
        start_epoch, history = payload["epoch"], list(payload.get("history", []))
    network = DistributedDataParallel(model) if job.world > 1 else model
    weights = class_weights(job.patches, len(attrs["class_names"]), config.class_weights).to(device)
    shard_batch, steps = _local_batch(config, n_train, shards)
    started = time.perf_counter()
    queue = _queue(job.queue) if job.rank == 0 else None
    for epoch in range(start_epoch, config.epochs):
        for group in optimizer.param_groups:
            group["lr"] = config.lr * learning_rate_factor(config.schedule, epoch, config.epochs)
        plan = (shard_batch, steps)
        train_metrics = _run_epoch(network, optimizer, train, weights, plan, epoch, job, device)
        valid_metrics = _evaluate(network, valid, weights, config, job, device) if valid is not None else {}
        record = {
            "epoch": epoch + 1,
            **train_metrics,
            **valid_metrics,
            "seconds": round(time.perf_counter() - started, 2),
        }
        history.append(record)
        if job.rank == 0:
            _save(job, model, optimizer, attrs, epoch + 1, history)
            if queue is not None:
                queue.put(record)
        if _stop_for_budget(config, started, job.world):
            break
    return {"history": history} if job.rank == 0 else {}


def _concat(parts):
    parts = [part for part in parts if part is not None]
    if not parts:
        return None
    return torch.cat([p[0] for p in parts]), torch.cat([p[1] for p in parts])


def _local_batch(config: TrainConfig, n_train: int, shards: int) -> tuple[int, int]:
    """Patches per shard in a step, and steps per epoch: the same on every rank."""
    if config.optimizer == "gd":
        return -(-n_train // shards), 1  # full batch: the whole training set in every step
    smallest = n_train // shards
    batch = max(1, min(config.batch_size // shards, smallest))
    return batch, max(1, smallest // batch)


def _loss_terms(logits, targets, weights) -> tuple[torch.Tensor, torch.Tensor]:
    """Weighted cross-entropy summed over labelled pixels, and the weight total."""
    total = F.cross_entropy(logits.float(), targets, weight=weights, ignore_index=-1, reduction="sum")
    valid = targets >= 0
    return total, weights[targets[valid]].sum()


def _run_epoch(network, optimizer, shards, weights, steps_plan, epoch, job, device) -> dict:
    """One epoch; each step's batch takes ``shard_batch`` patches from every shard.

    Every shard is shuffled by (seed, epoch, shard), so one process holding two
    shards sees exactly the union of what two ranks with one shard each see.
    A non-finite loss on any rank stops every rank at the same step.
    """
    config = job.config
    shard_batch, steps = steps_plan
    network.train()
    orders = {
        shard: torch.randperm(
            len(data[0]), generator=torch.Generator().manual_seed(config.seed * 1000003 + epoch * 101 + shard)
        )
        for shard, data in shards.items()
    }
    sums = torch.zeros(3, dtype=torch.float64)  # loss, correct, counted
    for step in range(steps):
        picks = [
            (shards[s], orders[s][step * shard_batch : (step + 1) * shard_batch]) for s in sorted(shards)
        ]
        inputs = torch.cat([data[0][index] for data, index in picks]).to(device)
        targets = torch.cat([data[1][index] for data, index in picks]).to(device)
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=config.precision == "bf16"):
            logits = network(inputs)
        total, weight = _loss_terms(logits, targets, weights)
        # the global batch's weight (so ranks == one big batch) and whether any rank's loss blew up
        shared = torch.stack([weight.detach(), (~torch.isfinite(total.detach())).float()])
        if job.world > 1:
            dist.all_reduce(shared)
        if shared[1] > 0:
            raise ModelError(
                f"training stopped: the loss became NaN or infinite at epoch {epoch + 1}, step {step + 1} "
                f"of {steps}; lower --lr (now {config.lr:g}) or use another --optimizer"
            )
        loss = total / shared[0].clamp_min(1e-12) * job.world
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        sums += _counts(logits.detach(), targets, total.detach())
    return _reduced(sums, job.world, "train")


def _counts(logits, targets, total) -> torch.Tensor:
    valid = targets >= 0
    correct = (logits.argmax(1) == targets)[valid].sum()
    return torch.tensor([float(total), float(correct), float(valid.sum())], dtype=torch.float64)


def _reduced(sums: torch.Tensor, world: int, prefix: str) -> dict:
    if world > 1:
        dist.all_reduce(sums)
    count = max(float(sums[2]), 1.0)
    return {
        f"{prefix}_loss": round(float(sums[0]) / count, 4),
        f"{prefix}_accuracy": round(float(sums[1]) / count, 4),
    }


@torch.no_grad()
def _evaluate(network, data, weights, config, job, device) -> dict:
    network.eval()
    x, y = data
    sums = torch.zeros(3, dtype=torch.float64)
    for start in range(0, len(x), 64):
        inputs, targets = x[start : start + 64].to(device), y[start : start + 64].to(device)
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=config.precision == "bf16"):
            logits = network(inputs)
        total, _ = _loss_terms(logits, targets, torch.ones_like(weights))
        sums += _counts(logits, targets, total)
    return _reduced(sums, job.world, "val")


def _stop_for_budget(config: TrainConfig, started: float, world: int) -> bool:
    if config.time_budget is None:
        return False
    flag = torch.tensor([float(time.perf_counter() - started > config.time_budget)])
    if world > 1:
        dist.all_reduce(flag, op=dist.ReduceOp.MAX)  # every rank stops at the same epoch
    return bool(flag.item())


def _save(job: RankJob, model, optimizer, attrs: dict, epoch: int, history: list) -> None:
    save_checkpoint(
        job.out,
        model,
        job.config.model,
        class_names=list(attrs["class_names"]),
        normalisation={"mean": float(attrs["mean"]), "std": float(attrs["std"])},
        patch={key: attrs[key] for key in ("kind", "size", "orientations", "dense", "volume_dims")},
        optimizer_name=job.config.optimizer,
        run_id=job.run_id,
        patch_store=job.patches,
        source_store=attrs.get("source_store"),
        optimizer_state=optimizer.state_dict(),
        epoch=epoch,
        history=history,
        train_config=json.loads(job.config.model_dump_json()),
    )


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
    host = workers[0].split("://")[-1].rsplit(":", 1)[0]
    port = client.run(_free_port, workers=[workers[0]])[workers[0]]
    return f"tcp://{host}:{port}"


def _pick_workers(client, count: int) -> list[str]:
    workers = sorted(client.scheduler_info(n_workers=-1)["workers"])
    if len(workers) < count:
        raise ConfigError(
            f"option --workers: {count} ranks asked for but the cluster has {len(workers)} workers"
        )
    return workers[:count]


def _run_ranks(patches: str, out: str, config: TrainConfig, client, bar, run_id: str) -> dict:
    """One attempt: submit the ranks, follow their progress, fail fast if one fails.

    A rank's own error (bad option, bad data) is raised as it is; a lost worker
    or an unexpected failure is a ClusterError naming the rank and the cause.
    """
    if client is None:
        return train_rank(RankJob(patches, out, config, 0, 1, None, None, run_id))
    from distributed import Queue, wait

    workers = _pick_workers(client, config.workers)
    init_method = _rendezvous(client, workers) if config.workers > 1 else None
    queue_name = f"seisfacies-train-{os.getpid()}-{time.time_ns()}"
    queue = Queue(queue_name, client=client)
    futures = [
        client.submit(
            train_rank,
            RankJob(patches, out, config, rank, config.workers, init_method, queue_name, run_id),
            workers=[address],
            allow_other_workers=False,
            pure=False,
            retries=0,
            key=f"train-rank-{rank}-{queue_name}",
        )
        for rank, address in enumerate(workers)
    ]
    while True:
        with contextlib.suppress(TimeoutError):
            wait(futures, timeout=0.5, return_when="FIRST_COMPLETED")
        while queue.qsize():
            _show(bar, queue.get())
        failed = [f for f in futures if f.status == "error"]
        # a rank pinned to a worker that died waits for that worker for ever: count it as lost
        alive = set(client.scheduler_info(n_workers=-1)["workers"])
        lost = [
            f
            for f, address in zip(futures, workers)
            if f.status in ("lost", "cancelled") or (f.status == "pending" and address not in alive)
        ]
        if failed or lost:
            # read the rank's exception before cancelling: a cancelled future has none
            error = failed[0].exception() if failed else None
            client.cancel(futures)
            rank = futures.index((failed or lost)[0])
            if isinstance(error, SeisFaciesError):  # the rank's own one-line error: no restart helps
                raise type(error)(f"training rank {rank}: {error}") from None
            reason = _describe(error) if failed else "its worker was lost"
            raise ClusterError(f"training rank {rank} failed: {reason}")
        if all(f.status == "finished" for f in futures):
            return futures[0].result()


def _one_line(reason) -> str:
    text = str(reason).strip().splitlines()
    return (text[0] if text else type(reason).__name__)[:300]


def _describe(error: BaseException | None) -> str:
    """``Type: first line`` of a rank's exception.

    >>> _describe(RuntimeError("CUDA error: no kernel image"))
    'RuntimeError: CUDA error: no kernel image'
    """
    if error is None:
        return "no exception was reported"
    return f"{type(error).__name__}: {_one_line(error)}"


def _show(bar, record: dict) -> None:
    bar.update(record["epoch"] - bar.n)
    bar.set_postfix({key: value for key, value in record.items() if key.endswith(("loss", "accuracy"))})
    bar.write(" ".join(f"{k}={v}" for k, v in record.items()))


def train_model(
    source: str | Path,
    out: str | Path,
    config: TrainConfig,
    client=None,
    patches_config: PatchesConfig | None = None,
) -> dict:
    """Train ``config.model`` on a patch store (or a labelled volume store) and write MODEL.pt."""
    # absolute: ranks run on workers, whose working folder may differ
    source, out = Path(source).absolute(), Path(out).absolute()
    if out.exists() and not (config.overwrite or config.resume):
        raise ConfigError(
            f"{out}: the model file exists; pass --overwrite to replace it or --resume to continue"
        )
    if config.resume and not out.exists():
        raise ConfigError(f"{out}: --resume needs an existing checkpoint; train without --resume first")
    check_folder_writable(out)
    patches, note = _patch_store(Path(source), out, config, client, patches_config)
    attrs = patch_attrs(str(patches))
    check_compatible(config, attrs)
    _model_for(config, attrs)  # options checked on the client, before any worker starts
    plan_shards(int((zarr.open_group(store=str(patches), mode="r")["split"][:] == 0).sum()),
                config.workers, config.shards)  # fmt: skip
    run_id = _resumed_run(out, patches, attrs) if config.resume else uuid.uuid4().hex
    started = time.perf_counter()
    restarts = 0
    bar = tqdm(total=config.epochs, desc=f"train {config.model}", unit="epoch", disable=None, leave=False)
    with bar:
        while True:
            try:
                result = _run_ranks(str(patches), str(out), config, client, bar, run_id)
                break
            except ClusterError:
                if restarts >= config.max_restarts:
                    raise
                restarts += 1
                # only this run's own checkpoint may be continued; an older file at OUT is not ours
                resume = _checkpoint_run(out) == run_id
                bar.write(
                    f"restarting {'from the last checkpoint' if resume else 'from scratch'} "
                    f"({restarts}/{config.max_restarts})"
                )
                config = config.model_copy(update={"resume": resume})
    history = result["history"] if result else load_checkpoint(out)["history"]
    history_path = out.with_name(out.name + ".history.json")
    history_path.write_text(json.dumps(history, indent=2))
    summary = _summary(
        out, patches, config, history, attrs, time.perf_counter() - started, restarts, history_path
    )
    return {**summary, "patches_note": note} if note else summary


def _checkpoint_run(out: Path) -> str | None:
    """The run id recorded in the checkpoint at ``out``, if there is a readable one."""
    try:
        return load_checkpoint(out).get("run_id")
    except (OSError, ValueError, KeyError, RuntimeError):
        return None


def _resumed_run(out: Path, patches: Path, attrs: dict) -> str:
    """The run id of the checkpoint to continue; refuse one trained on other data."""
    try:
        payload = load_checkpoint(out)
    except (ValueError, KeyError, RuntimeError) as error:
        raise ModelError(f"{out}: cannot --resume: {_one_line(error)}") from None
    trained_on = payload.get("source_store") or payload.get("patch_store")
    here = attrs.get("source_store") or str(patches)
    same_patches = payload.get("patch") == {key: attrs[key] for key in payload.get("patch", {})}
    if payload.get("class_names") != list(attrs["class_names"]) or not same_patches or trained_on != here:
        raise ConfigError(
            f"{out}: --resume: the checkpoint was trained on {trained_on or 'other patches'}, not {here}; "
            "train it afresh with --overwrite, or resume on the store it was trained on"
        )
    return payload.get("run_id") or uuid.uuid4().hex


def _patch_store(source: Path, out: Path, config: TrainConfig, client, patches_config) -> tuple[Path, str]:
    """The patch store to train on: ``source`` itself, or patches cut from a volume store."""
    if (source / "x" / "zarr.json").exists():
        return source, ""
    if not (source / "labels" / "zarr.json").exists():
        raise ConfigError(
            f"{source}: neither a patch store nor a store with labels; run `seisfacies labels` first"
        )
    from workflows.patches import extract_patches

    kind = PATCH_KIND.get(config.model)
    if kind is None:
        check_compatible(config, {"kind": "section", "dense": True})
    note = ""
    if patches_config is None:
        sizes = tuple(zarr.open_array(store=str(source / "amplitude"), mode="r").shape)
        patches_config, note = fitting_patches(config.model, sizes)
    target = out.with_name(out.stem + ".patches.zarr")
    extract_patches(source, target, patches_config.model_copy(update={"overwrite": True}), client)
    return target, note


def default_patches(model: str) -> PatchesConfig:
    """Patch defaults for each model family, chosen on the synthetic survey.

    Parameters
    ----------
    model : str
        A registered model name.

    Returns
    -------
    PatchesConfig
        The patches ``train`` cuts from a labelled volume store.
    """
    kind = PATCH_KIND[model]
    if kind == "section":
        return PatchesConfig(kind="section", size=64, stride=4, per_class=400, augment=("flip",))
    if kind == "cube":
        return PatchesConfig(kind="cube", size=24, stride=4, per_class=300, dense=True)
    return PatchesConfig(kind="trace", size=64, stride=2, per_class=2000)


#: Patch sizes are multiples of this, so every default network's down-sampling grid fits.
PATCH_SIZE_STEP = 8


def fitting_patches(model: str, sizes: tuple[int, int, int]) -> tuple[PatchesConfig, str]:
    """The default patches, shrunk to fit a small volume, and a note saying so.

    Parameters
    ----------
    model : str
        A registered model name.
    sizes : tuple of int
        The volume's (inline, crossline, vertical) sizes.

    Returns
    -------
    tuple
        The patch config, and a one-line note ("" when the default fits).

    >>> config, note = fitting_patches("cnn2d", (48, 48, 64))
    >>> config.size, note
    (48, '--size 64 does not fit the 48 x 48 x 64 volume; section patches of 48 instead')
    """
    config = default_patches(model)
    reach = {"section": min(sizes[1:]), "cube": min(sizes), "trace": sizes[2]}[config.kind]
    if config.size <= reach:
        return config, ""
    size = reach // PATCH_SIZE_STEP * PATCH_SIZE_STEP
    if size < PATCH_SIZE_STEP:
        raise ConfigError(
            f"the {' x '.join(map(str, sizes))} volume is too small for {config.kind} patches; "
            f"cut patches yourself with `seisfacies patches --size N` and train on them"
        )
    note = (
        f"--size {config.size} does not fit the {' x '.join(map(str, sizes))} volume; "
        f"{config.kind} patches of {size} instead"
    )
    return config.model_copy(update={"size": size}), note


def _summary(out, patches, config, history, attrs, seconds, restarts, history_path) -> dict:
    last = history[-1] if history else {}
    group = zarr.open_group(store=str(patches), mode="r")
    n_train = int((group["split"][:] == 0).sum())
    return {
        "model": str(out),
        "architecture": config.model,
        "optimizer": config.optimizer,
        "patches": str(patches),
        "classes": list(attrs["class_names"]),
        "epochs": len(history),
        "workers": config.workers,
        **{key: value for key, value in last.items() if key.endswith(("loss", "accuracy"))},
        "seconds": round(seconds, 1),
        "samples_per_second": round(n_train * len(history) / max(seconds, 1e-9), 1),
        "restarts": restarts,
        "history": str(history_path),
        "seisfacies_version": package_version(),
    }


def load_model(path: str | Path) -> tuple[torch.nn.Module, dict]:
    """Model and metadata from a checkpoint; a bad file is a one-line ModelError."""
    try:
        payload = load_checkpoint(path)
        return build_model(payload), payload
    except (ValueError, KeyError, RuntimeError) as error:
        raise ModelError(_one_line(error)) from None
