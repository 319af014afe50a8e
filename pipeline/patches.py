"""Pure patch arithmetic: windows, candidates, blocked splits, hashing, cutting.

A patch is a window around a labelled centre voxel. Kinds, named by the model
family that uses them:

* ``trace``: a vertical window of samples; label of the centre (MLP);
* ``section``: a 2D crop of an inline or crossline section with the dense
  label crop (2D CNNs);
* ``cube``: a 3D cube with the centre label or the dense label cube (3D CNNs).

Candidates sit on a global stride grid (along the axes a window spans) and selection uses a hash of the
position and seed, so the same call gives the same patches whatever the
chunking or scheduler. Train and validation come from disjoint spatial
blocks of one grid shared by every orientation, and a window never crosses
its block, so no voxel is in both splits. Blocks span whole traces, or, where
a survey is too small to hold two such columns, are cut along the vertical
axis too.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np

KINDS = ("trace", "section", "cube")
ORIENTATIONS = {"inline": 0, "crossline": 1}
DEFAULT_SIZE = {"trace": 64, "section": 64, "cube": 32}
DEFAULT_STRIDE = {"trace": 2, "section": 4, "cube": 4}


@dataclass(frozen=True)
class PatchSpec:
    """What to cut; the same object drives every task. Dims are by name."""

    kind: str
    dims: tuple[str, str, str]  # ("inline", "crossline", vertical)
    sizes: tuple[int, int, int]  # volume shape
    size: int
    stride: int
    orientations: tuple[str, ...]  # section: which sections; others: ("inline",)
    split_block: int
    seed: int
    dense: bool
    neighbours: int = 0  # section patches: sections on each side given as input channels
    vertical_block: int = 0  # split blocks along the vertical axis too (0: blocks hold whole traces)
    attributes: tuple[str, ...] = ()  # store variables cut beside the amplitude as input channels

    def extent(self, orientation: str) -> tuple[int, int, int]:
        """Window extent along (inline, crossline, vertical).

        >>> dims = ("inline", "crossline", "time")
        >>> spec = PatchSpec("section", dims, (9, 9, 9), 4, 1, ("crossline",), 8, 0, True)
        >>> spec.extent("crossline")
        (4, 1, 4)
        """
        if self.kind == "trace":
            return (1, 1, self.size)
        if self.kind == "cube":
            return (self.size,) * 3
        return (1, self.size, self.size) if orientation == "inline" else (self.size, 1, self.size)

    def block(self) -> tuple[int, int, int]:
        """Split block size along inline, crossline and the vertical: at least twice any window.

        One grid for every orientation: windows of different orientations lie
        in the same blocks, so a voxel under a training window is never under
        a validation window. Vertically a block holds whole traces unless
        ``vertical_block`` is set.

        >>> dims = ("inline", "crossline", "time")
        >>> spec = PatchSpec("section", dims, (9, 9, 90), 8, 1, ("inline", "crossline"), 8, 0, True)
        >>> spec.block(), spec.with_vertical_blocks().block()
        ((16, 16, 90), (16, 16, 16))
        """
        window = [max(self.extent(o)[axis] for o in self.orientations) for axis in range(3)]
        vertical = max(self.vertical_block, 2 * window[2]) if self.vertical_block else self.sizes[2]
        return (max(self.split_block, 2 * window[0]), max(self.split_block, 2 * window[1]), vertical)

    def with_vertical_blocks(self) -> PatchSpec:
        """The same spec with split blocks cut along the vertical axis as well (at twice the window)."""
        return replace(self, vertical_block=max(self.split_block, 1))


def window_start(centre: np.ndarray, extent: int) -> np.ndarray:
    """First index of a window of ``extent`` around ``centre``.

    Parameters
    ----------
    centre : np.ndarray
    extent : int

    Returns
    -------
    np.ndarray

    >>> window_start(np.array([5]), 4).tolist(), window_start(np.array([5]), 3).tolist()
    ([3], [4])
    """
    return centre - extent // 2


def neighbour_starts(starts: np.ndarray, axis: int, neighbours: int, size: int) -> list[np.ndarray]:
    """Window starts on the sections around each window, clamped to the volume.

    A section patch with neighbours sees ``2 * neighbours + 1`` parallel
    sections as input channels; at the volume's edges the last section repeats.

    Parameters
    ----------
    starts : np.ndarray
        ``(n, 3)`` first index of each window along (inline, crossline, vertical).
    axis : int
        The axis across the sections (0 for inline sections).
    neighbours : int
        Sections on each side.
    size : int
        The volume's size along ``axis``.

    Returns
    -------
    list of np.ndarray
        One ``(n, 3)`` array per channel, from ``-neighbours`` to ``+neighbours``.

    >>> [s[:, 0].tolist() for s in neighbour_starts(np.array([[0, 5, 5], [4, 5, 5]]), 0, 1, 5)]
    [[0, 3], [0, 4], [1, 4]]
    """
    shifted = []
    for offset in range(-neighbours, neighbours + 1):
        channel = starts.copy()
        channel[:, axis] = np.clip(starts[:, axis] + offset, 0, size - 1)
        shifted.append(channel)
    return shifted


def position_hash(seed: int, *coordinates: np.ndarray) -> np.ndarray:
    """A uniform number in [0, 1) per position, fixed by the seed (splitmix64).

    Parameters
    ----------
    seed : int
        Random seed.
    *coordinates : np.ndarray

    Returns
    -------
    np.ndarray

    >>> a = position_hash(7, np.arange(3), np.zeros(3, int))
    >>> bool(((a >= 0) & (a < 1)).all()), bool((a == position_hash(7, np.arange(3), np.zeros(3, int))).all())
    (True, True)
    """
    start = (seed * 0x9E3779B97F4A7C15) % 2**64
    state = np.full(np.broadcast(*coordinates).shape, start, np.uint64)
    for values in coordinates:
        state = _mix(state ^ (np.asarray(values).astype(np.uint64) + np.uint64(0x632BE59BD9B4E019)))
    return (state >> np.uint64(11)).astype(np.float64) / float(2**53)


def _mix(state: np.ndarray) -> np.ndarray:
    with np.errstate(over="ignore"):
        state = (state ^ (state >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
        state = (state ^ (state >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
    return state ^ (state >> np.uint64(31))


def candidates(spec: PatchSpec, labels: np.ndarray, origin: tuple[int, int, int]) -> dict[str, np.ndarray]:
    """Centres in a labels block (starting at ``origin``) that may become patches.

    A candidate is labelled, on the global stride grid along the axes its
    window spans (every section of an inline-section patch is a candidate,
    so a labelled inline is never skipped for being off the grid), and its
    window lies inside the volume and inside its split block.

    Parameters
    ----------
    spec : PatchSpec
        What to cut: kind, window, stride, orientations, split blocks.
    labels : np.ndarray
        Class per voxel, -1 unlabelled.
    origin : tuple[int, int, int]
        Where the values came from, for messages.

    Returns
    -------
    dict[str, np.ndarray]

    >>> labels = np.full((8, 8, 8), -1)
    >>> labels[3] = 1  # one labelled inline, off the stride-2 grid
    >>> dims = ("inline", "crossline", "time")
    >>> spec = PatchSpec("section", dims, (8, 8, 8), 4, 2, ("inline",), 4, 0, True)
    >>> sorted(set(candidates(spec, labels, (0, 0, 0))["i"].tolist()))
    [3]
    """
    found = {name: [] for name in ("i", "j", "k", "orientation", "label", "block_i", "block_j", "block_k")}
    block = spec.block()
    for orientation in spec.orientations:
        extent = spec.extent(orientation)
        steps = [spec.stride if length > 1 else 1 for length in extent]
        grid = [np.arange((-o) % step, n, step) for o, n, step in zip(origin, labels.shape, steps)]
        on_grid = labels[np.ix_(*grid)]
        local = np.nonzero(on_grid >= 0)
        centre = [grid[axis][local[axis]] + origin[axis] for axis in range(3)]
        values = on_grid[local]
        fits = np.ones(len(values), bool)
        for axis in range(3):
            start = window_start(centre[axis], extent[axis])
            fits &= (start >= 0) & (start + extent[axis] <= spec.sizes[axis])
            fits &= start // block[axis] == (start + extent[axis] - 1) // block[axis]
        for name, array in zip(("i", "j", "k"), centre):
            found[name].append(array[fits])
        found["label"].append(values[fits])
        found["orientation"].append(np.full(int(fits.sum()), ORIENTATIONS[orientation], np.int8))
        for axis, name in enumerate(("block_i", "block_j", "block_k")):
            found[name].append(window_start(centre[axis][fits], extent[axis]) // block[axis])
    return {name: np.concatenate(parts) for name, parts in found.items()}


def choose_validation_blocks(
    block_counts: dict[tuple[int, ...], int],
    fraction: float,
    seed: int,
    class_blocks: dict[int, set] | None = None,
) -> set:
    """Blocks that form the validation split: hashed order, about ``fraction`` of candidates.

    A class whose every labelled window would lie in validation blocks would
    train on nothing: its blocks stay in training and others are drawn instead.

    Parameters
    ----------
    block_counts : dict[tuple[int, ...], int]
        Candidates per block (its index along each axis).
    fraction : float
    seed : int
        Random seed.
    class_blocks : dict[int, set], optional
        Each class's blocks that hold a candidate of it.

    Returns
    -------
    set

    >>> counts = {(0, 0): 10, (0, 1): 10, (1, 0): 10, (1, 1): 10}
    >>> sorted(choose_validation_blocks(counts, 0.25, 0))
    [(1, 0)]
    >>> sorted(choose_validation_blocks(counts, 0.25, 0, {0: set(counts), 1: {(1, 0)}}))
    [(0, 0)]
    """
    if fraction <= 0 or len(block_counts) < 2:
        return set()
    wanted, kept_for_training = fraction * sum(block_counts.values()), set()
    while True:
        open_blocks = {key: n for key, n in block_counts.items() if key not in kept_for_training}
        chosen = _hashed_blocks(open_blocks, wanted, len(block_counts) - 1, seed)
        starved = [blocks for blocks in (class_blocks or {}).values() if blocks and blocks <= chosen]
        if not starved:
            return chosen
        kept_for_training |= set().union(*starved)


def _hashed_blocks(block_counts: dict, wanted: float, at_most: int, seed: int) -> set:
    """Blocks in hashed order until they hold ``wanted`` candidates (at most ``at_most`` blocks)."""
    keys = sorted(block_counts)
    if not keys:
        return set()
    order = np.argsort(position_hash(seed + 1, *np.array(keys).T))
    chosen, taken = set(), 0
    for index in order:
        if taken >= wanted or len(chosen) == min(at_most, len(keys)):
            break
        chosen.add(keys[index])
        taken += block_counts[keys[index]]
    return chosen


def copy_windows(
    block: np.ndarray,
    origin: tuple[int, int, int],
    starts: np.ndarray,
    extent: tuple[int, int, int],
    target: np.ndarray,
    rows: np.ndarray,
    mirrored: np.ndarray,
    group: int = 256,
) -> None:
    """Copy the windows of ``extent`` at global ``starts`` from a block into ``target[rows]``.

    Each window is reshaped to a row of ``target`` (a section loses its flat
    axis, a trace is its samples) and, where ``mirrored``, reversed along the
    row's second-last axis (across the section, the crossline of a cube).
    Windows are gathered ``group`` at a time: a stack of all of them before
    the scatter into the rows was fresh memory as large as the output, and
    one window at a time cost 2 microseconds of Python each (20x the copy
    of a 64-sample trace).

    Parameters
    ----------
    block : numpy.ndarray
        An in-memory block of samples.
    origin : tuple[int, int, int]
        The block's first index along each axis of the volume.
    starts : numpy.ndarray
        ``(n, 3)`` first index of each window in the volume.
    extent : tuple[int, int, int]
        The window's length along each axis.
    target : numpy.ndarray
        Where the windows go, one row each; written in place.
    rows : numpy.ndarray
        ``(n,)`` the row of ``target`` each window fills.
    mirrored : numpy.ndarray
        ``(n,)`` bool: reverse that window across the section (rows of two or more axes).
    group : int
        Windows gathered at once.

    >>> v = np.arange(27).reshape(3, 3, 3)
    >>> out = np.zeros((2, 2, 3), int)
    >>> copy_windows(v, (0, 0, 0), np.array([[1, 1, 0]]), (1, 2, 3), out, np.array([1]), np.array([True]))
    >>> out[1].tolist()
    [[15, 16, 17], [12, 13, 14]]
    """
    local = np.asarray(starts) - np.asarray(origin)
    view = np.lib.stride_tricks.sliding_window_view(block, extent)
    rows, mirrored = np.asarray(rows), np.asarray(mirrored, bool)
    if mirrored.any() and target.ndim < 3:
        raise ValueError("a trace window has no section to mirror")
    for start in range(0, len(rows), group):
        part = slice(start, start + group)
        windows = view[local[part, 0], local[part, 1], local[part, 2]].reshape(-1, *target.shape[1:])
        flip = mirrored[part]
        if flip.any():
            windows[flip] = np.flip(windows[flip], axis=windows.ndim - 2)
        target[rows[part]] = windows
