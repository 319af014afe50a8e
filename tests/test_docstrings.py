"""Every docstring example in the installed package runs and gives what it shows.

Run through the installed ``seisfacies`` names (not the repository's folders),
so each module is imported once, under the name users import it by.
"""

from __future__ import annotations

import doctest
import importlib
import pkgutil

import pytest

import seisfacies.models
import seisfacies.pipeline
import seisfacies.workflows


def _modules() -> list[str]:
    names = ["seisfacies"]
    for package in (seisfacies.pipeline, seisfacies.models, seisfacies.workflows):
        names.append(package.__name__)
        names += [
            info.name
            for info in pkgutil.walk_packages(package.__path__, package.__name__ + ".")
            if not info.name.startswith("seisfacies.workflows.toplevel")  # installed as `seisfacies`
        ]
    return names


MODULES = _modules()


def _examples(name: str) -> int:
    finder = doctest.DocTestFinder()
    return sum(len(test.examples) for test in finder.find(importlib.import_module(name)))


@pytest.mark.parametrize("name", [name for name in MODULES if _examples(name)])
def test_docstring_examples(name):
    module = importlib.import_module(name)
    flags = doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE
    result = doctest.testmod(module, optionflags=flags, raise_on_error=False, verbose=False)
    assert result.failed == 0, f"{result.failed} of {result.attempted} examples in {name} failed"


def test_examples_are_found():
    # a broken walk would silently run nothing
    assert sum(_examples(name) for name in MODULES) >= 47
