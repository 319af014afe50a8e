"""``seisfacies predict``: classify every voxel, block by block on the workers.

Each task reads its chunks plus the halo the model needs in every dim (half the
training patch, aligned to the network's down-sampling grid), pads it by
reflection at the volume's edges (for a fully convolutional model only up to
that grid), runs the model loaded once per worker from the checkpoint path,
trims the halo and writes ``facies`` (and ``probability``, ``uncertainty``:
both from the probabilities calibrated by the checkpoint's temperature).
In depth order a task spans whole traces: it classifies them a window of
chunks at a time, top down, and decides each trace once the last window is in.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import threading
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from ..models.checkpoint import training_progress
from ..models.inference import (
    BlockGeometry,
    DepthOrderDecoder,
    InferenceOptions,
    classify_block,
    normalise_finite,
    relative_depth,
)
from ..pipeline import location
from ..pipeline.blocks import Region, aligned_halo_block, slab_regions
from ..pipeline.cluster import live_workers, run_tasks
from ..pipeline.commit import (
    check_new_variables,
    check_not_being_written,
    check_store_writable,
    commit_variables,
    pending_name,
    set_variable_attrs,
    writes,
)
from ..pipeline.exceptions import ConfigError, ModelError
from ..pipeline.labels import class_dtype, prediction_template
from ..pipeline.maps import maps_of
from ..pipeline.regions import read_region, write_region
from ..pipeline.store import add_variables_template, open_store, store_chunks, vertical_dim
from ..pipeline.survey import amplitude_statistics, survey_differences, survey_record
from .config import PredictConfig
from .devices import (
    PREDICT_TASKS_PER_GPU,
    cluster_gpus,
    gpu_resources,
    placements,
    plan_devices,
    worker_device,
)
from .torch_worker import prepare_torch_process, release_freed_memory
from .train import load_model, refuse_partial


@dataclass(frozen=True)
class PredictTask:
    store: str
    model_sha256: str  # of the checkpoint's bytes, read once on the client and sent with the tasks
    region: Region
    sizes: dict
    config: PredictConfig
    torch_threads: int
    geometry: BlockGeometry  # the halo, grid and edge rule, decided once from the checkpoint on the client
    devices: dict | None = None  # worker address -> "cuda:N", so a host's workers spread over its GPUs
    depth_order: bool = False  # decide each trace at once (the region spans whole traces)
    window_samples: int = 0  # with depth_order: the vertical samples classified at a time, top down


#: The variables ``predict`` writes (an earlier run's are replaced together).
PREDICTED = ("facies", "probability", "uncertainty")
#: One model run at a time per worker process on its GPU; the tasks' reads and writes overlap it.
_GPU_LOCK = threading.Lock()


#: Models built in this worker process, by (checkpoint sha256, device); the oldest goes first.
_WORKER_MODELS: dict[tuple[str, str], tuple[torch.nn.Module, dict]] = {}
_WORKER_MODELS_LOCK = threading.Lock()
_WORKER_MODELS_KEPT = 4


def _worker_model(checkpoint: bytes, sha256: str, device: str) -> tuple[torch.nn.Module, dict]:
    """The model of exactly these checkpoint bytes, built once per worker process and device."""
    with _WORKER_MODELS_LOCK:
        if (sha256, device) not in _WORKER_MODELS:
            if len(_WORKER_MODELS) >= _WORKER_MODELS_KEPT:
                _WORKER_MODELS.pop(next(iter(_WORKER_MODELS)))
            model, payload = load_model(checkpoint)
            _WORKER_MODELS[(sha256, device)] = (model.to(device).eval(), payload)
        return _WORKER_MODELS[(sha256, device)]


def _device(config: PredictConfig, devices: dict | None) -> str:
    if config.device == "cuda" or (config.device == "auto" and torch.cuda.is_available()):
        if not torch.cuda.is_available():
            raise ModelError("option --device cuda: no CUDA device on this worker; use --device cpu")
        return worker_device(devices, "cuda:0")
    return "cpu"


def predict_block(task: PredictTask, checkpoint: bytes) -> int:
    """Predict one chunk-aligned region; returns how many voxels were left unclassified.

    Parameters
    ----------
    task : PredictTask
        The store, the checkpoint's hash and the region.
    checkpoint : bytes
        The checkpoint as the client read it (the same bytes for every task).

    Returns
    -------
    int
        Voxels whose amplitude was not finite (``facies`` -1 there).
    """
    prepare_torch_process(task.torch_threads)
    device = _device(task.config, task.devices)
    model, payload = _worker_model(checkpoint, task.model_sha256, device)
    if task.depth_order:
        facies, invalid = _whole_traces(task, model, payload, device)
    else:
        output, invalid = _classify(task, task.region, model, payload, device)
        facies = output.facies
        facies[invalid] = -1
    write_region(task.store, pending_name("facies"), task.region, facies)
    release_freed_memory()
    return int(invalid.sum())


def _whole_traces(task: PredictTask, model, payload: dict, device: str) -> tuple[np.ndarray, np.ndarray]:
    """The facies of whole traces in depth order, classified a window at a time; and the non-finite voxels."""
    vertical = list(task.sizes)[-1]  # the store's dims end with the vertical one
    n_samples = task.sizes[vertical]
    traces = tuple(task.region[dim].stop - task.region[dim].start for dim in task.region if dim != vertical)
    decoder = DepthOrderDecoder(len(payload["class_names"]), traces, n_samples)
    invalid = np.zeros((*traces, n_samples), bool)
    for start in range(0, n_samples, task.window_samples):
        window = {**task.region, vertical: slice(start, min(start + task.window_samples, n_samples))}
        _, invalid[..., window[vertical]] = _classify(task, window, model, payload, device, decoder)
    facies = decoder.classes(class_dtype(len(payload["class_names"])))
    facies[invalid] = -1
    return facies, invalid


def _classify(task: PredictTask, region: Region, model, payload: dict, device: str, decoder=None):
    """Classify a region, write its ``probability`` and ``uncertainty``; its output, non-finite voxels."""
    geometry = task.geometry
    read, pads, keep = aligned_halo_block(
        region, geometry.halo, task.sizes, geometry.grid, geometry.pad_edges
    )
    block = geometry.pad(read_region(task.store, "amplitude", read).astype(np.float32, copy=False), pads)
    depth = _block_depth(payload["patch"], read, pads, task.sizes, block.shape[2])
    extras = _block_inputs(task.store, payload, read, pads, geometry)
    # non-finite voxels are left unclassified (-1) below instead of getting a made-up class
    invalid = normalise_finite(block, payload["normalisation"]["mean"], payload["normalisation"]["std"])
    options = InferenceOptions(
        task.config.batch_size,
        device,
        task.config.precision,
        task.config.probabilities,
        uncertainty=task.config.uncertainty,
        mirror=task.config.mirror,
        smooth=task.config.smooth,
        depth_order=task.depth_order,
    )
    dtype = class_dtype(len(payload["class_names"]))
    with _GPU_LOCK if device != "cpu" else contextlib.nullcontext():
        output = classify_block(
            model, payload, block, tuple(keep.values()), options, dtype, depth, extras, decoder
        )
    del block, extras
    invalid = invalid[tuple(keep.values())]
    if output.probability is not None:
        output.probability[:, invalid] = np.nan
        write_region(
            task.store, pending_name("probability"), {"class": slice(None), **region}, output.probability
        )
    if output.uncertainty is not None:
        output.uncertainty[invalid] = np.nan
        write_region(task.store, pending_name("uncertainty"), region, output.uncertainty)
    return output, invalid


def in_depth_order(config: PredictConfig, payload: dict) -> bool:
    """Whether ``facies`` are decided trace by trace in the classes' depth order (``--class-order``).

    Parameters
    ----------
    config : PredictConfig
        The step's options.
    payload : dict
        A loaded checkpoint: ``auto`` follows its ``classes_in_depth_order``.

    Returns
    -------
    bool

    >>> ordered = {"patch": {"classes_in_depth_order": True}}
    >>> [in_depth_order(PredictConfig(class_order=order), ordered) for order in ("auto", "voxel")]
    [True, False]
    >>> in_depth_order(PredictConfig(), {"patch": {}})  # a checkpoint from before the labels were checked
    False
    """
    if config.class_order == "auto":
        return bool(payload["patch"].get("classes_in_depth_order", False))
    return config.class_order == "depth"


def model_inputs(payload: dict) -> list[str]:
    """The store variables a model reads beside the amplitude (attributes), in channel order.

    Parameters
    ----------
    payload : dict
        A checkpoint.

    Returns
    -------
    list of str

    >>> model_inputs({"patch": {"inputs": ["amplitude", "envelope", "depth"]}})
    ['envelope']
    """
    return [name for name in payload["patch"].get("inputs", ()) if name not in ("amplitude", "depth")]


def _block_inputs(store: str, payload: dict, read: Region, pads: dict, geometry) -> np.ndarray | None:
    """``(inputs, inline, crossline, vertical)``: the block of every other input, padded and normalised."""
    names = model_inputs(payload)
    if not names:
        return None
    statistics = payload["normalisation"]["inputs"]
    extras = []
    for name in names:
        block = geometry.pad(read_region(store, name, read).astype(np.float32, copy=False), pads)
        normalise_finite(block, statistics[name]["mean"], statistics[name]["std"])
        extras.append(block)
    return np.stack(extras)


def _block_depth(patch: dict, read: Region, pads: dict, sizes: dict, length: int) -> np.ndarray | None:
    """The ``depth`` input of a block's vertical samples, for a model trained with it (else None)."""
    if "depth" not in patch.get("inputs", ()):
        return None
    vertical = list(read)[2]
    start = read[vertical].start - pads.get(vertical, (0, 0))[0]
    return relative_depth(np.array([start]), length, sizes[vertical])[0]


def check_model_fits(payload: dict, dataset, model_path) -> None:
    """Refuse a model whose classes or patch geometry do not fit the store.

    Parameters
    ----------
    payload : dict
        A loaded checkpoint.
    dataset
        The store, opened as an xarray Dataset.
    model_path
        The checkpoint file.
    """
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


def depth_order_bytes(n_classes: int) -> int:
    """Bytes a depth-order task keeps per voxel of its whole traces until their last window is in.

    One bit per class of back-pointers (:class:`DepthOrderDecoder`), the
    int16 facies and the non-finite mask; inputs, log-probabilities and
    probabilities are held one window at a time, as in voxel order.

    Parameters
    ----------
    n_classes : int
        The model's classes.

    Returns
    -------
    int

    >>> depth_order_bytes(6), depth_order_bytes(12)
    (4, 5)
    """
    return -(-n_classes // 8) + 2 + 1


def whole_trace_bytes(sizes: dict, chunks: dict, vertical: str, n_classes: int) -> int:
    """Bytes a depth-order task keeps at least: a chunk column of traces, :func:`depth_order_bytes` a voxel.

    Parameters
    ----------
    sizes, chunks : dict
        The volume's size and chunk per dim.
    vertical : str
        The vertical dim.
    n_classes : int
        The model's classes.

    Returns
    -------
    int

    >>> sizes = {"inline": 9, "crossline": 9, "time": 1500}
    >>> chunks = {"inline": 4, "crossline": 4, "time": 512}
    >>> whole_trace_bytes(sizes, chunks, "time", 6)  # 4 x 4 traces of 1500 samples, 4 bytes each
    96000
    """
    column = sizes[vertical] * np.prod([chunks[dim] for dim in sizes if dim != vertical])
    return int(column * depth_order_bytes(n_classes))


#: Input bytes one prediction task may hold (activations take a few times
#: more). A task is at least one chunk, so its memory follows the declared
#: chunking and never the survey's size or trace length.
TASK_BUDGET_BYTES = 32 * 2**20
#: A task spans at least this many vertical halos, so that recomputed halo
#: stays a small share of the work when chunks are thin vertically.
MIN_HALOS_PER_TASK = 8


def prediction_plan(
    dataset, geometry: BlockGeometry, chunks: dict[str, int], volumes: int = 1, state_bytes: int = 0
) -> list[Region]:
    """Chunk-aligned blocks, stretched along the horizontal halo direction.

    A block that spans more of the direction the model looks along recomputes
    less halo; the budget keeps worker memory independent of the survey size.
    In depth order (``state_bytes``) a block spans whole traces: its task
    classifies them a window of :func:`window_samples` at a time and keeps
    ``state_bytes`` a voxel until the last window is in, at most
    :data:`WHOLE_TRACE_BUDGET_BYTES` (at least one chunk's column).

    Parameters
    ----------
    dataset
        The store, opened as an xarray Dataset.
    geometry : BlockGeometry
        The model's halo per dim.
    chunks : dict[str, int]
        Chunk size per dim name.
    volumes : int
        Volumes a task reads per block: the amplitude and the model's other inputs.
    state_bytes : int
        :func:`depth_order_bytes` where ``facies`` are decided in depth order; 0 voxel by voxel.

    Returns
    -------
    list[Region]
    """
    sizes = dict(dataset.amplitude.sizes)
    vertical = vertical_dim(dataset)
    halo = geometry.halo
    horizontal = [dim for dim in halo if dim != vertical]
    # along the widest horizontal halo (the sections' width, not their neighbours); cubes: crossline
    along = max(reversed(horizontal), key=halo.get, default="crossline")
    window = window_samples(sizes, chunks, halo, vertical)
    if not state_bytes:
        return slab_regions(sizes, {**chunks, vertical: window}, along, 4 * volumes, TASK_BUDGET_BYTES)
    # one trace costs its window's float32 inputs, and its state against the larger budget
    state = -(-state_bytes * sizes[vertical] * TASK_BUDGET_BYTES // WHOLE_TRACE_BUDGET_BYTES)
    grid = {dim: size for dim, size in sizes.items() if dim != vertical}
    columns = slab_regions(grid, chunks, along, max(4 * volumes * window, state), TASK_BUDGET_BYTES)
    return [{**column, vertical: slice(0, sizes[vertical])} for column in columns]


def window_samples(sizes: dict, chunks: dict, halo: dict, vertical: str) -> int:
    """Vertical samples a prediction block spans: whole chunks, at least :data:`MIN_HALOS_PER_TASK` halos.

    Parameters
    ----------
    sizes, chunks, halo : dict
        The volume's size, chunk and the model's halo per dim.
    vertical : str
        The vertical dim.

    Returns
    -------
    int

    >>> window_samples({"time": 1500}, {"time": 64}, {"time": 16}, "time")  # 8 halos: two chunks
    128
    """
    chunks_deep = max(1, -(-MIN_HALOS_PER_TASK * halo.get(vertical, 0) // chunks[vertical]))
    return min(sizes[vertical], chunks[vertical] * chunks_deep)


def task_threads(cores: int, workers: int, tasks: int) -> int:
    """PyTorch threads per prediction task: the cores shared among the workers that get a task.

    With fewer tasks than workers (a one-line survey is one task) the idle
    workers' cores go to the tasks instead of waiting.

    Parameters
    ----------
    cores : int
        The host's cores.
    workers : int
        The cluster's workers (one process each).
    tasks : int
        The prediction plan's tasks.

    Returns
    -------
    int

    >>> task_threads(2, 2, 12), task_threads(2, 2, 1), task_threads(16, 8, 3)
    (1, 2, 5)
    """
    return max(1, cores // max(1, min(workers, tasks)))


@writes("store")
def predict_volume(store: str | Path, model_path: str | Path, config: PredictConfig, client=None) -> dict:
    """Write ``facies`` (and ``probability``, ``uncertainty``) for the whole volume into the store.

    Parameters
    ----------
    store : str | Path
        The Zarr store.
    model_path : str | Path
        The checkpoint file.
    config : PredictConfig
        The step's options.
    client
        The Dask client; None runs in this process.

    Returns
    -------
    dict
    """
    # absolute: tasks run on workers, whose working folder may differ
    store, model_path = location.resolve(store), location.resolve(model_path)
    dataset, checkpoint, payload, partial = _checked_inputs(store, model_path, config)
    sha256 = hashlib.sha256(checkpoint).hexdigest()
    inputs = model_inputs(payload)
    names = payload["class_names"]
    chunks = store_chunks(dataset)
    sizes = dict(dataset.amplitude.sizes)
    vertical = vertical_dim(dataset)
    whole_traces, order_warning = depth_order_choice(config, payload, sizes, chunks, vertical)
    template = prediction_template(dataset, names, chunks, config.probabilities, config.uncertainty)
    add_variables_template(template, store, {**chunks, "class": len(names)})
    devices, resources = _gpu_plan(client, config)
    geometry = BlockGeometry.of(payload, config.smooth)
    window = window_samples(sizes, chunks, geometry.halo, vertical)
    state_bytes = depth_order_bytes(len(names)) if whole_traces else 0
    plan = prediction_plan(dataset, geometry, chunks, 1 + len(inputs), state_bytes)
    n_workers = len(live_workers(client)) if client is not None else 1
    threads = task_threads(os.cpu_count() or 1, n_workers, len(plan))
    tasks = [
        PredictTask(
            str(store), sha256, region, sizes, config, threads, geometry, devices, whole_traces, window
        )
        for region in plan
    ]
    warnings = _survey_warnings(store, dataset, payload, model_path) + order_warning
    shared = {"checkpoint": checkpoint}
    unclassified = sum(run_tasks(predict_block, tasks, client, "predict", resources=resources, shared=shared))
    provenance = {
        "model_file": model_path,
        "model_sha256": sha256,
        "model_name": payload["model_name"],
        "seisfacies_version": payload["seisfacies_version"],
        **({"model_partial": _progress_text(payload)} if partial else {}),
    }
    written = ["facies"] + ["probability"] * config.probabilities + ["uncertainty"] * config.uncertainty
    for name in written:
        set_variable_attrs(store, pending_name(name), provenance)
    stale_maps = maps_of(dataset, PREDICTED)  # made from the prediction this one replaces
    commit_variables(store, written, retire=(*PREDICTED, "class", *stale_maps))
    return {
        **({"warnings": warnings} if warnings else {}),
        "store": str(store),
        "variables": written,
        "classes": list(names),
        "tasks": len(tasks),
        "class_order": "depth" if whole_traces else "voxel",
        "unclassified_nonfinite_voxels": unclassified,
        **provenance,
    }


#: Bytes a depth-order task may keep of its whole traces (:func:`depth_order_bytes` a voxel) while
#: it classifies them a window at a time; where one chunk column needs more, voxel order is used.
WHOLE_TRACE_BUDGET_BYTES = 4 * TASK_BUDGET_BYTES


def depth_order_choice(
    config: PredictConfig, payload: dict, sizes: dict, chunks: dict, vertical: str
) -> tuple[bool, list[str]]:
    """Whether to decide whole traces in depth order, and a warning where auto falls back to voxel order.

    Parameters
    ----------
    config : PredictConfig
        The step's options (``class_order``).
    payload : dict
        The loaded checkpoint.
    sizes, chunks : dict
        The volume's size and chunk per dim.
    vertical : str
        The vertical dim.

    Returns
    -------
    tuple of (bool, list of str)

    Raises
    ------
    ConfigError
        ``--class-order depth`` where one chunk column of whole traces needs
        more than :data:`WHOLE_TRACE_BUDGET_BYTES`.

    >>> payload = {"patch": {"classes_in_depth_order": True}, "class_names": list("abcdef")}
    >>> chunks = {"inline": 64, "crossline": 64, "time": 512}
    >>> sizes = {**chunks, "time": 6000}  # 64 x 64 traces of 6000 samples, 4 bytes a voxel: 94 MiB
    >>> depth_order_choice(PredictConfig(), payload, sizes, chunks, "time")
    (True, [])
    >>> deep = {**chunks, "time": 9000}  # 141 MiB
    >>> depth_order_choice(PredictConfig(), payload, deep, chunks, "time")
    (False, ['depth order needs ... (141 MiB, more than 128 MiB): facies decided voxel by voxel; ...'])
    >>> depth_order_choice(PredictConfig(class_order="depth"), payload, deep, chunks, "time")
    Traceback (most recent call last):
    seisfacies.pipeline.exceptions.ConfigError: option --class-order depth: depth order needs ...
    """
    if not in_depth_order(config, payload):
        return False, []
    needed = whole_trace_bytes(sizes, chunks, vertical, len(payload["class_names"]))
    if needed <= WHOLE_TRACE_BUDGET_BYTES:
        return True, []
    why = (
        f"depth order needs a chunk column of whole {sizes[vertical]}-sample traces in one task "
        f"({needed / 2**20:.0f} MiB, more than {WHOLE_TRACE_BUDGET_BYTES // 2**20} MiB)"
    )
    smaller = "ingest with smaller inline and crossline chunks"
    if config.class_order == "depth":
        raise ConfigError(f"option --class-order depth: {why}; {smaller}")
    return False, [f"{why}: facies decided voxel by voxel; {smaller}"]


def _gpu_plan(client, config: PredictConfig) -> tuple[dict | None, dict | None]:
    """Which GPU each GPU worker uses, and the tasks' GPU resources (where workers declare them)."""
    if client is None or config.device == "cpu":
        return None, None
    gpu_workers = [place for place in placements(cluster_gpus(client)) if place.gpus]
    if not gpu_workers:
        if config.device == "cuda":
            raise ModelError("option --device cuda: no worker has a CUDA device; use --device cpu")
        return None, None
    devices = plan_devices("cuda", gpu_workers, share=True)
    addresses = [place.address for place in gpu_workers]
    return dict(zip(addresses, devices)), gpu_resources(client, addresses, PREDICT_TASKS_PER_GPU)


def check_prediction(store: str | Path, model_path: str | Path, config: PredictConfig) -> None:
    """Refuse what :func:`predict_volume` would refuse before its first task, from the files alone.

    No other run may be writing the store; it must open and take the new variables, the checkpoint must load,
    be final (or ``--allow-partial``) and fit the store's samples and volumes.

    Parameters
    ----------
    store : str or Path
        The Zarr store.
    model_path : str or Path
        The checkpoint file.
    config : PredictConfig
        The step's options.

    Raises
    ------
    SeisFaciesError
        One line naming the file and what to do.
    """
    store = location.resolve(store)
    check_not_being_written(store)
    _checked_inputs(store, location.resolve(model_path), config)


def _checked_inputs(store: str, model_path: str, config: PredictConfig) -> tuple:
    """The store's dataset, the checkpoint's bytes, its payload and whether it is partial; checked."""
    dataset = open_store(store)
    check_new_variables(store, dataset, PREDICTED, config.overwrite)
    check_store_writable(store)
    # read once: training may rewrite the file meanwhile, and every block must come from one version
    checkpoint = _read_checkpoint(model_path)
    _, payload = load_model(checkpoint, name=model_path)
    partial = refuse_partial(payload, model_path, config.allow_partial)
    check_model_fits(payload, dataset, model_path)
    inputs = model_inputs(payload)
    if inputs:  # the model reads these volumes beside the amplitude: the store must have them
        open_store(store, require=("amplitude", *inputs))
    return dataset, checkpoint, payload, partial


def _read_checkpoint(path: str) -> bytes:
    try:
        with location.open_file(path, "rb") as handle:
            return handle.read()
    except FileNotFoundError:
        raise ModelError(f"{path}: no such checkpoint; train one with `seisfacies train`") from None


def _progress_text(payload: dict) -> str:
    _, epoch, planned = training_progress(payload)
    return f"epoch {epoch} of {planned or '?'}"


def _survey_warnings(store: str, dataset, payload: dict, model_path: str) -> list[str]:
    """Warn when the store differs strongly from the survey the model was trained on."""
    trained = payload.get("training_survey") or {}
    if not trained or trained.get("store") == str(store):
        return []
    here = {**survey_record(dataset), **amplitude_statistics(store, dataset)}
    return [
        f"{store}: {difference} ({location.name(model_path)}); predictions may be wrong, "
        "check them or retrain"
        for difference in survey_differences(trained, here)
    ]
