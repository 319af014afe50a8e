"""Self-describing checkpoints: everything needed to rebuild the model and predict.

Loaded with ``torch.load(weights_only=True)``: only tensors and plain Python
containers, never arbitrary objects, so a checkpoint from elsewhere cannot
run code.
"""

from __future__ import annotations

import io
import os
import pickle
import struct
import warnings
import zipfile
from dataclasses import asdict
from importlib.metadata import PackageNotFoundError, version

import fsspec
import torch
from torch import nn

from .registry import create_model, tuples_from_lists

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
    """The installed seisfacies version, recorded in every checkpoint.

    Returns
    -------
    str
        ``0.0.0+unknown`` when the package metadata is missing.
    """
    try:
        return version("seisfacies")
    except PackageNotFoundError:
        return "0.0.0+unknown"


def checkpoint_bytes(model: nn.Module, model_name: str, **metadata) -> bytes:
    """A checkpoint's whole content, to be written in one commit (the caller decides where and how).

    Parameters
    ----------
    model : torch.nn.Module
        A registered model (it has a ``config`` dataclass).
    model_name : str
        Its registry name.
    **metadata
        Plain data to store beside the weights (classes, normalisation, history, ...).

    Returns
    -------
    bytes
        What :func:`load_checkpoint` reads.
    """
    payload = {
        "format": FORMAT,
        "seisfacies_version": package_version(),
        "model_name": model_name,
        "model_config": _plain(asdict(model.config)),
        "state_dict": {key: value.detach().cpu() for key, value in model.state_dict().items()},
        **metadata,
    }
    buffer = io.BytesIO()
    torch.save(payload, buffer)
    return buffer.getvalue()


def _plain(value):
    """Tuples -> lists, so the config loads under weights_only."""
    if isinstance(value, dict):
        return {key: _plain(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(item) for item in value]
    return value


def _readable(path):
    """A local path as it is; bytes or a URL's bytes as a seekable file (torch.load needs one)."""
    if isinstance(path, bytes):
        return io.BytesIO(path)
    if "://" not in str(path):
        return path
    with fsspec.open(str(path), "rb") as handle:
        return io.BytesIO(handle.read())


def load_checkpoint(path: str | os.PathLike | bytes, map_location="cpu", name: str | None = None) -> dict:
    """Read a checkpoint safely; raises ValueError for files that are not ours.

    Parameters
    ----------
    path : str, os.PathLike or bytes
        The checkpoint file, or its bytes as read once (so that every reader
        gets the same version of a file that training may rewrite).
    map_location : str or torch.device
        Where tensors are loaded.
    name : str, optional
        What error messages call the checkpoint (the file its bytes came from).

    Returns
    -------
    dict
        The payload: weights, model name and config, and the saved metadata.
    """
    try:
        with warnings.catch_warnings():  # torch warns about unusual pickle protocols in foreign files
            warnings.simplefilter("ignore", UserWarning)
            payload = torch.load(_readable(path), map_location=map_location, weights_only=True)
    except FileNotFoundError:
        raise ValueError(f"{path}: no such checkpoint") from None
    except DECODE_ERRORS as error:
        first = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        what = name or _named(path)
        raise ValueError(f"{what}: not a loadable seisfacies checkpoint ({first[:160]})") from None
    if not isinstance(payload, dict) or payload.get("format") != FORMAT:
        found = payload.get("format") if isinstance(payload, dict) else None
        raise ValueError(f"{name or _named(path)}: not a seisfacies checkpoint (format {found!r})")
    return payload


def _named(path) -> str:
    return f"the checkpoint's {len(path)} bytes" if isinstance(path, bytes) else str(path)


def training_progress(payload: dict) -> tuple[bool, int, int | None]:
    """Whether a checkpoint is final, and the epoch it holds of how many planned.

    Training writes a checkpoint after every epoch (partial) and once more
    after calibration (final). A checkpoint from before the mark existed is
    partial when it holds fewer epochs than its training config asked for
    (and no time budget could have stopped it early).

    Parameters
    ----------
    payload : dict
        A loaded checkpoint.

    Returns
    -------
    tuple
        (final, epoch, planned epochs or None where unknown).

    >>> training_progress({"final": False, "epoch": 4, "epochs": 30})
    (False, 4, 30)
    >>> training_progress({"epoch": 4, "train_config": {"epochs": 30, "time_budget": None}})
    (False, 4, 30)
    >>> training_progress({"epoch": 12, "train_config": {"epochs": 12}})
    (True, 12, 12)
    """
    epoch = int(payload.get("epoch", 0))
    recorded = payload.get("train_config") or {}
    planned = payload.get("epochs", recorded.get("epochs"))
    if "final" in payload:
        return bool(payload["final"]), epoch, planned
    stopped_early = planned is not None and epoch < planned and recorded.get("time_budget") is None
    return not stopped_early, epoch, planned


def build_model(payload: dict) -> nn.Module:
    """Rebuild the model of a loaded checkpoint with its weights.

    Parameters
    ----------
    payload : dict
        What :func:`load_checkpoint` returned.

    Returns
    -------
    torch.nn.Module
        The model, in training mode, on the CPU.
    """
    model = create_model(payload["model_name"], **tuples_from_lists(payload["model_config"]))
    model.load_state_dict(payload["state_dict"])
    return model


def load_model(path: str | os.PathLike | bytes, name: str | None = None) -> tuple[nn.Module, dict]:
    """The model of a checkpoint file, and the checkpoint's metadata.

    Parameters
    ----------
    path : str, os.PathLike or bytes
        A checkpoint file, or its bytes (:func:`checkpoint_bytes`).
    name : str, optional
        What error messages call the checkpoint (the file its bytes came from).

    Returns
    -------
    tuple
        The model (CPU) and the loaded payload. A file that is not a loadable
        seisfacies checkpoint, or whose weights do not fit its model, raises
        ValueError with one line naming the file.
    """
    payload = load_checkpoint(path, name=name)
    try:
        return build_model(payload), payload
    except (KeyError, RuntimeError, TypeError) as error:
        first = (str(error).strip().splitlines() or [type(error).__name__])[0]
        raise ValueError(
            f"{name or _named(path)}: the checkpoint does not rebuild its model ({first[:160]})"
        ) from None
