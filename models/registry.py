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
    """A fresh activation module by name; unknown names list the allowed ones.

    Parameters
    ----------
    name : str
        One of :data:`ACTIVATIONS`.

    Returns
    -------
    torch.nn.Module
    """
    if name not in ACTIVATIONS:
        raise ValueError(f"unknown activation {name!r}; expected one of {', '.join(ACTIVATIONS)}")
    return ACTIVATIONS[name]()


@dataclass(frozen=True)
class ModelEntry:
    """A registered model: its factory, config class and the patches it eats."""

    name: str
    factory: Callable
    config_class: type
    patch_kinds: tuple[str, ...]  # "trace", "section", "cube"; the first is cut for it by default
    dense: bool  # one class per pixel (True) or per patch (False)
    epochs: int = 12  # what ``train`` runs when not told

    @property
    def channel_axis(self) -> bool:
        """Whether the input has a channel axis ``(N, 1, ...)``; trace models take ``(N, S)``."""
        return "trace" not in self.patch_kinds

    def sample_shape(self, kind: str, size: int, channels: int = 1) -> tuple[int, ...]:
        """One input sample's shape, without the batch axis, for patches of ``kind`` and ``size``.

        Parameters
        ----------
        kind : {"trace", "section", "cube"}
            The patch kind.
        size : int
            The patches' edge in samples.
        channels : int
            Input channels (models with a channel axis).

        Returns
        -------
        tuple of int

        >>> model_entry("cnn2d").sample_shape("section", 64, 2), model_entry("mlp").sample_shape("trace", 64)
        ((2, 64, 64), (64,))
        """
        grid = (size,) * {"trace": 1, "section": 2, "cube": 3}[kind]
        return (channels, *grid) if self.channel_axis else grid

    def input_grid(self, config: dict) -> tuple[int, int]:
        """Receptive radius and down-sampling multiple of a model built from ``config``.

        Parameters
        ----------
        config : dict
            The model's config (a checkpoint's ``model_config``).

        Returns
        -------
        tuple of int
            ``(0, 1)`` for a model that classifies each patch as a whole: the
            patch itself is then all it sees.
        """
        grid = getattr(self.factory, "input_grid", None)
        if grid is None:
            return 0, 1
        return grid(self.config_class(**tuples_from_lists(config)))


_REGISTRY: dict[str, ModelEntry] = {}


def register_model(
    name: str, config_class: type, patch_kinds: tuple[str, ...], dense: bool, epochs: int = 12
):
    """Class decorator that makes a model buildable by name.

    Parameters
    ----------
    name : str
        The name ``--model`` takes.
    config_class : type
        A dataclass of the model's options; the class is built as ``cls(config)``.
    patch_kinds : tuple of str
        Patch kinds it trains on ("trace", "section", "cube"); the first is the default.
    dense : bool
        One class per pixel (fully convolutional) or one per patch.
    epochs : int, optional
        The epochs ``train`` runs when not told.

    Returns
    -------
    callable
        The decorator; it returns the class unchanged.
    """

    def decorate(model_class):
        _REGISTRY[name] = ModelEntry(name, model_class, config_class, patch_kinds, dense, epochs)
        return model_class

    return decorate


def tuples_from_lists(config: dict) -> dict:
    """Lists (as checkpoints store them) back to the tuples config dataclasses hold.

    Parameters
    ----------
    config : dict
        A stored model config.

    Returns
    -------
    dict

    >>> tuples_from_lists({"widths": [8, 16], "depth": 2})
    {'widths': (8, 16), 'depth': 2}
    """
    return {key: tuple(value) if isinstance(value, list) else value for key, value in config.items()}


def list_models() -> list[str]:
    """The registered model names.

    Returns
    -------
    list of str
        Sorted names.
    """
    return sorted(_REGISTRY)


def model_entry(name: str) -> ModelEntry:
    """The registry entry of a model.

    Parameters
    ----------
    name : str
        A registered name.

    Returns
    -------
    ModelEntry
        Unknown names raise ValueError listing the known ones.
    """
    if name not in _REGISTRY:
        raise ValueError(f"unknown model {name!r}; expected one of {', '.join(list_models())}")
    return _REGISTRY[name]


def create_model(name: str, **config) -> nn.Module:
    """Build a registered model from keyword config; unknown keys are errors.

    Parameters
    ----------
    name : str
        A registered model name.
    **config
        Fields of its config dataclass.

    Returns
    -------
    torch.nn.Module
    """
    entry = model_entry(name)
    known = {field.name for field in fields(entry.config_class)}
    unknown = sorted(set(config) - known)
    if unknown:
        raise ValueError(
            f"model {name!r} has no option {unknown[0]!r}; expected some of {', '.join(sorted(known))}"
        )
    return entry.factory(entry.config_class(**config))


def create_model_for_patches(
    name: str, n_classes: int, patch_size: int, activation: str | None = None, in_channels: int = 1, **options
) -> nn.Module:
    """Build a model for patches of a given size and class count.

    The config fields a model declares among ``n_classes``, ``in_samples``
    (trace length) and ``activation`` are filled in; ``options`` set the rest.

    Parameters
    ----------
    name : str
        A registered model name.
    n_classes : int
        Number of classes.
    patch_size : int
        The patches' size in samples.
    activation : str, optional
        Overrides the model's default activation.
    in_channels : int
        Input channels (a section and its neighbours); models without the field take only 1.
    **options
        Further config fields.

    Returns
    -------
    torch.nn.Module
        Unknown options raise ValueError.

    >>> create_model_for_patches("mlp", 4, 32).config.in_samples
    32
    """
    known = {field.name for field in fields(model_entry(name).config_class)}
    given = {"n_classes": n_classes, "in_samples": patch_size, "activation": activation}
    if in_channels != 1:
        if "in_channels" not in known:
            raise ValueError(f"{name} takes one input channel, not {in_channels} (sections with neighbours)")
        given["in_channels"] = in_channels
    filled = {key: value for key, value in given.items() if key in known and value is not None}
    return create_model(name, **{**options, **filled})
