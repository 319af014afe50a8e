"""One exception hierarchy for seisfacies.

Every error a user can cause (a bad file, a bad option, a store in the wrong
state) is a :class:`SeisFaciesError`. The CLI prints its message on one line
and exits with status 2; anything else is a bug and keeps its traceback.
Messages follow "what is wrong, where, and what to do".
"""

from __future__ import annotations


class SeisFaciesError(Exception):
    """Base class of the errors seisfacies reports to users."""


class SegyFormatError(SeisFaciesError):
    """A SEG-Y file cannot be read: truncated, no traces, bad binary header."""


class GeometryError(SeisFaciesError):
    """Trace headers do not describe a regular post-stack 3D grid."""


class StoreError(SeisFaciesError):
    """A Zarr store is missing, incomplete, already exists or lacks a variable."""


class LabelError(SeisFaciesError):
    """A label source does not fit the store or its classes."""


class ConfigError(SeisFaciesError):
    """An option or a workflow file is invalid."""


class ModelError(SeisFaciesError):
    """A model or checkpoint does not fit the data it is used with."""


class ClusterError(SeisFaciesError):
    """The Dask cluster could not be reached or lost work it cannot recover."""


class HorizonError(SeisFaciesError):
    """A horizon pick file does not fit the store: off the grid, outside its range, crossing."""
