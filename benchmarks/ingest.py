"""Ingest benchmark: seisfacies vs segyio in memory vs a plain Dask pipeline (vs MDIO).

Run: python benchmarks/ingest.py [--shape 400 400 500] [--out DIR]
Times exclude imports and cluster start-up (reported separately).
"""

from __future__ import annotations

import argparse
import importlib.util
import shutil
import tempfile
from pathlib import Path

import numpy as np
from _common import Timer, folder_size_mb, fresh_cluster, sampled_memory, seismic_like_block

from pipeline.testing import write_large_segy


def write_big_segy(path: Path, shape: tuple[int, int, int], seed: int = 0) -> None:
    """An IBM-float post-stack file with seismic-like (compressible like real) samples."""
    write_large_segy(path, shape, seed, values=seismic_like_block)


def run_seisfacies(segy: Path, out: Path, chunks: str | None = None) -> dict:
    from workflows.config import IngestConfig
    from workflows.ingest import segy_to_zarr

    with fresh_cluster() as client:
        with sampled_memory(client) as memory, Timer() as timer:
            segy_to_zarr(segy, out, IngestConfig(chunks=chunks, overwrite=True), client)
        return {"seconds": timer.seconds, "startup": client.startup_seconds, **memory}


def run_segyio(segy: Path) -> dict:
    import segyio

    with Timer() as timer, segyio.open(str(segy)) as handle:
        segyio.tools.cube(handle)
    return {"seconds": timer.seconds}


def _read_inlines(path: str, first: int, count: int, n_xl: int):
    import segyio

    with segyio.open(path, ignore_geometry=True) as handle:
        return handle.trace.raw[first * n_xl : (first + count) * n_xl].reshape(count, n_xl, -1)


def run_plain_dask(segy: Path, out: Path, shape) -> dict:
    import dask
    import dask.array as da

    n_il, n_xl, n_samples = shape
    step = 16
    blocks = [
        da.from_delayed(
            dask.delayed(_read_inlines)(str(segy), i, min(step, n_il - i), n_xl),
            (min(step, n_il - i), n_xl, n_samples),
            np.float32,
        )
        for i in range(0, n_il, step)
    ]
    with fresh_cluster() as client:
        with sampled_memory(client) as memory, Timer() as timer:
            da.concatenate(blocks).to_zarr(str(out), overwrite=True)
        return {"seconds": timer.seconds, "startup": client.startup_seconds, **memory}


def run_mdio(segy: Path, out: Path) -> dict | None:
    if importlib.util.find_spec("mdio") is None:
        return None
    from mdio import segy_to_mdio

    with Timer() as timer:
        segy_to_mdio(
            segy_path=str(segy),
            mdio_path_or_buffer=str(out),
            index_bytes=(189, 193),
            index_names=("inline", "crossline"),
            overwrite=True,
        )
    return {"seconds": timer.seconds}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--shape", nargs=3, type=int, default=(400, 400, 500))
    parser.add_argument("--out", type=Path, default=None)
    parser.add_argument("--scale-check", action="store_true", help="Also ingest a file 3x larger (memory).")
    args = parser.parse_args()
    work = Path(args.out or tempfile.mkdtemp(prefix="seisfacies-bench-"))
    work.mkdir(parents=True, exist_ok=True)
    shape = tuple(args.shape)
    segy = work / "bench.sgy"
    write_big_segy(segy, shape)
    megabytes = segy.stat().st_size / 1e6
    print(f"file: {segy} {megabytes:.0f} MB, shape {shape}, IBM float")
    segyio_result = run_segyio(segy)
    ours = run_seisfacies(segy, work / "ours.zarr")
    plain = run_plain_dask(segy, work / "plain.zarr", shape)
    mdio = run_mdio(segy, work / "bench.mdio")
    rate = lambda r: megabytes / r["seconds"]  # noqa: E731
    print(f"segyio.tools.cube (in memory, writes nothing): {rate(segyio_result):8.0f} MB/s")
    print(
        f"seisfacies ingest, 2 workers:                  {rate(ours):8.0f} MB/s  "
        f"store {folder_size_mb(work / 'ours.zarr')} MB, "
        f"worker memory {ours['idle_mb']} -> {ours['peak_mb']} MB, "
        f"cluster start {ours['startup']:.1f} s"
    )
    print(
        f"plain dask.delayed + to_zarr defaults:         {rate(plain):8.0f} MB/s  "
        f"store {folder_size_mb(work / 'plain.zarr')} MB, "
        f"worker memory {plain['idle_mb']} -> {plain['peak_mb']} MB"
    )
    print(f"ratio vs segyio in-memory read: {rate(ours) / rate(segyio_result):.2f}x")
    print(f"ratio vs plain Dask pipeline:   {rate(ours) / rate(plain):.2f}x")
    if mdio:
        print(f"MDIO segy_to_mdio: {rate(mdio):.0f} MB/s; ratio {rate(ours) / rate(mdio):.1f}x")
    else:
        print("MDIO: not installed (multidimio needs Python >= 3.12); not measured")
    if args.scale_check:
        big_shape = (shape[0] * 3, shape[1], shape[2])
        big = work / "bench3x.sgy"
        segy.unlink()
        write_big_segy(big, big_shape)
        big_result = run_seisfacies(big, work / "ours3x.zarr")
        print(
            f"3x larger file ({big.stat().st_size / 1e6:.0f} MB): "
            f"{big.stat().st_size / 1e6 / big_result['seconds']:.0f} MB/s, "
            f"worker memory {big_result['idle_mb']} -> {big_result['peak_mb']} MB "
            f"(1x file: {ours['peak_mb']} MB)"
        )
    if args.out is None:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
