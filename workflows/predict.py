"""``seisfacies predict``: classify every voxel, block by block on the workers.

Each task reads its chunk column plus the halo the model needs (half the
training patch, aligned to the network's down-sampling grid), pads it by
reflection at the volume's edges, runs the model loaded once per worker from
the checkpoint path, trims the halo and writes ``facies`` (and ``probability``).
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
from pipeline.blocks import Region, aligned_halo_block, slab_regions
from pipeline.cluster import run_tasks
from pipeline.exceptions import ModelError, StoreError
from pipeline.store import (
    add_variables_template,
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
from workflows.torch_worker import prepare_torch_process
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
    """Halo per dim name and the down-sampling multiple a checkpoint's model needs."""
    patch, dims = payload["patch"], payload["patch"]["volume_dims"]
    half = patch["size"] // 2
    multiple = 1
    if model_entry(payload["model_name"]).dense:  # fully convolutional: its whole receptive field
        depth = payload["model_config"]["depth"]
        multiple, half = 2**depth, max(half, receptive_radius(depth))
    if patch["kind"] == "section":
        across = dims[1] if patch["orientations"][0] == "inline" else dims[0]
        return {across: half}, multiple
    if patch["kind"] == "cube":
        return {dims[0]: half, dims[1]: half}, multiple
    return {}, 1


def predict_block(task: PredictTask) -> int:
    """Predict one block; returns how many voxels were left unclassified (non-finite input)."""
    prepare_torch_process(task.torch_threads)
    device = _device(task.config)
    model, payload = _worker_model(task.model_path, task.model_mtime, device)
    halo, multiple = model_geometry(payload)
    read, pads, keep = aligned_halo_block(task.region, halo, task.sizes, multiple)
    block = read_region(task.store, "amplitude", read).astype(np.float32)
    block = np.pad(block, list(pads.values()), mode="reflect")
    invalid = ~np.isfinite(block)
    # NaN/inf would spread through every convolution; zero them for the model and
    # leave those voxels unclassified (-1) instead of giving them a made-up class
    block = np.where(invalid, 0.0, (block - payload["normalisation"]["mean"]) / payload["normalisation"]["std"])
    probability = _probabilities(model, payload, block, task.config, device)  # (C, I, X, T): softmax or logits
    inner = (slice(None), *keep.values())
    probability, invalid = probability[inner], invalid[inner[1:]]
    facies = probability.argmax(0).astype(np.int8)
    facies[invalid] = -1
    write_region(task.store, "facies", task.region, facies)
    if task.config.probabilities:
        probability[:, invalid] = np.nan
        write_region(task.store, "probability", {"class": slice(None), **task.region}, probability.astype(np.float16))
    return int(invalid.sum())


@torch.no_grad()
def _probabilities(model, payload, block: np.ndarray, config: PredictConfig, device: str) -> np.ndarray:
    kind, size = payload["patch"]["kind"], payload["patch"]["size"]
    run = functools.partial(_batched, model, device=device, batch=config.batch_size, bf16=config.precision == "bf16",
                            softmax=config.probabilities)
    if kind == "cube":
        return run(block[None, None])[0]
    if kind == "trace":
        windows = _vertical_windows(block, size)  # (I, X, T, S)
        out = run(windows.reshape(-1, size))  # (N, C)
        return out.T.reshape(-1, *block.shape)
    inline = payload["patch"]["orientations"][0] == "inline"
    sections = block if inline else block.transpose(1, 0, 2)  # (sections, across, T)
    if model_entry(payload["model_name"]).dense:
        out = run(sections[:, None])  # (sections, C, across, T)
    else:
        out = _patch_centres(run, sections, size)
    out = out.transpose(1, 0, 2, 3)  # (C, sections, across, T)
    return out if inline else out.transpose(0, 2, 1, 3)


def _vertical_windows(block: np.ndarray, size: int) -> np.ndarray:
    padded = np.pad(block, [(0, 0), (0, 0), (size // 2, size - 1 - size // 2)], mode="reflect")
    return np.lib.stride_tricks.sliding_window_view(padded, size, axis=2)


def _patch_centres(run, sections: np.ndarray, size: int) -> np.ndarray:
    """Slow path (MalenoV style): one forward pass per voxel on its centred patch."""
    before, after = size // 2, size - 1 - size // 2
    outputs = []
    for section in sections:
        padded = np.pad(section, [(before, after), (before, after)], mode="reflect")
        windows = np.lib.stride_tricks.sliding_window_view(padded, (size, size))  # (across, T, s, s)
        logits = run(windows.reshape(-1, 1, size, size))  # (across*T, C)
        outputs.append(logits.T.reshape(-1, *section.shape))
    return np.stack(outputs)  # (sections, C, across, T)


def _batched(model, inputs: np.ndarray, device: str, batch: int, bf16: bool, softmax: bool) -> np.ndarray:
    """Softmax probabilities (or, when only classes are wanted, logits) in batches along axis 0."""
    parts = []
    for start in range(0, len(inputs), batch):
        tensor = torch.from_numpy(np.ascontiguousarray(inputs[start : start + batch], dtype=np.float32)).to(device)
        with torch.autocast(device, dtype=torch.bfloat16, enabled=bf16):
            logits = model(tensor)
        logits = logits.float()
        parts.append((torch.softmax(logits, dim=1) if softmax else logits).cpu().numpy())
    return np.concatenate(parts)


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
            raise ModelError(f"{model_path}: the model's classes {names} differ from the store's labels {store_names}")
    vertical = vertical_dim(dataset)
    if payload["patch"]["volume_dims"][2] != vertical:
        raise ModelError(f"{model_path}: trained on {payload['patch']['volume_dims'][2]} data, the store is in {vertical}")
    if payload["patch"]["size"] > dataset.sizes[vertical]:
        raise ModelError(f"{model_path}: its {payload['patch']['size']}-sample patches exceed the store's "
                         f"{dataset.sizes[vertical]} samples; train with a smaller --size")


#: Input bytes one prediction task may hold (activations take a few times more).
TASK_BUDGET_BYTES = 32 * 2**20


def prediction_plan(dataset, payload: dict, chunks: dict[str, int]) -> list[Region]:
    """Chunk-aligned blocks (full columns), stretched along the halo direction.

    A block that spans more of the direction the model looks along recomputes
    less halo; the budget keeps worker memory independent of the survey size.
    """
    sizes = dict(dataset.amplitude.sizes)
    vertical = vertical_dim(dataset)
    halo, _ = model_geometry(payload)
    along = next(iter(halo)) if len(halo) == 1 else "crossline"
    plan_chunks = {**chunks, vertical: sizes[vertical]}
    return slab_regions(sizes, plan_chunks, along, 4, TASK_BUDGET_BYTES)  # float32 input


def predict_volume(store: str | Path, model_path: str | Path, config: PredictConfig, client=None) -> dict:
    """Write ``facies`` (and ``probability``) for the whole volume into the store."""
    store, model_path = Path(store), Path(model_path)
    dataset = open_store(store)
    finished = finished_variables(dataset, ("facies", "probability"))
    if finished and not config.overwrite:
        raise StoreError(f"{store}: the store already has {finished[0]!r}; pass --overwrite to replace it")
    existing = [name for name in ("facies", "probability") if name in dataset.variables]  # incl. interrupted runs
    _, payload = load_model(model_path)
    check_model_fits(payload, dataset, model_path)
    names = payload["class_names"]
    chunks = store_chunks(dataset)
    if existing:
        delete_variables(store, existing)
    add_variables_template(_template(dataset, names, chunks, config.probabilities), store, {**chunks, "class": len(names)})
    sizes = dict(dataset.amplitude.sizes)
    n_workers = len(client.scheduler_info(n_workers=-1)["workers"]) if client is not None else 1
    threads = max(1, (os.cpu_count() or 1) // max(n_workers, 1))
    tasks = [PredictTask(str(store), str(model_path.resolve()), model_path.stat().st_mtime_ns, region, sizes, config, threads)
             for region in prediction_plan(dataset, payload, chunks)]
    unclassified = sum(run_tasks(predict_block, tasks, client, "predict"))
    provenance = {"model_file": str(model_path.resolve()), "model_sha256": file_sha256(model_path),
                  "model_name": payload["model_name"], "seisfacies_version": payload["seisfacies_version"]}
    written = ["facies", "probability"] if config.probabilities else ["facies"]
    for name in written:
        set_variable_attrs(store, name, provenance)
    mark_complete(store, written)
    return {"store": str(store), "variables": written, "classes": list(names), "tasks": len(tasks),
            "unclassified_nonfinite_voxels": unclassified, **provenance}


def _template(dataset, names, chunks, probabilities: bool):
    dims = dataset.amplitude.dims
    block = tuple(chunks[d] for d in dims)
    variables = {"facies": (dims, da.zeros(dataset.amplitude.shape, dtype=np.int8, chunks=block),
                            {"long_name": "Predicted facies", **class_attrs(tuple(names))})}
    if probabilities:
        variables["probability"] = (("class", *dims),
                                    da.zeros((len(names), *dataset.amplitude.shape), dtype=np.float16, chunks=(len(names), *block)),
                                    {"long_name": "Class probability (softmax)", "flag_meanings": " ".join(names)})
    template = dataset[[]].assign(variables)
    return template
