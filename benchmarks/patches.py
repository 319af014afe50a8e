"""Patch extraction benchmark: seisfacies on a 2-worker LocalCluster vs an in-memory loop.

Run: python benchmarks/patches.py [--shape 192 192 256] [--kind section] [--per-class 2000]
The baseline is the notebook/MalenoV way: load the volume into a NumPy array,
cut each window in a Python loop, save the stack with np.save. Both cut the
same patches (the positions seisfacies chose).
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
        volume = xr.open_zarr(store).amplitude.values  # the whole volume in memory
        windows = []
        for i, j, k, orientation in zip(*rows.values()):
            if orientation == 0:
                j0, k0 = window_start(j, size), window_start(k, size)
                windows.append(volume[i, j0 : j0 + size, k0 : k0 + size].copy())
            else:
                i0, k0 = window_start(i, size), window_start(k, size)
                windows.append(volume[i0 : i0 + size, j, k0 : k0 + size].copy())
        np.save(out, np.stack(windows))
    return timer.seconds


def run_ours(store: Path, out: Path, config: PatchesConfig) -> dict:
    with fresh_cluster() as client:
        with sampled_memory(client) as memory, Timer() as timer:
            summary = extract_patches(store, out, config, client)
        return {"seconds": timer.seconds, "count": summary["count"], **memory}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--shape", nargs=3, type=int, default=(192, 192, 256))
    parser.add_argument("--per-class", type=int, default=2000)
    parser.add_argument("--scale-check", action="store_true", help="Also run on a volume 2x larger.")
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="seisfacies-patches-"))
    config = PatchesConfig(
        kind="section", size=64, per_class=args.per_class, orientation="both", overwrite=True
    )
    try:
        store = make_store(work, tuple(args.shape))
        ours = run_ours(store, work / "p.zarr", config)
        loop = baseline(store, work / "p.zarr", work / "loop.npy")
        print(f"volume {tuple(args.shape)}, {ours['count']} section patches of 64 x 64")
        print(
            f"seisfacies patches, 2 workers: {ours['count'] / ours['seconds']:8.0f} patches/s "
            f"({ours['seconds']:.2f} s), worker memory {ours['idle_mb']} -> {ours['peak_mb']} MB"
        )
        print(f"in-memory loop + np.save:      {ours['count'] / loop:8.0f} patches/s ({loop:.2f} s)")
        print(f"ratio: {loop / ours['seconds']:.2f}x")
        if args.scale_check:
            bigger = (args.shape[0] * 2, *args.shape[1:])
            shutil.rmtree(work / "s.zarr")
            store = make_store(work, bigger)
            big = run_ours(store, work / "p2.zarr", config)
            print(
                f"volume {bigger} (2x): {big['count'] / big['seconds']:.0f} patches/s, "
                f"worker memory {big['idle_mb']} -> {big['peak_mb']} MB"
            )
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
