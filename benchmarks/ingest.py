"""Ingest benchmark: seisfacies vs segyio in memory vs a plain Dask pipeline (vs MDIO).

Run: python benchmarks/ingest.py [--shape 400 400 500] [--out DIR] [--s3]
Times exclude imports and cluster start-up (reported separately). ``--s3``
also ingests the same file from a local S3-compatible server (moto, on
loopback) into a store on it, against the local file into a local store.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib.util
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from _common import Timer, folder_size_mb, fresh_cluster, sampled_memory, seismic_like_block

from seisfacies.pipeline.testing import write_large_segy


def write_big_segy(path: Path, shape: tuple[int, int, int], seed: int = 0) -> None:
    """An IBM-float post-stack file with seismic-like (compressible like real) samples."""
    write_large_segy(path, shape, seed, values=seismic_like_block)


def run_seisfacies(segy: Path, out: Path, chunks: str | None = None, workers: int = 2) -> dict:
    from seisfacies.workflows.config import IngestConfig
    from seisfacies.workflows.ingest import segy_to_zarr

    with fresh_cluster(n_workers=workers) as client:
        with sampled_memory(client) as memory, Timer() as timer:
            summary = segy_to_zarr(segy, out, IngestConfig(chunks=chunks, overwrite=True), client)
        startup = client.startup_seconds
        return {"seconds": timer.seconds, "startup": startup, "tasks": summary["tasks"], **memory}


def run_segyio(segy: Path) -> dict:
    import segyio

    with Timer() as timer, segyio.open(str(segy)) as handle:
        segyio.tools.cube(handle)
    return {"seconds": timer.seconds}


def _read_inlines(path: str, first: int, count: int, n_xl: int):
    import segyio

    with segyio.open(path, ignore_geometry=True) as handle:
        return handle.trace.raw[first * n_xl : (first + count) * n_xl].reshape(count, n_xl, -1)


def run_plain_dask(segy: Path, out: Path, shape, workers: int = 2) -> dict:
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
    with fresh_cluster(n_workers=workers) as client:
        with sampled_memory(client) as memory, Timer() as timer:
            da.concatenate(blocks).to_zarr(str(out), overwrite=True)
        return {"seconds": timer.seconds, "startup": client.startup_seconds, **memory}


def run_mdio(segy: Path, out: Path) -> dict | None:
    """TGS MDIO's own converter (v1 post-stack template, its default process pool), or None."""
    if importlib.util.find_spec("mdio") is None:
        return None
    from mdio import segy_to_mdio
    from mdio.builder.template_registry import TemplateRegistry
    from segy.standards import get_segy_standard

    template = TemplateRegistry().get("PostStack3DTime")
    with Timer() as timer:
        segy_to_mdio(get_segy_standard(1.0), template, str(segy), str(out), overwrite=True)
    return {"seconds": timer.seconds}


@contextlib.contextmanager
def local_s3():
    """A moto S3 server on 127.0.0.1 with one bucket; AWS_* set for this process and new workers."""
    import s3fs

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    server = subprocess.Popen(
        [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    os.environ.update(
        AWS_ENDPOINT_URL=f"http://127.0.0.1:{port}",
        AWS_ACCESS_KEY_ID="bench",
        AWS_SECRET_ACCESS_KEY="bench",
        AWS_DEFAULT_REGION="us-east-1",
    )
    try:
        for _ in range(100):
            try:
                s3fs.S3FileSystem(skip_instance_cache=True).mkdir("bench")
                break
            except Exception:  # noqa: BLE001 (still starting)
                time.sleep(0.1)
        yield s3fs.S3FileSystem()
    finally:
        server.terminate()


def s3_against_local(segy: Path, work: Path, megabytes: float) -> None:
    """Ingest throughput from the local S3 server vs from the local file, in one run."""
    with local_s3() as fs:
        with Timer() as upload:
            fs.put_file(str(segy), "bench/bench.sgy")
        with Timer() as download:  # what the server itself gives: one GET of the whole object
            fs.cat_file("bench/bench.sgy")
        local = run_seisfacies(segy, work / "local.zarr")
        remote = run_seisfacies("s3://bench/bench.sgy", "s3://bench/bench.zarr")
    rate = lambda r: megabytes / r["seconds"]  # noqa: E731
    print(f"local file -> local store:           {rate(local):8.0f} MB/s")
    print(f"S3 (moto, loopback) -> S3 store:      {rate(remote):8.0f} MB/s")
    print(f"ratio S3 / local: {rate(remote) / rate(local):.2f}x")
    print(
        f"the server alone: one PUT {megabytes / upload.seconds:.0f} MB/s, "
        f"one GET of the whole object {megabytes / download.seconds:.0f} MB/s"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--shape", nargs=3, type=int, default=(400, 400, 500))
    parser.add_argument("--out", type=Path, default=None)
    parser.add_argument("--scale-check", action="store_true", help="Also ingest a file 3x larger (memory).")
    parser.add_argument("--s3", action="store_true", help="Also ingest from and to a local S3 server.")
    args = parser.parse_args()
    work = Path(args.out or tempfile.mkdtemp(prefix="seisfacies-bench-"))
    work.mkdir(parents=True, exist_ok=True)
    shape = tuple(args.shape)
    segy = work / "bench.sgy"
    write_big_segy(segy, shape)
    megabytes = segy.stat().st_size / 1e6
    print(f"file: {segy} {megabytes:.0f} MB, shape {shape}, IBM float")
    if args.s3:
        s3_against_local(segy, work, megabytes)
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
        print(
            f"MDIO segy_to_mdio (v1, its process pool):       {rate(mdio):8.0f} MB/s  "
            f"store {folder_size_mb(work / 'bench.mdio')} MB"
        )
        print(f"ratio vs MDIO segy_to_mdio:     {rate(ours) / rate(mdio):.2f}x")
    else:
        print('MDIO: not installed (pip install -e ".[test]" brings multidimio); not measured')
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
