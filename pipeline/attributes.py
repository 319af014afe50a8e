"""Seismic attributes along the traces: envelope, instantaneous phase and frequency, RMS amplitude.

Each is computed on whole traces (the last axis) with SciPy: the analytic
signal from :func:`scipy.signal.hilbert`, the running mean from
:func:`scipy.ndimage.uniform_filter1d`. Non-finite samples count as zero in
the transform and stay NaN in the result. The command that plans them over a
store is :mod:`seisfacies.workflows.attributes`.

>>> trace = np.cos(2 * np.pi * 25 * np.arange(0, 0.4, 0.004))[None]   # 25 Hz, 4 ms sampling
>>> frequency = compute("frequency", trace, sample_interval=4.0, domain="time")
>>> round(float(np.median(frequency)), 1)
25.0
"""

from __future__ import annotations

import numpy as np

from .exceptions import ConfigError

#: Each attribute: what it is and its units (time domain; depth replaces Hz by cycles per km).
ATTRIBUTES = {
    "envelope": ("Envelope (instantaneous amplitude): magnitude of the analytic signal", "1"),
    "phase": ("Instantaneous phase of the analytic signal", "degree"),
    "frequency": ("Instantaneous frequency: rate of change of the unwrapped phase", "Hz"),
    "rms": ("RMS amplitude in a sliding window along the trace", "1"),
}
#: The RMS window when none is given, in samples.
DEFAULT_RMS_SAMPLES = 9


def parse_attributes(text: tuple[str, ...], sample_interval: float) -> dict[str, int | None]:
    """``envelope,rms:24`` -> ``{"envelope": None, "rms": 7}``: names and RMS windows in samples.

    Parameters
    ----------
    text : tuple of str
        The ``--add`` entries; ``rms:WINDOW`` takes a window in the store's
        vertical units, rounded to an odd number of samples.
    sample_interval : float
        The store's sample interval, in the same units.

    Returns
    -------
    dict
        Attribute name -> window in samples (None for the others).

    >>> parse_attributes(("envelope", "rms:24"), 4.0)
    {'envelope': None, 'rms': 7}
    """
    chosen: dict[str, int | None] = {}
    for entry in text:
        name, _, window = entry.partition(":")
        if name not in ATTRIBUTES or (window and name != "rms"):
            raise ConfigError(
                f"option --add {entry!r}: not an attribute; choose from {', '.join(ATTRIBUTES)} "
                "(rms:WINDOW takes a window in the store's units)"
            )
        chosen[name] = _odd_samples(window, sample_interval, entry) if name == "rms" else None
    return chosen


def _odd_samples(window: str, sample_interval: float, entry: str) -> int:
    if not window:
        return DEFAULT_RMS_SAMPLES
    try:
        length = float(window)
    except ValueError:
        length = -1.0
    if length <= 0:
        raise ConfigError(f"option --add {entry!r}: the RMS window must be a positive length, e.g. rms:24")
    return max(1, int(round(length / sample_interval)) // 2 * 2 + 1)


def compute(
    name: str, traces: np.ndarray, sample_interval: float, domain: str, window: int | None = None
) -> np.ndarray:
    """One attribute of traces along their last axis.

    Parameters
    ----------
    name : str
        A key of :data:`ATTRIBUTES`.
    traces : numpy.ndarray
        ``(..., samples)`` amplitude.
    sample_interval : float
        ms in time, m in depth.
    domain : str
        ``time`` or ``depth``.
    window : int, optional
        The RMS window in samples.

    Returns
    -------
    numpy.ndarray
        float32, the traces' shape; NaN where the amplitude is not finite.
    """
    from scipy.ndimage import uniform_filter1d
    from scipy.signal import hilbert

    finite = np.isfinite(traces)
    signal = np.where(finite, traces, 0.0).astype(np.float64)
    if name == "rms":
        mean_square = uniform_filter1d(signal**2, size=window or DEFAULT_RMS_SAMPLES, axis=-1, mode="reflect")
        values = np.sqrt(np.maximum(mean_square, 0.0))
    else:
        analytic = hilbert(signal, axis=-1)
        if name == "envelope":
            values = np.abs(analytic)
        elif name == "phase":
            values = np.angle(analytic, deg=True)
        else:
            cycles = np.gradient(np.unwrap(np.angle(analytic), axis=-1), axis=-1) / (2 * np.pi)
            values = cycles / (sample_interval / 1000.0)  # per second in time, per km in depth
    return np.where(finite, values, np.nan).astype(np.float32)


def attribute_attrs(name: str, domain: str, window: int | None, sample_interval: float) -> dict:
    """CF attributes of an attribute variable.

    Parameters
    ----------
    name : str
        A key of :data:`ATTRIBUTES`.
    domain : str
        ``time`` or ``depth``.
    window : int, optional
        The RMS window in samples.
    sample_interval : float
        The store's sample interval.

    Returns
    -------
    dict

    >>> attribute_attrs("frequency", "depth", None, 5.0)["units"]
    'km-1'
    """
    long_name, units = ATTRIBUTES[name]
    if units == "Hz" and domain == "depth":
        units = "km-1"
    attrs = {"long_name": long_name, "units": units, "source_variable": "amplitude"}
    if window is not None:
        attrs["window_samples"] = window
        attrs["window"] = window * sample_interval
    return attrs
