"""A synthetic labelled survey with geological structure, deterministic by seed.

Six facies in layers, folded and cut by a normal fault, with a sinuous
channel and a chaotic mass-transport unit; reflectivity is convolved with a
Ricker wavelet and noise is added. Small enough to make in seconds.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

CLASS_NAMES = ("parallel", "transparent", "channel", "chaotic", "bright", "basement")
DEFAULT_SHAPE = (96, 96, 128)


@dataclass(frozen=True)
class SyntheticSurvey:
    amplitude: np.ndarray  # (inline, crossline, sample) float32
    labels: np.ndarray  # (inline, crossline, sample) int16
    class_names: tuple[str, ...]
    sample_interval_ms: float = 4.0
    horizons: np.ndarray | None = (
        None  # (5, inline, crossline): the tops of the layers below the first, in samples
    )


def ricker(frequency_hz: float, dt_ms: float, half_length: int = 16) -> np.ndarray:
    """A zero-phase Ricker wavelet sampled at ``dt_ms``.

    Parameters
    ----------
    frequency_hz : float
    dt_ms : float
    half_length : int

    Returns
    -------
    np.ndarray

    >>> w = ricker(25, 4); int(np.argmax(w)), round(float(w.max()), 3)
    (16, 1.0)
    """
    t = np.arange(-half_length, half_length + 1) * dt_ms / 1000.0
    arg = (np.pi * frequency_hz * t) ** 2
    return (1 - 2 * arg) * np.exp(-arg)


def _horizons(shape, rng) -> np.ndarray:
    """Depths (in samples) of the 6 layer tops, folded and faulted: (6, il, xl)."""
    n_il, n_xl, n_samples = shape
    il, xl = np.meshgrid(np.linspace(0, 1, n_il), np.linspace(0, 1, n_xl), indexing="ij")
    fold = np.sin(2 * np.pi * (1.2 * il + rng.uniform(0, 1))) * np.cos(2 * np.pi * (0.8 * xl))
    dip = 0.08 * il + 0.05 * xl
    fault_side = (0.6 * il + 0.4 * xl) > rng.uniform(0.45, 0.55)
    fractions = np.array([0.0, 0.18, 0.34, 0.5, 0.68, 0.84])
    tops = []
    for n, fraction in enumerate(fractions):
        depth = fraction + (0.04 * fold + dip) * (n > 0)
        depth = depth + 0.05 * fault_side * (n > 0)
        tops.append(depth * n_samples)
    return np.stack(tops)


def _stratal_series(rng, length, density, strength) -> np.ndarray:
    """A 1D reflectivity series along relative geological time."""
    series = rng.normal(0, strength, length) * (rng.random(length) < density)
    return series


def make_synthetic_survey(shape=DEFAULT_SHAPE, seed: int = 0, noise: float = 0.15) -> SyntheticSurvey:
    """Make the amplitude and label volumes; the same seed gives the same survey.

    Parameters
    ----------
    shape
        The array's shape.
    seed : int
        Random seed.
    noise : float

    Returns
    -------
    SyntheticSurvey
    """
    rng = np.random.default_rng(seed)
    n_il, n_xl, n_samples = shape
    tops = _horizons(shape, rng)
    k = np.arange(n_samples)[None, None, :]
    layer = (k >= tops[:, :, :, None]).sum(axis=0) - 1  # layer index 0..5 per voxel
    layer = np.clip(layer, 0, 5)
    facies_of_layer = np.array([0, 1, 4, 3, 4, 5])
    labels = facies_of_layer[layer].astype(np.int16)
    labels[layer == 2] = 1  # a second transparent interval below the channel level
    # relative position inside each layer, so reflectors follow the structure
    top = _gather(tops, layer)
    bottom = _gather(np.concatenate([tops[1:], np.full((1, n_il, n_xl), float(n_samples))]), layer)
    relative = (k - top) / np.maximum(bottom - top, 1.0)
    fine = 400
    settings = {0: (0.5, 1.0), 1: (0.05, 0.3), 2: (0.6, 2.0), 4: (0.7, 2.5), 5: (0.15, 1.5)}
    reflectivity = np.zeros(shape, np.float32)
    position = np.clip((relative * (fine - 1)).astype(int), 0, fine - 1)
    for facies, (density, strength) in settings.items():
        series = _stratal_series(rng, fine, density, strength)
        where = labels == facies
        reflectivity[where] = series[position[where]]
    chaotic = labels == 3
    reflectivity[chaotic] = rng.normal(0, 1.2, int(chaotic.sum()))
    labels, reflectivity = _add_channel(labels, reflectivity, tops, rng)
    amplitude = _convolve(reflectivity, ricker(25.0, 4.0))
    amplitude += rng.normal(0, noise * amplitude.std(), shape)
    return SyntheticSurvey(amplitude.astype(np.float32), labels, CLASS_NAMES, horizons=tops[1:])


def _gather(surfaces: np.ndarray, layer: np.ndarray) -> np.ndarray:
    return np.take_along_axis(surfaces[:, :, :, None], layer[None], 0)[0]


def _add_channel(labels, reflectivity, tops, rng):
    """Cut a sinuous channel with bright fill into the transparent unit."""
    n_il, n_xl, n_samples = labels.shape
    il = np.arange(n_il)[:, None, None]
    xl = np.arange(n_xl)[None, :, None]
    k = np.arange(n_samples)[None, None, :]
    centre = n_xl * (0.5 + 0.25 * np.sin(2 * np.pi * il / n_il * 1.5 + rng.uniform(0, 6)))
    half_width = max(n_xl * 0.08, 3)
    across = (xl - centre) / half_width
    base_top = tops[1][:, :, None] + 2
    depth = 0.14 * n_samples * np.clip(1 - across**2, 0, None)
    inside = (k >= base_top) & (k < base_top + depth) & (np.abs(across) < 1)
    labels = labels.copy()
    labels[inside] = 2
    fill = np.where((k % 5) == 0, 2.5, 0.3) * rng.choice([-1, 1], size=(1, 1, n_samples))
    reflectivity = np.where(inside, np.broadcast_to(fill, labels.shape), reflectivity)
    return labels, reflectivity.astype(np.float32)


def _convolve(reflectivity: np.ndarray, wavelet: np.ndarray) -> np.ndarray:
    """Convolve every trace with the wavelet (same length, zero-phase)."""
    n = reflectivity.shape[-1] + len(wavelet) - 1
    spectrum = np.fft.rfft(reflectivity, n) * np.fft.rfft(wavelet, n)
    full = np.fft.irfft(spectrum, n)
    half = len(wavelet) // 2
    return full[..., half : half + reflectivity.shape[-1]]
