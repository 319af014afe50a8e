"""Prediction benchmark: fully convolutional cnn2d vs patch-centre cnn2d_patch vs an in-memory loop.

Run: python benchmarks/predict.py [--shape 96 96 128] [--epochs 8] [--device cpu|cuda]
Both models are trained on the same five labelled inlines; mean IoU is scored
on the unlabelled inlines. The patch-centre path classifies one patch per
voxel, so it is timed on a crop of the volume (voxels/s is what compares).
"""

from __future__ import annotations

import argparse
import shutil
import tempfile
from pathlib import Path

import numpy as np
import torch
import xarray as xr
from _common import Timer, check_device, fresh_cluster, sampled_memory, synchronize
from patches import make_store

from seisfacies.pipeline.metrics import confusion_matrix, scores
from seisfacies.workflows.config import IngestConfig, LabelsConfig, PatchesConfig, PredictConfig, TrainConfig
from seisfacies.workflows.ingest import segy_to_zarr
from seisfacies.workflows.labels import attach_labels
from seisfacies.workflows.patches import extract_patches
from seisfacies.workflows.predict import predict_volume
from seisfacies.workflows.train import load_model, train_model

LABELLED = [8, 30, 52, 74, 90]


def setup(work: Path, shape, epochs: int, device: str) -> tuple[Path, np.ndarray]:
    store = make_store(work, shape)
    truth = np.load(work / "labels.npy")
    few = np.full(truth.shape, -1, np.int16)
    few[LABELLED] = truth[LABELLED]
    np.save(work / "few.npy", few)
    attach_labels(store, work / "few.npy", LabelsConfig(overwrite=True))
    extract_patches(
        store, work / "p.zarr", PatchesConfig(kind="section", size=64, per_class=400, augment=("flip",))
    )
    train_model(work / "p.zarr", work / "cnn2d.pt", TrainConfig(model="cnn2d", epochs=epochs, device=device))
    train_model(
        work / "p.zarr", work / "patch.pt", TrainConfig(model="cnn2d_patch", epochs=epochs, device=device)
    )
    return store, truth


def crop_store(work: Path, store: Path, inlines: int) -> Path:
    """A store of the first inlines only (re-ingested from the same SEG-Y)."""
    crop = work / "crop.zarr"
    import segyio

    with segyio.open(str(work / "s.sgy")) as handle:
        cube = segyio.tools.cube(handle)[:inlines]
    from seisfacies.pipeline.segy_write import write_cube

    write_cube(
        str(work / "crop.sgy"), cube, inlines=np.arange(inlines) + 1, crosslines=np.arange(cube.shape[1]) + 1
    )
    segy_to_zarr(work / "crop.sgy", crop, IngestConfig(overwrite=True))
    return crop


def ours(store: Path, model: Path, config: PredictConfig) -> dict:
    with fresh_cluster() as client:
        with sampled_memory(client) as memory, Timer() as timer:
            predict_volume(store, model, config, client)
        return {"seconds": timer.seconds, **memory}


def plain_loop(store: Path, model_path: Path, device: str) -> float:
    """Whole inline sections of the in-memory volume through the model, no chunks or halos."""
    model, payload = load_model(model_path)
    model = model.to(device).eval()
    volume = xr.open_zarr(store).amplitude.values
    with Timer() as timer, torch.no_grad():
        x = (volume - payload["normalisation"]["mean"]) / payload["normalisation"]["std"]
        out = [
            model(torch.from_numpy(x[i : i + 16, None]).to(device)).argmax(1).cpu().numpy()
            for i in range(0, len(x), 16)
        ]
        np.concatenate(out)
        synchronize(device)
    return volume.size / timer.seconds


def unlabelled_iou(store: Path, truth: np.ndarray, rows=slice(None)) -> float:
    facies = xr.open_zarr(store).facies.values
    mask = np.ones(truth.shape[0], bool)
    mask[LABELLED] = False
    masked = np.where(mask[:, None, None], truth, -1)[rows]
    return scores(confusion_matrix(masked, facies, int(truth.max()) + 1))["mean_iou"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--shape", nargs=3, type=int, default=(96, 96, 128))
    parser.add_argument("--epochs", type=int, default=8)
    parser.add_argument("--crop", type=int, default=2, help="Inlines the patch-centre path classifies.")
    parser.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    args = parser.parse_args()
    check_device(args.device)
    work = Path(tempfile.mkdtemp(prefix="seisfacies-predict-"))
    try:
        store, truth = setup(work, tuple(args.shape), args.epochs, args.device)
        voxels = int(np.prod(args.shape))
        # one pass per section, as the plain loop (the quality defaults --mirror --smooth 1 do about 2x that)
        config = PredictConfig(device=args.device, overwrite=True, batch_size=16, mirror=False, smooth=0)
        fcn = ours(store, work / "cnn2d.pt", config)
        fcn_iou = unlabelled_iou(store, truth)
        crop = crop_store(work, store, args.crop)
        patch = ours(crop, work / "patch.pt", config.model_copy(update={"batch_size": 1024}))
        patch_voxels = args.crop * args.shape[1] * args.shape[2]
        patch_iou = unlabelled_iou(crop, truth, slice(0, args.crop))
        ours(crop, work / "cnn2d.pt", config)  # predicts the crop, to score cnn2d on the same inlines
        fcn_crop_iou = unlabelled_iou(crop, truth, slice(0, args.crop))
        loop = plain_loop(store, work / "cnn2d.pt", args.device)
        rate_fcn, rate_patch = voxels / fcn["seconds"], patch_voxels / patch["seconds"]
        print(f"volume {tuple(args.shape)} on {args.device}, 2-worker LocalCluster")
        print(
            f"cnn2d (fully convolutional): {rate_fcn:12.0f} voxels/s, "
            f"mIoU {fcn_iou:.3f} (unlabelled inlines), "
            f"worker memory {fcn['idle_mb']} -> {fcn['peak_mb']} MB"
        )
        print(
            f"cnn2d_patch (patch centre):  {rate_patch:12.0f} voxels/s on {args.crop} inlines, "
            f"mIoU {patch_iou:.3f} "
            f"(cnn2d on the same inlines: {fcn_crop_iou:.3f})"
        )
        print(f"plain in-memory loop, cnn2d: {loop:12.0f} voxels/s")
        print(
            f"ratios: fully convolutional / patch centre {rate_fcn / rate_patch:.0f}x, "
            f"seisfacies / in-memory loop {rate_fcn / loop:.2f}x"
        )
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
