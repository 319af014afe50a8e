"""Convolutional models: fully convolutional 2D/3D encoder-decoders and a patch classifier."""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from .registry import activation, register_model


@dataclass(frozen=True)
class CNNConfig:
    n_classes: int = 6
    base: int = 16  # channels of the first level; doubled at each level down
    depth: int = 2  # number of 2x down-samplings
    activation: str = "relu"
    in_channels: int = 1


def _block(conv, norm, channels_in: int, channels_out: int, name: str) -> nn.Sequential:
    """Two 3x3(x3) convolutions, each with normalisation and activation."""
    return nn.Sequential(
        conv(channels_in, channels_out, 3, padding=1),
        norm(channels_out),
        activation(name),
        conv(channels_out, channels_out, 3, padding=1),
        norm(channels_out),
        activation(name),
    )


def receptive_radius(depth: int) -> int:
    """An upper bound on how far (in input pixels) an output pixel sees.

    Each level l contributes two 3x3 convolutions at stride 2**l on the way
    down and up, plus the pooling and transposed convolution between levels.

    Parameters
    ----------
    depth : int

    Returns
    -------
    int

    >>> receptive_radius(2)
    27
    """
    down = sum(2 * 2**level for level in range(depth + 1))
    up = sum(2 * 2**level + 2**level for level in range(depth))
    return down + up + 2**depth


class _EncoderDecoder(nn.Module):
    """U-Net-like: encoder of ``depth`` levels, decoder with skip connections."""

    conv: type
    norm: type
    up: type
    pool: type

    @staticmethod
    def input_grid(config: CNNConfig) -> tuple[int, int]:
        """How far an output pixel sees, and the grid (2**depth) a block must align to.

        Parameters
        ----------
        config : CNNConfig
            The model's config.

        Returns
        -------
        tuple of int
            Receptive radius in pixels, and the down-sampling multiple.
        """
        return receptive_radius(config.depth), 2**config.depth

    def __init__(self, config: CNNConfig):
        super().__init__()
        self.config = config
        widths = [config.base * 2**level for level in range(config.depth + 1)]
        self.down = nn.ModuleList()
        channels = config.in_channels
        for width in widths:
            self.down.append(_block(self.conv, self.norm, channels, width, config.activation))
            channels = width
        self.up_convs = nn.ModuleList(self.up(w * 2, w, 2, stride=2) for w in reversed(widths[:-1]))
        self.up_blocks = nn.ModuleList(
            _block(self.conv, self.norm, w * 2, w, config.activation) for w in reversed(widths[:-1])
        )
        self.head = self.conv(widths[0], config.n_classes, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        spatial = x.shape[2:]
        multiple = 2**self.config.depth
        pad = [p for size in reversed(spatial) for p in (0, (-size) % multiple)]
        x = F.pad(x, pad, mode="replicate") if any(pad) else x  # sizes divisible by 2**depth
        skips = []
        for level, block in enumerate(self.down):
            x = block(x if level == 0 else self.pool(2)(x))
            skips.append(x)
        for up, block, skip in zip(self.up_convs, self.up_blocks, reversed(skips[:-1])):
            x = block(torch.cat([up(x), skip], dim=1))
        logits = self.head(x)  # (B, n_classes, *padded)
        return logits[(...,) + tuple(slice(0, size) for size in spatial)]


@dataclass(frozen=True)
class CNN2DConfig(CNNConfig):
    # three levels: each pixel sees 59 px each way, a whole channel cross-section and its setting;
    # on the hard tuning surveys of benchmarks/quality.py, 0.944 and 0.943 mIoU against 0.941 and 0.921
    # with two levels (9 epochs against 12: less time)
    depth: int = 3


@register_model("cnn2d", CNN2DConfig, patch_kinds=("section",), dense=True, epochs=9)
class CNN2D(_EncoderDecoder):
    """Section crop (B, 1, W, H) -> per-pixel logits (B, n_classes, W, H)."""

    conv, norm, up, pool = nn.Conv2d, nn.BatchNorm2d, nn.ConvTranspose2d, nn.MaxPool2d


@dataclass(frozen=True)
class CNN3DConfig(CNNConfig):
    base: int = 8


@register_model("cnn3d", CNN3DConfig, patch_kinds=("cube",), dense=True)
class CNN3D(_EncoderDecoder):
    """Cube (B, 1, I, X, T) -> per-voxel logits (B, n_classes, I, X, T)."""

    conv, norm, up, pool = nn.Conv3d, nn.BatchNorm3d, nn.ConvTranspose3d, nn.MaxPool3d


@dataclass(frozen=True)
class PatchCNNConfig:
    n_classes: int = 6
    base: int = 16
    n_convs: int = 3
    activation: str = "relu"
    in_channels: int = 1


@register_model("cnn2d_patch", PatchCNNConfig, patch_kinds=("section",), dense=False)
class PatchCNN2D(nn.Module):
    """MalenoV/Waldeland style: section patch (B, 1, W, H) -> centre class logits (B, n_classes)."""

    def __init__(self, config: PatchCNNConfig):
        super().__init__()
        self.config = config
        layers: list[nn.Module] = []
        channels = config.in_channels
        for level in range(config.n_convs):
            width = config.base * 2**level
            layers += [
                nn.Conv2d(channels, width, 3, padding=1),
                nn.BatchNorm2d(width),
                activation(config.activation),
                nn.MaxPool2d(2),
            ]
            channels = width
        self.features = nn.Sequential(*layers)
        self.classify = nn.Sequential(
            nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(channels, config.n_classes)
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classify(self.features(x))  # (B, n_classes)
