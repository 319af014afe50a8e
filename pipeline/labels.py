"""Label sources -> an int16 ``labels`` volume aligned with the store (-1: unlabelled).

Sources: a SEG-Y label volume (matched by inline/crossline numbers), a ``.npy``
array, a Zarr array or store, or a CSV of points. Each becomes a picklable
:class:`LabelSource` whose :func:`read_labels` gives any region's values, so
validation and writing stream region by region on the workers.
"""

from __future__ import annotations

import csv
import re
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from . import location
from . import segy_format as fmt
from .blocks import Region
from .exceptions import LabelError
from .horizons import check_between, default_interval_names, interval_classes
from .regions import read_region
from .segy import SegyLayout, read_block, scan_survey

UNLABELLED = -1
#: Largest class number an int16 ``labels`` volume holds (beyond it values would wrap).
MAX_CLASS = int(np.iinfo(np.int16).max)


@dataclass(frozen=True)
class LabelSource:
    """Where label values come from; small and picklable."""

    kind: str  # "segy", "npy", "zarr" or "points"
    path: str
    unlabelled: float | None = None
    layout: SegyLayout | None = None
    trace_index: np.ndarray | None = None  # store grid -> label-file trace number
    array_path: str | None = None  # inside a Zarr store
    points: np.ndarray | None = None  # (n, 4) int64: i, j, k, class
    class_names: tuple[str, ...] = field(default_factory=tuple)  # found in the source
    horizon_rows: tuple[int, ...] = ()  # horizons: their indices in the store's ``horizon`` dim
    vertical: np.ndarray | None = None  # horizons: the store's sample times or depths


def class_names_from_text(text: str) -> tuple[str, ...]:
    """Class names written in a SEG-Y textual header as ``classes a,b,c``.

    Parameters
    ----------
    text : str
        The text to read.

    Returns
    -------
    tuple[str, ...]

    >>> class_names_from_text("C 1 seisfacies synth seed 0; classes sand,shale")
    ('sand', 'shale')
    """
    match = re.search(r"classes\s+([A-Za-z0-9_,\-]+)", text)
    return tuple(match.group(1).split(",")) if match else ()


def parse_class_names(text: str | None) -> tuple[str, ...]:
    """``"a,b,c"`` -> names; names must be unique words.

    Parameters
    ----------
    text : str | None
        The text to read.

    Returns
    -------
    tuple[str, ...]

    >>> parse_class_names("sand, shale")
    ('sand', 'shale')
    """
    if not text:
        return ()
    names = tuple(name.strip() for name in text.split(",") if name.strip())
    if len(set(names)) != len(names) or not all(re.fullmatch(r"[A-Za-z0-9_\-]+", n) for n in names):
        raise LabelError(f"--classes {text!r}: give unique names made of letters, digits, '_' or '-'")
    return names


def open_label_source(
    source: str | Path, store, unlabelled: float | None = None, class_names: tuple[str, ...] = ()
) -> LabelSource:
    """Recognise a label source and check that its geometry fits the store.

    Parameters
    ----------
    source : str | Path
        The input: a file, store or label source.
    store
        The Zarr store.
    unlabelled : float | None
        The value that means 'not labelled'.
    class_names : tuple[str, ...]
        Class names.

    Returns
    -------
    LabelSource
    """
    if location.is_url(source):  # object storage: SEG-Y or Zarr, read in ranges by the tasks
        return _remote_source(location.resolve(source), store, unlabelled)
    path = Path(source).absolute()  # read by tasks on workers, whose working folder may differ
    if not path.exists():
        raise LabelError(f"{path}: no such label source; give a SEG-Y, .npy, Zarr or CSV path")
    shape = tuple(store.amplitude.shape)
    suffix = path.suffix.lower()
    if suffix in {".sgy", ".segy"}:
        return _segy_source(path, store, unlabelled)
    if suffix == ".npy":
        array = np.load(path, mmap_mode="r")
        _check_shape(path, array.shape, shape)
        return LabelSource("npy", str(path), unlabelled)
    if suffix == ".csv":
        return LabelSource("points", str(path), unlabelled, points=_read_points(path, store, class_names))
    if (path / "zarr.json").exists() or (path / ".zarray").exists() or (path / ".zgroup").exists():
        return _zarr_source(path, shape, unlabelled)
    raise LabelError(f"{path}: unknown label source; expected .sgy/.segy, .npy, .csv or a Zarr array/store")


def horizon_source(path: str, store, names: list[str], class_names: tuple[str, ...] = ()) -> LabelSource:
    """Labels from the intervals between horizons of the store itself (``labels --between``).

    Parameters
    ----------
    path : str
        The store's path or URL (read by the tasks).
    store : xarray.Dataset
        The store, opened, with ``horizons``.
    names : list of str
        The bounding horizons, shallow to deep.
    class_names : tuple of str
        The intervals' names (``len(names) + 1``), or empty for names made from the horizons'.

    Returns
    -------
    LabelSource
    """
    known = [str(name) for name in store.horizon.values]
    missing = [name for name in names if name not in known]
    if missing or len(set(names)) != len(names):
        problem = f"{missing[0]!r} is not a horizon of the store" if missing else "a horizon is named twice"
        raise LabelError(f"option --between: {problem} (horizons: {', '.join(known)})")
    if class_names and len(class_names) != len(names) + 1:
        raise LabelError(
            f"option --classes: {len(names)} horizons bound {len(names) + 1} intervals; "
            f"give {len(names) + 1} names, shallow to deep"
        )
    rows = tuple(known.index(name) for name in names)
    check_between(store.horizons.isel(horizon=list(rows)).values, names, path)
    vertical = store[store.amplitude.dims[-1]].values
    return LabelSource(
        "horizons",
        path,
        class_names=class_names or default_interval_names(names),
        horizon_rows=rows,
        vertical=vertical,
    )


def _remote_source(url: str, store, unlabelled) -> LabelSource:
    if not location.exists(url):
        raise LabelError(f"{url}: no such label source; check the URL and the credentials")
    if url.lower().endswith((".sgy", ".segy")):
        return _segy_source(url, store, unlabelled)
    if location.exists(location.join(url, "zarr.json")):
        return _zarr_source(url, tuple(store.amplitude.shape), unlabelled)
    raise LabelError(
        f"{url}: label sources on object storage are SEG-Y files or Zarr stores; "
        "copy a .npy or .csv source to a local path"
    )


def _check_shape(path, found, expected) -> None:
    if tuple(found) != tuple(expected):
        raise LabelError(
            f"{path}: labels shaped {tuple(found)} do not match the store's (inline, crossline, sample) "
            f"shape {tuple(expected)}; export the labels on the seismic's grid"
        )


def _segy_source(path: Path, store, unlabelled) -> LabelSource:
    from .exceptions import SeisFaciesError

    # the label volume uses the seismic's header layout: its line-number bytes and sample grid
    vertical = store.amplitude.dims[2]
    axis = store[vertical].values
    try:
        survey = scan_survey(
            path,
            iline_byte=int(store.attrs.get("inline_byte", fmt.INLINE_BYTE)),
            xline_byte=int(store.attrs.get("crossline_byte", fmt.CROSSLINE_BYTE)),
            sample_interval=float(axis[1] - axis[0]) if len(axis) > 1 else None,
        )
    except SeisFaciesError as error:
        raise LabelError(f"label file {error}") from None
    if survey.layout.n_samples != store.amplitude.shape[2]:
        raise LabelError(
            f"{path}: {survey.layout.n_samples} samples per trace, the store has {store.amplitude.shape[2]}; "
            "labels must be on the seismic's sample grid"
        )
    inlines, crosslines = store.inline.values, store.crossline.values
    outside_il = np.setdiff1d(survey.geometry.inlines[survey.geometry.trace_mask.any(1)], inlines)
    outside_xl = np.setdiff1d(survey.geometry.crosslines[survey.geometry.trace_mask.any(0)], crosslines)
    if len(outside_il) or len(outside_xl):
        raise LabelError(
            f"{path}: label traces at inlines {outside_il[:3].tolist()} / "
            f"crosslines {outside_xl[:3].tolist()} "
            "are outside the store's grid; the label volume must have the seismic's geometry"
        )
    index = np.full(store.amplitude.shape[:2], -1, np.int64)
    rows = np.searchsorted(inlines, survey.geometry.inlines)
    cols = np.searchsorted(crosslines, survey.geometry.crosslines)
    row_ok = (rows < len(inlines)) & (inlines[np.minimum(rows, len(inlines) - 1)] == survey.geometry.inlines)
    col_ok = (cols < len(crosslines)) & (
        crosslines[np.minimum(cols, len(crosslines) - 1)] == survey.geometry.crosslines
    )
    index[np.ix_(rows[row_ok], cols[col_ok])] = survey.geometry.trace_index[np.ix_(row_ok, col_ok)]
    names = class_names_from_text(survey.attrs["textual_header"])
    return LabelSource(
        "segy", str(path), unlabelled, layout=survey.layout, trace_index=index, class_names=names
    )


def _zarr_source(path: Path, shape, unlabelled) -> LabelSource:
    import zarr

    node = zarr.open(store=str(path), mode="r")
    array_path = None
    if isinstance(node, zarr.Group):
        candidates = [name for name in ("labels", "facies") if name in node]
        candidates += [name for name, arr in node.arrays() if arr.ndim == 3 and name not in candidates]
        if not candidates:
            raise LabelError(f"{path}: the Zarr store holds no 3D array to use as labels")
        array_path = candidates[0]
        node = node[array_path]
    _check_shape(path, node.shape, shape)
    return LabelSource("zarr", str(path), unlabelled, array_path=array_path)


def _read_points(path: Path, store, class_names: tuple[str, ...]) -> np.ndarray:
    vertical = [dim for dim in store.amplitude.dims if dim in ("time", "depth")][0]
    axes = {
        "inline": store.inline.values,
        "crossline": store.crossline.values,
        vertical: store[vertical].values,
    }
    with path.open(newline="") as handle:
        reader = csv.DictReader(handle)
        header = [name.strip() for name in reader.fieldnames or []]
        wanted = ["inline", "crossline", vertical, "class"]
        alias = {"time_or_depth": vertical, "time": vertical, "depth": vertical}
        columns = {alias.get(name, name): name for name in header}
        missing = [name for name in wanted if name not in columns]
        if missing:
            raise LabelError(
                f"{path}: CSV columns {header} lack {missing}; expected inline,crossline,{vertical},class"
            )
        rows = []
        for line_number, row in enumerate(reader, start=2):
            rows.append(_point(path, line_number, row, columns, axes, vertical, class_names))
    if not rows:
        raise LabelError(f"{path}: the CSV holds no points")
    return np.array(rows, np.int64)


def _point(path, line_number, row, columns, axes, vertical, class_names) -> list[int]:
    where = f"{path}:{line_number}"
    indices = []
    for dim in ("inline", "crossline", vertical):
        try:
            value = float(row[columns[dim]])
        except (TypeError, ValueError):
            raise LabelError(f"{where}: {dim} {row[columns[dim]]!r} is not a number") from None
        axis = axes[dim]
        position = int(np.argmin(np.abs(axis - value)))
        step = abs(axis[1] - axis[0]) if len(axis) > 1 else 1.0
        if abs(axis[position] - value) > step / 2:
            raise LabelError(f"{where}: {dim} {value:g} is outside the store ({axis[0]:g} to {axis[-1]:g})")
        indices.append(position)
    label = row[columns["class"]].strip()
    if label in class_names:
        indices.append(class_names.index(label))
    else:
        try:
            indices.append(int(label))
        except ValueError:
            known = ", ".join(class_names) or "none given; use --classes"
            raise LabelError(f"{where}: unknown class {label!r}; known classes: {known}") from None
    return indices


def read_labels(source: LabelSource, region: Region) -> np.ndarray:
    """Raw label values of a region ``{inline, crossline, vertical: slice}`` as float64.

    Parameters
    ----------
    source : LabelSource
        The input: a file, store or label source.
    region : Region
        Index range per dim name.

    Returns
    -------
    np.ndarray
    """
    key = tuple(region.values())
    if source.kind == "segy":
        index = source.trace_index[key[:2]]
        _, samples = read_block(source.layout, index)
        values = samples[..., key[2]].astype(np.float64)
        values[index < 0] = np.inf  # no label trace at this position: unlabelled
        return values
    if source.kind == "npy":
        return np.asarray(np.load(source.path, mmap_mode="r")[key], dtype=np.float64)
    if source.kind == "horizons":
        lateral = {"horizon": slice(None), "inline": key[0], "crossline": key[1]}
        surfaces = read_region(source.path, "horizons", lateral)[list(source.horizon_rows)]
        classes = interval_classes(surfaces, source.vertical[key[2]])
        return np.where(classes < 0, np.inf, classes.astype(np.float64))
    if source.kind == "zarr":
        import zarr

        node = zarr.open(store=source.path, mode="r")
        array = node[source.array_path] if source.array_path else node
        return np.asarray(array[key], dtype=np.float64)
    shape = tuple(s.stop - s.start for s in key)
    values = np.full(shape, np.inf)  # inf marks "no point here" (not a user value)
    points = source.points
    inside = np.ones(len(points), bool)
    for axis, part in enumerate(key):
        inside &= (points[:, axis] >= part.start) & (points[:, axis] < part.stop)
    local = points[inside]
    values[local[:, 0] - key[0].start, local[:, 1] - key[1].start, local[:, 2] - key[2].start] = local[:, 3]
    return values


def class_attrs(names: tuple[str, ...]) -> dict:
    """CF flag attributes for a class variable.

    Parameters
    ----------
    names : tuple[str, ...]
        Class names.

    Returns
    -------
    dict
    """
    return {
        "flag_values": list(range(len(names))),
        "flag_meanings": " ".join(names),
        "unlabelled_value": -1,
    }


def class_dtype(n_classes: int) -> np.dtype:
    """The smallest signed integer type for class numbers and ``-1`` (unclassified).

    Parameters
    ----------
    n_classes : int
        Number of classes.

    Returns
    -------
    numpy.dtype
        int8 up to 127 classes, int16 beyond.

    >>> class_dtype(6), class_dtype(200)
    (dtype('int8'), dtype('int16'))
    """
    if n_classes - 1 > MAX_CLASS:
        raise LabelError(f"{n_classes} classes are more than the {MAX_CLASS + 1} a class volume holds")
    return np.dtype(np.int8) if n_classes <= np.iinfo(np.int8).max else np.dtype(np.int16)


def to_classes(values: np.ndarray, unlabelled: float | None, n_classes: int | None) -> np.ndarray:
    """Raw values -> int16 classes, ``-1`` where unlabelled; validates as it goes.

    ``inf`` marks positions the source does not cover. Raises LabelError for
    NaN, non-integers and values outside ``0..n_classes-1``.

    Parameters
    ----------
    values : np.ndarray
        Label values as read from the source.
    unlabelled : float | None
        The value that means 'not labelled'.
    n_classes : int | None
        Number of classes.

    Returns
    -------
    np.ndarray

    >>> to_classes(np.array([0.0, 2.0, 9.0, np.inf]), unlabelled=9, n_classes=3).tolist()
    [0, 2, -1, -1]
    >>> to_classes(np.array([40000.0]), unlabelled=None, n_classes=None)  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    seisfacies.pipeline.exceptions.LabelError: label value 40000 is outside the classes (0..32767); ...
    """
    empty = np.isposinf(values)
    if unlabelled is not None:
        empty |= values == unlabelled
    else:
        empty |= values == UNLABELLED
    known = values[~empty]
    if np.isnan(known).any():
        raise LabelError(
            f"{int(np.isnan(known).sum())} label values are NaN; fill them or mark them with --unlabelled"
        )
    if (known != np.round(known)).any():
        raise LabelError("label values must be whole class numbers; found fractions")
    top = n_classes if n_classes is not None else MAX_CLASS + 1
    if known.size and (known.min() < 0 or known.max() >= top):
        bad = known[(known < 0) | (known >= top)][0]
        limit = f"0..{top - 1}"
        raise LabelError(
            f"label value {bad:g} is outside the classes ({limit}); check --classes and --unlabelled"
        )
    classes = np.full(values.shape, UNLABELLED, np.int16)
    classes[~empty] = known.astype(np.int16)
    return classes


#: What ``uncertainty`` is, for readers of the store (CF attributes).
UNCERTAINTY_ATTRS = {
    "long_name": "Predictive uncertainty: entropy of the calibrated class probabilities over log(classes)",
    "units": "1",
    "valid_min": 0.0,
    "valid_max": 1.0,
    "comment": "0: one class is certain; 1: every class equally likely; NaN where the input was not finite",
}


def prediction_template(
    dataset, names: list[str], chunks: dict[str, int], probabilities: bool, uncertainty: bool = False
):
    """The lazy ``facies`` (and ``probability``, ``uncertainty``) variables ``predict`` fills in.

    Parameters
    ----------
    dataset : xarray.Dataset
        The store, for its dims, shape and coordinates.
    names : list of str
        Class names.
    chunks : dict
        Chunk size per dim name.
    probabilities : bool
        Add ``probability`` (float16, dims ``class`` + the volume's).
    uncertainty : bool
        Add ``uncertainty`` (float16, the volume's dims; 0 certain, 1 unsure).

    Returns
    -------
    xarray.Dataset
        Only the new variables, backed by dask zeros (never computed).
    """
    import dask.array as da

    dims = dataset.amplitude.dims
    block = tuple(chunks[d] for d in dims)
    variables = {
        "facies": (
            dims,
            da.zeros(dataset.amplitude.shape, dtype=class_dtype(len(names)), chunks=block),
            {"long_name": "Predicted facies", **class_attrs(tuple(names))},
        )
    }
    if probabilities:
        variables["probability"] = (
            ("class", *dims),
            da.zeros((len(names), *dataset.amplitude.shape), dtype=np.float16, chunks=(len(names), *block)),
            {"long_name": "Class probability (softmax)", "flag_meanings": " ".join(names)},
        )
    if uncertainty:
        variables["uncertainty"] = (
            dims,
            da.zeros(dataset.amplitude.shape, dtype=np.float16, chunks=block),
            UNCERTAINTY_ATTRS,
        )
    template = dataset[[]].assign(variables)
    if probabilities:  # `probability.sel({"class": "channel"})`; object dtype: Zarr v3 strings
        template = template.assign_coords({"class": ("class", np.array(list(names), dtype=object))})
    return template


def depth_order_counts(labels: np.ndarray) -> np.ndarray:
    """Labelled traces that go back up the class codes with depth, and those that hold several classes.

    Stratigraphic intervals, coded shallow to deep, never go back up a trace;
    texture or body classes (salt within sediment, a channel within a layer)
    do. ``predict --class-order auto`` decodes in depth order only for labels
    with traces of several classes and none going back.

    Parameters
    ----------
    labels : numpy.ndarray
        Classes ``(..., vertical)``; negative values are unlabelled (and skipped).

    Returns
    -------
    numpy.ndarray
        int64 ``[traces going back up, traces with more than one class]``.

    >>> depth_order_counts(np.array([[0, -1, 1, 1], [2, 2, -1, -1], [1, -1, 0, 1]])).tolist()
    [1, 2]
    """
    labelled = labels >= 0
    deepest_above = np.maximum.accumulate(np.where(labelled, labels, -1), axis=-1)
    back_up = (labelled & (labels < deepest_above)).any(axis=-1)
    deepest = deepest_above[..., -1]
    several = deepest > np.where(labelled, labels, deepest[..., None]).min(axis=-1)
    return np.array([back_up.sum(), several.sum()], np.int64)
