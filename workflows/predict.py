"""``seisfacies predict``: classify every voxel, block by block on the workers.

Each task reads its chunks plus the halo the model needs in every dim (half the
training patch, aligned to the network's down-sampling grid), pads it by
reflection at the volume's edges (for a fully convolutional model only up to
that grid), runs the model loaded once per worker from the checkpoint path,
trims the halo and writes ``facies`` (and ``probability``).
"""

from __future__ import annotations

import functools
import hashlib
import os
from dataclasses import dataclass
from pathlib import Path

import dask.array as da
import numpy as np
import torch

from models import model_entry
from models.cnn import receptive_radius
from pipeline.blocks import Region, aligned_halo_block, normalise_finite, slab_regions
from pipeline.cluster import run_tasks
from pipeline.exceptions import ModelError, StoreError
from pipeline.labels import class_dtype
from pipeline.store import (
    add_variables_template,
    check_store_writable,
    delete_variables,
    finished_variables,
    mark_complete,
    open_store,
    read_region,
    set_variable_attrs,
    store_chunks,
    vertical_dim,
    write_region,
)
from workflows.config import PredictConfig
from workflows.labels import class_attrs
from workflows.torch_worker import prepare_torch_process, release_freed_memory
from workflows.train import load_model


@dataclass(frozen=True)
class PredictTask:
    store: str
    model_path: str
    model_mtime: int
    region: Region
    sizes: dict
    config: PredictConfig
    torch_threads: int


@functools.lru_cache(maxsize=4)
def _worker_model(path: str, mtime: int, device: str) -> tuple[torch.nn.Module, dict]:
    """The model, loaded once per worker process and file version."""
    del mtime  # cache key only
    model, payload = load_model(path)
    return model.to(device).eval(), payload


def _device(config: PredictConfig) -> str:
    if config.device == "cuda" or (config.device == "auto" and torch.cuda.is_available()):
        if not torch.cuda.is_available():
            raise ModelError("option --device cuda: no CUDA device on this worker; use --device cpu")
        return "cuda"
    return "cpu"


def model_geometry(payload: dict) -> tuple[dict[str, int], int]:
    """Halo per dim name and the down-sampling multiple a checkpoint's model needs.

    Every dim the model looks along gets a halo, the vertical one included, so
    a task needs only its own chunks (plus halo), never whole traces.
    """
    patch, dims = payload["patch"], payload["patch"]["volume_dims"]
    half = patch["size"] // 2
    multiple = 1
    if model_entry(payload["model_name"]).dense:  # fully convolutional: its whole receptive field
        depth = payload["model_config"]["depth"]
        multiple, half = 2**depth, max(half, receptive_radius(depth))
    if patch["kind"] == "section":
        across = dims[1] if patch["orientations"][0] == "inline" else dims[0]
        return {across: half, dims[2]: half}, multiple
    if patch["kind"] == "cube":
        return {dims[0]: half, dims[1]: half, dims[2]: half}, multiple
    return {dims[2]: half}, 1


#: Pixels of one batch of sections: convolution buffers scale with it (a batch
#: of eight 88 x 4800 sections took 640 MB with the smallest cnn2d).
MAX_BATCH_PIXELS = 2**19


def predict_block(task: PredictTask) -> int:
    """Predict one chunk-aligned region; returns how many voxels were left unclassified."""
    prepare_torch_process(task.torch_threads)
    device = _device(task.config)
    model, payload = _worker_model(task.model_path, task.model_mtime, device)
    halo, multiple = model_geometry(payload)
    dense = model_entry(payload["model_name"]).dense  # fully convolutional: pads at the block's edges itself
    read, pads, keep = aligned_halo_block(task.region, halo, task.sizes, multiple, pad_edges=not dense)
    block = read_region(task.store, "amplitude", read).astype(np.float32, copy=False)
    block = np.pad(block, list(pads.values()), mode="reflect")
    # non-finite voxels are left unclassified (-1) below instead of getting a made-up class
    invalid = normalise_finite(block, payload["normalisation"]["mean"], payload["normalisation"]["std"])
    shape = tuple(part.stop - part.start for part in task.region.values())
    output = _BlockOutput(shape, len(payload["class_names"]), task.config.probabilities)
    _classify(model, payload, block, tuple(keep.values()), output, task.config, device)
    del block
    invalid = invalid[tuple(keep.values())]
    output.facies[invalid] = -1
    write_region(task.store, "facies", task.region, output.facies)
    if output.probability is not None:
        output.probability[:, invalid] = np.nan
        write_region(task.store, "probability", {"class": slice(None), **task.region}, output.probability)
    release_freed_memory()
    return int(invalid.sum())


class _BlockOutput:
    """The kept region's classes (and probabilities), filled batch by batch."""

    def __init__(self, shape: tuple[int, int, int], n_classes: int, probabilities: bool):
        self.facies = np.zeros(shape, class_dtype(n_classes))
        self.probability = np.zeros((n_classes, *shape), np.float16) if probabilities else None

    def put(self, where: tuple, logits: torch.Tensor, class_axis: int = 1) -> None:
        """Store logits ``(..., C, ...)`` whose other axes match ``self.facies[where]``."""
        self.facies[where] = logits.argmax(class_axis).cpu().numpy()
        if self.probability is not None:
            probability = torch.softmax(logits, dim=class_axis).cpu().numpy()
            self.probability[(slice(None), *where)] = np.moveaxis(probability, class_axis, 0)


@torch.no_grad()
def _classify(
    model, payload, block: np.ndarray, keep: tuple, output: _BlockOutput, config, device: str
) -> None:
    """Run the model over the padded block in batches; memory stays near one batch."""
    kind, size = payload["patch"]["kind"], payload["patch"]["size"]
    forward = functools.partial(_forward, model, device=device, bf16=config.precision == "bf16")
    if kind == "cube":
        logits = forward(block[None, None])[0][(slice(None), *keep)]  # (C, I, X, T)
        output.put((slice(None),) * 3, logits, class_axis=0)
    elif kind == "trace":
        _trace_windows(forward, block, keep, size, output, config.batch_size)
    else:
        _sections(forward, payload, block, keep, size, output, config.batch_size)


def _forward(model, inputs: np.ndarray, device: str, bf16: bool) -> torch.Tensor:
    tensor = torch.from_numpy(np.ascontiguousarray(inputs, dtype=np.float32)).to(device)
    with torch.autocast(device, dtype=torch.bfloat16, enabled=bf16):
        return model(tensor).float()


def _sections(forward, payload, block, keep, size, output: _BlockOutput, batch: int) -> None:
    """Inline (or crossline) sections of the block, a batch of sections at a time."""
    inline = payload["patch"]["orientations"][0] == "inline"
    sections = block if inline else block.transpose(1, 0, 2)  # (sections, across, T)
    along, across = (keep[0], keep[1]) if inline else (keep[1], keep[0])
    dense = model_entry(payload["model_name"]).dense
    if dense:  # long traces make big sections: bound the pixels per batch, not just the count
        batch = max(1, min(batch, MAX_BATCH_PIXELS // (sections.shape[1] * sections.shape[2])))
    for first in range(along.start, along.stop, batch):
        last = min(first + batch, along.stop)
        rows = slice(first - along.start, last - along.start)
        where = (rows, slice(None), slice(None)) if inline else (slice(None), rows, slice(None))
        if dense:
            logits = forward(sections[first:last, None])[:, :, across, keep[2]]  # (B, C, across, T)
        else:
            logits = torch.stack(
                [
                    _patch_centres(forward, section, size, across, keep[2], batch)
                    for section in sections[first:last]
                ]
            )
        output.put(where, logits if inline else logits.permute(2, 1, 0, 3))


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


def _trace_windows(forward, block, keep, size, output: _BlockOutput, batch: int) -> None:
    """A vertical window per voxel, an inline of the block at a time."""
    padded = np.pad(block, [(0, 0), (0, 0), (size // 2, size - 1 - size // 2)], mode="reflect")
    windows = np.lib.stride_tricks.sliding_window_view(padded, size, axis=2)  # (I, X, T, S), a view
    step = max(batch, 4096)  # windows are small: large batches keep the MLP busy
    for row, i in enumerate(range(keep[0].start, keep[0].stop)):
        plane = windows[i, keep[1], keep[2]]  # (X, T, S)
        flat = plane.reshape(-1, size)  # one inline's windows (copied)
        logits = torch.cat([forward(flat[s : s + step]) for s in range(0, len(flat), step)])  # (N, C)
        output.put((row,), logits.T.reshape(-1, *plane.shape[:2]), class_axis=0)


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def check_model_fits(payload: dict, dataset, model_path) -> None:
    """Refuse a model whose classes or patch geometry do not fit the store."""
    names = payload["class_names"]
    if "labels" in dataset.variables:
        store_names = dataset.labels.attrs.get("flag_meanings", "").split()
        if store_names and store_names != list(names):
            raise ModelError(
                f"{model_path}: the model's classes {names} differ from the store's labels {store_names}"
            )
    vertical = vertical_dim(dataset)
    if payload["patch"]["volume_dims"][2] != vertical:
        raise ModelError(
            f"{model_path}: trained on {payload['patch']['volume_dims'][2]} data, the store is in {vertical}"
        )
    if payload["patch"]["size"] > dataset.sizes[vertical]:
        raise ModelError(
            f"{model_path}: its {payload['patch']['size']}-sample patches exceed the store's "
            f"{dataset.sizes[vertical]} samples; train with a smaller --size"
        )


#: Input bytes one prediction task may hold (activations take a few times
#: more). A task is at least one chunk, so its memory follows the declared
#: chunking and never the survey's size or trace length.
TASK_BUDGET_BYTES = 32 * 2**20
#: A task spans at least this many vertical halos, so that recomputed halo
#: stays a small share of the work when chunks are thin vertically.
MIN_HALOS_PER_TASK = 8


def prediction_plan(dataset, payload: dict, chunks: dict[str, int]) -> list[Region]:
    """Chunk-aligned blocks, stretched along the horizontal halo direction.

    A block that spans more of the direction the model looks along recomputes
    less halo; the budget keeps worker memory independent of the survey size.
    """
    sizes = dict(dataset.amplitude.sizes)
    vertical = vertical_dim(dataset)
    halo, _ = model_geometry(payload)
    horizontal = [dim for dim in halo if dim != vertical]
    along = horizontal[0] if len(horizontal) == 1 else "crossline"
    chunks_deep = max(1, -(-MIN_HALOS_PER_TASK * halo.get(vertical, 0) // chunks[vertical]))
    plan_chunks = {**chunks, vertical: min(sizes[vertical], chunks[vertical] * chunks_deep)}
    return slab_regions(sizes, plan_chunks, along, 4, TASK_BUDGET_BYTES)  # float32 input


def predict_volume(store: str | Path, model_path: str | Path, config: PredictConfig, client=None) -> dict:
    """Write ``facies`` (and ``probability``) for the whole volume into the store."""
    # absolute: tasks run on workers, whose working folder may differ
    store, model_path = Path(store).absolute(), Path(model_path).absolute()
    dataset = open_store(store)
    finished = finished_variables(dataset, ("facies", "probability"))
    if finished and not config.overwrite:
        raise StoreError(f"{store}: the store already has {finished[0]!r}; pass --overwrite to replace it")
    check_store_writable(store)
    existing = [
        name for name in ("facies", "probability") if name in dataset.variables
    ]  # incl. interrupted runs
    _, payload = load_model(model_path)
    check_model_fits(payload, dataset, model_path)
    names = payload["class_names"]
    chunks = store_chunks(dataset)
    if existing:
        delete_variables(store, existing)
    add_variables_template(
        _template(dataset, names, chunks, config.probabilities), store, {**chunks, "class": len(names)}
    )
    sizes = dict(dataset.amplitude.sizes)
    n_workers = len(client.scheduler_info(n_workers=-1)["workers"]) if client is not None else 1
    threads = max(1, (os.cpu_count() or 1) // max(n_workers, 1))
    tasks = [
        PredictTask(
            str(store),
            str(model_path.resolve()),
            model_path.stat().st_mtime_ns,
            region,
            sizes,
            config,
            threads,
        )
        for region in prediction_plan(dataset, payload, chunks)
    ]
    unclassified = sum(run_tasks(predict_block, tasks, client, "predict"))
    provenance = {
        "model_file": str(model_path.resolve()),
        "model_sha256": file_sha256(model_path),
        "model_name": payload["model_name"],
        "seisfacies_version": payload["seisfacies_version"],
    }
    written = ["facies", "probability"] if config.probabilities else ["facies"]
    for name in written:
        set_variable_attrs(store, name, provenance)
    mark_complete(store, written)
    return {
        "store": str(store),
        "variables": written,
        "classes": list(names),
        "tasks": len(tasks),
        "unclassified_nonfinite_voxels": unclassified,
        **provenance,
    }


def _template(dataset, names, chunks, probabilities: bool):
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
    template = dataset[[]].assign(variables)
    return template
