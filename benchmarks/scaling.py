"""How ingest scales with workers and with the volume: throughput, tasks, bytes and memory.

Run: python benchmarks/scaling.py [--workers 1,2,4,8,16] [--scales 1,3,9] [--shape 133 400 500]

1. Workers: the same file ingested in-call by seisfacies and by the plain Dask
   script (segyio slab reads -> ``to_zarr``) on fresh LocalClusters of each size.
2. Volume: files of 1x, 3x, 9x the base shape (more inlines) on 2 workers:
   tasks, bytes read and written, and peak memory per worker (Dask's
   MemorySampler), to show what grows with the survey and what does not.
3. Plan only (nothing read): the task count and per-task bytes for a 10 TB
   survey, from the same planner the ingest uses.
"""

from __future__ import annotations

import argparse
import shutil
import tempfile
from pathlib import Path

from _common import folder_size_mb
from ingest import run_plain_dask, run_seisfacies, write_big_segy

from seisfacies.pipeline.blocks import slab_regions
from seisfacies.workflows.ingest import TASK_BUDGET_BYTES


def ten_terabytes() -> str:
    """Tasks and bytes per task the ingest planner gives a 10 TB post-stack survey."""
    sizes = {"inline": 10_000, "crossline": 10_000}
    samples = 25_000
    bytes_per_trace = samples * 4 + 240
    chunks = {"inline": 64, "crossline": 64, "time": 512}
    plan = slab_regions(sizes, chunks, "crossline", bytes_per_trace, TASK_BUDGET_BYTES)
    first = plan[0]
    traces = len(range(10_000)[first["inline"]]) * len(range(10_000)[first["crossline"]])
    per_task = traces * bytes_per_trace / 2**20
    total = sizes["inline"] * sizes["crossline"] * bytes_per_trace / 1e12
    return (
        f"10 TB plan ({sizes['inline']} x {sizes['crossline']} traces x {samples} samples, {total:.1f} TB): "
        f"{len(plan):,} ingest tasks of {per_task:.0f} MiB (budget {TASK_BUDGET_BYTES / 2**20:.0f} MiB)"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--workers", default="1,2", help="Comma-separated worker counts.")
    parser.add_argument("--scales", default="1,3,9", help="Comma-separated volume multiples.")
    parser.add_argument("--shape", nargs=3, type=int, default=(133, 400, 500))
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="seisfacies-scaling-"))
    try:
        shape = tuple(args.shape)
        segy = work / "base.sgy"
        write_big_segy(segy, shape)
        megabytes = segy.stat().st_size / 1e6
        print(f"workers (file {megabytes:.0f} MB, in-call, cluster start excluded)")
        print("| workers | seisfacies MB/s | plain Dask script MB/s | ratio | cluster start s |")
        print("|---|---|---|---|---|")
        for workers in [int(w) for w in args.workers.split(",")]:
            ours = run_seisfacies(segy, work / "ours.zarr", workers=workers)
            plain = run_plain_dask(segy, work / "plain.zarr", shape, workers=workers)
            print(
                f"| {workers} | {megabytes / ours['seconds']:.0f} | {megabytes / plain['seconds']:.0f} | "
                f"{plain['seconds'] / ours['seconds']:.2f}x | {ours['startup']:.1f} |"
            )
        segy.unlink()
        print("\nvolume (2 workers)")
        print("| volume | file MB | tasks | MB read | MB written | MB/s | worker memory idle -> peak MB |")
        print("|---|---|---|---|---|---|---|")
        for scale in [int(s) for s in args.scales.split(",")]:
            big = work / f"x{scale}.sgy"
            write_big_segy(big, (shape[0] * scale, *shape[1:]))
            size = big.stat().st_size / 1e6
            result = run_seisfacies(big, work / f"x{scale}.zarr")
            written = folder_size_mb(work / f"x{scale}.zarr")
            print(
                f"| {scale}x | {size:.0f} | {result['tasks']} | {size:.0f} | {written:.0f} | "
                f"{size / result['seconds']:.0f} | {result['idle_mb']:.0f} -> {result['peak_mb']:.0f} |"
            )
            big.unlink()
            shutil.rmtree(work / f"x{scale}.zarr")
        print("\n" + ten_terabytes())
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
