"""seisfacies: Dask-distributed seismic facies classification.

>>> import seisfacies as sf
>>> sf.train  # doctest: +ELLIPSIS
<function train at ...>

The functions mirror the CLI (:mod:`seisfacies.workflows.api`):
``sf.ingest``, ``sf.import_horizons``, ``sf.add_attributes``, ``sf.attach_labels``,
``sf.extract_patches``, ``sf.train``, ``sf.predict``, ``sf.evaluate``, ``sf.map_horizon``,
``sf.suggest``, ``sf.export``, ``sf.plot``, ``sf.synth``,
``sf.run_workflow``, ``sf.open_store`` and ``sf.local_cluster``. They are imported on first use, so
``import seisfacies.pipeline`` (the xarray backend, every worker reading
SEG-Y) never loads torch or the workflows. This file is installed as
``seisfacies/__init__.py`` (pyproject's package-dir).
"""

from __future__ import annotations

import importlib

#: Public name -> the module that defines it.
_LAZY = {
    **dict.fromkeys(
        [
            "synth",
            "ingest",
            "import_horizons",
            "add_attributes",
            "attach_labels",
            "extract_patches",
            "train",
            "predict",
            "evaluate",
            "export",
            "plot",
            "map_horizon",
            "suggest",
            "open_store",
            "run_workflow",
            "current_client",
            "local_cluster",
        ],
        "seisfacies.workflows.api",
    ),
    **dict.fromkeys(
        [
            "SeisFaciesError",
            "ConfigError",
            "SegyFormatError",
            "GeometryError",
            "StoreError",
            "LabelError",
            "HorizonError",
            "ModelError",
            "ClusterError",
        ],
        "seisfacies.pipeline.exceptions",
    ),
    "list_models": "seisfacies.models",
    "register_model": "seisfacies.models.registry",
    "open_trace_headers": "seisfacies.pipeline.trace_headers",
}

__all__ = sorted(_LAZY)


def __getattr__(name: str):
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    if name == "__version__":
        from importlib.metadata import version

        return version("seisfacies")
    raise AttributeError(f"module 'seisfacies' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted([*__all__, "__version__"])
