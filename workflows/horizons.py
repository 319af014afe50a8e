"""``seisfacies horizons``: import picked horizons into a store as one ``horizons`` variable."""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path

import numpy as np
import xarray as xr

from ..pipeline import location
from ..pipeline.commit import (
    check_new_variables,
    check_store_writable,
    commit_variables,
    writes,
)
from ..pipeline.exceptions import HorizonError
from ..pipeline.horizons import (
    Grid,
    Surface,
    check_fit,
    file_stem,
    fill_gaps,
    fit_grid,
    order_surfaces,
    parse_columns,
    place_picks,
    read_picks,
)
from ..pipeline.labels import parse_class_names
from ..pipeline.store import add_variables_template, open_store, store_chunks, vertical_dim
from .config import HorizonsConfig


@writes("store")
def import_horizons(store: str | Path, files, config: HorizonsConfig) -> dict:
    """Read pick files, place them on the store's grid and add them as ``horizons``.

    ``horizons`` is float32 ``(horizon, inline, crossline)`` in the store's
    vertical units, NaN where not picked, with the names as the ``horizon``
    coordinate, shallow to deep.

    Parameters
    ----------
    store : str | Path
        The Zarr store.
    files : str, Path or list of them
        Pick files (paths or URLs).
    config : HorizonsConfig
        The step's options.

    Returns
    -------
    dict
        Per horizon: its file, picks, filled traces and range; the x/y fit's residual.
    """
    store = location.resolve(store)
    files = [location.resolve(f) for f in ([files] if isinstance(files, str | os.PathLike) else files)]
    dataset = open_store(store)
    check_new_variables(store, dataset, ("horizons",), config.overwrite)
    check_store_writable(store)
    columns = parse_columns(config.columns)
    grid = _grid(dataset, columns, store)
    names = _names(config.names, files, columns)
    surfaces = [place_picks(picks, grid) for picks in _read_all(files, names, columns, config.null)]
    filled = {}
    if config.fill != "none":
        surfaces = order_surfaces(surfaces)  # the picks as given must not cross
        for n, surface in enumerate(surfaces):
            values, filled[surface.name] = fill_gaps(surface.values, config.fill)
            surfaces[n] = dataclasses.replace(surface, values=values)
    surfaces = order_surfaces(surfaces)
    template = _template(dataset, surfaces, grid.vertical_name, config.fill)
    add_variables_template(template, store, store_chunks(dataset))
    commit_variables(store, ["horizons"])
    return {
        "store": str(store),
        "horizons": {
            s.name: {
                "file": s.file,
                "picked": int((s.lines > 0).sum()),
                **({"averaged": s.merged} if s.merged else {}),
                **({"filled": filled[s.name]} if config.fill != "none" else {}),
                "range": [float(np.nanmin(s.values)), float(np.nanmax(s.values))],
            }
            for s in surfaces
        },
        "units": dataset[grid.vertical_name].attrs.get("units", ""),
        **({"grid_fit_residual": round(grid.fit.residual, 4)} if grid.fit is not None else {}),
    }


def _grid(dataset, columns: tuple[str, ...], store: str) -> Grid:
    vertical = vertical_dim(dataset)
    named = next(c for c in columns if c in ("time", "depth", "z"))
    if named not in (vertical, "z"):
        raise HorizonError(
            f"option --columns: the picks are in {named} but {store} is in {vertical}; "
            f"give picks in {vertical} (or name the column z)"
        )
    fit = None
    if "x" in columns:
        fit = fit_grid(dataset.cdp_x.values, dataset.cdp_y.values, dataset.trace_mask.values)
        check_fit(fit, store)
    return Grid(dataset.inline.values, dataset.crossline.values, dataset[vertical].values, vertical, fit)


def _names(text: str | None, files: list[str], columns: tuple[str, ...]) -> list[str]:
    names = list(parse_class_names(text))
    if names and "name" in columns:
        raise HorizonError("option --names: the files name their horizons in a column; leave --names out")
    if names and len(names) != len(files):
        raise HorizonError(f"option --names: {len(names)} names for {len(files)} files; give one per file")
    return names or [file_stem(f) for f in files]


def _read_all(files: list[str], names: list[str], columns, null) -> list:
    found: dict[str, str] = {}
    picks = []
    for path, name in zip(files, names):
        for horizon in read_picks(path, columns, name, null):
            if horizon.name in found:
                raise HorizonError(
                    f"{path}: horizon {horizon.name!r} is also in {found[horizon.name]}; "
                    "give each horizon once (or name them with --names)"
                )
            found[horizon.name] = path
            picks.append(horizon)
    return picks


def _template(dataset, surfaces: list[Surface], vertical: str, fill: str) -> xr.Dataset:
    values = np.stack([s.values for s in surfaces]).astype(np.float32)
    attrs = {
        "long_name": f"Picked horizons: {vertical} of each horizon",
        "units": dataset[vertical].attrs.get("units", ""),
        "positive": "down",
        "source_files": [s.file for s in surfaces],
        "fill": fill,
        "comment": "NaN where not picked; shallow (on average) to deep",
    }
    return xr.Dataset(
        {"horizons": (("horizon", "inline", "crossline"), values, attrs)},
        coords={
            "horizon": ("horizon", np.array([s.name for s in surfaces], dtype=object)),
            "inline": dataset.inline,
            "crossline": dataset.crossline,
        },
    )
