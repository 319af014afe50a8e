"""Training on tensors: the epoch loop, the loss, evaluation and class weights.

No Dask, xarray or Zarr: :mod:`seisfacies.workflows.train` reads the patch
store, starts the ranks and hands each one its shards as tensors. With a
process group initialised, the loop is data-parallel: every step takes the
same number of patches from each shard and the loss is normalised by the
global batch's weight, so N ranks train exactly as one process holding all
N shards would.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, fields

import numpy as np
import torch
import torch.distributed as dist
import torch.nn.functional as F
from torch import nn

from .calibration import labelled_pixels
from .inference import normalise_finite, predicted_class
from .optim import create_optimizer, learning_rate_factor
from .registry import model_entry

#: Patches per forward pass when evaluating (no gradients are kept).
EVAL_BATCH = 64


class NonFiniteLoss(FloatingPointError):
    """The loss became NaN or infinite on some rank; every rank stops at the same step."""


@dataclass(frozen=True)
class FitOptions:
    """The training options the loop itself uses (a subset of the train config).

    Parameters
    ----------
    optimizer, lr, weight_decay, beta, schedule
        The optimiser and its learning-rate schedule (:mod:`seisfacies.models.optim`).
    epochs, batch_size, seed
        Epochs, global mini-batch size and the shuffling seed.
    precision : {"fp32", "bf16"}
        bf16 runs the forward pass under autocast.
    time_budget : float, optional
        Stop after the epoch that passes this many seconds.
    check_each_step : bool, optional
        Look for a non-finite loss after every step (a host synchronisation,
        and with several ranks an all-reduce, per step) instead of once per
        epoch. Default: only in one CPU process, where it costs nothing;
        otherwise the first bad step is recorded on the device and reported,
        the same on every rank, at the end of its epoch.
    """

    optimizer: str = "adam"
    lr: float = 2e-3
    weight_decay: float = 0.0
    beta: float = 0.9
    schedule: str = "cosine"
    epochs: int = 12
    batch_size: int = 32
    seed: int = 0
    precision: str = "fp32"
    time_budget: float | None = None
    check_each_step: bool | None = None

    @classmethod
    def from_options(cls, options: dict) -> FitOptions:
        """The loop's options out of a larger mapping (a train config's fields).

        Parameters
        ----------
        options : dict
            Any mapping with (at least) these field names.

        Returns
        -------
        FitOptions

        >>> FitOptions.from_options({"lr": 0.1, "workers": 4}).lr
        0.1
        """
        return cls(**{field.name: options[field.name] for field in fields(cls) if field.name in options})


Shard = tuple[torch.Tensor, torch.Tensor]


def to_tensors(
    x: np.ndarray,
    y: np.ndarray,
    model_name: str,
    mean: float,
    std: float,
    stacked: bool = False,
    depth: np.ndarray | None = None,
    extras: np.ndarray | None = None,
    extra_statistics: list[tuple[float, float]] = (),
    owned: bool = False,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Patch arrays -> the model's input (normalised, channel axis) and targets (-1 ignored).

    Parameters
    ----------
    x : numpy.ndarray
        Raw patches ``(N, ...)``; not changed.
    y : numpy.ndarray
        Their labels: one per patch, or one per pixel.
    model_name : str
        A registered model; its entry says what input and targets it takes.
    mean, std : float
        The training split's statistics.
    stacked : bool
        ``x`` already has its channel axis: sections with their neighbours ``(N, C, W, H)``.
    depth : numpy.ndarray, optional
        ``(N, vertical)``: the ``depth`` input of each patch's samples
        (:func:`~seisfacies.models.inference.relative_depth`), added as the last channel.
    extras : numpy.ndarray, optional
        ``(N, E, ...)`` raw windows of other inputs (attributes), added as
        channels after the amplitude's; not changed.
    extra_statistics : list of (float, float)
        Each extra input's training mean and std.
    owned : bool
        ``x`` and ``extras`` are the caller's to give away (just read): float32
        ones are normalised in place instead of copied first, which spares a
        fresh copy of every patch.

    Returns
    -------
    tuple of torch.Tensor
        Inputs (float32) and int64 targets shaped as the model's output.

    >>> x, y = to_tensors(np.ones((2, 4, 4)), np.array([1, 2]), "cnn2d_patch", 1.0, 1.0)
    >>> tuple(x.shape), y.tolist()
    ((2, 1, 4, 4), [1, 2])
    """
    x = x.astype(np.float32, copy=not owned)  # a copy unless owned: the caller's patches stay raw
    normalise_finite(x, mean, std)
    entry = model_entry(model_name)
    x = x[:, None] if entry.channel_axis and not stacked else x
    if extras is not None and extras.shape[1]:
        extras = extras.astype(np.float32, copy=not owned)
        for channel, (extra_mean, extra_std) in enumerate(extra_statistics):
            normalise_finite(extras[:, channel], extra_mean, extra_std)
        x = np.concatenate([x, extras], axis=1)
    if depth is not None:  # varies along the last (vertical) axis only
        shape = (len(x), 1, *x.shape[2:])
        x = np.concatenate(
            [x, np.broadcast_to(depth.reshape(len(x), *[1] * (x.ndim - 2), -1), shape)], axis=1
        )
    inputs = torch.from_numpy(np.ascontiguousarray(x))
    y = y.astype(np.int64)
    if not entry.dense and y.ndim > 1:
        y = y[(slice(None),) + tuple(size // 2 for size in y.shape[1:])]  # the centre's class
    elif entry.dense and y.ndim == 1:  # centre labels for a dense model: only the centre counts
        window = x.shape[2:] if entry.channel_axis else x.shape[1:]
        dense = np.full((len(x), *window), -1, np.int64)
        dense[(slice(None),) + tuple(size // 2 for size in window)] = y
        y = dense
    return inputs, torch.from_numpy(y)


def class_weights(label_batches: Iterable[np.ndarray], n_classes: int, mode: str) -> torch.Tensor:
    """Inverse-frequency class weights (mean 1 over the classes present), or ones.

    Parameters
    ----------
    label_batches : iterable of numpy.ndarray
        The training labels, in any number of pieces (-1 = unlabelled).
    n_classes : int
        Number of classes.
    mode : {"balanced", "none"}
        ``none`` gives ones without reading the labels.

    Returns
    -------
    torch.Tensor
        float32 weights; 0 for a class with no training labels.

    >>> class_weights([np.array([0, 0, 0, 1])], 3, "balanced").tolist()
    [0.5, 1.5, 0.0]
    """
    if mode == "none":
        return torch.ones(n_classes)
    counts = np.zeros(n_classes)
    for y in label_batches:
        counts += _label_counts(np.asarray(y).reshape(-1), n_classes)
    weights = np.where(counts > 0, counts.sum() / np.maximum(counts, 1) / n_classes, 0.0)
    return torch.tensor(weights / max(weights[weights > 0].mean(), 1e-12), dtype=torch.float32)


def _label_counts(labels: np.ndarray, n_classes: int, block: int = 2**20) -> np.ndarray:
    """Labels per class (negatives and classes from ``n_classes`` on left out), ``block`` at a time.

    Block by block, the mask, its selection and the int64 copy ``bincount``
    makes stay small and reused: over all the labels at once each was a fresh
    array as large as them (0.5 s for 6 M pixels in a new process).

    >>> _label_counts(np.array([-1, 0, 2, 2, 7], np.int16), 3, block=2).tolist()
    [1, 0, 2]
    """
    counts = np.zeros(n_classes, np.int64)
    for start in range(0, len(labels), block):
        part = labels[start : start + block].astype(np.int64)
        counts += np.bincount(part[(part >= 0) & (part < n_classes)], minlength=n_classes)
    return counts


def loss_terms(logits: torch.Tensor, targets: torch.Tensor, weights: torch.Tensor):
    """Weighted cross-entropy summed over labelled pixels, and the weight total.

    Parameters
    ----------
    logits : torch.Tensor
        ``(N, C, ...)`` model output.
    targets : torch.Tensor
        ``(N, ...)`` classes, -1 ignored.
    weights : torch.Tensor
        ``(C,)`` class weights.

    Returns
    -------
    tuple of torch.Tensor
        The summed loss and the summed weight of the labelled pixels; their
        ratio is the mean loss, and summing both over ranks first gives the
        global batch's mean.
    """
    return weighted_loss(logits, targets, weights), labelled_weight(targets, weights)


def weighted_loss(logits: torch.Tensor, targets: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
    """The first of :func:`loss_terms`: the weighted cross-entropy summed over labelled pixels.

    Parameters
    ----------
    logits : torch.Tensor
        ``(N, C, ...)`` model output.
    targets : torch.Tensor
        ``(N, ...)`` classes, -1 ignored.
    weights : torch.Tensor
        ``(C,)`` class weights.

    Returns
    -------
    torch.Tensor
        A float32 scalar.
    """
    return F.cross_entropy(logits.float(), targets, weight=weights, ignore_index=-1, reduction="sum")


def labelled_weight(targets: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
    """The second of :func:`loss_terms`: the summed class weight of the labelled pixels.

    Parameters
    ----------
    targets : torch.Tensor
        Classes, -1 ignored.
    weights : torch.Tensor
        ``(C,)`` class weights.

    Returns
    -------
    torch.Tensor
        A scalar.

    >>> labelled_weight(torch.tensor([0, -1, 1, 1]), torch.tensor([0.5, 2.0])).item()
    4.5
    """
    return weights[targets[targets >= 0]].sum()


def local_batch(optimizer: str, batch_size: int, n_train: int, shards: int) -> tuple[int, int]:
    """Patches per shard in a step, and steps per epoch: the same for every shard.

    Parameters
    ----------
    optimizer : str
        ``gd`` takes the whole training set in every step.
    batch_size : int
        Global mini-batch size.
    n_train, shards : int
        Training patches, and the shards they are cut into.

    Returns
    -------
    tuple of int

    Raises
    ------
    ValueError
        A mini-batch smaller than the shard count: every shard gives at least one
        patch a step, so the global batch would silently grow to ``shards``.

    >>> local_batch("adam", 32, 100, 2), local_batch("gd", 32, 100, 2)
    ((16, 3), (50, 1))
    >>> local_batch("adam", 2, 100, 4)
    Traceback (most recent call last):
    ValueError: a global batch of 2 patches cannot be shared by 4 shards (one patch each at least)
    """
    if optimizer == "gd":
        return -(-n_train // shards), 1  # full batch: the whole training set in every step
    if batch_size < shards:
        raise ValueError(
            f"a global batch of {batch_size} patches cannot be shared by {shards} shards "
            "(one patch each at least)"
        )
    smallest = n_train // shards
    batch = max(1, min(batch_size // shards, smallest))
    return batch, max(1, smallest // batch)


def _world() -> int:
    return dist.get_world_size() if dist.is_available() and dist.is_initialized() else 1


def _autocast(device: torch.device, precision: str):
    return torch.autocast(device.type, dtype=torch.bfloat16, enabled=precision == "bf16")


def _counts(logits, targets) -> torch.Tensor:
    """Unweighted loss sum, correct and labelled pixels, as float64 on the logits' device (no host sync).

    Unweighted in training and validation alike, so ``train_loss`` and
    ``val_loss`` are the same measure: the mean cross-entropy per labelled pixel.
    """
    valid = targets >= 0
    total = F.cross_entropy(logits.float(), targets, ignore_index=-1, reduction="sum")
    correct = ((predicted_class(logits) == targets) & valid).sum()
    return torch.stack([total.double(), correct.double(), valid.sum().double()])


def _reduced(sums: torch.Tensor, prefix: str) -> dict:
    if _world() > 1:
        dist.all_reduce(sums)
    loss, correct, count = sums.tolist()  # the epoch's one read back to the host
    count = max(count, 1.0)
    return {f"{prefix}_loss": round(loss / count, 4), f"{prefix}_accuracy": round(correct / count, 4)}


def _non_finite(epoch: int, step, steps: int, options: FitOptions) -> NonFiniteLoss:
    return NonFiniteLoss(
        f"training stopped: the loss became NaN or infinite at epoch {epoch + 1}, step {int(step) + 1} "
        f"of {steps}; lower --lr (now {options.lr:g}) or use another --optimizer"
    )


def on_device(data: Shard, device: torch.device) -> Shard:
    """A shard moved to ``device`` once, so steps index it there without host copies.

    Parameters
    ----------
    data : tuple of torch.Tensor
        Inputs and targets.
    device : torch.device
        Where the model is.

    Returns
    -------
    tuple of torch.Tensor
        The same tensors on CPU; copies on a GPU (patches are small).
    """
    return data[0].to(device), data[1].to(device)


def train_epoch(
    network: nn.Module,
    optimizer: torch.optim.Optimizer,
    shards: dict[int, Shard],
    weights: torch.Tensor,
    batching: tuple[int, int],
    epoch: int,
    options: FitOptions,
    device: torch.device,
) -> dict:
    """One epoch; each step's batch takes ``batching[0]`` patches from every shard.

    Every shard is shuffled by (seed, epoch, shard), so one process holding two
    shards sees exactly the union of what two ranks with one shard each see.

    Parameters
    ----------
    network : torch.nn.Module
        The model (wrapped in DistributedDataParallel on several ranks).
    optimizer : torch.optim.Optimizer
        Its optimiser.
    shards : dict
        This rank's shards: shard number -> (inputs, targets).
    weights : torch.Tensor
        Class weights on ``device``.
    batching : tuple of int
        Patches per shard per step, and steps (:func:`local_batch`).
    epoch : int
        Epoch number from 0 (seeds the shuffle).
    options : FitOptions
        The loop's options.
    device : torch.device
        Where the network is.

    Returns
    -------
    dict
        ``train_loss`` (the unweighted mean cross-entropy per labelled pixel, as
        ``val_loss``; the class weights shape the gradients only) and
        ``train_accuracy`` over all ranks. A non-finite loss
        on any rank raises :class:`NonFiniteLoss` on every rank.
    """
    shard_batch, steps = batching
    world = _world()
    each_step = _check_each_step(options, device, world)
    network.train()
    picks = _epoch_picks(shards, shard_batch, steps, options.seed, epoch, device)
    # each step's global batch weight (so ranks == one big batch) is known before the epoch:
    # one all-reduce for all steps instead of one per step beside the gradients'
    per_step = [labelled_weight(_step_data(shards, picks, step, 1), weights) for step in range(steps)]
    step_weights = torch.stack(per_step) if per_step else weights[:0]
    if world > 1:
        dist.all_reduce(step_weights)
    denominators = step_weights.clamp_min(1e-12)
    sums = torch.zeros(3, dtype=torch.float64, device=device)  # loss, correct, counted
    first_bad = torch.full((), steps, dtype=torch.int64, device=device)  # steps: no bad loss yet
    # a small model's step is a few hundred microseconds: every tensor operation here counts
    for step in range(steps):
        targets = _step_data(shards, picks, step, 1)
        with _autocast(device, options.precision):
            logits = network(_step_data(shards, picks, step, 0))
        total = weighted_loss(logits, targets, weights)  # its weight total is step_weights'
        if each_step:
            _stop_if_any_rank_is_bad(total, world, epoch, step, steps, options)
        else:
            first_bad = torch.where(~torch.isfinite(total.detach()) & (first_bad == steps), step, first_bad)
        loss = total / denominators[step]
        optimizer.zero_grad(set_to_none=True)
        (loss * world if world > 1 else loss).backward()
        optimizer.step()
        sums += _counts(logits.detach(), targets)
    if world > 1:  # a bad loss on one rank spreads to all through the gradients: agree on the first
        dist.all_reduce(first_bad, op=dist.ReduceOp.MIN)
    if first_bad < steps:
        raise _non_finite(epoch, first_bad, steps, options)
    return _reduced(sums, "train")


def _epoch_picks(
    shards: dict[int, Shard], shard_batch: int, steps: int, seed: int, epoch: int, device: torch.device
) -> dict[int, torch.Tensor]:
    """Each shard's patch numbers per step, ``(steps, shard_batch)``, shuffled by (seed, epoch, shard)."""
    return {
        shard: torch.randperm(
            len(data[0]), generator=torch.Generator().manual_seed(seed * 1000003 + epoch * 101 + shard)
        )[: steps * shard_batch]
        .reshape(steps, shard_batch)
        .to(device)
        for shard, data in shards.items()
    }


def _step_data(
    shards: dict[int, Shard], picks: dict[int, torch.Tensor], step: int, part: int
) -> torch.Tensor:
    """One step's inputs (``part`` 0) or targets (1): its picks from every shard, in shard order."""
    if len(shards) == 1:  # one shard: no concatenation, so no second copy of the batch
        (shard,) = shards
        return shards[shard][part][picks[shard][step]]
    return torch.cat([shards[shard][part][picks[shard][step]] for shard in sorted(shards)])


def _check_each_step(options: FitOptions, device: torch.device, world: int) -> bool:
    """Check the loss after every step only where it costs nothing: one CPU process."""
    if options.check_each_step is not None:
        return options.check_each_step
    return device.type == "cpu" and world == 1


def _stop_if_any_rank_is_bad(total, world: int, epoch: int, step: int, steps: int, options) -> None:
    finite = torch.isfinite(total.detach())
    if world > 1:
        flag = (~finite).float()
        dist.all_reduce(flag)  # every rank stops at the same step
        finite = flag == 0
    if not finite:
        raise _non_finite(epoch, step, steps, options)


@torch.no_grad()
def evaluate(
    network: nn.Module,
    data: Shard | None,
    options: FitOptions,
    device: torch.device,
    held_out: list | None = None,
) -> dict:
    """Unweighted loss and accuracy on held-out patches, summed over all ranks.

    Every rank must call it, also one without validation patches: the sums
    are all-reduced, and a rank that skipped the collective would hang or
    abort the others.

    Parameters
    ----------
    network : torch.nn.Module
        The model.
    data : tuple of torch.Tensor, optional
        This rank's validation inputs and targets; None when its shard is empty.
    options : FitOptions
        For the precision.
    device : torch.device
        Where the network is.
    held_out : list, optional
        Receives each batch's :func:`~seisfacies.models.calibration.labelled_pixels`:
        what the temperature is fitted on, without a second pass.

    Returns
    -------
    dict
        ``val_loss`` and ``val_accuracy``.
    """
    network.eval()
    x, y = data if data is not None else ((), ())
    sums = torch.zeros(3, dtype=torch.float64, device=device)
    for start in range(0, len(x), EVAL_BATCH):
        inputs, targets = x[start : start + EVAL_BATCH].to(device), y[start : start + EVAL_BATCH].to(device)
        with _autocast(device, options.precision):
            logits = network(inputs)
        sums += _counts(logits, targets)
        if held_out is not None:
            held_out.append(labelled_pixels(logits, targets))
    return _reduced(sums, "val")


def any_rank_has(data: Shard | None, device: torch.device | None = None) -> bool:
    """Whether this rank or any other holds patches; every rank gets the same answer.

    Parameters
    ----------
    data : tuple of torch.Tensor, optional
        This rank's patches of one split.
    device : torch.device, optional
        Where the process group's tensors live (a GPU for NCCL).

    Returns
    -------
    bool

    >>> any_rank_has(None), any_rank_has((torch.zeros(1), torch.zeros(1)))
    (False, True)
    """
    flag = torch.tensor([float(data is not None and len(data[0]) > 0)], device=device)
    if _world() > 1:
        dist.all_reduce(flag, op=dist.ReduceOp.MAX)
    return bool(flag.item())


def over_budget(options: FitOptions, started: float, device: torch.device | None = None) -> bool:
    """Whether the time budget is spent; every rank gets the same answer.

    Parameters
    ----------
    options : FitOptions
        ``time_budget`` in seconds, or None.
    started : float
        ``time.perf_counter()`` at the start of training.
    device : torch.device, optional
        Where the process group's tensors live (a GPU for NCCL); default the CPU.

    Returns
    -------
    bool
    """
    if options.time_budget is None:
        return False
    flag = torch.tensor([float(time.perf_counter() - started > options.time_budget)], device=device)
    if _world() > 1:
        dist.all_reduce(flag, op=dist.ReduceOp.MAX)  # every rank stops at the same epoch
    return bool(flag.item())


def fit(
    model: nn.Module,
    train: dict[int, Shard],
    valid: Shard | None,
    weights: torch.Tensor,
    batching: tuple[int, int],
    options: FitOptions,
    device: torch.device,
    state: dict | None = None,
    on_epoch: Callable[[list, nn.Module, torch.optim.Optimizer], None] | None = None,
    held_out: list | None = None,
) -> list[dict]:
    """Train ``model`` for the remaining epochs; returns the history.

    Parameters
    ----------
    model : torch.nn.Module
        The model on ``device``; with a process group it is wrapped in
        DistributedDataParallel here (use :func:`seisfacies.models.parallel.global_batch_norm`
        first, so BatchNorm sees the global batch).
    train : dict
        This rank's training shards: shard number -> (inputs, targets).
    valid : tuple of torch.Tensor, optional
        This rank's validation patches.
    weights : torch.Tensor
        Class weights.
    batching : tuple of int
        Patches per shard per step, and steps per epoch (:func:`local_batch`).
    options : FitOptions
        Optimiser, schedule, epochs, seed, precision, time budget.
    device : torch.device
        Where the model is.
    state : dict, optional
        A checkpoint's ``state_dict``-free part to continue from: ``epoch``,
        ``history`` and ``optimizer_state``.
    on_epoch : callable, optional
        Called after each epoch with (history so far, model, optimizer): checkpoints, progress.
    held_out : list, optional
        An empty list, left holding the final epoch's validation pass: its
        labelled pixels per batch (:func:`evaluate`), the trained model's
        held-out logits. It stays empty where that epoch did not run here
        (none left, or a time budget stopped sooner), in bf16 (the
        temperature is fitted on fp32 logits), or where this rank holds no
        validation patches.

    Returns
    -------
    list of dict
        One record per epoch: losses, accuracies and seconds since the start.
    """
    from torch.nn.parallel import DistributedDataParallel

    optimizer = create_optimizer(
        options.optimizer, model.parameters(), options.lr, options.weight_decay, options.beta
    )
    state = state or {}
    if "optimizer_state" in state:
        optimizer.load_state_dict(state["optimizer_state"])
    history = list(state.get("history", []))
    network = DistributedDataParallel(model) if _world() > 1 else model
    weights = weights.to(device)
    train = {shard: on_device(data, device) for shard, data in train.items()}
    valid = on_device(valid, device) if valid is not None else None
    validate = any_rank_has(valid, device)  # then all ranks evaluate, with or without patches
    started = time.perf_counter()
    for epoch in range(state.get("epoch", 0), options.epochs):
        for group in optimizer.param_groups:
            group["lr"] = options.lr * learning_rate_factor(options.schedule, epoch, options.epochs)
        train_metrics = train_epoch(network, optimizer, train, weights, batching, epoch, options, device)
        # in fp32 the last pass's logits are what predict's default computes: the temperature's
        final = held_out if epoch == options.epochs - 1 and options.precision == "fp32" else None
        valid_metrics = evaluate(network, valid, options, device, final) if validate else {}
        record = {
            "epoch": epoch + 1,
            **train_metrics,
            **valid_metrics,
            "seconds": round(time.perf_counter() - started, 2),
        }
        history.append(record)
        if on_epoch is not None:
            on_epoch(history, model, optimizer)
        if over_budget(options, started, device):
            break
    return history
