"""Training benchmark: `seisfacies train` on 1 and 2 Dask workers, and by default, vs a plain PyTorch loop.

Run: python benchmarks/train.py [--epochs 3] [--device cpu|cuda] [--precision fp32|bf16]
Samples/s counts training patches processed; seisfacies' time includes reading
the shards from Zarr, validation and a checkpoint every epoch; the plain loop
trains on tensors already in memory. Cluster start-up is excluded.
"""

from __future__ import annotations

import argparse
import shutil
import tempfile
from pathlib import Path

import torch
import zarr
from _common import Timer, check_device, fresh_cluster, gpu_utilisation, synchronize
from patches import make_store  # noqa: I001  (benchmarks/patches.py)

import seisfacies as sf
from seisfacies.models.optim import create_optimizer
from seisfacies.models.registry import create_model_for_patches
from seisfacies.models.training import class_weights, loss_terms, to_tensors
from seisfacies.workflows.config import PatchesConfig, TrainConfig
from seisfacies.workflows.ranks import patch_attrs

CASES = {
    "cnn2d": (PatchesConfig(kind="section", size=64, per_class=250, stride=4), {}),
    "mlp": (PatchesConfig(kind="trace", size=64, per_class=3000, stride=2), {}),
}


def plain_loop(patches: Path, config: TrainConfig) -> float:
    """A single-process loop over the same training patches held in memory."""
    attrs = patch_attrs(str(patches))
    group = zarr.open_group(str(patches), mode="r")
    train = group["split"][:] == 0
    x, y = to_tensors(group["x"][:][train], group["y"][:][train], config.model, attrs["mean"], attrs["std"])
    n_classes = len(attrs["class_names"])
    torch.manual_seed(0)
    model = create_model_for_patches(config.model, n_classes, attrs["size"]).to(config.device)
    optimizer = create_optimizer(config.optimizer, model.parameters(), config.lr)
    weights = class_weights([group["y"][:][train]], n_classes, "balanced").to(config.device)
    with Timer() as timer:
        for _ in range(config.epochs):
            order = torch.randperm(len(x))
            for start in range(0, len(x) - config.batch_size + 1, config.batch_size):
                index = order[start : start + config.batch_size]
                inputs, targets = x[index].to(config.device), y[index].to(config.device)
                with torch.autocast(config.device, dtype=torch.bfloat16, enabled=config.precision == "bf16"):
                    logits = model(inputs)
                total, weight = loss_terms(logits, targets, weights)
                optimizer.zero_grad()
                (total / weight).backward()
                optimizer.step()
        synchronize(config.device)
    return len(x) * config.epochs / timer.seconds


def ours(patches: Path, out: Path, config: TrainConfig, cluster: int = 2) -> tuple[float, int | None, dict]:
    """Samples/s of `seisfacies train` on a fresh cluster, the GPU's mean utilisation, and the summary.

    The cluster has ``--workers`` workers, or ``cluster`` with ``--workers auto``. The
    call is ``sf.train``, as a user makes it: it warms the rank's worker first.
    """
    size = config.workers if isinstance(config.workers, int) else cluster
    with fresh_cluster(n_workers=size) as client, gpu_utilisation(config.device) as busy:
        summary = sf.train(patches, out, client=client, **config.model_dump())
    return summary["samples_per_second"], busy["percent"], summary


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    parser.add_argument("--precision", default="fp32", choices=["fp32", "bf16"])
    parser.add_argument("--shape", nargs=3, type=int, default=(96, 96, 128))
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--models", default="cnn2d,mlp", help="Comma-separated: cnn2d, mlp.")
    args = parser.parse_args()
    check_device(args.device)
    # one rank per GPU: a second rank needs a second GPU
    two_ranks = args.device == "cpu" or torch.cuda.device_count() >= 2
    work = Path(tempfile.mkdtemp(prefix="seisfacies-train-"))
    try:
        store = make_store(work, tuple(args.shape))
        from seisfacies.workflows.patches import extract_patches

        for name in args.models.split(","):
            patch_config, options = CASES[name]
            patches = work / f"{name}.zarr"
            extract_patches(store, patches, patch_config)
            epochs = args.epochs * (8 if name == "mlp" else 1)  # mlp epochs take well under a second
            config = TrainConfig(
                model=name,
                epochs=epochs,
                device=args.device,
                precision=args.precision,
                overwrite=True,
                model_options=options,
                batch_size=args.batch_size,
            )
            plain = plain_loop(patches, config)
            one, busy, _ = ours(patches, work / "m1.pt", config.model_copy(update={"workers": 1}))
            line = "| 2 workers: needs 2 GPUs"
            if two_ranks:
                two = ours(patches, work / "m2.pt", config.model_copy(update={"workers": 2}))[0]
                auto, _, summary = ours(patches, work / "m3.pt", config)
                line = (
                    f"| 2 workers {two:8.1f} ({two / plain:.2f}x) | default (auto) on 2 workers {auto:8.1f} "
                    f"({auto / plain:.2f}x, {summary['workers']} rank{'s' * (summary['workers'] > 1)})"
                )
            print(
                f"{name:6s} plain loop {plain:8.1f} samples/s | seisfacies 1 worker {one:8.1f} "
                f"({one / plain:.2f}x{f', GPU {busy}% busy' if busy is not None else ''}) "
                f"{line}  [{args.device}, {args.precision}, batch {args.batch_size}]"
            )
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
