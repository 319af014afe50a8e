"""Every speed row at once: seisfacies against the obvious baseline, side by side in one run.

Run from the repository root: ``python -m benchmarks [--quick] [--markdown FILE]``.
Each row runs the baseline and seisfacies on the same data in this run and
prints both and their ratio (>1: seisfacies is faster), with the target of
issue 16. Absolute figures are context only: they depend on the machine.
``--quick`` uses smaller data (a smoke run, not for the README).
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))  # the scripts import each other by name

import numpy as np  # noqa: E402
from _common import tuned  # noqa: E402

BIN = Path(sys.executable).parent


@dataclass
class Row:
    step: str
    baseline: str
    ours: float
    theirs: float
    unit: str
    target: str
    note: str = ""

    @property
    def ratio(self) -> float:
        return self.ours / self.theirs


def fresh(function, *args):
    """``function(*args)`` in a new Python process, so no earlier row's allocations or threads weigh on it.

    The process gets the allocator settings seisfacies gives its own workers
    (``prepare_torch_process``): with glibc's defaults every large array is
    mmapped and unmapped again, which made the same loop 2-4x slower in a new
    process than in one that had already freed large arrays. The comparison is
    of the pipelines, not of glibc's state.
    """
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor

    with ProcessPoolExecutor(max_workers=1, mp_context=multiprocessing.get_context("spawn")) as pool:
        return pool.submit(tuned, function, *args).result()


def _process_seconds(command: list, cwd: Path) -> float:
    started = time.perf_counter()
    subprocess.run(command, cwd=cwd, check=True, capture_output=True)
    return time.perf_counter() - started


def ingest_rows(work: Path, shape) -> list[Row]:
    from ingest import run_mdio, run_plain_dask, run_segyio, run_seisfacies, write_big_segy

    segy = work / "ingest.sgy"
    write_big_segy(segy, shape)
    megabytes = segy.stat().st_size / 1e6
    cube = fresh(run_segyio, segy)
    ours = run_seisfacies(segy, work / "ours.zarr")
    plain = run_plain_dask(segy, work / "plain.zarr", shape)
    rate = lambda result: megabytes / result["seconds"]  # noqa: E731
    size = f"{megabytes:.0f} MB IBM file, 2 workers, in-call"
    rows = [
        Row(
            "ingest",
            "plain Dask delayed segyio reads + to_zarr",
            rate(ours),
            rate(plain),
            "MB/s",
            ">= 1x",
            size,
        ),
        Row(
            "ingest",
            "segyio.tools.cube into memory (writes nothing)",
            rate(ours),
            rate(cube),
            "MB/s",
            ">= 0.5x",
            size,
        ),
    ]
    mdio = run_mdio(segy, work / "ours.mdio")
    if mdio is not None:  # a peer's converter: the same file to an MDIO v1 store
        rows.append(
            Row(
                "ingest",
                "TGS MDIO segy_to_mdio (v1, its own process pool)",
                rate(ours),
                rate(mdio),
                "MB/s",
                "peer",
                size,
            )
        )
    big = work / "ingest3x.sgy"
    write_big_segy(big, (shape[0] * 3, *shape[1:]))
    segy.unlink()
    three = run_seisfacies(big, work / "ours3x.zarr")
    big.unlink()
    rows.append(
        Row(
            "peak worker memory, ingest of a 3x file",
            "the same ingest of the 1x file",
            three["peak_mb"],
            ours["peak_mb"],
            "MB",
            "<= 1.2x (lower is better)",
            f"per worker, {ours['idle_mb']:.0f} MB idle",
        )
    )
    return rows


def ingest_process_row(work: Path, shape) -> Row:
    from ingest import write_big_segy

    segy = work / "process.sgy"
    write_big_segy(segy, shape)
    megabytes = segy.stat().st_size / 1e6
    cube = [
        sys.executable,
        "-c",
        "import segyio, sys; segyio.tools.cube(segyio.open(sys.argv[1]))",
        segy.name,
    ]
    ours = [BIN / "seisfacies", "ingest", segy.name, "process.zarr", "--overwrite"]
    _process_seconds(cube, work)  # the file into the page cache for both
    theirs, mine = _process_seconds(cube, work), _process_seconds(ours, work)
    segy.unlink()
    return Row(
        "ingest, whole process",
        "a `segyio.tools.cube` process",
        megabytes / mine,
        megabytes / theirs,
        "MB/s",
        ">= 0.5x",
        f"{megabytes:.0f} MB file; {mine:.1f} s vs {theirs:.1f} s",
    )


def patches_row(work: Path, shape) -> Row:
    from patches import alternating, make_store

    from seisfacies.workflows.config import PatchesConfig

    store = make_store(work, shape)
    config = PatchesConfig(kind="section", size=64, per_class=2000, orientation="both", overwrite=True)
    timed = alternating(store, work, config, repeats=3, fresh=fresh)
    return Row(
        "patches",
        "in-memory loop + np.save of amplitude and label windows (same positions)",
        timed["count"] / timed["ours"],
        timed["count"] / timed["loop"],
        "patches/s",
        ">= 0.8x",
        f"{timed['count']} section patches 64 x 64 from {shape}, as the command runs (threads); "
        f"medians of 3 alternating runs: {timed['ours']:.2f} s vs {timed['loop']:.2f} s",
    )


def training_rows(work: Path, shape, epochs: int) -> list[Row]:
    from patches import make_store
    from train import CASES, ours, plain_loop

    from seisfacies.workflows.config import TrainConfig
    from seisfacies.workflows.patches import extract_patches

    (work / "train").mkdir()
    store = make_store(work / "train", shape)
    rows = []
    for name, workers, target, many in (("cnn2d", 1, ">= 0.95x", 1), ("mlp", "auto", ">= 0.8x", 8)):
        patches = work / f"{name}.zarr"
        extract_patches(store, patches, CASES[name][0])
        config = TrainConfig(model=name, epochs=epochs * many, overwrite=True, workers=workers, device="cpu")
        plain = fresh(plain_loop, patches, config)
        mine, _, summary = ours(patches, work / f"{name}.pt", config, cluster=2)
        label = "1 worker" if workers == 1 else f"default on 2 workers ({summary['workers']} rank)"
        rows.append(
            Row(
                f"training, {name}, {label}",
                "plain PyTorch loop, data in memory",
                mine,
                plain,
                "samples/s",
                target,
                f"{config.epochs} epochs; ours validates and checkpoints every epoch",
            )
        )
    return rows


#: Prediction options that do what the plain loops do: one forward pass per section.
SINGLE_PASS = {"mirror": False, "smooth": 0}


def prediction_row(work: Path, shape, epochs: int) -> Row:
    from predict import ours, plain_loop, setup

    from seisfacies.workflows.config import PredictConfig

    (work / "predict").mkdir()
    store, _ = setup(work / "predict", shape, epochs, "cpu")
    # the plain loop's work: one pass per section (the quality defaults --mirror --smooth 1 do about 2x that)
    mine = ours(store, work / "predict" / "cnn2d.pt", PredictConfig(overwrite=True, **SINGLE_PASS))
    loop = fresh(plain_loop, store, work / "predict" / "cnn2d.pt", "cpu")
    voxels = int(np.prod(shape))
    return Row(
        "prediction, in-process",
        "plain in-memory loop over whole sections",
        voxels / mine["seconds"] / 1e6,
        loop / 1e6,
        "M voxels/s",
        ">= 0.9x",
        f"cnn2d, {shape}, 2 workers",
    )


PLAIN_PREDICT = """
import sys, numpy as np, torch, xarray as xr
from seisfacies.models.checkpoint import load_model
model, payload = load_model(sys.argv[2])
model.eval()
volume = xr.open_zarr(sys.argv[1]).amplitude.values
x = ((volume - payload["normalisation"]["mean"]) / payload["normalisation"]["std"]).astype(np.float32)
with torch.no_grad():
    classes = [model(torch.from_numpy(x[i : i + 16, None])).argmax(1).numpy().astype(np.int8)
               for i in range(0, len(x), 16)]
np.save(sys.argv[3], np.concatenate(classes))
"""


def prediction_process_row(work: Path, shape, model: Path) -> Row:
    from patches import make_store

    folder = work / "big"
    folder.mkdir()
    store = make_store(folder, shape)
    plain = [sys.executable, "-c", PLAIN_PREDICT, str(store), str(model), str(folder / "classes.npy")]
    ours = [
        BIN / "seisfacies",
        "predict",
        str(store),
        str(model),
        "--overwrite",
        "--no-mirror",
        "--smooth",
        "0",
    ]
    theirs, mine = _process_seconds(plain, folder), _process_seconds(ours, folder)
    voxels = int(np.prod(shape))
    return Row(
        "prediction, whole process",
        "a plain process: checkpoint, whole volume, whole sections, np.save",
        voxels / mine / 1e6,
        voxels / theirs / 1e6,
        "M voxels/s",
        ">= 1.5x",
        f"cnn2d, {shape}; {mine:.1f} s vs {theirs:.1f} s; ours with its default LocalCluster",
    )


def chain_rows(work: Path, shapes: list, epochs: int) -> list[Row]:
    """The whole chain as whole processes: `seisfacies run` against one plain script (benchmarks/chain.py)."""
    from chain import run_case

    rows = []
    for shape in shapes:
        folder = work / f"chain-{'x'.join(map(str, shape))}"
        folder.mkdir()
        case = run_case(folder, shape, epochs)
        steps = ", ".join(f"{name} {seconds:g}" for name, seconds in case["ours_steps"].items())
        rows.append(
            Row(
                "whole chain, ingest to facies",
                "one plain script: segyio cube, NumPy crops, PyTorch loop, whole sections, to_zarr",
                3600 / case["ours"],
                3600 / case["plain"],
                "runs/h",
                ">= 1x",
                f"{shape}, {epochs} epochs; {case['ours']} s vs {case['plain']} s; ours by step: {steps}; "
                f"mIoU {case['ours_iou']} vs {case['plain_iou']}",
            )
        )
    return rows


def markdown(rows: list[Row]) -> str:
    lines = [
        "| step | baseline (same run) | baseline | seisfacies | ratio | target | context |",
        "|---|---|---|---|---|---|---|",
    ]
    for row in rows:
        lines.append(
            f"| {row.step} | {row.baseline} | {row.theirs:,.1f} {row.unit} | {row.ours:,.1f} {row.unit} | "
            f"**{row.ratio:.2f}×** | {row.target} | {row.note} |"
        )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true", help="Small data: a smoke run.")
    parser.add_argument("--markdown", type=Path, help="Also write the table to this file.")
    args = parser.parse_args()
    quick = args.quick
    work = Path(tempfile.mkdtemp(prefix="seisfacies-benchmarks-"))
    rows: list[Row] = []
    try:
        rows += ingest_rows(work, (80, 80, 200) if quick else (400, 400, 500))
        rows.append(ingest_process_row(work, (100, 100, 200) if quick else (560, 560, 500)))
        rows.append(patches_row(work, (96, 96, 128) if quick else (192, 192, 256)))
        rows += training_rows(work, (96, 96, 128), 1 if quick else 3)
        rows.append(prediction_row(work, (96, 96, 128), 1 if quick else 8))
        big = (96, 96, 128) if quick else (256, 256, 384)
        rows.append(prediction_process_row(work, big, work / "predict" / "cnn2d.pt"))
        rows += chain_rows(
            work, [(64, 64, 96)] if quick else [(96, 96, 128), (192, 192, 128)], 1 if quick else 3
        )
    finally:
        table = markdown(rows)
        print(table)
        if args.markdown:
            args.markdown.write_text(table + "\n")
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
