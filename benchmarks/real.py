"""Quality on real seismic only: F3 lines, TGS Salt, MalenoV's F3 points; each against a plain U-Net.

    python benchmarks/real.py [--only f3,salt,malenov] [--seeds 0] [--markdown F] [--json F]

Every row goes through seisfacies as a user would (the Python API, defaults
unless the data needs otherwise, said beside the row) and, in the same run, a
plain PyTorch U-Net of about 40 lines (two poolings, 16 channels, Adam,
random 64 x 64 crops with flips) trained on the same data for the same time.

* ``f3``: the three real F3 Netherlands lines of ``../shared/data/f3-lines/``
  (six stratigraphic classes of Alaudah et al. 2019). For each line in turn:
  train on it, predict the other two, pooled mIoU, pixel accuracy and
  per-class IoU; then mean and spread over the three rotations. ECE and
  uncertainty AUROC of seisfacies' calibrated output on the predicted lines.
* ``salt``: TGS Salt (real 101 x 101 sections with salt masks), brought with
  the session tool ``fetch github:BloodAxe/Kaggle-Salt`` (``data/train``):
  train on a fixed subset, salt IoU on a held-out split.
* ``malenov``: MalenoV's F3 points (``fetch github:crild/facies_net``,
  ``class_addresses/multi_*_ilxl.pts``: nine texture classes on inline 339,
  with the real 8-bit amplitude): train on alternate crossline blocks, score
  the others.

A set that is not on this machine is skipped with how to get it.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import numpy as np
import segyio
import torch
import torch.nn.functional as F
from torch import nn

import seisfacies as sf
from seisfacies.models.calibration import expected_calibration_error
from seisfacies.pipeline.metrics import confusion_matrix, scores

SHARED = Path(__file__).resolve().parents[2] / "shared" / "data"
F3_LINES = SHARED / "f3-lines"
F3_CLASSES = (
    "upper_north_sea",
    "middle_north_sea",
    "lower_north_sea",
    "rijnland_chalk",
    "scruff",
    "zechstein",
)

# ---------------------------------------------------------------- the plain baseline


def _block(channels_in: int, channels_out: int) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(channels_in, channels_out, 3, padding=1),
        nn.BatchNorm2d(channels_out),
        nn.ReLU(),
        nn.Conv2d(channels_out, channels_out, 3, padding=1),
        nn.BatchNorm2d(channels_out),
        nn.ReLU(),
    )


class PlainUNet(nn.Module):
    """Two poolings, 16 channels at the top: what a user writes in an afternoon."""

    def __init__(self, n_classes: int, base: int = 16):
        super().__init__()
        self.e1, self.e2, self.e3 = _block(1, base), _block(base, 2 * base), _block(2 * base, 4 * base)
        self.u2, self.d2 = nn.ConvTranspose2d(4 * base, 2 * base, 2, 2), _block(4 * base, 2 * base)
        self.u1, self.d1 = nn.ConvTranspose2d(2 * base, base, 2, 2), _block(2 * base, base)
        self.head = nn.Conv2d(base, n_classes, 1)

    def forward(self, x):
        e1 = self.e1(x)
        e2 = self.e2(F.max_pool2d(e1, 2))
        e3 = self.e3(F.max_pool2d(e2, 2))
        d2 = self.d2(torch.cat([self.u2(e3), e2], 1))
        return self.head(self.d1(torch.cat([self.u1(d2), e1], 1)))


def train_plain(sections, labels, n_classes: int, seconds: float, seed: int, crop: int = 64) -> nn.Module:
    """Random crops with flips from labelled sections (width, depth), Adam, until ``seconds`` pass."""
    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    model = PlainUNet(n_classes)
    optimiser = torch.optim.Adam(model.parameters(), lr=1e-3)
    started = time.perf_counter()
    while time.perf_counter() - started < seconds:
        x, y = [], []
        for _ in range(16):
            n = rng.integers(len(sections))
            width, depth = sections[n].shape
            i, k = rng.integers(width - crop + 1), rng.integers(depth - crop + 1)
            xs, ys = sections[n][i : i + crop, k : k + crop], labels[n][i : i + crop, k : k + crop]
            if rng.random() < 0.5:
                xs, ys = xs[::-1], ys[::-1]
            x.append(xs.copy())
            y.append(ys.copy())
        logits = model(torch.from_numpy(np.stack(x))[:, None])
        loss = F.cross_entropy(logits, torch.from_numpy(np.stack(y)).long(), ignore_index=-1)
        optimiser.zero_grad()
        loss.backward()
        optimiser.step()
    return model.eval()


@torch.no_grad()
def predict_plain(model: nn.Module, section: np.ndarray) -> np.ndarray:
    """Classes of a whole section (width, depth), padded to a multiple of 4."""
    width, depth = section.shape
    padded = np.pad(section, ((0, -width % 4), (0, -depth % 4)), mode="reflect")
    logits = model(torch.from_numpy(padded.astype(np.float32))[None, None])
    return logits[0, :, :width, :depth].argmax(0).numpy()


def standardised(values: np.ndarray, reference: np.ndarray) -> np.ndarray:
    """``values`` scaled by the training data's mean and std (the baseline's only normalisation)."""
    return ((values - reference.mean()) / reference.std()).astype(np.float32)


# ---------------------------------------------------------------- scores


def spread(values: list[float]) -> str:
    """Mean ± standard deviation, three decimals.

    >>> spread([0.5, 0.7])
    '0.600 ± 0.100'
    """
    return f"{np.mean(values):.3f} ± {np.std(values):.3f}"


def pooled(truths: list[np.ndarray], predictions: list[np.ndarray], n_classes: int) -> dict:
    """mIoU, pixel accuracy and per-class IoU over several predicted sections together."""
    matrix = sum(confusion_matrix(t.ravel(), p.ravel(), n_classes) for t, p in zip(truths, predictions))
    result = scores(matrix)
    return {"miou": result["mean_iou"], "pa": result["pixel_accuracy"], "class_iou": result["class_iou"]}


def auroc(uncertainty: np.ndarray, wrong: np.ndarray) -> float:
    """How well the uncertainty ranks wrong pixels above right ones (Mann-Whitney, ties averaged)."""
    _, inverse, counts = np.unique(uncertainty, return_inverse=True, return_counts=True)
    ranks = (np.cumsum(counts) - counts + 1 + (counts - 1) / 2)[inverse]
    n_wrong, n_right = int(wrong.sum()), int((~wrong).sum())
    return float((ranks[wrong].sum() - n_wrong * (n_wrong + 1) / 2) / (n_wrong * n_right))


# ---------------------------------------------------------------- F3 lines


def f3_rotations(work: Path, seeds: tuple[int, ...]) -> list[dict]:
    """Train on each F3 line in turn, predict the other two; seisfacies and the plain U-Net."""
    lines = sorted(F3_LINES.glob("f3_line?.sgy"))
    stores = {}
    for line in lines:
        store = work / f"{line.stem}.zarr"
        sf.ingest(line, store)
        sf.attach_labels(store, line.with_name(f"{line.stem}_labels.sgy"), classes=",".join(F3_CLASSES))
        stores[line.stem] = store
    truth = {name: _section(F3_LINES / f"{name}_labels.sgy").astype(np.int64) for name in stores}
    amplitude = {name: _section(F3_LINES / f"{name}.sgy") for name in stores}
    runs = []
    for seed in seeds:
        for trained_on, store in stores.items():
            others = [name for name in stores if name != trained_on]
            model = work / f"{trained_on}-{seed}.pt"
            started = time.perf_counter()
            sf.train(store, model, seed=seed, overwrite=True)
            seconds = time.perf_counter() - started
            predicted, probabilities, doubts = [], [], []
            for name in others:
                sf.predict(stores[name], model, probabilities=True, uncertainty=True, overwrite=True)
                dataset = sf.open_store(stores[name], require=("facies", "probability", "uncertainty"))
                predicted.append(dataset.facies.values[0])
                probabilities.append(dataset.probability.values[:, 0].reshape(len(F3_CLASSES), -1).T)
                doubts.append(dataset.uncertainty.values[0].astype(np.float32))
            ours = pooled([truth[n] for n in others], predicted, len(F3_CLASSES))
            target = np.concatenate([truth[n].ravel() for n in others])
            ours["ece"] = expected_calibration_error(np.concatenate(probabilities).astype(np.float32), target)
            wrong = np.concatenate([p.ravel() for p in predicted]) != target
            ours["auroc"] = auroc(np.concatenate([d.ravel() for d in doubts]), wrong)
            plain = train_plain(
                [standardised(amplitude[trained_on], amplitude[trained_on])],
                [truth[trained_on]],
                len(F3_CLASSES),
                seconds,
                seed,
            )
            theirs = pooled(
                [truth[n] for n in others],
                [predict_plain(plain, standardised(amplitude[n], amplitude[trained_on])) for n in others],
                len(F3_CLASSES),
            )
            record = {"trained_on": trained_on, "seed": seed, "seconds": round(seconds, 1)}
            runs.append({**record, "ours": ours, "plain": theirs})
            print(json.dumps(runs[-1], default=float), flush=True)
    return runs


def _section(path: Path) -> np.ndarray:
    """The one inline of a one-line SEG-Y file: (crossline, sample)."""
    return segyio.tools.cube(str(path))[0]


# ---------------------------------------------------------------- report


def table(rows: dict[str, list[dict]]) -> str:
    """The README's real-data table: seisfacies and the plain U-Net, mean ± spread over runs."""
    lines = [
        "| data | seisfacies mIoU | plain U-Net mIoU | seisfacies PA | plain PA | ECE | uncertainty AUROC "
        "| train s |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for name, runs in rows.items():
        if not runs:
            continue
        ours, theirs = [r["ours"] for r in runs], [r["plain"] for r in runs]
        cells = [
            spread([o["miou"] for o in ours]),
            spread([t["miou"] for t in theirs]),
            spread([o["pa"] for o in ours]),
            spread([t["pa"] for t in theirs]),
            spread([o["ece"] for o in ours]) if "ece" in ours[0] else "",
            spread([o["auroc"] for o in ours]) if "auroc" in ours[0] else "",
            f"{np.mean([r['seconds'] for r in runs]):.0f}",
        ]
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", default="f3,salt,malenov")
    parser.add_argument("--seeds", default="0")
    parser.add_argument("--markdown", type=Path)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    seeds = tuple(int(seed) for seed in args.seeds.split(","))
    work = Path(tempfile.mkdtemp(prefix="seisfacies-real-"))
    rows: dict[str, list[dict]] = {}
    if "f3" in args.only:
        if F3_LINES.is_dir():
            rows["F3 lines (train 1, predict 2)"] = f3_rotations(work / "f3", seeds)
        else:
            print(f"skipped F3 lines: {F3_LINES} is not here (the shared data folder beside the project)")
    report = table(rows)
    print(report)
    if args.markdown:
        args.markdown.write_text(report + "\n")
    if args.json:
        args.json.write_text(json.dumps(rows, indent=2, default=float))


if __name__ == "__main__":
    main()
