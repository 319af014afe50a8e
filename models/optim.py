"""Optimisers by name, following the course's update rules.

* ``gd``: W := W - a dW on the full training set (batch = all patches);
* ``sgd``: the same on mini-batches;
* ``momentum``: V = b V + (1 - b) dW; W := W - a V, with V starting at 0;
* ``rmsprop``: S = b S + (1 - b) dW^2; W := W - a dW / (sqrt(S) + e);
* ``adam``: momentum and RMSprop with bias correction.
"""

from __future__ import annotations

import math

import torch

OPTIMIZERS = ("gd", "sgd", "momentum", "rmsprop", "adam")
SCHEDULES = ("constant", "step", "cosine")


class CourseMomentum(torch.optim.Optimizer):
    """Momentum as the course writes it: an exponential average of gradients.

    ``torch.optim.SGD(momentum=b, dampening=b)`` has the same recursion but
    starts V at the first gradient instead of at 0, so its first step is
    ``1 / (1 - b)`` times larger; this keeps the textbook rule exactly.
    """

    def __init__(self, params, lr: float, beta: float = 0.9, weight_decay: float = 0.0):
        super().__init__(params, {"lr": lr, "beta": beta, "weight_decay": weight_decay})

    @torch.no_grad()
    def step(self, closure=None):
        loss = closure() if closure is not None else None
        for group in self.param_groups:
            for param in group["params"]:
                if param.grad is None:
                    continue
                grad = (
                    param.grad.add(param, alpha=group["weight_decay"])
                    if group["weight_decay"]
                    else param.grad
                )
                state = self.state[param]
                if "velocity" not in state:
                    state["velocity"] = torch.zeros_like(param)
                velocity = state["velocity"]
                velocity.mul_(group["beta"]).add_(grad, alpha=1 - group["beta"])
                param.add_(velocity, alpha=-group["lr"])
        return loss


def create_optimizer(
    name: str,
    params,
    lr: float,
    weight_decay: float = 0.0,
    beta: float = 0.9,
    beta2: float = 0.999,
    eps: float = 1e-8,
) -> torch.optim.Optimizer:
    """The optimiser ``name`` with the course's hyper-parameter names.

    Parameters
    ----------
    name : str
        One of :data:`OPTIMIZERS`.
    params
    lr : float
    weight_decay : float
    beta : float
    beta2 : float
    eps : float

    Returns
    -------
    torch.optim.Optimizer
    """
    if name in ("gd", "sgd"):
        return torch.optim.SGD(params, lr=lr, weight_decay=weight_decay)
    if name == "momentum":
        return CourseMomentum(params, lr=lr, beta=beta, weight_decay=weight_decay)
    if name == "rmsprop":
        # torch's RMSprop: S = alpha S + (1 - alpha) g^2; W -= lr g / (sqrt(S) + eps): the course's rule
        return torch.optim.RMSprop(params, lr=lr, alpha=beta, eps=eps, weight_decay=weight_decay)
    if name == "adam":
        return torch.optim.Adam(params, lr=lr, betas=(beta, beta2), eps=eps, weight_decay=weight_decay)
    raise ValueError(f"unknown optimizer {name!r}; expected one of {', '.join(OPTIMIZERS)}")


def learning_rate_factor(schedule: str, epoch: int, epochs: int) -> float:
    """Multiplier of the base learning rate at ``epoch`` (0-based).

    Parameters
    ----------
    schedule : str
    epoch : int
    epochs : int
        Number of epochs.

    Returns
    -------
    float

    >>> [round(learning_rate_factor("cosine", e, 4), 3) for e in range(4)]
    [1.0, 0.854, 0.5, 0.146]
    >>> learning_rate_factor("step", 5, 10)
    0.1
    """
    if schedule == "constant":
        return 1.0
    if schedule == "step":
        return 0.1 ** (epoch // max(1, epochs // 2))
    if schedule == "cosine":
        return 0.5 * (1 + math.cos(math.pi * epoch / max(1, epochs)))
    raise ValueError(f"unknown schedule {schedule!r}; expected one of {', '.join(SCHEDULES)}")
