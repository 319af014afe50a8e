"""Shared helpers for the benchmark scripts: timing, fresh clusters, worker memory."""

from __future__ import annotations

import contextlib
import resource
import sys
import threading
import time
from pathlib import Path

import numpy as np


@contextlib.contextmanager
def sampled_memory(client, interval=0.05):
    """Sample worker process memory while the block runs.

    ``result["peak_mb"]`` is the peak per worker (cluster total / workers) and
    ``result["idle_mb"]`` the same before the work started.
    """
    from distributed.diagnostics import MemorySampler

    from seisfacies.pipeline.cluster import live_workers

    sampler = MemorySampler()
    result = {}
    n_workers = len(live_workers(client))
    with sampler.sample("run", client=client, measure="process", interval=interval):
        yield result
    series = sampler.to_pandas()["run"] / 2**20 / n_workers
    result["idle_mb"] = round(float(series.iloc[0]), 1)
    result["peak_mb"] = round(float(series.max()), 1)


def worker_peak_mb(client) -> float:
    """Largest lifetime peak RSS among the worker processes, in MB."""
    peaks = client.run(lambda: resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)
    return round(max(peaks.values()), 1)


@contextlib.contextmanager
def fresh_cluster(
    n_workers: int = 2,
    memory_limit="4GiB",
    warm=(
        "seisfacies.workflows.ingest",
        "seisfacies.workflows.patches",
        "seisfacies.workflows.train",
        "seisfacies.workflows.predict",
    ),
):
    """A new LocalCluster of worker processes, so peak memory is this run's own.

    Workers import the step modules (torch among them) before timing starts:
    imports are start-up cost, as in the plain loops they are compared with.
    """
    import importlib

    from distributed import Client, LocalCluster

    from seisfacies.pipeline.cluster import nanny_environment_undone

    started = time.perf_counter()
    # without it, every process a later row starts (the plain scripts) inherits OMP_NUM_THREADS=1
    with (
        nanny_environment_undone(),
        LocalCluster(
            n_workers=n_workers,
            threads_per_worker=1,
            processes=True,
            dashboard_address=":0",
            memory_limit=memory_limit,
        ) as cluster,
        Client(cluster) as client,
    ):
        client.wait_for_workers(n_workers)
        for module in warm:
            client.run(importlib.import_module, module)
        client.startup_seconds = time.perf_counter() - started
        yield client


def check_device(device: str) -> None:
    """Stop with one line when ``--device cuda`` is asked for on a machine without CUDA."""
    import torch

    if device == "cuda" and not torch.cuda.is_available():
        sys.exit(f"{sys.argv[0]}: --device cuda: this machine has no CUDA device; run it on a GPU machine")


def synchronize(device: str) -> None:
    """Wait for queued GPU work, so a timer stops when the work is done."""
    import torch

    if device == "cuda":
        torch.cuda.synchronize()


@contextlib.contextmanager
def gpu_utilisation(device: str, interval: float = 0.1):
    """Mean utilisation (%) of GPU 0 while the block runs, sampled through NVML.

    ``result["percent"]`` is None on CPU, or where NVML (nvidia-ml-py) is missing.
    """
    import torch

    result = {"percent": None}
    samples: list[int] = []
    done = threading.Event()

    def sample():
        while not done.wait(interval):
            with contextlib.suppress(Exception):  # NVML missing or not initialised: no figure
                samples.append(torch.cuda.utilization(0))

    thread = threading.Thread(target=sample, daemon=True)
    if device == "cuda":
        thread.start()
    try:
        yield result
    finally:
        done.set()
        if device == "cuda":
            thread.join()
        result["percent"] = round(sum(samples) / len(samples)) if samples else None


def tuned(function, *args):
    """``function(*args)`` after the allocator and thread settings seisfacies gives its workers."""
    import os

    from seisfacies.workflows.torch_worker import prepare_torch_process

    prepare_torch_process(os.cpu_count() or 1)
    return function(*args)


class Timer:
    def __enter__(self):
        self.start = time.perf_counter()
        return self

    def __exit__(self, *exc):
        self.seconds = time.perf_counter() - self.start


def folder_size_mb(path: Path) -> float:
    return round(sum(p.stat().st_size for p in Path(path).rglob("*") if p.is_file()) / 1e6, 1)


def seismic_like_block(rng, shape, dip=0.05) -> np.ndarray:
    """Band-limited, laterally continuous traces with noise: compresses like real data."""
    n_il, n_xl, n_samples = shape
    series = rng.normal(0, 1, n_samples + 64) * (rng.random(n_samples + 64) < 0.3)
    wavelet = np.exp(-(np.linspace(-2, 2, 9) ** 2)) * np.cos(np.linspace(-6, 6, 9))
    trace = np.convolve(series, wavelet, "same").astype(np.float32)
    shift = (np.arange(n_il)[:, None] * dip + np.arange(n_xl)[None, :] * dip).astype(int) % 64
    idx = shift[..., None] + np.arange(n_samples)
    block = trace[idx] * 1000
    return (block + rng.normal(0, 50, shape)).astype(np.float32)
