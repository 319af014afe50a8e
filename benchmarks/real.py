"""Quality on real seismic only: F3 lines, TGS Salt, MalenoV's F3 points; each against a plain U-Net.

    python benchmarks/real.py [--only f3,salt,malenov,interpretation] [--seeds 0] [--markdown F] [--json F]

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
* ``interpretation``: on the F3 lines, labels made from horizons (the benchmark's
  unit tops picked from its labels, imported, ``labels --between``) and the
  envelope as one more input, each beside the default in the same run.
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
from seisfacies.pipeline.horizons import picks_text
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
            for _try in range(50):  # a crop with labels in it (sparse labels leave most crops empty)
                n = rng.integers(len(sections))
                width, depth = sections[n].shape
                i, k = rng.integers(width - crop + 1), rng.integers(depth - crop + 1)
                xs, ys = sections[n][i : i + crop, k : k + crop], labels[n][i : i + crop, k : k + crop]
                if (ys >= 0).any():
                    break
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
    """Mean ± standard deviation, three decimals; one run's value alone (it has no spread).

    >>> spread([0.5, 0.7]), spread([0.5])
    ('0.600 ± 0.100', '0.500 (1 run)')
    """
    if len(values) == 1:
        return f"{values[0]:.3f} (1 run)"
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


def f3_rotations(work: Path, seeds: tuple[int, ...], train_on: tuple[str, ...] = ()) -> list[dict]:
    """Train on each F3 line in turn (or those named), predict the other two; ours and the plain U-Net."""
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
            if train_on and trained_on not in train_on:
                continue
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


def f3_boundaries(labels: np.ndarray, times: np.ndarray) -> np.ndarray:
    """Where each class begins in each trace: the horizons an interpreter picked to make these labels.

    Parameters
    ----------
    labels : numpy.ndarray
        ``(crossline, sample)`` classes, shallow classes first.
    times : numpy.ndarray
        The samples' times.

    Returns
    -------
    numpy.ndarray
        ``(classes - 1, 1, crossline)``: when class ``c`` or a deeper one starts; where none
        does, the unit lies below the data and its top is picked at the last sample.

    >>> f3_boundaries(np.array([[0, 0, 1, 2], [0, 1, 1, 1]]), np.array([0.0, 4.0, 8.0, 12.0]))[:3, 0].tolist()
    [[8.0, 4.0], [12.0, 12.0], [12.0, 12.0]]
    """
    deeper = labels[None] >= np.arange(1, len(F3_CLASSES))[:, None, None]
    first = deeper.argmax(axis=-1)
    return np.where(deeper.any(axis=-1), times[first], times[-1])[:, None]


def f3_interpretation(work: Path, seeds: tuple[int, ...], train_on: tuple[str, ...] = ()) -> dict[str, list]:
    """Labels from horizons, and the envelope as a second input, on the F3 lines; the default beside them.

    Each line's benchmark labels are turned into the five horizons between its
    six units (:func:`f3_boundaries`), imported with ``seisfacies horizons``
    and labelled back with ``labels --between``; then each rotation trains on
    the benchmark labels (the default: stratigraphic intervals, so the depth
    input and depth order), on the horizon labels, and on the benchmark labels
    with the envelope as one more input (``--inputs amplitude,envelope,depth``).
    """
    lines = sorted(F3_LINES.glob("f3_line?.sgy"))
    names = [f"{F3_CLASSES[c]}_top" for c in range(1, len(F3_CLASSES))]
    stores, horizon_stores, agreement = {}, {}, []
    for line in lines:
        truth_file = line.with_name(f"{line.stem}_labels.sgy")
        for folder, kind in ((stores, ""), (horizon_stores, "-horizons")):
            store = work / f"{line.stem}{kind}.zarr"
            sf.ingest(line, store)
            sf.add_attributes(store, add=("envelope",))
            folder[line.stem] = store
        sf.attach_labels(stores[line.stem], truth_file, classes=",".join(F3_CLASSES))
        dataset = sf.open_store(stores[line.stem])
        truth = _section(truth_file).astype(np.int64)
        surfaces = f3_boundaries(truth, dataset.time.values)
        picks = work / f"{line.stem}-horizons.txt"
        picks.write_text(picks_text(surfaces, names, dataset.inline.values, dataset.crossline.values))
        sf.import_horizons(horizon_stores[line.stem], picks, columns="name,inline,crossline,time")
        sf.attach_labels(horizon_stores[line.stem], between=tuple(names), classes=",".join(F3_CLASSES))
        labels = sf.open_store(horizon_stores[line.stem], require=("labels",)).labels.values[0]
        agreement.append({"line": line.stem, "agreement": float((labels == truth).mean())})
        print(json.dumps(agreement[-1]), flush=True)
    truth = {name: _section(F3_LINES / f"{name}_labels.sgy").astype(np.int64) for name in stores}
    variants = {
        "benchmark labels (the default: amplitude and depth)": (stores, {}),
        "labels from horizons (labels --between)": (horizon_stores, {}),
        "benchmark labels, --inputs amplitude,envelope,depth": (
            stores,
            {"inputs": ("amplitude", "envelope", "depth")},
        ),
    }
    rows: dict[str, list] = {"horizon labels = benchmark labels": agreement}
    for variant, (sources, options) in variants.items():
        rows[variant] = []
        for seed in seeds:
            for trained_on in stores:
                if train_on and trained_on not in train_on:
                    continue
                model = work / f"{trained_on}-{seed}-{len(rows)}.pt"
                started = time.perf_counter()
                sf.train(sources[trained_on], model, seed=seed, overwrite=True, **options)
                seconds = round(time.perf_counter() - started, 1)
                others = [name for name in stores if name != trained_on]
                predicted = []
                for name in others:
                    sf.predict(stores[name], model, overwrite=True)
                    predicted.append(sf.open_store(stores[name], require=("facies",)).facies.values[0])
                result = pooled([truth[n] for n in others], predicted, len(F3_CLASSES))
                rows[variant].append({"trained_on": trained_on, "seed": seed, "seconds": seconds, **result})
                print(json.dumps({"variant": variant, **rows[variant][-1]}, default=float), flush=True)
    return rows


def interpretation_table(rows: dict[str, list]) -> str:
    """The interpretation rows: horizon labels' agreement, then mIoU and PA of each variant."""
    agreement = rows.get("horizon labels = benchmark labels", [])
    lines = [
        "| F3 lines (train one, predict the other two) | mIoU | PA | train s |",
        "|---|---|---|---|",
    ]
    for name, runs in rows.items():
        if runs and "miou" in runs[0]:
            cells = [spread([r["miou"] for r in runs]), spread([r["pa"] for r in runs])]
            lines.append(f"| {name} | {' | '.join(cells)} | {np.mean([r['seconds'] for r in runs]):.0f} |")
    if agreement:
        share = ", ".join(f"{row['line']} {row['agreement']:.4f}" for row in agreement)
        lines.append(f"\nHorizon labels equal the benchmark's on these shares of the voxels: {share}.")
    return "\n".join(lines)


def _section(path: Path) -> np.ndarray:
    """The one inline of a one-line SEG-Y file: (crossline, sample)."""
    return segyio.tools.cube(str(path))[0]


# ---------------------------------------------------------------- TGS Salt

SALT = Path("/tmp/tgs/data")  # where `git archive` of the fetched BloodAxe/Kaggle-Salt puts data/train
SALT_HOWTO = (
    "fetch github:BloodAxe/Kaggle-Salt (the session tool), then "
    "git --git-dir=/work/.mirror/BloodAxe+Kaggle-Salt/repo/.git archive HEAD data/train data/folds.csv "
    "| tar -x -C /tmp/tgs"
)


def salt_images(fold: int) -> tuple[np.ndarray, np.ndarray]:
    """The fold's images (grey, 0..1) and salt masks, (n, width, depth), sorted by id."""
    import csv

    import matplotlib.image

    with open(SALT / "folds.csv") as handle:
        ids = sorted(row["id"] for row in csv.DictReader(handle) if int(row["fold"]) == fold)
    images = np.stack([matplotlib.image.imread(SALT / "train" / "images" / f"{i}.png")[..., 0] for i in ids])
    masks = np.stack([matplotlib.image.imread(SALT / "train" / "masks" / f"{i}.png") for i in ids])
    # a PNG's rows are depth, its columns the horizontal: sections are (width, depth)
    return images.transpose(0, 2, 1), (masks.transpose(0, 2, 1) > 0.5).astype(np.int16)


def salt_runs(work: Path, seeds: tuple[int, ...]) -> list[dict]:
    """Train on fold 1 (800 sections), predict fold 0 (800 held out): salt IoU against the plain U-Net."""
    from seisfacies.pipeline.segy_write import write_cube

    work.mkdir(parents=True, exist_ok=True)
    train_x, train_y = salt_images(1)
    test_x, test_y = salt_images(0)
    n_train = len(train_x)
    cube = np.concatenate([train_x, test_x]).astype(np.float32)
    labels = np.concatenate([train_y, np.full_like(test_y, -1)])  # the held-out masks stay hidden
    grid = {"inlines": np.arange(1, len(cube) + 1), "crosslines": np.arange(1, cube.shape[1] + 1)}
    write_cube(str(work / "salt.sgy"), cube, sample_format=5, **grid)
    np.save(work / "labels.npy", labels)
    store = work / "salt.zarr"
    sf.ingest(work / "salt.sgy", store)
    sf.attach_labels(store, work / "labels.npy", classes="sediment,salt")
    runs = []
    for seed in seeds:
        started = time.perf_counter()
        # the sections are unrelated images: no neighbouring sections as inputs, no smoothing across them
        sf.extract_patches(store, work / "p.zarr", kind="section", neighbours=0, augment=("flip",), seed=seed,
                           overwrite=True)  # fmt: skip
        sf.train(work / "p.zarr", work / "salt.pt", seed=seed, overwrite=True)
        seconds = time.perf_counter() - started
        sf.predict(store, work / "salt.pt", smooth=0, overwrite=True)
        predicted = sf.open_store(store, require=("facies",)).facies.values[n_train:]
        ours = pooled(list(test_y), list(predicted), 2)
        plain = train_plain(list(standardised(train_x, train_x)), list(train_y.astype(np.int64)), 2, seconds,
                            seed)  # fmt: skip
        theirs = pooled(list(test_y), [predict_plain(plain, standardised(x, train_x)) for x in test_x], 2)
        for result in (ours, theirs):
            result["salt_iou"] = result["class_iou"][1]
        runs.append({"seed": seed, "seconds": round(seconds, 1), "ours": ours, "plain": theirs})
        print(json.dumps(runs[-1], default=float), flush=True)
    return runs


# ---------------------------------------------------------------- MalenoV's F3 points

MALENOV = Path("/tmp/malenov")  # the class_addresses/multi_*_ilxl.pts files of crild/facies_net
MALENOV_HOWTO = (
    "fetch github:crild/facies_net (the session tool), then copy its class_addresses/multi_*_ilxl.pts "
    "to /tmp/malenov (git show HEAD:class_addresses/NAME > /tmp/malenov/NAME)"
)
#: Alternate blocks of this many crosslines train and score.
MALENOV_BLOCK = 64


def malenov_section() -> tuple[np.ndarray, np.ndarray, list[str]]:
    """Inline 339: the 8-bit amplitude where a point has it (0 elsewhere), classes (-1 unlabelled), names."""
    files = sorted(MALENOV.glob("multi_*_ilxl.pts"))
    points = [np.loadtxt(path) for path in files]
    every = np.concatenate(points)
    crosslines = np.arange(every[:, 1].min(), every[:, 1].max() + 1).astype(int)
    times = np.arange(every[:, 2].min(), every[:, 2].max() + 4, 4).astype(int)
    amplitude = np.zeros((len(crosslines), len(times)), np.float32)
    classes = np.full(amplitude.shape, -1, np.int16)
    for code, values in enumerate(points):
        i = values[:, 1].astype(int) - crosslines[0]
        k = (values[:, 2].astype(int) - times[0]) // 4
        amplitude[i, k], classes[i, k] = values[:, 3], code
    names = [path.stem.removeprefix("multi_").removesuffix("_ilxl") for path in files]
    return amplitude, classes, names


def malenov_runs(work: Path, seeds: tuple[int, ...]) -> list[dict]:
    """Train on even blocks of crosslines, score the labelled points of the odd ones."""
    from seisfacies.pipeline.segy_write import write_cube

    work.mkdir(parents=True, exist_ok=True)
    amplitude, classes, names = malenov_section()
    held_out = (np.arange(len(amplitude)) // MALENOV_BLOCK) % 2 == 1
    train_labels = np.where(held_out[:, None], -1, classes)
    write_cube(str(work / "339.sgy"), amplitude[None], sample_format=5, inlines=np.array([339]),
               crosslines=np.arange(len(amplitude)) + 300)  # fmt: skip
    np.save(work / "labels.npy", train_labels[None])
    store = work / "339.zarr"
    sf.ingest(work / "339.sgy", store)
    sf.attach_labels(store, work / "labels.npy", classes=",".join(names))
    truth = np.where(held_out[:, None], classes, -1)
    runs = []
    for seed in seeds:
        started = time.perf_counter()
        sf.train(store, work / "m.pt", seed=seed, overwrite=True)
        seconds = time.perf_counter() - started
        sf.predict(store, work / "m.pt", overwrite=True)
        ours = pooled([truth], [sf.open_store(store, require=("facies",)).facies.values[0]], len(names))
        plain = train_plain([standardised(amplitude, amplitude)], [train_labels.astype(np.int64)], len(names),
                            seconds, seed)  # fmt: skip
        theirs = pooled([truth], [predict_plain(plain, standardised(amplitude, amplitude))], len(names))
        runs.append({"seed": seed, "seconds": round(seconds, 1), "ours": ours, "plain": theirs})
        print(json.dumps(runs[-1], default=float), flush=True)
    return runs


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
        if "salt_iou" in ours[0]:
            salt = [spread([result["salt_iou"] for result in side]) for side in (ours, theirs)]
            name += f" (salt IoU {salt[0]} vs {salt[1]})"
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", default="f3,salt,malenov,interpretation")
    parser.add_argument("--seeds", default="0")
    parser.add_argument("--f3-train-on", default="", help="F3 rotations to run, e.g. f3_line3 (default: all)")
    parser.add_argument("--markdown", type=Path)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    seeds = tuple(int(seed) for seed in args.seeds.split(","))
    train_on = tuple(name for name in args.f3_train_on.split(",") if name)
    work = Path(tempfile.mkdtemp(prefix="seisfacies-real-"))
    rows: dict[str, list[dict]] = {}
    parts = args.only.split(",")
    interpretation = {}
    if "f3" in parts:
        if F3_LINES.is_dir():
            rows["F3 lines (train one, predict the other two)"] = f3_rotations(work / "f3", seeds, train_on)
        else:
            print(f"skipped F3 lines: {F3_LINES} is not here (the shared data folder beside the project)")
    if "salt" in parts:
        if (SALT / "train" / "images").is_dir():
            rows["TGS Salt (train fold 1, score fold 0)"] = salt_runs(work / "salt", seeds)
        else:
            print(f"skipped TGS Salt: {SALT} is not here; {SALT_HOWTO}")
    if "malenov" in parts:
        if list(MALENOV.glob("multi_*_ilxl.pts")):
            rows["MalenoV F3 points (alternate crossline blocks)"] = malenov_runs(work / "malenov", seeds)
        else:
            print(f"skipped MalenoV: no points in {MALENOV}; {MALENOV_HOWTO}")
    if "interpretation" in parts and F3_LINES.is_dir():
        interpretation = f3_interpretation(work / "interpretation", seeds, train_on)
    report = table(rows) + ("\n\n" + interpretation_table(interpretation) if interpretation else "")
    print(report)
    if args.markdown:
        args.markdown.write_text(report + "\n")
    if args.json:
        args.json.write_text(json.dumps({**rows, **interpretation}, indent=2, default=float))


if __name__ == "__main__":
    main()
