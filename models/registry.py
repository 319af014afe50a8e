"""Model registry in the style of timm: ``@register_model`` and ``create_model``."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, fields

from torch import nn

ACTIVATIONS: dict[str, Callable[[], nn.Module]] = {
    "sigmoid": nn.Sigmoid,
    "tanh": nn.Tanh,
    "relu": nn.ReLU,
    "leaky_relu": lambda: nn.LeakyReLU(0.01),
    "elu": nn.ELU,
}


def activation(name: str) -> nn.Module:
    """A fresh activation module by name; unknown names list the allowed ones."""
    if name not in ACTIVATIONS:
        raise ValueError(f"unknown activation {name!r}; expected one of {', '.join(ACTIVATIONS)}")
    return ACTIVATIONS[name]()


@dataclass(frozen=True)
class ModelEntry:
    """A registered model: its factory, config class and the patches it eats."""

    name: str
    factory: Callable
    config_class: type
    patch_kinds: tuple[str, ...]  # "trace", "section", "cube"
    dense: bool  # one class per pixel (True) or per patch (False)


_REGISTRY: dict[str, ModelEntry] = {}


def register_model(name: str, config_class: type, patch_kinds: tuple[str, ...], dense: bool):
    """Class decorator that makes a model buildable by name."""

    def decorate(model_class):
        _REGISTRY[name] = ModelEntry(name, model_class, config_class, patch_kinds, dense)
        return model_class

    return decorate


def list_models() -> list[str]:
    return sorted(_REGISTRY)


def model_entry(name: str) -> ModelEntry:
    if name not in _REGISTRY:
        raise ValueError(f"unknown model {name!r}; expected one of {', '.join(list_models())}")
    return _REGISTRY[name]


def create_model(name: str, **config) -> nn.Module:
    """Build a registered model from keyword config; unknown keys are errors."""
    entry = model_entry(name)
    known = {field.name for field in fields(entry.config_class)}
    unknown = sorted(set(config) - known)
    if unknown:
        raise ValueError(
            f"model {name!r} has no option {unknown[0]!r}; expected some of {', '.join(sorted(known))}"
        )
    return entry.factory(entry.config_class(**config))
