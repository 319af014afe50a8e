"""The whole chain as a user feels it: `seisfacies run` against one plain script, both whole processes.

Run: python benchmarks/chain.py [--shapes 96x96x128 192x192x128] [--epochs 3] [--markdown FILE]

Both sides do the same work on the same synthetic survey (made first, not
timed): read the SEG-Y volume and its labels on five inlines, cut 64 x 64
section patches (400 per class), train the same cnn2d for the same epochs
with Adam, classify every voxel one section at a time, and write `facies` to
Zarr. seisfacies runs as `seisfacies run WORKFLOW.yaml` (a LocalCluster of
one worker per core, each step's summary and run record, validation and a
checkpoint every epoch); the plain script is one process with everything in
memory (`segyio.tools.cube`, NumPy crops, a PyTorch loop, whole-section
prediction, `to_zarr`). Each is timed from the outside as a process, and its
steps from the inside. Ratio > 1: seisfacies is faster.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

BIN = Path(sys.executable).parent
#: The five labelled inlines of the demo, placed by the survey's size.
LABELLED_SHARE = (0.1, 0.3, 0.5, 0.7, 0.9)
PER_CLASS, SIZE, BATCH, LR = 400, 64, 32, 0.002


def labelled_inlines(n_inlines: int, first: int = 100) -> list[int]:
    """The inline numbers both sides label."""
    return [first + int(share * n_inlines) for share in LABELLED_SHARE]


def workflow_text(inlines: list[int], epochs: int) -> str:
    """The seisfacies side: the same work as the plain script, as a workflow file."""
    return f"""name: chain
steps:
  - ingest: {{segy: seismic.sgy, store: seismic.zarr}}
  - labels: {{store: seismic.zarr, source: labels.sgy, inlines: {inlines}}}
  - patches: {{store: seismic.zarr, patches: patches.zarr, kind: section, size: {SIZE}, stride: 4,
               per_class: {PER_CLASS}}}
  - train: {{source: patches.zarr, model_path: cnn2d.pt, model: cnn2d, epochs: {epochs}, batch_size: {BATCH},
             lr: {LR}, seed: 0}}
  - predict: {{store: seismic.zarr, model_path: cnn2d.pt, mirror: false, smooth: 0}}
"""


def plain_chain(folder: Path, inlines: list[int], epochs: int) -> dict:
    """The plain script: one process, everything in memory. Returns each step's seconds."""
    import segyio
    import torch
    import xarray as xr

    from seisfacies.models.registry import create_model_for_patches

    seconds, clock = {}, time.perf_counter()

    def lap(name: str) -> None:
        nonlocal clock
        now = time.perf_counter()
        seconds[name], clock = round(now - clock, 2), now

    volume = segyio.tools.cube(str(folder / "seismic.sgy")).astype(np.float32)
    labels = segyio.tools.cube(str(folder / "labels.sgy")).astype(np.int64)
    lap("ingest")
    rows = [number - 100 for number in inlines]
    rng = np.random.default_rng(0)
    starts = [(row, j, k) for row in rows for j in range(0, volume.shape[1] - SIZE + 1, 4)
              for k in range(0, volume.shape[2] - SIZE + 1, 4)]  # fmt: skip
    centre = np.array([labels[row, j + SIZE // 2, k + SIZE // 2] for row, j, k in starts])
    chosen = np.concatenate(
        [rng.permutation(np.flatnonzero(centre == c))[:PER_CLASS] for c in np.unique(centre)]
    )
    x = np.stack([volume[row, j : j + SIZE, k : k + SIZE] for row, j, k in np.array(starts)[chosen]])
    y = np.stack([labels[row, j : j + SIZE, k : k + SIZE] for row, j, k in np.array(starts)[chosen]])
    mean, std = float(x.mean()), float(x.std())
    lap("patches")
    n_classes = int(labels.max()) + 1
    torch.manual_seed(0)
    model = create_model_for_patches("cnn2d", n_classes, SIZE)
    optimizer = torch.optim.Adam(model.parameters(), lr=LR)
    counts = np.bincount(y.ravel(), minlength=n_classes)
    loss = torch.nn.CrossEntropyLoss(
        weight=torch.tensor(counts.sum() / (n_classes * np.maximum(counts, 1)), dtype=torch.float32)
    )
    inputs, targets = torch.from_numpy((x - mean) / std)[:, None], torch.from_numpy(y)
    for _ in range(epochs):
        order = torch.randperm(len(inputs))
        for start in range(0, len(inputs) - BATCH + 1, BATCH):
            index = order[start : start + BATCH]
            optimizer.zero_grad()
            loss(model(inputs[index]), targets[index]).backward()
            optimizer.step()
    lap("train")
    model.eval()
    with torch.no_grad():
        normalised = (volume - mean) / std
        facies = np.concatenate(
            [
                model(torch.from_numpy(normalised[i : i + 16, None])).argmax(1).numpy()
                for i in range(0, len(volume), 16)
            ]
        ).astype(np.int8)
    lap("predict")
    dims = ("inline", "crossline", "time")
    xr.Dataset({"facies": (dims, facies)}).to_zarr(folder / "plain.zarr", mode="w", zarr_format=3)
    lap("write")
    return seconds


def unlabelled_iou(facies: np.ndarray, labels: np.ndarray, inlines: list[int]) -> float:
    """Mean IoU on the inlines nobody labelled: both sides did the same work, not less."""
    from seisfacies.pipeline.metrics import confusion_matrix, scores

    truth = labels.copy()
    truth[[number - 100 for number in inlines]] = -1
    return round(scores(confusion_matrix(truth, facies, int(labels.max()) + 1))["mean_iou"], 3)


def run_case(work: Path, shape: tuple[int, int, int], epochs: int) -> dict:
    """Both sides on one survey; process seconds, step seconds and quality."""
    import segyio
    import xarray as xr

    from seisfacies.workflows.config import SynthConfig
    from seisfacies.workflows.synth import write_synthetic_survey

    write_synthetic_survey(work, SynthConfig(shape=shape, seed=7))
    inlines = labelled_inlines(shape[0])
    (work / "chain.yaml").write_text(workflow_text(inlines, epochs))
    started = time.perf_counter()
    subprocess.run([BIN / "seisfacies", "run", "chain.yaml"], cwd=work, check=True, capture_output=True)
    ours_seconds = time.perf_counter() - started
    record = json.loads((work / "chain.run.json").read_text())
    started = time.perf_counter()
    plain = subprocess.run(
        [sys.executable, __file__, "--plain", str(work), "--inlines", ",".join(map(str, inlines)), "--epochs",
         str(epochs)],
        check=True, capture_output=True, text=True,
    )  # fmt: skip
    plain_seconds = time.perf_counter() - started
    labels = segyio.tools.cube(str(work / "labels.sgy")).astype(np.int64)
    return {
        "shape": shape,
        "ours": round(ours_seconds, 1),
        "plain": round(plain_seconds, 1),
        "ours_steps": {step["step"]: step["seconds"] for step in record["steps"]},
        "plain_steps": json.loads(plain.stdout.strip().splitlines()[-1]),
        "ours_iou": unlabelled_iou(xr.open_zarr(work / "seismic.zarr").facies.values, labels, inlines),
        "plain_iou": unlabelled_iou(xr.open_zarr(work / "plain.zarr").facies.values, labels, inlines),
    }


def table(cases: list[dict], epochs: int) -> str:
    """The Markdown table: process seconds, ratio, and where each side's time goes."""
    lines = [
        "| survey | plain script s | seisfacies run s | ratio | plain steps s | seisfacies steps s "
        "| mIoU plain/ours |",
        "|---|---|---|---|---|---|---|",
    ]
    for case in cases:
        steps = lambda found: ", ".join(f"{name} {value:g}" for name, value in found.items())  # noqa: E731
        lines.append(
            f"| {' x '.join(map(str, case['shape']))}, {epochs} epochs | {case['plain']} | {case['ours']} | "
            f"**{case['plain'] / case['ours']:.2f}x** | {steps(case['plain_steps'])} | "
            f"{steps(case['ours_steps'])} | "
            f"{case['plain_iou']} / {case['ours_iou']} |"
        )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--shapes", nargs="+", default=["96x96x128", "192x192x128"])
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--markdown", type=Path)
    parser.add_argument("--plain", type=Path, help=argparse.SUPPRESS)  # the plain side, in its own process
    parser.add_argument("--inlines", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.plain:
        print(json.dumps(plain_chain(args.plain, [int(n) for n in args.inlines.split(",")], args.epochs)))
        return
    cases = []
    for text in args.shapes:
        shape = tuple(int(n) for n in text.split("x"))
        with tempfile.TemporaryDirectory() as folder:
            cases.append(run_case(Path(folder), shape, args.epochs))
        print(json.dumps(cases[-1]), flush=True)
    output = table(cases, args.epochs)
    print(output)
    if args.markdown:
        args.markdown.write_text(output + "\n")


if __name__ == "__main__":
    main()
