"""Inference on an in-memory block: what a model needs around it, and its classes.

No Dask, xarray or Zarr: :mod:`seisfacies.workflows.predict` reads each block
with the halo its :class:`BlockGeometry` asks for, pads it, and hands it here.
Sections, trace windows and patch centres are cut from the block as views and
classified a batch at a time, so memory stays near one batch.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from .calibration import normalised_entropy
from .registry import model_entry

#: Pixels of one batch of sections: convolution buffers scale with it (a batch
#: of eight 88 x 4800 sections took 640 MB with the smallest cnn2d).
MAX_BATCH_PIXELS = 2**19
#: Pixels of one batch of sections on a GPU: a whole block usually goes in one pass.
GPU_BATCH_PIXELS = 2**23
#: Trace windows per forward pass at least: they are small, large batches keep an MLP busy.
MIN_TRACE_BATCH = 4096


def normalise_finite(values: np.ndarray, mean: float, std: float) -> np.ndarray:
    """Normalise float32 ``values`` in place; NaN/inf become 0 (the mean). Returns where they were.

    Non-finite samples would spread through every convolution; training and
    prediction both see them as the mean, and prediction leaves them unclassified.

    Parameters
    ----------
    values : numpy.ndarray
        float32 samples, changed in place.
    mean, std : float
        The training split's statistics (computed without non-finite samples).

    Returns
    -------
    numpy.ndarray
        Boolean mask of the samples that were not finite.

    >>> block = np.array([3.0, np.nan, 5.0], np.float32)
    >>> normalise_finite(block, 4.0, 1.0).tolist(), block.tolist()
    ([False, True, False], [-1.0, 0.0, 1.0])
    """
    invalid = ~np.isfinite(values)
    values -= np.float32(mean)
    values /= np.float32(std)
    values[invalid] = 0
    return invalid


#: Inputs a model can be given as channels: the amplitude (and its neighbouring sections), and
#: ``depth``, each sample's relative position in its trace (stratigraphic position).
INPUTS = ("amplitude", "depth")


def predicted_class(logits: torch.Tensor, class_axis: int = 1) -> torch.Tensor:
    """The most likely class along ``class_axis``; the first such class on a tie, as ``argmax``.

    ``max(...).indices`` gives the same answer as ``argmax`` and is several
    times faster along a strided axis on the CPU (the classes of NCHW logits:
    10 ms against 1.3 ms for 32 x 6 x 64 x 64 here).

    Parameters
    ----------
    logits : torch.Tensor
        Scores with the classes on ``class_axis``.
    class_axis : int
        Which axis holds the classes.

    Returns
    -------
    torch.Tensor
        int64 classes, ``class_axis`` removed.

    >>> predicted_class(torch.tensor([[[1.0, 2.0]], [[3.0, 2.0]], [[3.0, 0.0]]]).permute(1, 0, 2)).tolist()
    [[1, 0]]
    """
    return logits.max(class_axis).indices


#: The least log-probability a depth-order block keeps (float16 reaches -65504; a class this
#: unlikely is never chosen over a likely one anyway).
LOG_PROBABILITY_FLOOR = -1e4


def classes_in_depth_order(log_probability: np.ndarray) -> np.ndarray:
    """Each trace's most likely classes that never go back up the class codes with depth.

    Stratigraphic intervals follow each other downwards: where the training
    labels list their classes shallow to deep and no labelled trace ever goes
    back to a shallower one, a trace's facies must do the same. This finds,
    per trace, the non-decreasing sequence of classes with the highest sum of
    log-probabilities (Viterbi over classes that may stay or step deeper, any
    number at once). Voxel by voxel the argmax can put a deep unit high up where
    it looks alike (the lower North Sea and the chalk of F3); the sequence cannot.
    :class:`DepthOrderDecoder` does the same for traces that arrive a window at a time.

    Parameters
    ----------
    log_probability : numpy.ndarray
        ``(class, ..., vertical)``: per-voxel log-probabilities, whole traces.

    Returns
    -------
    numpy.ndarray
        int16 ``(..., vertical)`` classes, non-decreasing along the vertical.

    A one-sample outlier of a deeper class is outvoted by its trace; a
    shallower class below a deeper one is not reachable:

    >>> p = np.array([[0.9, 0.3, 0.9, 0.1, 0.1], [0.1, 0.7, 0.1, 0.9, 0.9]])
    >>> p.argmax(0).tolist(), classes_in_depth_order(np.log(p[:, None])).tolist()
    ([0, 1, 0, 1, 1], [[0, 0, 0, 1, 1]])
    """
    n_classes, *traces, n_samples = log_probability.shape
    decoder = DepthOrderDecoder(n_classes, tuple(traces), n_samples)
    decoder.add(log_probability)
    return decoder.classes()


#: Samples of every trace a :class:`DepthOrderDecoder` packs or unpacks at once.
SAMPLES_AT_ONCE = 128


class DepthOrderDecoder:
    """:func:`classes_in_depth_order` of traces whose samples arrive a window at a time, top down.

    It keeps each trace's best score ending in each class, and per sample one
    bit per class: whether that class scored at least as well as every
    shallower one. Those bits are all the back-pointers a non-decreasing
    sequence needs (the best way into class c comes from the deepest marked
    class at or above c), so a whole trace costs ``ceil(C / 8)`` bytes a
    sample, not its log-probabilities: a task can decide traces of any
    length while holding one window of them.

    Parameters
    ----------
    n_classes : int
        Classes, shallow to deep.
    traces : tuple of int
        The shape of the traces' grid (``(inline, crossline)`` of a block).
    n_samples : int
        Samples per trace: :meth:`add` must be given exactly that many.

    >>> p = np.log(np.array([[0.9, 0.3, 0.9, 0.1, 0.1], [0.1, 0.7, 0.1, 0.9, 0.9]]))[:, None]
    >>> decoder = DepthOrderDecoder(2, (1,), 5)
    >>> decoder.add(p[..., :2]); decoder.add(p[..., 2:])
    >>> decoder.classes().tolist() == classes_in_depth_order(p).tolist() == [[0, 0, 0, 1, 1]]
    True
    """

    def __init__(self, n_classes: int, traces: tuple[int, ...], n_samples: int):
        self.traces = traces
        self.n_samples = n_samples
        self.n_classes = n_classes
        self.n_traces = int(np.prod(traces, dtype=np.int64))
        self.marks = np.zeros((n_samples, -(-n_classes // 8), self.n_traces), np.uint8)
        self.score: np.ndarray | None = None
        self.done = 0

    def add(self, log_probability: np.ndarray) -> None:
        """Take the next samples of every trace: ``(class, *traces, window)`` log-probabilities."""
        window = log_probability.reshape(self.n_classes, self.n_traces, -1)
        if self.done + window.shape[-1] > self.n_samples:
            raise ValueError(f"more than the {self.n_samples} samples of a trace")
        for start in range(0, window.shape[-1], SAMPLES_AT_ONCE):
            # each sample's values side by side; marks packed a block of samples at a time
            part = np.moveaxis(window[:, :, start : start + SAMPLES_AT_ONCE], -1, 0).astype(np.float64)
            marked = np.ones(part.shape, bool)
            for here, marks in zip(part, marked):
                if self.score is None:
                    self.score = here
                    continue
                best = self.score.copy()  # best path ending in this class or a shallower one
                for code in range(1, len(best)):  # a loop over rows: accumulate along rows is slower
                    np.maximum(best[code - 1], best[code], out=best[code])
                np.equal(self.score, best, out=marks)
                self.score = np.add(best, here, out=best)
            self.marks[self.done : self.done + len(part)] = _pack_classes(marked)
            self.done += len(part)

    def classes(self, dtype=np.int16) -> np.ndarray:
        """``(*traces, n_samples)`` of ``dtype``: each trace's best non-decreasing classes."""
        if self.done != self.n_samples:
            raise ValueError(f"{self.done} of the {self.n_samples} samples of a trace were given")
        path = np.empty((self.n_traces, self.n_samples), dtype)
        state = self.score.argmax(axis=0)
        every = np.arange(self.n_traces)
        for stop in range(self.n_samples, 0, -SAMPLES_AT_ONCE):
            start = max(0, stop - SAMPLES_AT_ONCE)
            marked = _unpack_classes(self.marks[start:stop], self.n_classes)
            came_from = np.zeros(marked.shape, np.int16)  # the deepest marked class at or above each
            for code in range(1, self.n_classes):
                np.copyto(came_from[:, code], came_from[:, code - 1])
                came_from[:, code][marked[:, code]] = code
            block = np.empty((stop - start, self.n_traces), dtype)  # samples side by side, then turned
            for sample in range(stop - 1, start - 1, -1):
                block[sample - start] = state
                state = came_from[sample - start, state, every]
            path[:, start:stop] = block.T
        return path.reshape(*self.traces, self.n_samples)


def _pack_classes(marked: np.ndarray) -> np.ndarray:
    """``(sample, class, trace)`` bools as bits: class c is bit c % 8 of byte c // 8.

    A loop over the classes: ``np.packbits`` along that short middle axis is several times slower.
    """
    packed = np.zeros((marked.shape[0], -(-marked.shape[1] // 8), marked.shape[2]), np.uint8)
    for code in range(marked.shape[1]):
        packed[:, code // 8] |= marked[:, code].view(np.uint8) << (code % 8)
    return packed


def _unpack_classes(packed: np.ndarray, n_classes: int) -> np.ndarray:
    """The bools :func:`_pack_classes` packed, ``(sample, class, trace)``."""
    bits = [(packed[:, code // 8] >> (code % 8)) & 1 for code in range(n_classes)]
    return np.stack(bits, axis=1).view(bool)


def relative_depth(starts: np.ndarray, length: int, n_samples: int) -> np.ndarray:
    """Each sample's position in its trace, 0 at the first sample and 1 at the last: ``(N, length)``.

    The ``depth`` input: facies that look alike at different depths (the
    lower North Sea and the chalk of F3) differ in where they lie.

    Parameters
    ----------
    starts : numpy.ndarray
        The first vertical index of each window (negative in padding above the volume).
    length : int
        Samples in a window.
    n_samples : int
        Samples in the survey's traces.

    Returns
    -------
    numpy.ndarray
        float32.

    >>> relative_depth(np.array([0, 2]), 3, 5).tolist()
    [[0.0, 0.25, 0.5], [0.5, 0.75, 1.0]]
    """
    return ((np.asarray(starts)[:, None] + np.arange(length)) / max(n_samples - 1, 1)).astype(np.float32)


@dataclass(frozen=True)
class BlockGeometry:
    """What a block needs around it, per dim, for one checkpoint and the predict settings.

    Built once per checkpoint (:meth:`of`); the task planner, the block reader
    and the padder all read it, so the halo is decided in one place.

    Parameters
    ----------
    halo : dict[str, int]
        Samples read on each side of a block, per dim a model looks along: the
        receptive field (at least half a patch) across and down a section,
        plus the neighbour sections and the smoothing reach across them.
    grid : dict[str, int]
        Where a block's ends sit, per dim: the network's down-sampling
        multiple (1 across sections, and for patch models), so that the
        result does not depend on the chunking.
    repeat_dim : str or None
        The dim whose volume edge repeats its last section (neighbour
        sections, as the patches were cut); every other edge is mirrored.
    pad_edges : bool
        Pad the volume's edges up to the full halo (patch models). A fully
        convolutional model pads at a block's edges itself: its edges are
        padded only up to the grid.

    >>> patch = {"kind": "section", "size": 32, "orientations": ["inline"],
    ...          "volume_dims": ["inline", "crossline", "time"]}
    >>> geometry = BlockGeometry.of({"patch": patch, "model_name": "cnn2d", "model_config": {"depth": 2}})
    >>> geometry.halo, geometry.grid
    ({'crossline': 27, 'time': 27}, {'crossline': 4, 'time': 4})
    >>> patch["neighbours"] = 2  # and two inlines on each side, as input channels
    >>> BlockGeometry.of({"patch": patch, "model_name": "cnn2d", "model_config": {"depth": 2}}, smooth=2)
    ... # doctest: +NORMALIZE_WHITESPACE
    BlockGeometry(halo={'crossline': 27, 'time': 27, 'inline': 4},
                  grid={'crossline': 4, 'time': 4, 'inline': 1}, repeat_dim='inline', pad_edges=False)
    """

    halo: dict[str, int]
    grid: dict[str, int]
    repeat_dim: str | None
    pad_edges: bool

    @classmethod
    def of(cls, payload: dict, smooth: int = 0) -> BlockGeometry:
        """The geometry of a loaded checkpoint's model, with ``smooth`` sections averaged on each side.

        Parameters
        ----------
        payload : dict
            A loaded checkpoint (its ``patch``, ``model_name`` and ``model_config``).
        smooth : int
            Sections on each side whose logits are averaged (fully convolutional
            section models): their inputs, and so their neighbours, are read too.

        Returns
        -------
        BlockGeometry
        """
        patch, dims = payload["patch"], payload["patch"]["volume_dims"]
        entry = model_entry(payload["model_name"])
        radius, multiple = entry.input_grid(payload["model_config"])
        half = max(patch["size"] // 2, radius)
        if patch["kind"] == "trace":
            return cls({dims[2]: half}, {dims[2]: 1}, None, not entry.dense)
        if patch["kind"] == "cube":
            return cls(dict.fromkeys(dims, half), dict.fromkeys(dims, multiple), None, not entry.dense)
        normal = section_normal(patch)
        across = dims[1] if normal == dims[0] else dims[0]
        halo, grid = {across: half, dims[2]: half}, {across: multiple, dims[2]: multiple}
        reach = patch.get("neighbours", 0) + (smooth if entry.dense else 0)
        if reach:  # sections are never down-sampled across: both ends repeat the last one
            halo[normal], grid[normal] = reach, 1
        return cls(halo, grid, normal if patch.get("neighbours") else None, not entry.dense)

    def pad(self, block: np.ndarray, pads: dict[str, tuple[int, int]]) -> np.ndarray:
        """Complete a block beyond the volume's edges: mirrored, or the last section repeated.

        Parameters
        ----------
        block : numpy.ndarray
            The part of the block inside the volume, dims in ``pads``' order.
        pads : dict[str, tuple[int, int]]
            Samples to add before and after, per dim.

        Returns
        -------
        numpy.ndarray

        >>> geometry = BlockGeometry({"x": 2, "y": 1}, {"x": 1, "y": 1}, "y", True)
        >>> geometry.pad(np.array([[1, 2], [3, 4]]), {"x": (1, 0), "y": (0, 1)}).tolist()
        [[3, 4, 4], [1, 2, 2], [3, 4, 4]]
        """
        for axis, (dim, pad) in enumerate(pads.items()):
            if sum(pad):
                widths = [pad if other == axis else (0, 0) for other in range(block.ndim)]
                block = np.pad(block, widths, mode="edge" if dim == self.repeat_dim else "reflect")
        return block


def section_normal(patch: dict) -> str:
    """The dim across a section patch's sections: inline for inline sections.

    Parameters
    ----------
    patch : dict
        A checkpoint's ``patch`` record.

    Returns
    -------
    str

    >>> section_normal({"orientations": ["crossline"], "volume_dims": ["inline", "crossline", "depth"]})
    'crossline'
    """
    dims = patch["volume_dims"]
    return dims[0] if patch["orientations"][0] == "inline" else dims[1]


@dataclass(frozen=True)
class InferenceOptions:
    """How to run a model on a block.

    Parameters
    ----------
    batch_size : int
        Sections (or patch centres) per forward pass; with ``block_on_device``
        at least that many, as many as fit in :data:`GPU_BATCH_PIXELS`.
    device : str
        ``cpu``, ``cuda`` or ``cuda:N``.
    precision : {"fp32", "bf16"}
        bf16 runs under autocast.
    probabilities : bool
        Also return the softmax probabilities (float16).
    uncertainty : bool
        Also return the normalised entropy of the probabilities (float16).
    mirror : bool
        Fully convolutional section models: average the logits with those of
        the mirrored sections (test-time augmentation; twice the compute).
    smooth : int
        Fully convolutional section models: average each section's logits
        with those of ``smooth`` sections on each side (the block must hold
        them: :class:`BlockGeometry` with ``smooth``).
    depth_order : bool
        Decode each trace's classes with :func:`classes_in_depth_order`
        instead of voxel by voxel (the kept part must hold whole traces).
    block_on_device : bool, optional
        Copy the whole block to the device once (pinned memory, asynchronous
        copy) and cut the sections of fully convolutional models there.
        Default: on a GPU.
    """

    batch_size: int = 16
    device: str = "cpu"
    precision: str = "fp32"
    probabilities: bool = False
    block_on_device: bool | None = None
    uncertainty: bool = False
    mirror: bool = False
    smooth: int = 0
    depth_order: bool = False

    @property
    def whole_blocks(self) -> bool:
        """Whether sections are cut from a copy of the block on the device."""
        return self.device != "cpu" if self.block_on_device is None else self.block_on_device


class BlockOutput:
    """The kept region's classes (and probabilities), filled batch by batch.

    Parameters
    ----------
    shape : tuple of int
        The kept region's shape (inline, crossline, vertical).
    n_classes : int
        Number of classes.
    probabilities : bool
        Whether to keep ``(C, ...)`` float16 probabilities too.
    dtype : numpy dtype
        The classes' integer type.
    uncertainty : bool
        Whether to keep the normalised entropy (float16) too.
    temperature : float
        The checkpoint's calibration: probabilities are ``softmax(logits / temperature)``.
    depth_order : bool
        Keep every voxel's log-probabilities and decide ``facies`` trace by
        trace in :meth:`finish` (:func:`classes_in_depth_order`).
    decoder : DepthOrderDecoder, optional
        With ``depth_order``, where the block is one window of longer traces:
        :meth:`finish` hands the window to it and leaves ``facies`` to its
        :meth:`~DepthOrderDecoder.classes`.
    """

    def __init__(
        self,
        shape: tuple[int, int, int],
        n_classes: int,
        probabilities: bool,
        dtype=np.int16,
        uncertainty: bool = False,
        temperature: float = 1.0,
        depth_order: bool = False,
        decoder: DepthOrderDecoder | None = None,
    ):
        self.facies = np.zeros(shape, dtype)
        self.probability = np.zeros((n_classes, *shape), np.float16) if probabilities else None
        self.uncertainty = np.zeros(shape, np.float16) if uncertainty else None
        self.temperature = temperature
        # float16 halves what a window of whole traces holds; the decoder's sums run in float64
        self.log_probability = np.zeros((n_classes, *shape), np.float16) if depth_order else None
        self.decoder = decoder

    def put(self, where: tuple, logits: torch.Tensor, class_axis: int = 1) -> None:
        """Store logits ``(..., C, ...)`` whose other axes match ``self.facies[where]``.

        Parameters
        ----------
        where : tuple
            Index into the kept region.
        logits : torch.Tensor
            The model's output for those voxels.
        class_axis : int
            Which axis of ``logits`` holds the classes.
        """
        if self.log_probability is not None:
            log_probability = torch.log_softmax(logits.float() / self.temperature, dim=class_axis)
            log_probability = log_probability.clamp_min(LOG_PROBABILITY_FLOOR).cpu().numpy()
            self.log_probability[(slice(None), *where)] = np.moveaxis(log_probability, class_axis, 0)
        else:
            self.facies[where] = predicted_class(logits, class_axis).cpu().numpy()
        if self.probability is None and self.uncertainty is None:
            return
        probability = torch.softmax(logits / self.temperature, dim=class_axis)
        if self.uncertainty is not None:
            self.uncertainty[where] = normalised_entropy(probability, class_axis).cpu().numpy()
        if self.probability is not None:
            self.probability[(slice(None), *where)] = np.moveaxis(probability.cpu().numpy(), class_axis, 0)

    def finish(self) -> None:
        """Decide ``facies`` from the kept log-probabilities (``depth_order``), or pass them on."""
        if self.log_probability is None:
            return
        if self.decoder is None:
            self.facies[...] = classes_in_depth_order(self.log_probability)
        else:
            self.decoder.add(self.log_probability)
        self.log_probability = None


@torch.no_grad()
def classify_block(
    model: nn.Module,
    payload: dict,
    block: np.ndarray,
    keep: tuple[slice, slice, slice],
    options: InferenceOptions,
    dtype=np.int16,
    depth: np.ndarray | None = None,
    extras: np.ndarray | None = None,
    decoder: DepthOrderDecoder | None = None,
) -> BlockOutput:
    """Classify the ``keep`` part of a normalised, padded block.

    Parameters
    ----------
    model : torch.nn.Module
        The model, in eval mode on ``options.device``.
    payload : dict
        Its checkpoint (patch kind, size, orientation, classes).
    block : numpy.ndarray
        ``(inline, crossline, vertical)`` float32, normalised, with the halo of
        :class:`BlockGeometry` around the kept part.
    keep : tuple of slice
        The part of ``block`` to classify, per axis.
    options : InferenceOptions
        Batch size, device, precision and whether to keep probabilities.
    dtype : numpy dtype
        The classes' integer type.
    depth : numpy.ndarray, optional
        The ``depth`` input of the block's vertical samples (:func:`relative_depth`),
        for a model trained with it: an extra channel after the amplitude's.
    extras : numpy.ndarray, optional
        ``(inputs, inline, crossline, vertical)``: the other inputs (attributes)
        of the same block, normalised, for a model trained with them: channels
        after the amplitude's (and its neighbours'), before depth.
    decoder : DepthOrderDecoder, optional
        With ``options.depth_order``: the kept part is one window of the
        decoder's traces; they are decided once it has had them all.

    Returns
    -------
    BlockOutput
        ``facies`` (and ``probability``) of the kept part; with ``decoder``,
        ``facies`` come from its :meth:`~DepthOrderDecoder.classes` instead.
    """
    kind, size = payload["patch"]["kind"], payload["patch"]["size"]
    shape = tuple(part.stop - part.start for part in keep)
    temperature = float(payload.get("temperature", 1.0))  # older checkpoints: not calibrated
    output = BlockOutput(
        shape,
        len(payload["class_names"]),
        options.probabilities,
        dtype,
        options.uncertainty,
        temperature,
        options.depth_order,
        decoder,
    )
    forward = functools.partial(_forward, model, device=options.device, bf16=options.precision == "bf16")
    dense = model_entry(payload["model_name"]).dense
    if depth is not None:
        depth = _source(depth, options) if dense else depth
    if extras is not None:
        extras = _source(extras, options)
    if kind == "cube":
        inputs = _with_extras(_source(block, options)[None, None], None if extras is None else extras[None])
        logits = forward(_with_depth(inputs, depth))[0][(slice(None), *keep)]
        output.put((slice(None),) * 3, logits, class_axis=0)
    elif kind == "trace":
        _trace_windows(forward, block, keep, size, output, options.batch_size)
    else:
        inline = payload["patch"]["orientations"][0] == "inline"
        source = _source(block, options) if dense else block  # patch centres are cut on the host
        batch = _section_batch(block, options, inline, dense)
        neighbours = payload["patch"].get("neighbours", 0)
        if extras is not None and not inline:  # in the sections' order, as the block is
            extras = (
                extras.permute(0, 2, 1, 3)
                if isinstance(extras, torch.Tensor)
                else extras.transpose(0, 2, 1, 3)
            )
        _sections(
            forward, source, keep, output, batch, inline, dense, size, neighbours, options, depth, extras
        )
    output.finish()
    return output


def _source(block: np.ndarray, options: InferenceOptions):
    """The block itself, or one copy of it on the device (from pinned memory, asynchronously)."""
    if not options.whole_blocks:
        return block
    tensor = torch.from_numpy(block)
    if torch.device(options.device).type == "cuda":
        tensor = tensor.pin_memory()
    return tensor.to(options.device, non_blocking=True)


def _section_batch(block: np.ndarray, options: InferenceOptions, inline: bool, dense: bool) -> int:
    """Sections per pass: long traces make big sections, so bound the pixels, not just the count."""
    if not dense:
        return options.batch_size
    pixels = block.shape[2] * (block.shape[1] if inline else block.shape[0])
    if options.whole_blocks:
        return max(options.batch_size, GPU_BATCH_PIXELS // pixels)
    return max(1, min(options.batch_size, MAX_BATCH_PIXELS // pixels))


def _forward(model, inputs, device: str, bf16: bool) -> torch.Tensor:
    if isinstance(inputs, torch.Tensor):  # already on the device: a section batch of the block
        tensor = inputs.contiguous()
    else:
        tensor = torch.from_numpy(np.ascontiguousarray(inputs, dtype=np.float32)).to(device)
    with torch.autocast(torch.device(device).type, dtype=torch.bfloat16, enabled=bf16):
        return model(tensor).float()


def _swap_inline_crossline(block):
    """(inline, crossline, vertical) -> (crossline, inline, vertical), a view, for arrays and tensors."""
    return block.transpose(0, 1) if isinstance(block, torch.Tensor) else np.swapaxes(block, 0, 1)


def _sections(
    forward,
    block,
    keep,
    output: BlockOutput,
    batch: int,
    inline: bool,
    dense: bool,
    size: int,
    neighbours: int,
    options: InferenceOptions,
    depth=None,
    extras=None,
) -> None:
    """Inline (or crossline) sections of the block, a batch of sections at a time.

    ``extras`` are the other inputs, ``(input, section, across, vertical)``, already in the sections' order.
    """
    sections = block if inline else _swap_inline_crossline(block)  # (section, across, vertical)
    along, across = (keep[0], keep[1]) if inline else (keep[1], keep[0])
    if dense:
        batches = _dense_batches(
            forward, sections, along, (across, keep[2]), batch, neighbours, options, depth, extras
        )
    else:
        batches = _centre_batches(forward, sections, along, (across, keep[2]), batch, size)
    for rows, logits in batches:  # logits: (section, C, across, T)
        if inline:
            output.put((rows, slice(None), slice(None)), logits)
        else:  # swap section and across back: (crossline, C, inline, T) -> (inline, C, crossline, T)
            output.put((slice(None), rows, slice(None)), logits.transpose(0, 2))


def _centre_batches(forward, sections, along: slice, window: tuple, batch: int, size: int):
    """``(rows, logits)`` of the kept sections, one centred patch per voxel (models that are not dense)."""
    for first in range(along.start, along.stop, batch):
        last = min(first + batch, along.stop)
        logits = [_patch_centres(forward, section, size, *window, batch) for section in sections[first:last]]
        yield slice(first - along.start, last - along.start), torch.stack(logits)


def _dense_batches(
    forward,
    sections,
    along: slice,
    window: tuple,
    batch: int,
    neighbours: int,
    options,
    depth=None,
    extras=None,
):
    """``(rows, logits)`` of the kept sections, each averaged with ``options.smooth`` sections on each side.

    Noise is independent from section to section while the geology is not:
    the mean of neighbouring sections' logits steadies the boundaries. Every
    section's logits are computed once, in order, and kept only until the
    sections that average them are out; at the block's ends (the volume's,
    there) the last section counts again.
    """
    reach = options.smooth
    low, high = max(along.start - reach, 0), min(along.stop + reach, len(sections))
    held, first_held, next_out = [], low, along.start  # held: logits of sections first_held, ...
    for first in range(low, high, batch):
        last = min(first + batch, high)
        inputs = _with_neighbours(sections, first, last, neighbours)
        inputs = _with_depth(
            _with_extras(inputs, None if extras is None else _batch_first(extras[:, first:last])), depth
        )
        logits = _mirror_average(forward, inputs) if options.mirror else forward(inputs)
        held.extend(logits[:, :, window[0], window[1]])
        ready = along.stop if last == high else min(last - reach, along.stop)
        if ready <= next_out:
            continue
        stacked = torch.stack(held)
        total = torch.zeros_like(stacked[: ready - next_out])
        for offset in range(-reach, reach + 1):
            index = np.clip(np.arange(next_out, ready) + offset, low, high - 1) - first_held
            total += stacked[torch.from_numpy(index).to(stacked.device)]
        yield slice(next_out - along.start, ready - along.start), total / (2 * reach + 1)
        next_out = ready
        done = max(next_out - reach - first_held, 0)  # sections no later output averages
        del held[:done]
        first_held += done


def _mirror_average(forward, inputs) -> torch.Tensor:
    """Test-time augmentation: the mean of the logits of the sections and of their mirror images.

    The patches were mirrored in training (``augment: flip``), so the model
    must give the mirrored answer; averaging the two halves the variance the
    noise gives each pixel.
    """
    mirrored = inputs.flip(-2) if isinstance(inputs, torch.Tensor) else np.flip(inputs, -2)
    return (forward(inputs) + forward(mirrored).flip(-2)) / 2


def _batch_first(extras):
    """``(input, batch, ...)`` -> ``(batch, input, ...)``."""
    return extras.transpose(0, 1) if isinstance(extras, torch.Tensor) else np.swapaxes(extras, 0, 1)


def _with_extras(inputs, extras):
    """``inputs`` ``(batch, channel, ...)`` with the other inputs ``(batch, input, ...)`` as more channels."""
    if extras is None:
        return inputs
    if isinstance(inputs, torch.Tensor):
        return torch.cat([inputs, torch.as_tensor(extras, device=inputs.device).to(inputs.dtype)], dim=1)
    return np.concatenate([inputs, extras.astype(inputs.dtype, copy=False)], axis=1)


def _with_depth(inputs, depth):
    """``inputs`` ``(batch, channel, ..., vertical)`` with the ``depth`` input as one more channel."""
    if depth is None:
        return inputs
    shape = (inputs.shape[0], 1, *inputs.shape[2:])
    if isinstance(inputs, torch.Tensor):
        return torch.cat([inputs, depth.to(inputs.dtype).expand(shape)], dim=1)
    return np.concatenate([inputs, np.broadcast_to(depth.astype(inputs.dtype), shape)], axis=1)


def _with_neighbours(sections, first: int, last: int, neighbours: int):
    """Sections ``first..last`` as ``(section, channel, across, vertical)``: each with its neighbours.

    The block holds ``neighbours`` sections of halo on each side inside the
    volume; at the volume's edges the last section repeats, as in the patches.
    """
    if not neighbours:
        return sections[first:last, None]
    index = np.arange(first, last)[:, None] + np.arange(-neighbours, neighbours + 1)
    index = np.clip(index, 0, len(sections) - 1)
    if isinstance(sections, torch.Tensor):
        return sections[torch.from_numpy(index).to(sections.device)]
    return sections[index]


def _patch_centres(
    forward, section: np.ndarray, size: int, across: slice, vertical: slice, batch: int
) -> torch.Tensor:
    """Slow path (MalenoV style): one forward pass per voxel on its centred patch -> (C, across, T)."""
    before, after = size // 2, size - 1 - size // 2
    padded = np.pad(section, [(before, after), (before, after)], mode="reflect")
    windows = np.lib.stride_tricks.sliding_window_view(padded, (size, size))  # a view: no copy
    xs, ts = np.meshgrid(
        np.arange(across.start, across.stop), np.arange(vertical.start, vertical.stop), indexing="ij"
    )
    xs, ts = xs.ravel(), ts.ravel()
    parts = [
        forward(windows[xs[s : s + batch], ts[s : s + batch]][:, None]) for s in range(0, len(xs), batch)
    ]
    return torch.cat(parts).T.reshape(-1, across.stop - across.start, vertical.stop - vertical.start)


def _trace_windows(forward, block, keep, size, output: BlockOutput, batch: int) -> None:
    """A vertical window per voxel, an inline of the block at a time."""
    padded = np.pad(block, [(0, 0), (0, 0), (size // 2, size - 1 - size // 2)], mode="reflect")
    windows = np.lib.stride_tricks.sliding_window_view(padded, size, axis=2)  # (I, X, T, S), a view
    step = max(batch, MIN_TRACE_BATCH)
    for row, i in enumerate(range(keep[0].start, keep[0].stop)):
        plane = windows[i, keep[1], keep[2]]  # (X, T, S)
        flat = plane.reshape(-1, size)  # one inline's windows (copied)
        logits = torch.cat([forward(flat[s : s + step]) for s in range(0, len(flat), step)])  # (N, C)
        output.put((row,), logits.T.reshape(-1, *plane.shape[:2]), class_axis=0)
