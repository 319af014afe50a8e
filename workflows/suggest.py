"""``seisfacies suggest``: the inline numbers to label next, from the store's ``uncertainty``."""

from __future__ import annotations

from pathlib import Path

from seisfacies.pipeline.store import open_store
from seisfacies.pipeline.suggest import choose_inlines, inline_profiles
from seisfacies.workflows.config import SuggestConfig


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
        ``inlines`` (inline numbers, best first) and their ``scores``.
    """
    dataset = open_store(store, require=("uncertainty",))
    uncertainty, labelled = inline_profiles(dataset)
    picks = choose_inlines(uncertainty, labelled, config.count)
    numbers = dataset.inline.values
    return {
        "inlines": [int(numbers[position]) for position, _ in picks],
        "scores": [score for _, score in picks],
    }
