"""``seisfacies patches``: count, select and cut training patches on the workers.

Three passes over the store's chunks, each a list of Dask tasks: count the
candidates per split block and class, select a class-balanced sample by
position hash, then cut the windows (chunk plus halo) and write them into a
patch store in chunk-aligned row ranges, so no two tasks share a Zarr chunk.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import dask.array as da
import numpy as np
import xarray as xr

from ..pipeline import location
from ..pipeline.blocks import Region, regions
from ..pipeline.cluster import run_tasks
from ..pipeline.commit import check_output, commit_store, staged, writes
from ..pipeline.exceptions import ConfigError, LabelError
from ..pipeline.labels import depth_order_counts
from ..pipeline.patches import (
    DEFAULT_SIZE,
    DEFAULT_STRIDE,
    ORIENTATIONS,
    PatchSpec,
    candidates,
    choose_validation_blocks,
    copy_windows,
    neighbour_starts,
    position_hash,
    window_start,
)
from ..pipeline.regions import read_region, write_region
from ..pipeline.store import open_store, store_chunks, vertical_dim, write_template
from .config import PatchesConfig

#: Patches per Zarr chunk of the patch store; cut tasks own whole chunks.
PATCH_CHUNK = 256
#: Bytes of patches one cut task holds at most (it reads each chunk column's box once).
CUT_BUDGET_BYTES = 32 * 2**20
#: Sections on each side that ``train``'s default section patches carry as input channels.
SECTION_NEIGHBOURS = 2
ROW_FIELDS = ("i", "j", "k", "orientation", "label", "split", "flip", "scale")


@dataclass(frozen=True)
class PassTask:
    store: str
    spec: PatchSpec
    region: Region
    validation_blocks: frozenset = frozenset()
    probability: np.ndarray | None = None  # (split, class)
    whole_traces: bool = False  # the region spans the vertical: its labels' depth order can be counted


def _region_candidates(task: PassTask, labels: np.ndarray | None = None) -> dict[str, np.ndarray]:
    labels = read_region(task.store, "labels", task.region) if labels is None else labels
    origin = tuple(part.start for part in task.region.values())
    return candidates(task.spec, labels, origin)


def count_region(task: PassTask) -> tuple[np.ndarray, np.ndarray | None]:
    """Candidates per (block_i, block_j, block_k, class) in one region, and its labels' depth order.

    Parameters
    ----------
    task : PassTask
        What the task does: paths, region and options (picklable).

    Returns
    -------
    tuple
        The counts as rows of 5 ints, and, where the region spans whole traces,
        :func:`~seisfacies.pipeline.labels.depth_order_counts` of its labels (else None).
    """
    labels = read_region(task.store, "labels", task.region)
    found = _region_candidates(task, labels)
    order = depth_order_counts(labels) if task.whole_traces else None
    keys = [found[name].astype(np.int64) for name in ("block_i", "block_j", "block_k", "label")]
    if not len(keys[0]):
        return np.zeros((0, 5), np.int64), order
    return count_rows(keys), order


def count_rows(keys: list[np.ndarray]) -> np.ndarray:
    """Each distinct row of small non-negative integer columns, with its count, in sorted order.

    What ``np.unique(axis=0, return_counts=True)`` gives, without its sort of
    rows (0.05 s a region): the rows are numbered in C order and counted.

    Parameters
    ----------
    keys : list of numpy.ndarray
        Equal-length int64 columns, each value ``>= 0``.

    Returns
    -------
    numpy.ndarray
        ``(distinct rows, len(keys) + 1)``: the row's values, then its count.

    >>> count_rows([np.array([1, 0, 1]), np.array([2, 5, 2])]).tolist()
    [[0, 5, 1], [1, 2, 2]]
    """
    shape = tuple(int(column.max()) + 1 for column in keys)
    counts = np.bincount(np.ravel_multi_index(keys, shape), minlength=int(np.prod(shape)))
    present = np.flatnonzero(counts)
    return np.stack([*np.unravel_index(present, shape), counts[present]], axis=1).astype(np.int64)


def order_region(column: tuple[str, Region]) -> np.ndarray:
    """:func:`~seisfacies.pipeline.labels.depth_order_counts` of one column of whole traces.

    Parameters
    ----------
    column : tuple
        The labelled store, and a region of it spanning the whole vertical.

    Returns
    -------
    np.ndarray
        ``[traces going back up, traces with more than one class]``.
    """
    store, region = column
    return depth_order_counts(read_region(store, "labels", region))


def in_depth_order(counts: np.ndarray) -> bool:
    """Whether summed :func:`~seisfacies.pipeline.labels.depth_order_counts` say stratigraphic intervals.

    Parameters
    ----------
    counts : numpy.ndarray
        ``[traces going back up, traces with more than one class]``.

    Returns
    -------
    bool

    >>> in_depth_order(np.array([0, 5])), in_depth_order(np.array([1, 5])), in_depth_order(np.array([0, 0]))
    (True, False, False)
    """
    back_up, several = counts
    return bool(several and not back_up)


def labels_in_depth_order(store: str, client=None) -> bool:
    """Whether a store's labels are stratigraphic intervals: traces of several classes, none going back up.

    Read by columns of whole traces, so a task's memory is one column of chunks.

    Parameters
    ----------
    store : str
        The labelled store.
    client
        The Dask client; None runs in this process.

    Returns
    -------
    bool
    """
    dataset = open_store(store, require=("labels",))
    sizes = dict(dataset.labels.sizes)
    vertical = vertical_dim(dataset)
    columns = regions(sizes, {**store_chunks(dataset), vertical: sizes[vertical]})
    tasks = [(str(store), region) for region in columns]
    return in_depth_order(np.sum(run_tasks(order_region, tasks, client, "check label order"), axis=0))


def _block_key(block_i: np.ndarray, block_j: np.ndarray, block_k: np.ndarray) -> np.ndarray:
    """One integer per split block, for vectorised membership tests."""
    key = np.asarray(block_i, np.int64) * 1_000_003 + np.asarray(block_j, np.int64)
    return key * 1_000_003 + np.asarray(block_k, np.int64)


def select_region(task: PassTask) -> dict[str, np.ndarray]:
    """Candidates kept by the hash draw, with their split and draw value.

    Parameters
    ----------
    task : PassTask
        What the task does: paths, region and options (picklable).

    Returns
    -------
    dict[str, np.ndarray]
    """
    found = _region_candidates(task)
    chosen = np.array([(*key, 0)[:3] for key in sorted(task.validation_blocks)], np.int64).reshape(-1, 3)
    found_keys = _block_key(found["block_i"], found["block_j"], found["block_k"])
    split = np.isin(found_keys, _block_key(*chosen.T))
    split = split.astype(np.int8)
    draw = position_hash(task.spec.seed, found["i"], found["j"], found["k"], found["orientation"])
    drawn = draw < task.probability[split, found["label"]]
    return {
        **{name: found[name][drawn] for name in ("i", "j", "k", "orientation", "label")},
        "split": split[drawn],
        "draw": draw[drawn],
    }


@dataclass(frozen=True)
class CutTask:
    store: str
    out: str
    spec: PatchSpec
    start: int
    rows: dict  # ROW_FIELDS -> arrays
    chunks: dict


def cut_rows(task: CutTask) -> np.ndarray:
    """Cut and write rows ``start..``; return [sum, sum of squares, count] of train x.

    Parameters
    ----------
    task : CutTask
        What the task does: paths, region and options (picklable).

    Returns
    -------
    np.ndarray
    """
    spec, rows = task.spec, task.rows
    n = len(rows["i"])
    x = np.empty((n, *_x_shape(spec)), np.float32)
    y = np.empty((n, *_y_shape(spec)), np.int16)
    extra = np.empty((n, len(spec.attributes), *_window_shape(spec)), np.float32)
    region_id = (rows["i"] // task.chunks[spec.dims[0]]) * 100003 + rows["j"] // task.chunks[spec.dims[1]]
    for region in np.unique(region_id):
        members = np.flatnonzero(region_id == region)
        for orientation, code in ORIENTATIONS.items():
            chosen = members[rows["orientation"][members] == code]
            if len(chosen):
                _cut_group(task, chosen, orientation, x, y, extra)
    if (rows["scale"] != 1).any():  # the amplitude only: phase and frequency do not scale with it
        x *= rows["scale"].reshape(-1, *[1] * (x.ndim - 1))
    target = {"patch": slice(task.start, task.start + n)}
    write_region(task.out, "x", {**target, **{d: slice(None) for d in range(x.ndim - 1)}}, x)
    write_region(task.out, "y", {**target, **{d: slice(None) for d in range(y.ndim - 1)}}, y)
    if spec.attributes:
        write_region(
            task.out, "x_inputs", {**target, **{d: slice(None) for d in range(extra.ndim - 1)}}, extra
        )
    train = rows["split"] == 0
    return np.stack(
        [moments(x, rows=train), *(moments(extra[:, n], rows=train) for n in range(len(spec.attributes)))]
    )


def mean_and_std(totals: np.ndarray) -> tuple[float, float]:
    """Mean and standard deviation from :func:`moments`' sums (std 1 where the values do not vary).

    Parameters
    ----------
    totals : numpy.ndarray
        ``[sum, sum of squares, count]``.

    Returns
    -------
    tuple of float

    >>> [round(value, 4) for value in mean_and_std(np.array([6.0, 14.0, 3.0]))]
    [2.0, 0.8165]
    """
    mean = totals[0] / max(totals[2], 1)
    return float(mean), float(np.sqrt(max(totals[1] / max(totals[2], 1) - mean**2, 0.0))) or 1.0


def moments(values: np.ndarray, block: int = 256, rows: np.ndarray | None = None) -> np.ndarray:
    """Sum, sum of squares and count of the finite values, in float64, a block of patches at a time.

    A float64 copy of all the patches at once doubled the cut task's memory and
    time; a block of them stays in the CPU's cache. Dead (non-finite) samples
    must not poison the normalisation.

    Parameters
    ----------
    values : numpy.ndarray
        float32 patches ``(N, ...)``.
    block : int
        Patches per block.
    rows : numpy.ndarray, optional
        ``(N,)`` bool: the patches to count (all where None), chosen block by
        block rather than copied out at once.

    Returns
    -------
    numpy.ndarray
        ``[sum, sum of squares, count]`` (float64).

    >>> moments(np.array([[1.0, 2.0], [np.nan, 3.0]], np.float32), block=1).tolist()
    [6.0, 14.0, 3.0]
    >>> moments(np.array([[1.0, 2.0], [5.0, 3.0]], np.float32), rows=np.array([False, True])).tolist()
    [8.0, 34.0, 2.0]
    """
    totals = np.zeros(3)
    for start in range(0, len(values), block):
        part = values[start : start + block]
        if rows is not None:
            part = part[rows[start : start + block]]
        part = part.astype(np.float64).ravel()
        finite = np.isfinite(part)
        if not finite.all():
            part = part[finite]
        totals += [part.sum(), part @ part, part.size]
    return totals


def _cut_group(task: CutTask, chosen: np.ndarray, orientation: str, x, y, extra) -> None:
    """Cut the rows ``chosen`` (one orientation, one chunk column) into ``x``, ``y`` and ``extra``."""
    spec, rows = task.spec, task.rows
    extent = spec.extent(orientation)
    starts = np.stack(
        [window_start(rows[name][chosen], extent[axis]) for axis, name in enumerate(("i", "j", "k"))], axis=1
    )
    across = 0 if orientation == "inline" else 1
    channels = neighbour_starts(starts, across, spec.neighbours, spec.sizes[across])
    every_start = np.concatenate(channels)
    low, high = every_start.min(axis=0), every_start.max(axis=0) + np.array(extent)
    box = {dim: slice(int(a), int(b)) for dim, a, b in zip(spec.dims, low, high)}
    origin, mirrored = tuple(low), rows["flip"][chosen] == 1
    amplitude = read_region(task.store, "amplitude", box)
    for channel, shifted in enumerate(channels):
        target = x[:, channel] if spec.neighbours else x
        copy_windows(amplitude, origin, shifted, extent, target, chosen, mirrored)
    for n, name in enumerate(spec.attributes):  # the window itself, without neighbours
        copy_windows(
            read_region(task.store, name, box), origin, starts, extent, extra[:, n], chosen, mirrored
        )
    if spec.dense:
        labels = read_region(task.store, "labels", box)
        copy_windows(labels, origin, starts, extent, y, chosen, mirrored)
    else:
        y[chosen] = rows["label"][chosen].reshape(-1, *_y_shape(spec))


def _x_shape(spec: PatchSpec) -> tuple[int, ...]:
    if spec.neighbours:
        return (2 * spec.neighbours + 1, spec.size, spec.size)
    return _window_shape(spec)


def _window_shape(spec: PatchSpec) -> tuple[int, ...]:
    """One window's shape without channels: a section, a cube or a trace."""
    return {"trace": (spec.size,), "section": (spec.size, spec.size), "cube": (spec.size,) * 3}[spec.kind]


def _y_shape(spec: PatchSpec) -> tuple[int, ...]:
    return _x_shape(spec)[-2 if spec.kind == "section" else 0 :] if spec.dense else ()


def patch_spec(dataset: xr.Dataset, config: PatchesConfig) -> PatchSpec:
    """What to cut, decided once on the client: kind, window size, orientations, classes, inputs.

    Parameters
    ----------
    dataset : xr.Dataset
        The store, opened as an xarray Dataset.
    config : PatchesConfig
        The step's options.

    Returns
    -------
    PatchSpec
    """
    dims = tuple(dataset.amplitude.dims)
    kind = config.kind
    size = config.size or DEFAULT_SIZE[kind]
    if size > max(dataset.amplitude.shape):
        raise LabelError(
            f"--size {size} is larger than the volume {tuple(dataset.amplitude.shape)}; use a smaller patch"
        )
    orientations = ("inline", "crossline") if config.orientation == "both" else (config.orientation,)
    if kind != "section":
        orientations = ("inline",)
    dense = kind == "section" or (kind == "cube" and bool(config.dense))
    if config.neighbours and kind != "section":
        raise ConfigError(f"option --neighbours {config.neighbours}: only section patches take neighbours")
    attributes = tuple(name for name in config.inputs if name not in ("amplitude", "depth"))
    if kind == "trace" and len(config.inputs) > 1:
        raise ConfigError(
            f"option --inputs {config.inputs[1]}: a trace patch is one window of samples, not channels; "
            "use section or cube patches for more inputs"
        )
    for name in attributes:
        if name not in dataset.data_vars or dataset[name].dims != dataset.amplitude.dims:
            raise ConfigError(
                f"option --inputs {name}: the store has no {name!r} volume; "
                f"run `seisfacies attributes STORE --add {name}` first"
            )
    return PatchSpec(
        kind,
        dims,
        tuple(dataset.amplitude.shape),
        size,
        config.stride or DEFAULT_STRIDE[kind],
        orientations,
        config.split_block,
        config.seed,
        dense,
        config.neighbours,
        attributes=attributes,
    )


@writes("out")
def extract_patches(
    store: str | Path, out: str | Path, config: PatchesConfig, client=None, labels_ordered: bool | None = None
) -> dict:
    """Cut a class-balanced, blocked-split patch store from a labelled volume store.

    Parameters
    ----------
    store : str | Path
        The Zarr store.
    out : str | Path
        The output path.
    config : PatchesConfig
        The step's options.
    client
        The Dask client; None runs in this process.
    labels_ordered : bool, optional
        :func:`labels_in_depth_order` of ``store``, where the caller has just
        found it (a training from a store); None reads the labels to find it.

    Returns
    -------
    dict
    """
    # absolute: tasks run on workers, whose working folder may differ
    store, out = location.resolve(store), location.resolve(out)
    dataset = open_store(store, require=("amplitude", "labels"))
    out = check_output(out, config.overwrite, "patch store")
    spec = patch_spec(dataset, config)
    names = tuple(dataset.labels.attrs["flag_meanings"].split())
    sizes, chunks = dict(dataset.amplitude.sizes), store_chunks(dataset)
    plan_regions = regions(sizes, chunks)
    whole_traces = chunks[vertical_dim(dataset)] >= sizes[vertical_dim(dataset)]
    block_class, order = _count_candidates(store, spec, plan_regions, client, whole_traces)
    if config.val_fraction > 0 and len(_block_totals(block_class, spec)) < 2:
        # too small for two columns of whole traces: blocks along the vertical keep the split apart
        deeper = spec.with_vertical_blocks()
        counted, _ = _count_candidates(store, deeper, plan_regions, client, whole_traces=False)
        if len(_block_totals(counted, deeper)) >= 2:
            spec, block_class = deeper, counted
    if not len(block_class):
        raise LabelError(
            f"{store}: no labelled position fits a {spec.kind} window of size {spec.size} "
            f"(stride {spec.stride}); label more, or use a smaller --size or --stride"
        )
    class_blocks = _class_blocks(block_class, spec)
    validation = choose_validation_blocks(
        _block_totals(block_class, spec), config.val_fraction, config.seed, class_blocks
    )
    available = _available(block_class, validation, len(names), spec)
    targets = _targets(available, config.per_class, config.val_fraction)
    probability = np.minimum(1.0, 1.25 * targets / np.maximum(available, 1) + 1e-9)
    selected = _select(store, spec, plan_regions, validation, probability, client)
    short = _drawn(selected, targets.shape) < targets
    if short.any():  # the hash draw came short: draw those (split, class) pairs again, keeping all
        selected = _select(store, spec, plan_regions, validation, np.where(short, 1.0, probability), client)
    if labels_ordered is None:  # from the count pass where its regions spanned whole traces
        labels_ordered = in_depth_order(order) if order is not None else labels_in_depth_order(store, client)
    rows = _final_rows(selected, targets, config, spec, store_chunks(dataset))
    _check_validation(rows, config, spec, len(_block_totals(block_class, spec)), dataset)
    with staged(out) as partial:
        # x is stored raw: amplitude windows shrink by under 10% and compressing them halves the cut rate
        write_template(
            _patch_template(rows, spec, names, dataset, store, config, labels_ordered),
            partial,
            {"patch": PATCH_CHUNK},
            uncompressed=("x",),
        )
        cut = [
            CutTask(
                str(store),
                str(partial),
                spec,
                start,
                {name: values[start:stop] for name, values in rows.items()},
                store_chunks(dataset),
            )
            for start, stop in cut_spans(rows, spec, store_chunks(dataset))
        ]
        sums = np.sum(run_tasks(cut_rows, cut, client, "cut patches"), axis=0)
        (mean, std), *others = [mean_and_std(channel) for channel in sums]
        statistics = {"mean": mean, "std": std}
        if spec.attributes:
            statistics["input_statistics"] = {
                name: {"mean": m, "std": s} for name, (m, s) in zip(spec.attributes, others)
            }
        commit_store(partial, statistics)
    summary = {**_summary(out, spec, rows, names, mean, std), "classes_in_depth_order": labels_ordered}
    untested = [
        names[label] for label, blocks in class_blocks.items() if validation and not blocks & validation
    ]
    if untested:
        summary["split_note"] = (
            f"no validation patch of {', '.join(untested)}: the few blocks that hold their labels train"
        )
    return summary


def cut_spans(rows: dict, spec: PatchSpec, chunks: dict[str, int]) -> list[tuple[int, int]]:
    """Row ranges of the cut tasks: whole patch-store chunks, one chunk column of the volume each.

    Rows come in volume order, chunk column by chunk column. A task takes the
    patch-store chunks that start in one column (within a memory budget), so
    it reads that column's amplitude once instead of once per 256 patches.

    Parameters
    ----------
    rows : dict
        The patches' positions, in volume order (``i`` and ``j`` used).
    spec : PatchSpec
        The patch geometry (dims and patch shape).
    chunks : dict[str, int]
        The volume store's chunks.

    Returns
    -------
    list of tuple of int
        ``(start, stop)`` per task; starts on chunk boundaries, together every row once.
    """
    total = len(rows["i"])
    starts = np.arange(0, total, PATCH_CHUNK)
    column = rows["i"][starts] // chunks[spec.dims[0]] * 100003 + rows["j"][starts] // chunks[spec.dims[1]]
    most = max(1, CUT_BUDGET_BYTES // (PATCH_CHUNK * 4 * int(np.prod(_x_shape(spec)))))
    spans, first = [], 0
    for index in range(1, len(starts) + 1):
        if index == len(starts) or column[index] != column[first] or index - first == most:
            spans.append((int(starts[first]), int(starts[index]) if index < len(starts) else total))
            first = index
    return spans


def _select(store, spec, plan_regions, validation, probability, client) -> list[dict]:
    tasks = [PassTask(str(store), spec, r, frozenset(validation), probability) for r in plan_regions]
    return run_tasks(select_region, tasks, client, "select patches")


def _drawn(selected: list[dict], shape: tuple[int, int]) -> np.ndarray:
    """Candidates kept by the draw per (split, class)."""
    counts = np.zeros(shape, np.int64)
    for part in selected:
        np.add.at(counts, (part["split"].astype(np.int64), part["label"].astype(np.int64)), 1)
    return counts


def _count_candidates(store: str, spec: PatchSpec, plan_regions: list, client, whole_traces: bool) -> tuple:
    """Candidate counts per (block, class) from every region; the labels' depth-order counts, or None.

    Where the regions span whole traces (the default chunks hold traces of up
    to 512 samples whole), the depth order comes with the counts and saves a
    pass over the labels; otherwise it is None.
    """
    tasks = [PassTask(str(store), spec, region, whole_traces=whole_traces) for region in plan_regions]
    found = run_tasks(count_region, tasks, client, "count candidates")
    order = np.sum([order for _, order in found], axis=0) if whole_traces else None
    return np.concatenate([counts for counts, _ in found]), order


def _block_totals(block_class: np.ndarray, spec: PatchSpec) -> dict[tuple[int, ...], int]:
    """Candidates per split block, keyed by its (inline, crossline[, vertical]) index."""
    totals: dict[tuple[int, ...], int] = {}
    for row in block_class.tolist():
        key = _block_of(row, spec)
        totals[key] = totals.get(key, 0) + row[-1]
    return totals


def _class_blocks(block_class: np.ndarray, spec: PatchSpec) -> dict[int, set]:
    """Each class's split blocks that hold a candidate of it."""
    blocks: dict[int, set] = {}
    for row in block_class.tolist():
        if row[-1]:
            blocks.setdefault(row[3], set()).add(_block_of(row, spec))
    return blocks


def _block_of(row: list, spec: PatchSpec) -> tuple[int, ...]:
    """A count row's block; blocks of whole traces keep their two-index key (and so their hashed order)."""
    return tuple(row[:3]) if spec.vertical_block else tuple(row[:2])


def _check_validation(rows: dict, config: PatchesConfig, spec: PatchSpec, blocks: int, dataset) -> None:
    """Refuse a split that asked for validation patches and got none, naming what would give some.

    Validation patches come from whole split blocks (twice the window, at
    least ``--split-block``; cut along the vertical too where two columns of
    whole traces do not fit) with no training window on them: a small survey
    or labelled area may hold fewer blocks than a split needs.
    """
    if config.val_fraction <= 0 or np.any(rows["split"] == 1):
        return
    block = spec.block()
    extent = max(dataset.amplitude.shape[:2])
    hints = [f"--size {max(extent // 4, 1)} or smaller"]
    if len(spec.orientations) > 1:
        hints.append("--orientation inline")
    hints += ["labels on a larger area", "--val-fraction 0 (no validation)"]
    raise LabelError(
        f"option --val-fraction {config.val_fraction}: no validation patch fits; the labelled windows lie in "
        f"{blocks} split block(s) of {block[0]} x {block[1]} traces x {block[2]} samples, and validation "
        f"needs a block with no training window of any orientation on it and not all of any class's "
        f"labels; use {', '.join(hints)}"
    )


def _available(block_class: np.ndarray, validation: set, n_classes: int, spec: PatchSpec) -> np.ndarray:
    available = np.zeros((2, n_classes), np.int64)
    for row in block_class.tolist():
        available[int(_block_of(row, spec) in validation), row[3]] += row[4]
    return available


def _targets(available: np.ndarray, per_class: int, val_fraction: float) -> np.ndarray:
    """Patches wanted per (split, class): ``per_class`` for training, in proportion for validation."""
    wanted = np.array([per_class, max(1, round(per_class * val_fraction / (1 - val_fraction)))])
    return np.minimum(available, wanted[:, None])


def _final_rows(
    selected: list[dict], targets: np.ndarray, config: PatchesConfig, spec: PatchSpec, chunks: dict[str, int]
) -> dict:
    """Exact counts per (split, class) by lowest draw, then augmented copies, in volume order."""
    merged = {name: np.concatenate([part[name] for part in selected]) for name in selected[0]}
    taken = np.zeros(len(merged["i"]), bool)
    for split in (0, 1):
        for label in range(targets.shape[1]):
            members = np.flatnonzero((merged["split"] == split) & (merged["label"] == label))
            taken[members[np.argsort(merged["draw"][members], kind="stable")[: targets[split, label]]]] = True
    rows = {name: merged[name][taken] for name in ("i", "j", "k", "orientation", "label", "split")}
    rows["flip"] = np.zeros(len(rows["i"]), np.int8)
    rows["scale"] = np.ones(len(rows["i"]), np.float32)
    rows = _augmented(rows, config, spec)
    # chunk by chunk, so each cut task reads one or two chunks (plus halo)
    chunk_i, chunk_j = rows["i"] // chunks[spec.dims[0]], rows["j"] // chunks[spec.dims[1]]
    order = np.lexsort((rows["flip"], rows["orientation"], rows["k"], rows["j"], rows["i"], chunk_j, chunk_i))
    return {name: values[order] for name, values in rows.items()}


def _augmented(rows: dict, config: PatchesConfig, spec: PatchSpec) -> dict:
    """Add one copy per training patch: flipped along the section and/or scaled."""
    if not config.augment:
        return rows
    train = rows["split"] == 0
    copies = {name: values[train].copy() for name, values in rows.items()}
    if "flip" in config.augment and spec.kind != "trace":
        copies["flip"][:] = 1
    if "scale" in config.augment:
        draw = position_hash(config.seed + 7, copies["i"], copies["j"], copies["k"], copies["orientation"])
        copies["scale"] = (1 + config.scale_range * (2 * draw - 1)).astype(np.float32)
    return {name: np.concatenate([rows[name], copies[name]]) for name in rows}


def _patch_template(rows: dict, spec: PatchSpec, names, dataset, store, config, labels_ordered) -> xr.Dataset:
    n = len(rows["i"])
    window_dims = {
        "trace": ("window_vertical",),
        "section": ("window_width", "window_vertical"),
        "cube": ("window_inline", "window_crossline", "window_vertical"),
    }[spec.kind]
    x_dims = ("section_offset", *window_dims) if spec.neighbours else window_dims
    chunk = (min(PATCH_CHUNK, n),)
    variables = {
        "x": (
            ("patch", *x_dims),
            da.zeros((n, *_x_shape(spec)), dtype=np.float32, chunks=chunk + _x_shape(spec)),
            {"long_name": "Seismic amplitude patches (raw; normalise with attrs mean/std)"},
        ),
        "y": (
            ("patch", *window_dims[len(window_dims) - len(_y_shape(spec)) :]),
            da.zeros((n, *_y_shape(spec)), dtype=np.int16, chunks=chunk + _y_shape(spec)),
            {
                "long_name": "Facies labels of the patches (-1: unlabelled)",
                "flag_values": list(range(len(names))),
                "flag_meanings": " ".join(names),
            },
        ),
    }
    if spec.attributes:  # the other inputs, raw, one channel each; normalise with attrs input_statistics
        variables["x_inputs"] = (
            ("patch", "input", *window_dims),
            da.zeros(
                (n, len(spec.attributes), *_window_shape(spec)),
                dtype=np.float32,
                chunks=(chunk[0], len(spec.attributes), *_window_shape(spec)),
            ),
            {"long_name": "Input patches beside the amplitude (raw): " + ", ".join(spec.attributes)},
        )
    # each patch's place is known before any is cut: the template writes it whole (a few files,
    # not seven small writes per task: 441 of them took 1.9 s for 16,000 patches)
    for name, field, dtype in (
        ("inline_index", "i", np.int32),
        ("crossline_index", "j", np.int32),
        ("sample_index", "k", np.int32),
        ("orientation", "orientation", np.int8),
        ("split", "split", np.int8),
        ("flip", "flip", np.int8),
        ("scale", "scale", np.float32),
    ):
        variables[name] = (("patch",), rows[field].astype(dtype))
    attrs = {
        "kind": spec.kind,
        "size": spec.size,
        "stride": spec.stride,
        "dense": spec.dense,
        "orientations": list(spec.orientations),
        "volume_dims": list(spec.dims),
        "volume_shape": list(spec.sizes),
        "class_names": list(names),
        "seed": config.seed,
        "val_fraction": config.val_fraction,
        "split_block": config.split_block,
        "split_blocks": list(spec.block()),  # the blocks actually used: inline, crossline, vertical
        "augment": list(config.augment),
        "neighbours": spec.neighbours,
        "inputs": list(config.inputs),
        "classes_in_depth_order": labels_ordered,  # no labelled trace goes back up the codes
        "source_store": store if location.is_url(store) else str(Path(store).resolve()),
        "split_meanings": "0 train, 1 validation",
        "orientation_meanings": "0 inline section, 1 crossline section",
    }
    template = xr.Dataset(variables, attrs=attrs)
    if spec.attributes:
        template = template.assign_coords(input=("input", np.array(spec.attributes, dtype=object)))
    return template


def _summary(out, spec, rows, names, mean, std) -> dict:
    per_split = {}
    for split, split_name in ((0, "train"), (1, "validation")):
        members = rows["split"] == split
        per_split[split_name] = {
            name: int(((rows["label"] == n) & members).sum()) for n, name in enumerate(names)
        }
    return {
        "patches": str(out),
        "kind": spec.kind,
        "size": spec.size,
        "count": int(len(rows["i"])),
        **per_split,
        "mean": round(float(mean), 4),
        "std": round(float(std), 4),
    }


def default_patches(model: str) -> PatchesConfig:
    """Patch defaults for each model family, chosen on the synthetic survey.

    Parameters
    ----------
    model : str
        A registered model name; its first patch kind is cut.

    Returns
    -------
    PatchesConfig
        The patches ``train`` cuts from a labelled volume store.
    """
    from ..models import model_entry

    entry = model_entry(model)
    kind = entry.patch_kinds[0]
    if kind == "section":
        # fully convolutional models see two sections on each side: noise differs between them, geology hardly
        neighbours = SECTION_NEIGHBOURS if entry.dense else 0
        return PatchesConfig(
            kind="section", size=64, stride=4, per_class=400, augment=("flip",), neighbours=neighbours
        )
    if kind == "cube":
        return PatchesConfig(kind="cube", size=24, stride=4, per_class=300, dense=True)
    return PatchesConfig(kind="trace", size=64, stride=2, per_class=2000)


#: Patch sizes are multiples of this, so every default network's down-sampling grid fits.
PATCH_SIZE_STEP = 8


def fitting_patches(model: str, sizes: tuple[int, int, int]) -> tuple[PatchesConfig, str]:
    """The default patches, shrunk to fit a small volume, and a note saying so.

    Parameters
    ----------
    model : str
        A registered model name.
    sizes : tuple of int
        The volume's (inline, crossline, vertical) sizes.

    Returns
    -------
    tuple
        The patch config, and a one-line note ("" when the default fits).

    >>> config, note = fitting_patches("cnn2d", (48, 48, 64))
    >>> config.size, note
    (48, '--size 64 does not fit the 48 x 48 x 64 volume; section patches of 48 instead')
    """
    config = default_patches(model)
    largest = {"section": min(sizes[1:]), "cube": min(sizes), "trace": sizes[2]}[config.kind]
    if config.size <= largest:
        return config, ""
    size = largest // PATCH_SIZE_STEP * PATCH_SIZE_STEP
    if size < PATCH_SIZE_STEP:
        raise ConfigError(
            f"the {' x '.join(map(str, sizes))} volume is too small for {config.kind} patches; "
            f"cut patches yourself with `seisfacies patches --size N` and train on them"
        )
    note = (
        f"--size {config.size} does not fit the {' x '.join(map(str, sizes))} volume; "
        f"{config.kind} patches of {size} instead"
    )
    return config.model_copy(update={"size": size}), note
