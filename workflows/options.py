"""Command-line options generated from the pydantic config models.

Each option is declared once, as a field of a model in
:mod:`seisfacies.workflows.config`: its type, default, bounds and help text
(the field's description). The CLI, the workflow files and the Python API all
read those models, so they cannot drift apart.

>>> from seisfacies.workflows.config import ExportConfig
>>> [option.opts[0] for option in config_options(ExportConfig)]
['--variable', '--class', '--overwrite']
"""

from __future__ import annotations

import json
import types
import typing
from collections.abc import Callable
from typing import Literal

import click
from pydantic import BaseModel, ValidationError
from pydantic.fields import FieldInfo

from ..pipeline.exceptions import ConfigError


def option_name(field: str) -> str:
    """The command-line spelling of a config field.

    Parameters
    ----------
    field : str
        A config field name.

    Returns
    -------
    str

    >>> option_name("per_class")
    '--per-class'
    """
    return "--" + field.replace("_", "-")


def _without_none(annotation):
    """``X | None`` -> X."""
    if typing.get_origin(annotation) in (typing.Union, types.UnionType):
        parts = [arg for arg in typing.get_args(annotation) if arg is not type(None)]
        return parts[0] if len(parts) == 1 else annotation
    return annotation


def _comma_list(name: str, item, metavar: str, default) -> Callable:
    """A click callback turning ``a,b,c`` into a tuple of ``item`` values."""
    choices = typing.get_args(item) if typing.get_origin(item) is Literal else None

    def parse(ctx, param, value):
        if value is None or value == "":
            return default if value is None else ()
        parts = tuple(part.strip() for part in value.split(",") if part.strip())
        try:
            parsed = tuple(item(part) for part in parts) if choices is None else parts
        except ValueError:
            raise ConfigError(f"option {name} {value!r}: give values like {metavar}") from None
        bad = [part for part in parsed if choices is not None and part not in choices]
        if bad:
            raise ConfigError(f"option {name}: {bad[0]!r} is not one of {', '.join(choices)}")
        return parsed

    return parse


def _json_object(name: str) -> Callable:
    def parse(ctx, param, value):
        try:
            parsed = json.loads(value)
        except json.JSONDecodeError as error:
            raise ConfigError(f"option {name}: not JSON ({error.msg})") from None
        if not isinstance(parsed, dict):
            raise ConfigError(f"option {name}: give a JSON object, e.g. '{{\"base\": 8}}'")
        return parsed

    return parse


def _option(field: str, info: FieldInfo, required: bool) -> tuple[list[str], dict]:
    """Declarations and settings of the click option for one config field."""
    extra = info.json_schema_extra or {}
    name = extra.get("cli_name", option_name(field))
    annotation = _without_none(info.annotation)
    origin, args = typing.get_origin(annotation), typing.get_args(annotation)
    # a required option has no default on the command line (the config's applies elsewhere)
    default = None if required or info.is_required() else info.get_default(call_default_factory=True)
    settings: dict = {"help": info.description, "metavar": extra.get("metavar"), "required": required}
    if annotation is bool:
        flag = extra.get("flag")
        if flag:  # an optional bool: two spellings, neither given = the config's default
            return [flag, field], {**settings, "default": default}
        return [name, field], {**settings, "is_flag": True, "default": bool(default)}
    if origin is Literal:
        settings.update(type=click.Choice(args), default=default, show_default=default is not None)
    elif origin is tuple and args and args[-1] is not Ellipsis:  # fixed length: IL XL NS
        settings.update(nargs=len(args), type=args[0], default=default, show_default=True)
    elif origin is tuple:  # any length: comma-separated
        metavar = settings["metavar"] or "A,B,..."
        callback = _comma_list(name, args[0], metavar, default)
        settings.update(default=",".join(map(str, default)) if default else None, callback=callback)
    elif origin in (typing.Union, types.UnionType):  # a number or a word (N|auto): the config parses it
        settings.update(type=str, default=default, show_default=default is not None)
    elif annotation is dict or origin is dict:
        settings.update(default=json.dumps(default), callback=_json_object(name))
    else:
        settings.update(type=annotation, default=default, show_default=default is not None)
    if required:  # click treats an explicit default of None as given
        settings.pop("default", None)
    return [name, field], settings


def config_options(config_class: type[BaseModel], required: tuple[str, ...] = ()) -> list[click.Option]:
    """Click options for every field of a config model, in declaration order.

    Parameters
    ----------
    config_class : type
        A model from :mod:`seisfacies.workflows.config`.
    required : tuple of str
        Fields the command makes the user spell out.

    Returns
    -------
    list of click.Option
        Each option's parameter name is the field name.
    """
    fields = config_class.model_fields.items()
    return [click.Option(*_option(field, info, field in required)) for field, info in fields]


def with_config_options(config_class: type[BaseModel], required: tuple[str, ...] = ()) -> Callable:
    """Decorator: add the options of ``config_class`` to a click command function.

    Parameters
    ----------
    config_class : type
        A config model.
    required : tuple of str
        Fields the command requires.

    Returns
    -------
    callable
        The decorator. The command receives every field as a keyword argument.
    """

    def decorate(function: Callable) -> Callable:
        for field, info in reversed(config_class.model_fields.items()):
            declarations, settings = _option(field, info, field in required)
            function = click.option(*declarations, **settings)(function)
        return function

    return decorate


def build_config(config_class: type[BaseModel], spell: Callable[[str], str] | None = None, **options):
    """Validate options into a config model; a bad value is a one-line ConfigError.

    Parameters
    ----------
    config_class : type
        A config model.
    spell : callable, optional
        How the error names a field: the CLI spelling (``--per-class``) by
        default; the Python API passes ``str`` (``per_class``).
    **options
        The options, by field name.

    Returns
    -------
    pydantic.BaseModel
        The validated config.

    >>> from seisfacies.workflows.config import TrainConfig
    >>> build_config(TrainConfig, epochs=0)
    Traceback (most recent call last):
    seisfacies.pipeline.exceptions.ConfigError: option --epochs: Input should be greater than or equal to 1
    """
    try:
        return config_class(**options)
    except ValidationError as error:
        first = error.errors()[0]
        field = str(first["loc"][0]) if first["loc"] else ""
        info = config_class.model_fields.get(field)
        cli_name = ((info and info.json_schema_extra) or {}).get("cli_name")
        name = spell(field) if spell else cli_name or option_name(field)
        message = first["msg"].removeprefix("Value error, ")
        raise ConfigError(f"option {name}: {message}") from None
