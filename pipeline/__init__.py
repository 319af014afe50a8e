"""seisfacies data pipeline: SEG-Y reading, Zarr stores, labels, patches, metrics.

This package never imports torch; the models live in :mod:`models` and the two
meet only in :mod:`workflows`.
"""

from __future__ import annotations

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("seisfacies")
except PackageNotFoundError:  # running from a source tree that is not installed
    __version__ = "0.0.0+unknown"
