"""``seisfacies plot``: a section of the seismic with the facies over it (truth and uncertainty beside)."""

from __future__ import annotations

import io
from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # files only; no display needed
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from matplotlib.colors import ListedColormap  # noqa: E402
from matplotlib.lines import Line2D  # noqa: E402
from matplotlib.patches import Patch  # noqa: E402
from mpl_toolkits.axes_grid1.anchored_artists import AnchoredSizeBar  # noqa: E402

from ..pipeline.commit import check_output, write_file, writes  # noqa: E402
from ..pipeline.exceptions import ConfigError, HorizonError  # noqa: E402
from ..pipeline.horizons import node_coordinates  # noqa: E402
from ..pipeline.labels import open_label_source, read_labels, to_classes  # noqa: E402
from ..pipeline.store import open_store, vertical_dim
from .config import PlotConfig  # noqa: E402
from .suggest import suggested_inlines  # noqa: E402


def class_colours(count: int) -> ListedColormap:
    """The colours of classes 0..count-1, the same in every picture (sections and maps).

    Parameters
    ----------
    count : int
        Number of classes.

    Returns
    -------
    matplotlib.colors.ListedColormap
    """
    return ListedColormap(plt.get_cmap("tab10").colors[:count])


def _save(figure, out: str) -> None:
    picture = io.BytesIO()
    figure.savefig(picture, dpi=100, format="png")
    plt.close(figure)
    write_file(out, picture.getvalue())


def _section(dataset, config: PlotConfig):
    vertical = vertical_dim(dataset)
    chosen = [
        (name, value)
        for name, value in (
            ("inline", config.inline),
            ("crossline", config.crossline),
            (vertical, config.time),
        )
        if value is not None
    ]
    if len(chosen) > 1:
        raise ConfigError("give one of --inline, --crossline or --time")
    name, value = chosen[0] if chosen else ("inline", int(dataset.inline.values[len(dataset.inline) // 2]))
    axis = dataset[name].values
    if value < axis.min() or value > axis.max():
        raise ConfigError(
            f"option --{'time' if name == vertical else name} {value}: outside {axis.min()}..{axis.max()}"
        )
    return name, dataset.sel({name: value}, method="nearest")


def _truth_section(dataset, config: PlotConfig, name: str, section, names: list[str]):
    """The true classes of the plotted section, read from ``config.truth`` (-1 where not labelled)."""
    dims = list(dataset.amplitude.dims)
    index = int(np.abs(dataset[name].values - float(section[name])).argmin())
    region = {dim: slice(index, index + 1) if dim == name else slice(None) for dim in dims}
    source = open_label_source(config.truth, dataset, config.unlabelled, tuple(names))
    classes = to_classes(read_labels(source, region), source.unlabelled, len(names)).squeeze(dims.index(name))
    return section.facies.copy(data=classes).rename("truth")


@writes("out")
def plot_section(store: str | Path, out: str | Path, config: PlotConfig) -> dict:
    """Write a PNG: amplitude in grey, facies in colour with a legend, truth and uncertainty beside.

    Parameters
    ----------
    store : str | Path
        The Zarr store.
    out : str | Path
        The output path.
    config : PlotConfig
        The step's options.

    Returns
    -------
    dict
    """
    if config.map is not None:
        return plot_maps(store, out, config)
    dataset = open_store(store, require=("facies", "uncertainty") if config.mark_suggested else ("facies",))
    out = check_output(out, config.overwrite, "picture")
    name, section = _section(dataset, config)
    names = dataset.facies.attrs["flag_meanings"].split()
    colours = class_colours(len(names))
    panels = [("predicted facies", section.facies)]
    if config.truth is not None:  # the truth, and where the prediction misses it
        truth = _truth_section(dataset, config, name, section, names)
        wrong = (truth >= 0) & (section.facies != truth)
        share = float(wrong.sum() / max(int((truth >= 0).sum()), 1))
        panels += [("truth", truth), (f"errors ({share:.1%} of the labelled voxels)", wrong.rename("errors"))]
    if "labels" in section:
        labelled = bool((section.labels >= 0).any())
        panels.append(("labels" if labelled else "labels (none on this section)", section.labels))
    if "uncertainty" in section:  # written by `predict --uncertainty`
        panels.append(("uncertainty (0 sure, 1 unsure)", section.uncertainty))
    figure, axes = plt.subplots(1, len(panels), figsize=(6.5 * len(panels), 5.5), squeeze=False)
    amplitude = section.amplitude.values
    clip = float(np.percentile(np.abs(amplitude), 99)) or 1.0
    x_dim, y_dim = [d for d in section.amplitude.dims]
    marked = _marked_inlines(dataset, config.mark_suggested) if x_dim == "inline" else []
    extent = [
        float(section[x_dim][0]),
        float(section[x_dim][-1]),
        float(section[y_dim][-1]),
        float(section[y_dim][0]),
    ]
    for axis, (title, classes) in zip(axes[0], panels):
        axis.imshow(amplitude.T, cmap="gray", vmin=-clip, vmax=clip, aspect="auto", extent=extent)
        if classes.name == "errors":
            axis.imshow(
                np.ma.masked_equal(classes.values.T.astype(float), 0),
                cmap=ListedColormap(["red"]),
                alpha=0.7,
                aspect="auto",
                extent=extent,
                interpolation="nearest",
            )
        elif classes.name == "uncertainty":
            shown = axis.imshow(
                classes.values.astype(float).T, cmap="magma", vmin=0, vmax=1, aspect="auto", extent=extent
            )
            figure.colorbar(shown, ax=axis, fraction=0.046, pad=0.02)
        else:
            values = np.ma.masked_less(classes.values.astype(float), 0)
            axis.imshow(
                values.T,
                cmap=colours,
                vmin=-0.5,
                vmax=len(names) - 0.5,
                alpha=0.45,
                aspect="auto",
                extent=extent,
                interpolation="nearest",
            )
        for number in marked:
            axis.axvline(number, color="cyan", linestyle="--", linewidth=1.2)
        axis.set_title(f"{title}, {name} {float(section[name]):g}")
        axis.set_xlabel(x_dim)
        axis.set_ylabel(f"{y_dim} ({dataset[y_dim].attrs.get('units', '')})" if y_dim in dataset else y_dim)
    handles = [Patch(color=colours(n), label=label) for n, label in enumerate(names)]
    if marked:
        handles.append(Line2D([], [], color="cyan", linestyle="--", label="label next (suggest)"))
    figure.legend(handles=handles, loc="lower center", ncol=len(names), frameon=False)
    figure.tight_layout(rect=(0, 0.06, 1, 1))
    _save(figure, out)
    return {
        "picture": str(out),
        "section": f"{name} {float(section[name]):g}",
        "panels": [t for t, _ in panels],
        **({"marked_inlines": marked} if config.mark_suggested else {}),
    }


def _marked_inlines(dataset, count: int) -> list[int]:
    """The inlines `seisfacies suggest` would propose, to draw on the section (none when count is 0)."""
    return suggested_inlines(dataset, count)["inlines"] if count else []


def plot_maps(store: str | Path, out: str | Path, config: PlotConfig) -> dict:
    """Write a PNG of maps in map view: real x/y from cdp_x/cdp_y, north up, a scale bar.

    Parameters
    ----------
    store : str | Path
        The Zarr store.
    out : str | Path
        The output path.
    config : PlotConfig
        The step's options; ``map`` names a map variable or a horizon.

    Returns
    -------
    dict
    """
    given = [
        option for option in ("inline", "crossline", "time", "truth") if getattr(config, option) is not None
    ]
    if given or config.mark_suggested:
        raise ConfigError(
            f"option --map: draws maps, not a section; leave out --{(given or ['mark-suggested'])[0]}"
        )
    dataset = open_store(store)
    panels = _map_panels(dataset, config.map)
    out = check_output(out, config.overwrite, "picture")
    corners, units = _corners(dataset)
    figure, axes = plt.subplots(1, len(panels), figsize=(6.0 * len(panels), 5.6), squeeze=False)
    for axis, (title, values, kind, names) in zip(axes[0], panels):
        if kind == "classes":
            axis.pcolormesh(
                *corners,
                np.ma.masked_less(values, 0),
                cmap=class_colours(len(names)),
                vmin=-0.5,
                vmax=len(names) - 0.5,
            )
            axis.legend(
                handles=[
                    Patch(color=class_colours(len(names))(n), label=label) for n, label in enumerate(names)
                ],
                loc="upper left",
                fontsize=7,
                framealpha=0.8,
            )
        else:
            shown = axis.pcolormesh(*corners, np.ma.masked_invalid(values), cmap=kind)
            figure.colorbar(shown, ax=axis, fraction=0.046, pad=0.02)
        axis.set_title(title, fontsize=9)
        axis.tick_params(labelsize=7)
        if units is None:  # no map coordinates: the line grid
            axis.set_xlabel("inline")
            axis.set_ylabel("crossline")
            continue
        axis.set_aspect("equal")
        axis.set_xlabel(f"x ({units}), north up")
        axis.set_ylabel("y")
        axis.ticklabel_format(useOffset=False, style="plain")
        axis.add_artist(_scale_bar(axis, float(np.ptp(corners[0])), units))
    figure.tight_layout()
    _save(figure, out)
    view = "map coordinates" if units else "inline/crossline (the store's cdp_x/cdp_y are not a regular grid)"
    return {"picture": str(out), "maps": [title for title, *_ in panels], "drawn_on": view}


def _map_panels(dataset, name: str) -> list[tuple[str, np.ndarray, str, list[str]]]:
    """(title, values, colour map or "classes", class names) of each map to draw."""
    if name in dataset.data_vars:
        chosen = [name]
    else:
        horizons = [str(h) for h in dataset.horizon.values] if "horizon" in dataset.coords else []
        if name not in horizons:
            maps = [str(v) for v in dataset.data_vars if str(v).startswith("map_")]
            raise ConfigError(
                f"option --map {name!r}: neither a map nor a horizon of the store (maps: "
                f"{', '.join(maps) or 'none, run seisfacies map'}; horizons: {', '.join(horizons) or 'none'})"
            )
        # a horizon's 2D maps; one per class (fractions, probabilities) only when named
        chosen = [
            v for v in dataset.data_vars if dataset[v].attrs.get("horizon") == name and dataset[v].ndim == 2
        ]
    panels = []
    if name not in dataset.data_vars:  # the horizon itself: its structure map
        surface = dataset.horizons.sel(horizon=name)
        panels.append((f"horizon {name} ({surface.attrs.get('units', '')})", surface.values, "viridis_r", []))
    for variable in chosen:
        array = dataset[variable]
        if array.dims[-2:] != ("inline", "crossline"):
            raise ConfigError(f"option --map {variable!r}: not a map (dims {list(array.dims)})")
        title = array.attrs.get("long_name", variable)
        if "flag_meanings" in array.attrs:
            panels.append((title, array.values, "classes", array.attrs["flag_meanings"].split()))
        elif array.ndim == 3:
            for label in array[array.dims[0]].values:
                one = array.sel({array.dims[0]: label})
                panels.append((f"{title}: {label}", one.values, "magma", []))
        else:
            panels.append((title, array.values, "magma" if "uncertainty" in variable else "viridis", []))
    return panels


def _corners(dataset) -> tuple[tuple[np.ndarray, np.ndarray], str | None]:
    """Cell corners around every trace in x/y (a rotated grid) and the units; line numbers without them."""
    i, j = np.meshgrid(
        np.arange(dataset.sizes["inline"] + 1) - 0.5,
        np.arange(dataset.sizes["crossline"] + 1) - 0.5,
        indexing="ij",
    )
    try:
        _, _, fit = node_coordinates(dataset.cdp_x.values, dataset.cdp_y.values, dataset.trace_mask.values)
    except HorizonError:  # one line, or coordinates that are not a grid
        return (i + float(dataset.inline[0]), j + float(dataset.crossline[0])), None
    return fit.to_xy(i, j), dataset.cdp_x.attrs.get("units", "m")


def _scale_bar(axis, width: float, units: str) -> AnchoredSizeBar:
    """A bar of a round length near a fifth of the map's width."""
    target = max(width / 5, 1e-9)
    length = min((m * 10**e for e in range(-3, 8) for m in (1, 2, 5)), key=lambda n: abs(np.log(n / target)))
    label = f"{length / 1000:g} km" if units == "m" and length >= 1000 else f"{length:g} {units}"
    return AnchoredSizeBar(
        axis.transData, length, label, "lower right", frameon=True, size_vertical=width / 200
    )
