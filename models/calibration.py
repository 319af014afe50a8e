"""Calibrated probabilities: temperature scaling, its error measure, and uncertainty.

A network trained with cross-entropy is usually over-confident: its top-class
softmax says 0.99 where it is right 90% of the time. Temperature scaling
(Guo et al., 2017) divides the logits by one number T, fitted on held-out
patches to minimise their negative log-likelihood; the classes do not change
(argmax is unchanged), only how sure the probabilities say they are.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

#: Labelled pixels the temperature is fitted on at most (a deterministic subset beyond that).
MAX_FIT_PIXELS = 200_000
#: Temperatures outside this range mean the held-out patches say nothing useful.
TEMPERATURE_RANGE = (0.05, 20.0)


def fit_temperature(logits: torch.Tensor, targets: torch.Tensor, iterations: int = 50) -> float:
    """The temperature T that minimises the NLL of ``softmax(logits / T)`` on labelled samples.

    Parameters
    ----------
    logits : torch.Tensor
        ``(N, C)`` logits of held-out samples.
    targets : torch.Tensor
        ``(N,)`` their classes.
    iterations : int
        L-BFGS iterations (on log T, so T stays positive).

    Returns
    -------
    float
        T > 1 softens over-confident probabilities; 1.0 without samples.

    >>> torch.manual_seed(0) and None
    >>> targets = torch.randint(0, 3, (2000,))
    >>> logits = 10 * F.one_hot(targets, 3).float()  # sure of every sample...
    >>> logits[:400] = 10 * F.one_hot((targets[:400] + 1) % 3, 3).float()  # ...and wrong on 20%
    >>> round(fit_temperature(logits, targets), 1)  # 10 / ln 8: the top class gets 0.8
    4.8
    """
    if not len(targets):
        return 1.0
    logits, targets = logits.detach().float().cpu(), targets.detach().long().cpu()
    log_t = torch.zeros((), requires_grad=True)
    optimizer = torch.optim.LBFGS([log_t], lr=0.5, max_iter=iterations, line_search_fn="strong_wolfe")

    def closure():
        optimizer.zero_grad()
        loss = F.cross_entropy(logits / log_t.exp(), targets)
        loss.backward()
        return loss

    optimizer.step(closure)
    return float(np.clip(log_t.exp().item(), *TEMPERATURE_RANGE))


def expected_calibration_error(probabilities: np.ndarray, targets: np.ndarray, bins: int = 15) -> float:
    """Expected calibration error of the top-class probability (equal-width bins).

    Parameters
    ----------
    probabilities : numpy.ndarray
        ``(N, C)`` class probabilities.
    targets : numpy.ndarray
        ``(N,)`` true classes.
    bins : int
        Confidence bins over [0, 1].

    Returns
    -------
    float
        The mean |accuracy - confidence| over the bins, weighted by their counts.

    >>> expected_calibration_error(np.array([[0.9, 0.1], [0.9, 0.1]]), np.array([0, 1]))
    0.4
    """
    confidence = probabilities.max(axis=1)
    correct = probabilities.argmax(axis=1) == targets
    which = np.minimum((confidence * bins).astype(int), bins - 1)
    error = 0.0
    for b in range(bins):
        members = which == b
        if members.any():
            error += members.mean() * abs(correct[members].mean() - confidence[members].mean())
    return round(float(error), 6)


def normalised_entropy(probabilities: torch.Tensor, class_axis: int = 1) -> torch.Tensor:
    """Entropy of the class probabilities divided by its maximum, log(C): 0 certain, 1 uniform.

    Parameters
    ----------
    probabilities : torch.Tensor
        Probabilities summing to 1 along ``class_axis``.
    class_axis : int
        The classes' axis.

    Returns
    -------
    torch.Tensor
        The other axes, values in [0, 1].

    >>> normalised_entropy(torch.tensor([[1.0, 0.0], [0.5, 0.5]])).tolist()
    [0.0, 1.0]
    """
    classes = probabilities.shape[class_axis]
    terms = torch.special.xlogy(probabilities, probabilities)  # 0 log 0 = 0
    return (-terms.sum(class_axis) / np.log(max(classes, 2))).clamp(0, 1) + 0.0  # no -0.0


@torch.no_grad()
def held_out_logits(
    network: nn.Module, data: tuple[torch.Tensor, torch.Tensor], batch: int = 64
) -> tuple[torch.Tensor, torch.Tensor]:
    """Logits ``(N, C)`` and classes of the labelled pixels of held-out patches (at most MAX_FIT_PIXELS).

    Training keeps these from its last validation pass (:func:`labelled_pixels`
    per batch, then :func:`fit_sample`) rather than running the network again.

    Parameters
    ----------
    network : torch.nn.Module
        The trained model.
    data : tuple of torch.Tensor
        Inputs and targets as training uses them (-1 unlabelled).
    batch : int
        Patches per forward pass.

    Returns
    -------
    tuple of torch.Tensor
        On the CPU.
    """
    network.eval()
    device = next(network.parameters()).device
    x, y = data
    return fit_sample(
        [
            labelled_pixels(network(x[start : start + batch].to(device)), y[start : start + batch].to(device))
            for start in range(0, len(x), batch)
        ]
    )


def labelled_pixels(logits: torch.Tensor, targets: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """One batch's logits, one float32 row per labelled pixel, and their classes, on the CPU.

    Parameters
    ----------
    logits : torch.Tensor
        ``(batch, C, ...)`` logits.
    targets : torch.Tensor
        ``(batch, ...)`` classes, -1 unlabelled.

    Returns
    -------
    tuple of torch.Tensor

    >>> rows, classes = labelled_pixels(torch.arange(8.0).reshape(1, 2, 4), torch.tensor([[0, -1, 1, 1]]))
    >>> rows.tolist(), classes.tolist()
    ([[0.0, 4.0], [2.0, 6.0], [3.0, 7.0]], [0, 1, 1])
    """
    flat = logits.float().movedim(1, -1).reshape(-1, logits.shape[1])  # classes last, one row per pixel
    labelled = targets.reshape(-1) >= 0
    return flat[labelled].cpu(), targets.reshape(-1)[labelled].cpu()


def fit_sample(parts: list[tuple[torch.Tensor, torch.Tensor]]) -> tuple[torch.Tensor, torch.Tensor]:
    """The batches' labelled pixels together, every k-th beyond :data:`MAX_FIT_PIXELS`.

    Parameters
    ----------
    parts : list of tuple of torch.Tensor
        :func:`labelled_pixels` of each batch, in order.

    Returns
    -------
    tuple of torch.Tensor
    """
    logits, targets = torch.cat([part[0] for part in parts]), torch.cat([part[1] for part in parts])
    step = max(1, -(-len(targets) // MAX_FIT_PIXELS))
    return logits[::step], targets[::step]
