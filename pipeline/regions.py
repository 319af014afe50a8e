"""Region I/O: read or write one block (dim name -> slice) of one store variable.

Tasks read their block plus its halo and write their results here; which
regions make up a plan is :mod:`.blocks`, and how written variables become
visible is :mod:`.commit`.
"""

from __future__ import annotations

import numpy as np
import zarr

from .blocks import Region, chunk_pieces
from .location import is_url
from .mdio import data_variable

#: The samples' name in the store contract; an MDIO store may name its data variable otherwise.
SAMPLES = "amplitude"


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
    selection = tuple(region.values())
    if array.dtype.kind != "V" or is_url(path):
        array[selection] = values
        return
    # Records (MDIO's headers) on a local disk: Zarr builds every chunk of a write that spans
    # several from fill values and copies the records in field by field, 9 ms a chunk of 64 x 64;
    # a write of exactly one chunk is taken as it is (0.43 s against 0.20 s for 49 chunks). On
    # object storage one write's chunks go up concurrently, which one write per chunk would lose.
    bounds = tuple(part.indices(size)[:2] for part, size in zip(selection, array.shape))
    for piece in chunk_pieces(bounds, array.chunks):
        target = [slice(at + part.start, at + part.stop) for (at, _), part in zip(bounds, piece)]
        array[tuple(target)] = values[piece]


def read_region(path: str, variable: str, region: Region) -> np.ndarray:
    """Read ``region`` (dim -> slice, in the variable's dim order) of one variable.

    ``amplitude`` is the store's samples wherever they are: in an MDIO store
    the variable its ``defaultVariableName`` names, with dead traces (NaN
    there) read as 0, as in the stores ``ingest`` writes.

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
    try:
        array = zarr.open_array(store=path, path=variable, mode="r", zarr_format=3)
    except FileNotFoundError:
        if variable != SAMPLES:
            raise
        root = zarr.open_group(store=path, mode="r", zarr_format=3)
        array = root[data_variable(dict(root.attrs))]
    values = array[tuple(region.values())]
    if variable == SAMPLES and not np.isfinite(values).all():
        lateral = tuple(region.values())[:2]
        dead = ~zarr.open_array(store=path, path="trace_mask", mode="r", zarr_format=3)[lateral].astype(bool)
        values[dead] = 0  # MDIO fills dead traces with NaN
    return values
