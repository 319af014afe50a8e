"""Self-describing checkpoints: everything needed to rebuild the model and predict.

Loaded with ``torch.load(weights_only=True)``: only tensors and plain Python
containers, never arbitrary objects, so a checkpoint from elsewhere cannot
run code.
"""

from __future__ import annotations

import os
import pickle
import struct
import uuid
import warnings
import zipfile
from dataclasses import asdict
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

import torch
from torch import nn

from models.registry import create_model

FORMAT = "seisfacies-checkpoint-1"
#: What torch.load raises on corrupt or hostile bytes (weights_only refuses code).
DECODE_ERRORS = (
    pickle.UnpicklingError,
    RuntimeError,
    EOFError,
    struct.error,
    ValueError,
    KeyError,
    IndexError,
    TypeError,
    AttributeError,
    zipfile.BadZipFile,
    OSError,
)


def package_version() -> str:
    try:
        return version("seisfacies")
    except PackageNotFoundError:
        return "0.0.0+unknown"


def save_checkpoint(path: str | os.PathLike, model: nn.Module, model_name: str, **metadata) -> None:
    """Write a checkpoint atomically (temporary file, then rename)."""
    path = Path(path)
    payload = {
        "format": FORMAT,
        "seisfacies_version": package_version(),
        "model_name": model_name,
        "model_config": _plain(asdict(model.config)),
        "state_dict": {key: value.detach().cpu() for key, value in model.state_dict().items()},
        **metadata,
    }
    partial = path.with_name(f".{path.name}.partial-{uuid.uuid4().hex[:8]}")
    try:
        torch.save(payload, partial)
        os.replace(partial, path)
    finally:
        if partial.exists():
            partial.unlink()


def _plain(value):
    """Tuples -> lists, so the config loads under weights_only."""
    if isinstance(value, dict):
        return {key: _plain(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(item) for item in value]
    return value


def load_checkpoint(path: str | os.PathLike, map_location="cpu") -> dict:
    """Read a checkpoint safely; raises ValueError for files that are not ours."""
    try:
        with warnings.catch_warnings():  # torch warns about unusual pickle protocols in foreign files
            warnings.simplefilter("ignore", UserWarning)
            payload = torch.load(path, map_location=map_location, weights_only=True)
    except FileNotFoundError:
        raise ValueError(f"{path}: no such checkpoint") from None
    except DECODE_ERRORS as error:
        first = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        raise ValueError(f"{path}: not a loadable seisfacies checkpoint ({first[:160]})") from None
    if not isinstance(payload, dict) or payload.get("format") != FORMAT:
        found = payload.get("format") if isinstance(payload, dict) else None
        raise ValueError(f"{path}: not a seisfacies checkpoint (format {found!r})")
    return payload


def build_model(payload: dict) -> nn.Module:
    """Rebuild the model of a loaded checkpoint with its weights."""
    config = {
        key: tuple(value) if isinstance(value, list) else value
        for key, value in payload["model_config"].items()
    }
    model = create_model(payload["model_name"], **config)
    model.load_state_dict(payload["state_dict"])
    return model
