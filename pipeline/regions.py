"""Region I/O: read or write one block (dim name -> slice) of one store variable.

Tasks read their block plus its halo and write their results here; which
regions make up a plan is :mod:`.blocks`, and how written variables become
visible is :mod:`.commit`.
"""

from __future__ import annotations

import numpy as np
import zarr

from .blocks import Region


def write_region(path: str, variable: str, region: Region, values: np.ndarray) -> None:
    """Write ``values`` into ``region`` (dim -> slice, in the variable's dim order).

    Parameters
    ----------
    path : str
        The file or store.
    variable : str
        A store variable name.
    region : Region
        Index range per dim name.
    values : np.ndarray
        The region's values.
    """
    array = zarr.open_array(store=path, path=variable, mode="r+", zarr_format=3)
    array[tuple(region.values())] = values


def read_region(path: str, variable: str, region: Region) -> np.ndarray:
    """Read ``region`` (dim -> slice, in the variable's dim order) of one variable.

    Parameters
    ----------
    path : str
        The file or store.
    variable : str
        A store variable name.
    region : Region
        Index range per dim name.

    Returns
    -------
    np.ndarray
    """
    array = zarr.open_array(store=path, path=variable, mode="r", zarr_format=3)
    return array[tuple(region.values())]
