"""Patch extraction benchmark: seisfacies as `seisfacies patches` runs it vs an in-memory loop.

Run: python benchmarks/patches.py [--shape 192 192 256] [--per-class 2000] [--repeats 3]
The baseline is the notebook way: load the volume and its labels into NumPy
arrays, cut each window in a Python loop, save the stacks with np.save. Both
cut the same patches (the positions seisfacies chose), amplitude and label
windows, since a section model trains on both. seisfacies runs without a
scheduler, on threads of this process, as the command does without
``--scheduler``; a 2-worker LocalCluster is timed beside it. Each side runs
``--repeats`` times, alternating, and the medians are compared: one run of
either moves by tens of percent on this machine.
"""

from __future__ import annotations

import argparse
import shutil
import tempfile
from pathlib import Path

import numpy as np
import xarray as xr
from _common import Timer, fresh_cluster, sampled_memory

from seisfacies.pipeline.patches import window_start
from seisfacies.pipeline.segy_write import write_cube
from seisfacies.pipeline.synth import make_synthetic_survey
from seisfacies.workflows.config import IngestConfig, LabelsConfig, PatchesConfig
from seisfacies.workflows.ingest import segy_to_zarr
from seisfacies.workflows.labels import attach_labels
from seisfacies.workflows.patches import extract_patches


def make_store(work: Path, shape) -> Path:
    survey = make_synthetic_survey(shape, seed=1)
    grid = {"inlines": np.arange(shape[0]) + 1, "crosslines": np.arange(shape[1]) + 1}
    write_cube(str(work / "s.sgy"), survey.amplitude, sample_format=5, **grid)
    np.save(work / "labels.npy", survey.labels)
    segy_to_zarr(work / "s.sgy", work / "s.zarr", IngestConfig(overwrite=True))
    attach_labels(work / "s.zarr", work / "labels.npy", LabelsConfig(overwrite=True))
    return work / "s.zarr"


def baseline(store: Path, patches: Path, out: Path) -> float:
    chosen = xr.open_zarr(patches)
    rows = {
        name: chosen[name].values
        for name in ("inline_index", "crossline_index", "sample_index", "orientation")
    }
    size = chosen.attrs["size"]
    with Timer() as timer:
        survey = xr.open_zarr(store)
        volumes = survey.amplitude.values, survey.labels.values  # the whole volume in memory
        for volume, suffix in zip(volumes, ("x", "y")):
            windows = []
            for i, j, k, orientation in zip(*rows.values()):
                if orientation == 0:
                    j0, k0 = window_start(j, size), window_start(k, size)
                    windows.append(volume[i, j0 : j0 + size, k0 : k0 + size].copy())
                else:
                    i0, k0 = window_start(i, size), window_start(k, size)
                    windows.append(volume[i0 : i0 + size, j, k0 : k0 + size].copy())
            np.save(out.with_suffix(f".{suffix}.npy"), np.stack(windows))
    return timer.seconds


def run_ours(store: Path, out: Path, config: PatchesConfig, workers: int = 0) -> dict:
    """Time ``extract_patches`` on threads of this process (``workers=0``) or a fresh LocalCluster."""
    if not workers:
        with Timer() as timer:
            summary = extract_patches(store, out, config)
        return {"seconds": timer.seconds, "count": summary["count"]}
    with fresh_cluster(workers) as client:
        with sampled_memory(client) as memory, Timer() as timer:
            summary = extract_patches(store, out, config, client)
        return {"seconds": timer.seconds, "count": summary["count"], **memory}


def alternating(store: Path, work: Path, config: PatchesConfig, repeats: int, fresh=None) -> dict:
    """Median seconds of seisfacies (threads) and of the loop, run in turn ``repeats`` times.

    ``fresh(function, *args)``, where given, runs each side in a new process
    (timed inside it, imports excluded): a process that has already freed
    large arrays cuts faster than a new one, whichever side it runs.
    """
    ours, loop = [], []
    fresh = fresh or (lambda function, *args: function(*args))
    for _ in range(repeats):
        ours.append(fresh(run_ours, store, work / "p.zarr", config))
        loop.append(fresh(baseline, store, work / "p.zarr", work / "loop"))
    return {
        "count": ours[0]["count"],
        "ours": float(np.median([run["seconds"] for run in ours])),
        "loop": float(np.median(loop)),
        "spread": (
            min(run["seconds"] for run in ours),
            max(run["seconds"] for run in ours),
            min(loop),
            max(loop),
        ),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--shape", nargs=3, type=int, default=(192, 192, 256))
    parser.add_argument("--per-class", type=int, default=2000)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--scale-check", action="store_true", help="Also run on a volume 2x larger.")
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="seisfacies-patches-"))
    config = PatchesConfig(
        kind="section", size=64, per_class=args.per_class, orientation="both", overwrite=True
    )
    try:
        store = make_store(work, tuple(args.shape))
        timed = alternating(store, work, config, args.repeats)
        cluster = run_ours(store, work / "p.zarr", config, workers=2)
        count = timed["count"]
        print(f"volume {tuple(args.shape)}, {count} section patches of 64 x 64 (amplitude and labels)")
        low, high, loop_low, loop_high = timed["spread"]
        median = f"median of {args.repeats}"
        print(
            f"seisfacies patches, threads:   {count / timed['ours']:8.0f} patches/s "
            f"({timed['ours']:.2f} s, {median}: {low:.2f}-{high:.2f})"
        )
        print(
            f"in-memory loop + np.save:      {count / timed['loop']:8.0f} patches/s "
            f"({timed['loop']:.2f} s, {median}: {loop_low:.2f}-{loop_high:.2f})"
        )
        print(f"ratio: {timed['loop'] / timed['ours']:.2f}x")
        print(
            f"on a 2-worker LocalCluster:    {count / cluster['seconds']:8.0f} patches/s "
            f"({cluster['seconds']:.2f} s), worker memory {cluster['idle_mb']} -> {cluster['peak_mb']} MB"
        )
        if args.scale_check:
            bigger = (args.shape[0] * 2, *args.shape[1:])
            shutil.rmtree(work / "s.zarr")
            store = make_store(work, bigger)
            big = run_ours(store, work / "p2.zarr", config, workers=2)
            print(
                f"volume {bigger} (2x): {big['count'] / big['seconds']:.0f} patches/s, "
                f"worker memory {big['idle_mb']} -> {big['peak_mb']} MB"
            )
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
