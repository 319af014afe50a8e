"""Pure block arithmetic: chunk regions, halos and their trimming, by dim name.

>>> regions({"inline": 5, "crossline": 3}, {"inline": 2, "crossline": 3})
... # doctest: +NORMALIZE_WHITESPACE
[{'inline': slice(0, 2, None), 'crossline': slice(0, 3, None)},
 {'inline': slice(2, 4, None), 'crossline': slice(0, 3, None)},
 {'inline': slice(4, 5, None), 'crossline': slice(0, 3, None)}]
"""

from __future__ import annotations

import itertools

Region = dict[str, slice]


def regions(sizes: dict[str, int], chunks: dict[str, int]) -> list[Region]:
    """Cut a grid of ``sizes`` into chunk-aligned regions, in C order of the dims.

    Parameters
    ----------
    sizes : dict[str, int]
        Size per dim name.
    chunks : dict[str, int]
        Chunk size per dim name.

    Returns
    -------
    list[Region]
    """
    starts = {dim: range(0, size, chunks[dim]) for dim, size in sizes.items()}
    plan = []
    for corner in itertools.product(*starts.values()):
        plan.append(
            {dim: slice(start, min(start + chunks[dim], sizes[dim])) for dim, start in zip(sizes, corner)}
        )
    return plan


def slab_regions(
    sizes: dict[str, int], chunks: dict[str, int], along: str, bytes_per_cell: int, budget_bytes: int
) -> list[Region]:
    """Chunk-aligned regions stretched ``along`` one dim, each within ``budget_bytes``.

    Reading a SEG-Y file along its sorting gives long contiguous byte ranges,
    so tasks cover as many chunks along that dim as the budget allows (at least
    one chunk); the budget keeps worker memory independent of the survey size.

    Parameters
    ----------
    sizes : dict[str, int]
        Size per dim name: the dims the regions are cut along.
    chunks : dict[str, int]
        Chunk size per dim name; dims not in ``sizes`` (e.g. the vertical one,
        whose samples ``bytes_per_cell`` already holds) do not count.
    along : str
        The dim to stretch the regions along.
    bytes_per_cell : int
        Bytes one cell of ``sizes``' grid holds (a whole trace, for ingest).
    budget_bytes : int
        Bytes one region may hold.

    Returns
    -------
    list[Region]

    >>> slab_regions({"inline": 4, "crossline": 10}, {"inline": 2, "crossline": 2}, "crossline", 100, 800)
    ... # doctest: +NORMALIZE_WHITESPACE
    [{'inline': slice(0, 2, None), 'crossline': slice(0, 4, None)},
     {'inline': slice(0, 2, None), 'crossline': slice(4, 8, None)},
     {'inline': slice(0, 2, None), 'crossline': slice(8, 10, None)},
     {'inline': slice(2, 4, None), 'crossline': slice(0, 4, None)},
     {'inline': slice(2, 4, None), 'crossline': slice(4, 8, None)},
     {'inline': slice(2, 4, None), 'crossline': slice(8, 10, None)}]

    A trace's bytes already hold every sample: the vertical chunk does not count again.

    >>> len(slab_regions({"inline": 4, "crossline": 10}, {"inline": 2, "crossline": 2, "time": 50},
    ...                  "crossline", 100, 800))
    6
    """
    cells_per_chunk_row = 1
    for dim, chunk in chunks.items():
        if dim != along and dim in sizes:
            cells_per_chunk_row *= chunk
    chunk_bytes = cells_per_chunk_row * chunks[along] * bytes_per_cell
    chunks_per_task = max(1, budget_bytes // max(chunk_bytes, 1))
    stretched = {**chunks, along: chunks[along] * chunks_per_task}
    return regions(sizes, stretched)


def chunk_pieces(bounds: tuple[tuple[int, int], ...], chunks: tuple[int, ...]) -> list[tuple[slice, ...]]:
    """The pieces of a box (start, stop per axis) that each lie within one chunk, in C order.

    Parameters
    ----------
    bounds : tuple of (int, int)
        The box's start and stop per axis.
    chunks : tuple of int
        The chunk size per axis.

    Returns
    -------
    list of tuple of slice
        Each piece's slices, in the box's own coordinates (0 at its start).

    >>> chunk_pieces(((2, 7), (0, 3)), (4, 3))  # doctest: +NORMALIZE_WHITESPACE
    [(slice(0, 2, None), slice(0, 3, None)), (slice(2, 5, None), slice(0, 3, None))]
    """
    per_axis = []
    for (start, stop), chunk in zip(bounds, chunks):
        edges = [start, *range((start // chunk + 1) * chunk, stop, chunk), stop]
        per_axis.append([slice(a - start, b - start) for a, b in zip(edges, edges[1:])])
    return list(itertools.product(*per_axis))


def aligned_halo_block(
    region: Region,
    halo: dict[str, int],
    sizes: dict[str, int],
    multiple: int | dict[str, int] = 1,
    pad_edges: bool = True,
) -> tuple[Region, dict[str, tuple[int, int]], Region]:
    """A region grown by ``halo`` with its start on a global grid of ``multiple``.

    Returns the part inside the volume to read, the padding that completes it
    beyond the volume's edges, and where the region sits in the padded block.
    Aligning to the grid of a network's down-sampling (2**depth) makes its
    output independent of how the volume is chunked. With ``pad_edges=False``
    the volume's edges are padded only up to that grid: a fully convolutional
    network pads at the block's edges itself, and a block reaching an edge then
    always starts (or ends) exactly there, whatever the chunking.

    Parameters
    ----------
    region : Region
        Index range per dim name.
    halo : dict[str, int]
        Halo per dim name.
    sizes : dict[str, int]
        Size per dim name.
    multiple : int or dict[str, int]
        The grid, for every dim or per dim name (a dim left out: 1).
    pad_edges : bool

    Returns
    -------
    tuple[Region, dict[str, tuple[int, int]], Region]

    >>> read, pads, keep = aligned_halo_block({"x": slice(8, 16)}, {"x": 3}, {"x": 20}, 4)
    >>> read, pads, keep
    ({'x': slice(4, 20, None)}, {'x': (0, 0)}, {'x': slice(4, 12, None)})
    >>> aligned_halo_block({"x": slice(0, 8)}, {"x": 3}, {"x": 20}, 4)[1]
    {'x': (4, 0)}
    >>> aligned_halo_block({"x": slice(0, 18)}, {"x": 3}, {"x": 18}, 4, pad_edges=False)[1]
    {'x': (0, 2)}
    >>> aligned_halo_block({"x": slice(0, 18)}, {"x": 3}, {"x": 18}, {"x": 1}, pad_edges=False)[1]
    {'x': (0, 0)}
    """
    read, pads, keep = {}, {}, {}
    for dim, part in region.items():
        depth = halo.get(dim, 0)
        grid = multiple.get(dim, 1) if isinstance(multiple, dict) else multiple
        step = grid if depth else 1
        start = ((part.start - depth) // step) * step
        stop = -((-(part.stop + depth)) // step) * step
        if not pad_edges:
            start, stop = max(start, 0), min(stop, -(-sizes[dim] // step) * step)
        inside = slice(max(start, 0), min(stop, sizes[dim]))
        read[dim] = inside
        pads[dim] = (inside.start - start, stop - inside.stop)
        keep[dim] = slice(part.start - start, part.stop - start)
    return read, pads, keep
