"""Data-parallel helpers: batch normalisation over the global batch, on any device.

``torch.nn.SyncBatchNorm`` refuses CPU tensors, so ranks on CPU workers (gloo)
would each normalise with their own half-batch statistics, and two ranks
would not train like one process with the same global batch. This module
replaces every BatchNorm layer with one that sums its statistics across ranks
with an autograd-aware all-reduce, so the forward and the gradients equal
those of one process holding the whole batch.
"""

from __future__ import annotations

import warnings

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
