"""What a model knows of the survey it was trained on, and how far another store is from it.

``train`` records :func:`survey_record` and :func:`amplitude_statistics` in
the checkpoint; ``predict`` warns with :func:`survey_differences`.
"""

from __future__ import annotations

import os

import numpy as np
import xarray as xr

from .regions import read_region
from .store import store_chunks, vertical_dim


def survey_record(dataset: xr.Dataset) -> dict:
    """A store's geometry in plain data: vertical axis, its step and the sizes.

    Parameters
    ----------
    dataset : xr.Dataset
        A store (from :func:`open_store`).

    Returns
    -------
    dict
        ``vertical``, ``vertical_step`` and ``sizes``.
    """
    vertical = vertical_dim(dataset)
    values = dataset[vertical].values[:2]
    step = float(values[1] - values[0]) if len(values) > 1 else 0.0
    return {"vertical": vertical, "vertical_step": step, "sizes": dict(dataset.amplitude.sizes)}


def amplitude_statistics(store: str | os.PathLike, dataset: xr.Dataset, chunks: int = 4) -> dict:
    """Mean and standard deviation of the finite amplitudes in a few chunks spread over the volume.

    Parameters
    ----------
    store : str or os.PathLike
        The store.
    dataset : xr.Dataset
        The same store, opened (for its sizes and chunking).
    chunks : int
        How many chunks to read (bounded memory, whatever the survey's size).

    Returns
    -------
    dict
        ``amplitude_mean`` and ``amplitude_std``.
    """
    mean, std = volume_statistics(store, dataset, "amplitude", chunks)
    return {"amplitude_mean": mean, "amplitude_std": std}


def volume_statistics(
    store: str | os.PathLike, dataset: xr.Dataset, variable: str, chunks: int = 4
) -> tuple[float, float]:
    """Mean and standard deviation of a volume's finite values in a few chunks spread over it.

    Parameters
    ----------
    store : str or os.PathLike
        The store.
    dataset : xr.Dataset
        The same store, opened (for its sizes and chunking).
    variable : str
        A variable on the amplitude's dims.
    chunks : int
        How many chunks to read (bounded memory, whatever the survey's size).

    Returns
    -------
    tuple of float
    """
    from .blocks import regions

    plan = regions(dict(dataset.amplitude.sizes), store_chunks(dataset))
    picks = [plan[int(i)] for i in np.linspace(0, len(plan) - 1, min(chunks, len(plan)))]
    values = np.concatenate([read_region(str(store), variable, region).ravel() for region in picks])
    values = values[np.isfinite(values)]
    return float(values.mean()), float(values.std())


#: How far a store may be from the training survey before predict warns.
STD_RATIO_WARN = 3.0


MEAN_SHIFT_WARN = 1.0  # in training standard deviations


def survey_differences(trained: dict, here: dict) -> list[str]:
    """Strong differences between the training survey and a store, as sentences.

    Parameters
    ----------
    trained : dict
        The checkpoint's ``training_survey``.
    here : dict
        The same fields for the store to predict.

    Returns
    -------
    list of str
        Empty when nothing differs strongly.

    >>> survey_differences({"vertical_step": 4.0, "amplitude_mean": 0.0, "amplitude_std": 1.0},
    ...                    {"vertical_step": 2.0, "amplitude_mean": 0.1, "amplitude_std": 9.0})
    ... # doctest: +NORMALIZE_WHITESPACE
    ['its sample interval is 2 where the model was trained on 4',
     "its amplitudes spread 9x as wide as the training survey's (std 9 against 1)"]
    """
    found = []
    step, step_here = trained.get("vertical_step"), here.get("vertical_step")
    if step and step_here and abs(step_here - step) > 0.01 * abs(step):
        found.append(f"its sample interval is {step_here:g} where the model was trained on {step:g}")
    std, std_here = trained.get("amplitude_std"), here.get("amplitude_std")
    if std and std_here:
        ratio = std_here / std
        if ratio > STD_RATIO_WARN or ratio < 1 / STD_RATIO_WARN:
            found.append(
                f"its amplitudes spread {ratio:.2g}x as wide as the training survey's "
                f"(std {std_here:.3g} against {std:.3g})"
            )
        shift = abs(here.get("amplitude_mean", 0.0) - trained.get("amplitude_mean", 0.0)) / std
        if shift > MEAN_SHIFT_WARN:
            found.append(f"its mean amplitude is {shift:.2g} training standard deviations off")
    return found
