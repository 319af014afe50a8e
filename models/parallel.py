"""Data-parallel helpers: batch normalisation over the global batch, and whether more ranks pay.

``torch.nn.SyncBatchNorm`` refuses CPU tensors, so ranks on CPU workers (gloo)
would each normalise with their own half-batch statistics, and two ranks
would not train like one process with the same global batch. This module
replaces every BatchNorm layer with one that sums its statistics across ranks
with an autograd-aware all-reduce, so the forward and the gradients equal
those of one process holding the whole batch.

More ranks pay only where a step's compute outweighs the gradient all-reduce
that every step then waits for: :func:`ranks_that_pay` weighs the two from
the model's FLOPs and gradient size (``train --workers auto``).
"""

from __future__ import annotations

import copy
import warnings
from dataclasses import dataclass

import torch
import torch.distributed as dist
import torch.distributed.nn.functional as dist_functional
from torch import nn
from torch.nn.modules.batchnorm import _BatchNorm


class GlobalBatchNorm(_BatchNorm):
    """BatchNorm whose training statistics cover every rank's batch.

    Outside a process group of two or more ranks, and in evaluation, it is a
    plain BatchNorm of any dimensionality. Its state dict matches
    ``BatchNorm1d/2d/3d``, so checkpoints load into the plain models.
    """

    def _check_input_dim(self, input: torch.Tensor) -> None:
        if input.dim() < 2:
            raise ValueError(f"expected at least 2D input (got {input.dim()}D input)")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Normalise ``x`` (N, C, ...) with statistics over all ranks' batches.

        Parameters
        ----------
        x : torch.Tensor
            Activations, channels on axis 1.

        Returns
        -------
        torch.Tensor
            Normalised activations (float32 under mixed precision, as BatchNorm gives).
        """
        distributed = dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1
        if not (self.training and distributed):
            return super().forward(x)
        self._check_input_dim(x)
        channels = x.shape[1]
        values = x.float()  # statistics in float32 even under bf16 autocast
        axes = [0, *range(2, x.dim())]
        count = torch.full((1,), values.numel() / channels, dtype=values.dtype, device=values.device)
        local = torch.cat([values.sum(axes), (values * values).sum(axes), count])
        with warnings.catch_warnings():  # deprecated in favour of a private, not yet autograd-aware API
            warnings.simplefilter("ignore", FutureWarning)
            total = dist_functional.all_reduce(local)  # gradients flow back to every rank's inputs
        n = total[-1]
        mean = total[:channels] / n
        variance = (total[channels : 2 * channels] / n - mean * mean).clamp_min(0)
        self._update_running_stats(mean.detach(), variance.detach(), n.detach())
        shape = [1, channels] + [1] * (x.dim() - 2)
        out = (values - mean.view(shape)) * torch.rsqrt(variance.view(shape) + self.eps)
        if self.affine:
            out = out * self.weight.view(shape) + self.bias.view(shape)
        return out

    @torch.no_grad()
    def _update_running_stats(self, mean: torch.Tensor, variance: torch.Tensor, n: torch.Tensor) -> None:
        if not self.track_running_stats:
            return
        self.num_batches_tracked.add_(1)
        momentum = self.momentum if self.momentum is not None else 1.0 / float(self.num_batches_tracked)
        unbiased = variance * n / (n - 1).clamp_min(1)  # as BatchNorm keeps it
        self.running_mean.mul_(1 - momentum).add_(momentum * mean)
        self.running_var.mul_(1 - momentum).add_(momentum * unbiased)


def global_batch_norm(module: nn.Module) -> nn.Module:
    """Replace every BatchNorm layer of ``module`` (in place) with :class:`GlobalBatchNorm`.

    Parameters
    ----------
    module : torch.nn.Module
        A model, with its weights and running statistics.

    Returns
    -------
    torch.nn.Module
        The same model; its BatchNorm layers keep their weights and statistics.

    >>> net = nn.Sequential(nn.Conv2d(1, 2, 3), nn.BatchNorm2d(2))
    >>> type(global_batch_norm(net)[1]).__name__
    'GlobalBatchNorm'
    """
    for name, child in module.named_children():
        if isinstance(child, _BatchNorm) and not isinstance(child, GlobalBatchNorm):
            replacement = GlobalBatchNorm(
                child.num_features, child.eps, child.momentum, child.affine, child.track_running_stats
            ).to(next(child.buffers(), torch.empty(0)).device)
            replacement.load_state_dict(child.state_dict())
            setattr(module, name, replacement)
        else:
            global_batch_norm(child)
    return module


def gathered(*tensors: torch.Tensor) -> tuple[torch.Tensor, ...]:
    """Every rank's tensors concatenated along their first axis, in rank order, on every rank.

    For small host-side results (held-out logits for the temperature): ranks
    may hold different lengths, also none. Outside a process group the
    tensors come back as they are.

    Parameters
    ----------
    *tensors : torch.Tensor
        This rank's parts (moved to the CPU).

    Returns
    -------
    tuple of torch.Tensor

    >>> gathered(torch.arange(3))[0].tolist()
    [0, 1, 2]
    """
    if not (dist.is_available() and dist.is_initialized()) or dist.get_world_size() == 1:
        return tensors
    parts = [None] * dist.get_world_size()
    dist.all_gather_object(parts, [tensor.cpu() for tensor in tensors])
    return tuple(torch.cat([part[i] for part in parts]) for i in range(len(tensors)))


@dataclass(frozen=True)
class RankRates:
    """What one data-parallel rank computes and what a gradient all-reduce costs, roughly.

    The figures decide whether more ranks pay, so they err towards the
    all-reduce. CPU: a cnn2d step of 32 sections of 64 x 64 (28 GFLOP with
    its backward pass) took 0.36 s on two cores here, and a gloo all-reduce
    of the mlp's gradients about 3 ms with both cores busy. CUDA: a
    conservative share of a data-centre GPU and NCCL between GPUs.
    """

    flops_per_second: float
    all_reduce_latency_s: float
    all_reduce_bytes_per_second: float


RANK_RATES = {"cpu": RankRates(7e10, 3e-3, 1e9), "cuda": RankRates(2e13, 1e-4, 1e10)}

#: More ranks must promise at least this speed-up over one: the rates are estimates.
SPEEDUP_THAT_PAYS = 1.25


def training_flops(model: nn.Module, sample_shape: tuple[int, ...]) -> float:
    """FLOPs of one training sample through ``model``: its forward pass and a backward of twice that.

    Counted on the meta device (no memory, no compute): the model is copied there.

    Parameters
    ----------
    model : torch.nn.Module
        The network.
    sample_shape : tuple of int
        One input, without the batch axis.

    Returns
    -------
    float

    >>> training_flops(nn.Linear(10, 4), (10,))
    240.0
    """
    from torch.utils.flop_counter import FlopCounterMode

    shadow = copy.deepcopy(model).to("meta")
    with FlopCounterMode(display=False) as counter:
        shadow(torch.zeros((1, *sample_shape), device="meta"))
    return 3.0 * counter.get_total_flops()


def gradient_bytes(model: nn.Module) -> int:
    """Bytes of the gradients one all-reduce moves: every trainable parameter, float32.

    Parameters
    ----------
    model : torch.nn.Module
        The network.

    Returns
    -------
    int

    >>> gradient_bytes(nn.Linear(10, 4))
    176
    """
    return 4 * sum(parameter.numel() for parameter in model.parameters() if parameter.requires_grad)


def data_parallel_speedup(step_flops: float, gradient_size: int, ranks: int, device_type: str) -> float:
    """How much faster ``ranks`` ranks run one global step than a single rank, by :data:`RANK_RATES`.

    Each rank computes its share of the step, then all of them wait for one
    ring all-reduce of the gradients.

    Parameters
    ----------
    step_flops : float
        FLOPs of one global step (all its samples, forward and backward).
    gradient_size : int
        Bytes of the gradients.
    ranks : int
        Ranks, each with its own compute (a host's cores, a GPU).
    device_type : {"cpu", "cuda"}
        Which rates apply.

    Returns
    -------
    float

    >>> round(data_parallel_speedup(2.8e10, 2_000_000, 2, "cpu"), 2)  # cnn2d, a batch of 32
    1.95
    >>> round(data_parallel_speedup(3.2e6, 68_000, 2, "cpu"), 2)  # the mlp: the all-reduce dominates
    0.01
    """
    if ranks <= 1:
        return 1.0
    rates = RANK_RATES[device_type]
    compute = step_flops / rates.flops_per_second
    ring = 2 * (ranks - 1) / ranks * gradient_size / rates.all_reduce_bytes_per_second
    return compute / (compute / ranks + rates.all_reduce_latency_s + ring)


def ranks_that_pay(
    step_flops: float, gradient_size: int, capacity: int, device_type: str, allowed=None
) -> int:
    """The rank count, up to ``capacity``, that trains fastest; 1 unless more clearly pay.

    Parameters
    ----------
    step_flops : float
        FLOPs of one global step.
    gradient_size : int
        Bytes of the gradients.
    capacity : int
        Ranks with compute of their own available.
    device_type : {"cpu", "cuda"}
        Which rates apply.
    allowed : callable, optional
        ``allowed(n)``: whether ``n`` ranks are possible at all (a shard count they must divide).

    Returns
    -------
    int

    >>> ranks_that_pay(2.8e10, 2_000_000, 4, "cpu"), ranks_that_pay(3.2e6, 68_000, 4, "cpu")
    (4, 1)
    >>> ranks_that_pay(2.8e10, 2_000_000, 4, "cpu", allowed=lambda n: 6 % n == 0)
    3
    """
    speedups = {
        n: data_parallel_speedup(step_flops, gradient_size, n, device_type)
        for n in range(1, capacity + 1)
        if allowed is None or allowed(n)
    }
    best = max(speedups, key=speedups.get)
    return best if speedups[best] >= SPEEDUP_THAT_PAYS else 1
