"""A fully connected network on a trace window: a = g(W x + b), layer after layer."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from .registry import activation, register_model


@dataclass(frozen=True)
class MLPConfig:
    in_samples: int = 64  # length of the trace window
    n_classes: int = 6
    widths: tuple[int, ...] = (128, 64)
    activation: str = "relu"
    dropout: float = 0.0


@register_model("mlp", MLPConfig, patch_kinds=("trace",), dense=False)
class MLP(nn.Module):
    """Trace window (B, S) or (B, 1, S) -> class logits (B, n_classes)."""

    def __init__(self, config: MLPConfig):
        super().__init__()
        self.config = config
        layers: list[nn.Module] = []
        width = config.in_samples
        for hidden in config.widths:
            layers += [nn.Linear(width, hidden), activation(config.activation)]
            if config.dropout:
                layers.append(nn.Dropout(config.dropout))
            width = hidden
        layers.append(nn.Linear(width, config.n_classes))  # softmax lives in the loss
        self.layers = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x.reshape(x.shape[0], -1)  # (B, S)
        return self.layers(x)  # (B, n_classes)
