"""``seisfacies suggest``: the inline numbers to label next, from the store's ``uncertainty``."""

from __future__ import annotations

from pathlib import Path

from ..pipeline.store import open_store
from ..pipeline.suggest import choose_inlines, inline_profiles
from .config import SuggestConfig


def suggest_inlines(store: str | Path, config: SuggestConfig) -> dict:
    """The ``count`` inlines whose labels would help most: uncertain, and spread out.

    Parameters
    ----------
    store : str or Path
        A store with ``uncertainty`` (``seisfacies predict --uncertainty``).
    config : SuggestConfig
        How many inlines.

    Returns
    -------
    dict
        ``inlines`` (inline numbers, best first), their ``scores`` and the
        ``labelled_inlines`` already labelled.
    """
    return suggested_inlines(open_store(store, require=("uncertainty",)), config.count)


def suggested_inlines(dataset, count: int) -> dict:
    """:func:`suggest_inlines` on an open store (one with ``uncertainty``).

    Parameters
    ----------
    dataset : xarray.Dataset
        The store, as :func:`~seisfacies.pipeline.store.open_store` gives it.
    count : int
        How many inlines.

    Returns
    -------
    dict
        As :func:`suggest_inlines` returns it.
    """
    uncertainty, labelled = inline_profiles(dataset)
    picks = choose_inlines(uncertainty, labelled, count)
    numbers = dataset.inline.values
    return {
        "inlines": [int(numbers[position]) for position, _ in picks],
        "scores": [score for _, score in picks],
        "labelled_inlines": [int(number) for number in numbers[labelled]],
    }
