"""Plain PyTorch models for seismic facies, with a name registry.

Never imports dask, xarray or zarr: :mod:`workflows` joins models and data.

>>> from models import create_model, list_models
>>> {"mlp", "cnn2d", "cnn2d_patch", "cnn3d"} <= set(list_models())
True
"""

from __future__ import annotations

from . import cnn, mlp  # noqa: F401  (registers the models)
from .registry import create_model, list_models, model_entry

__all__ = ["create_model", "list_models", "model_entry"]
