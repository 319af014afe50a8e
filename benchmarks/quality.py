"""Quality benchmark: facies from few labels, trustworthy probabilities, where to label next.

Run: python benchmarks/quality.py [--seeds test|tuning] [--before] [--only surveys|attributes|demo|suggest]
                                  [--quick] [--markdown F] [--plot F] [--json F]

Every survey is synthetic (seisfacies.pipeline.synth) with its own seed, noise
and labelled inlines, and goes through the library with the defaults a user
gets: ingest, labels, ``train`` on the labelled store, ``predict`` with
probabilities and uncertainty, ``evaluate`` on the unlabelled inlines.

The defaults were chosen on TUNING_SEEDS only; the README reports TEST_SEEDS,
which no choice ever looked at, as mean ± standard deviation over the seeds.
``--before`` also runs the surveys with the defaults before issue 18 (one
section per patch, a two-level network for 12 epochs, one pass per section)
for comparison. Surveys are 96 x 96 x 192, the size issue 18 measured on.

* hard: SNR 1.5 (noise std = amplitude std / 1.5), 4 of 96 inlines labelled (4 %);
* standard: the synthetic survey's usual noise, 1 inline in 8 labelled;
* demo: the demo's survey and its five labelled inlines, trained with each seed;
* attributes: the hard and standard surveys again, trained on the amplitude and
  its envelope (``seisfacies attributes``, ``--inputs amplitude,envelope``):
  whether a second input helps, against the default in the same run;
* suggest: a hard survey with 3 labelled inlines, then 3 more chosen by
  ``seisfacies suggest`` or evenly spaced (each farthest from every labelled
  one); mIoU on the inlines labelled in neither.
"""

from __future__ import annotations

import argparse
import json
import shutil
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import zarr

import seisfacies as sf
from seisfacies.models.calibration import expected_calibration_error
from seisfacies.models.checkpoint import load_checkpoint
from seisfacies.pipeline.metrics import confusion_matrix, scores
from seisfacies.pipeline.segy_write import write_cube
from seisfacies.pipeline.synth import make_synthetic_survey
from seisfacies.workflows.demo import DEMO, demo_overrides
from seisfacies.workflows.patches import extract_patches, fitting_patches
from seisfacies.workflows.run import run_workflow
from seisfacies.workflows.synth import FIRST_CROSSLINE, FIRST_INLINE

TUNING_SEEDS = (101, 102)
TEST_SEEDS = (201, 202, 203)
#: The issue's survey size: 96 x 96 x 192.
SHAPE = (96, 96, 192)
#: Noise std as a share of the clean amplitude's std: SNR 1.5.
HARD_NOISE = 1 / 1.5
STANDARD_NOISE = 0.15


@dataclass(frozen=True)
class Survey:
    name: str
    noise: float
    labelled: int  # evenly spaced labelled inlines


SURVEYS = (Survey("hard", HARD_NOISE, 4), Survey("standard", STANDARD_NOISE, 12))


def even_inlines(count: int, n_inlines: int) -> list[int]:
    """``count`` evenly spaced inline indices, each in the middle of its share."""
    step = n_inlines / count
    return [int(step * (n + 0.5)) for n in range(count)]


def farthest_inlines(labelled: list[int], count: int, n_inlines: int) -> list[int]:
    """``count`` more inline indices, each the farthest from every labelled one: even spacing."""
    chosen = list(labelled)
    for _ in range(count):
        distance = np.min(np.abs(np.arange(n_inlines)[:, None] - np.array(chosen)[None]), axis=1)
        chosen.append(int(np.argmax(distance)))
    return chosen[len(labelled) :]


def write_survey(folder: Path, seed: int, noise: float, shape=SHAPE) -> Path:
    """A synthetic survey as ``seismic.sgy`` and ``labels.sgy``; returns the folder."""
    folder.mkdir(parents=True, exist_ok=True)
    survey = make_synthetic_survey(shape, seed, noise=noise)
    grid = {
        "inlines": np.arange(FIRST_INLINE, FIRST_INLINE + shape[0]),
        "crosslines": np.arange(FIRST_CROSSLINE, FIRST_CROSSLINE + shape[1]),
    }
    classes = "classes " + ",".join(survey.class_names)
    text = {1: f"quality benchmark, seed {seed}, noise {noise:.3f}", 2: classes}
    write_cube(str(folder / "seismic.sgy"), survey.amplitude, sample_format=1, text=text, **grid)
    write_cube(str(folder / "labels.sgy"), survey.labels, sample_format=3, text=text, **grid)
    sf.ingest(folder / "seismic.sgy", folder / "seismic.zarr")
    return folder


#: The defaults before issue 18: one section per patch (below), a two-level
#: network trained for 12 epochs, one pass per section.
BEFORE_TRAIN = {"epochs": 12, "model_options": {"depth": 2}}
BEFORE_PREDICT = {"mirror": False, "smooth": 0}


#: The inputs the attributes part trains on: the amplitude and its envelope.
ATTRIBUTE_INPUTS = ("amplitude", "envelope")


def train_and_predict(
    folder: Path, inlines: list[int], seed: int, before: bool = False, inputs: tuple[str, ...] | None = None
) -> dict:
    """Label ``inlines`` (indices), train with the defaults (or the old ones, or more inputs), predict."""
    store = folder / "seismic.zarr"
    numbers = [FIRST_INLINE + i for i in inlines]
    sf.attach_labels(store, str(folder / "labels.sgy"), inlines=numbers, overwrite=True)
    started = time.perf_counter()
    if inputs:  # the attributes are part of the cost
        sf.add_attributes(store, add=tuple(name for name in inputs if name not in ("amplitude", "depth")))
    source = store
    if before:
        source = folder / "patches.zarr"
        config, _ = fitting_patches("cnn2d", tuple(zarr.open_array(str(store / "amplitude"), mode="r").shape))
        extract_patches(store, source, config.model_copy(update={"neighbours": 0, "overwrite": True}))
    extra = BEFORE_TRAIN if before else {"inputs": inputs} if inputs else {}
    sf.train(source, folder / "model.pt", seed=seed, overwrite=True, **extra)
    trained = time.perf_counter()
    options = BEFORE_PREDICT if before else {}
    sf.predict(store, folder / "model.pt", probabilities=True, uncertainty=True, overwrite=True, **options)
    finished = time.perf_counter()
    return {"train_s": round(trained - started, 1), "predict_s": round(finished - trained, 1)}


def auroc(scores_: np.ndarray, positive: np.ndarray) -> float:
    """Area under the ROC curve of ``scores_`` for ``positive`` (Mann-Whitney, ties averaged).

    >>> auroc(np.array([0.1, 0.2, 0.8, 0.9]), np.array([False, False, True, True]))
    1.0
    >>> auroc(np.array([0.5, 0.5]), np.array([False, True]))
    0.5
    """
    _, inverse, counts = np.unique(scores_, return_inverse=True, return_counts=True)
    first_rank = np.cumsum(counts) - counts + 1
    ranks = (first_rank + (counts - 1) / 2)[inverse]
    n_pos, n_neg = int(positive.sum()), int((~positive).sum())
    return float((ranks[positive].sum() - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg))


def measure(folder: Path, excluded: list[int]) -> dict:
    """mIoU, ECE (calibrated and not) and uncertainty AUROC on the inlines not in ``excluded``."""
    group = zarr.open_group(str(folder / "seismic.zarr"), mode="r")
    truth = make_truth(folder)
    keep = np.setdiff1d(np.arange(truth.shape[0]), excluded)
    facies = group["facies"][keep].ravel()
    target = truth[keep].ravel()
    n_classes = group["probability"].shape[0]
    miou = scores(confusion_matrix(target, facies, n_classes))["mean_iou"]
    probability = group["probability"][:, keep].reshape(n_classes, -1).T.astype(np.float32)
    temperature = float(load_checkpoint(str(folder / "model.pt")).get("temperature", 1.0))
    raw = _softmax(temperature * np.log(np.maximum(probability, 1e-6)))  # the uncalibrated softmax
    wrong = facies != target
    uncertainty = group["uncertainty"][keep].ravel().astype(np.float32)
    return {
        "miou": miou,
        "ece": expected_calibration_error(probability, target),
        "ece_uncalibrated": expected_calibration_error(raw, target),
        "auroc": auroc(uncertainty, wrong),
        "temperature": temperature,
    }


def make_truth(folder: Path) -> np.ndarray:
    """The true classes of the survey, (inline, crossline, sample)."""
    import segyio

    return segyio.tools.cube(str(folder / "labels.sgy")).astype(np.int16)


def _softmax(logits: np.ndarray) -> np.ndarray:
    shifted = np.exp(logits - logits.max(axis=1, keepdims=True))
    return shifted / shifted.sum(axis=1, keepdims=True)


def survey_run(work: Path, survey: Survey, seed: int, shape, before: bool = False, inputs=None) -> dict:
    """One survey, one seed: the survey's own seed and the training seed are both ``seed``."""
    folder = write_survey(work / f"{survey.name}-{seed}", seed, survey.noise, shape)
    inlines = even_inlines(survey.labelled, shape[0])
    seconds = train_and_predict(folder, inlines, seed, before, inputs)
    name = f"{survey.name} (before)" if before else survey.name
    name = f"{name} (+{'+'.join(inputs[1:])})" if inputs else name
    result = {"survey": name, "seed": seed, "labelled": f"{len(inlines)} of {shape[0]}", **seconds}
    result.update(measure(folder, inlines))
    shutil.rmtree(folder, ignore_errors=True)
    return result


def demo_run(work: Path, seed: int, quick: bool) -> dict:
    """The demo workflow (its survey, patches and labelled inlines), trained with ``seed``."""
    folder = work / f"demo-{seed}"
    overrides = {**demo_overrides((48, 48, 64), 2), "train": {"seed": seed, "epochs": 2}} if quick else {}
    overrides.setdefault("train", {})["seed"] = seed
    started = time.perf_counter()
    record = run_workflow(DEMO, None, force=True, base=folder, echo=lambda line: None, overrides=overrides)
    labelled = f"5 of {48 if quick else 96}"
    seconds = round(time.perf_counter() - started, 1)
    result = {"survey": "demo", "seed": seed, "labelled": labelled, "workflow_s": seconds}
    shutil.rmtree(folder, ignore_errors=True)
    return {**result, "miou": record["metrics"]["mean_iou"]}


def suggest_run(work: Path, seed: int, shape) -> dict:
    """3 labelled inlines, then 3 suggested or 3 evenly spaced more: mIoU on the rest."""
    folder = write_survey(work / f"suggest-{seed}", seed, HARD_NOISE, shape)
    start = even_inlines(3, shape[0])
    train_and_predict(folder, start, seed)
    suggested = [number - FIRST_INLINE for number in sf.suggest(folder / "seismic.zarr", count=3)["inlines"]]
    even = farthest_inlines(start, 3, shape[0])
    excluded = sorted(set(start) | set(suggested) | set(even))
    result = {"seed": seed, "start": start, "suggested": suggested, "even": even}
    result["miou_start"] = measure(folder, excluded)["miou"]
    for name, added in (("suggested", suggested), ("even", even)):
        train_and_predict(folder, start + added, seed)
        result[f"miou_{name}"] = measure(folder, excluded)["miou"]
    shutil.rmtree(folder, ignore_errors=True)
    return result


def spread(values: list[float]) -> str:
    """``mean ± std`` over the seeds, 3 decimals.

    >>> spread([0.9, 0.92, 0.94])
    '0.920 ± 0.016'
    """
    return f"{np.mean(values):.3f} ± {np.std(values):.3f}"


def summary_table(runs: list[dict], curve: list[dict], seeds: tuple[int, ...]) -> str:
    """The README's tables: quality per survey, and suggested against evenly spaced labels."""
    lines = [
        f"Seeds {', '.join(map(str, seeds))}; mean ± standard deviation over the seeds.",
        "",
        "| survey | labelled inlines | mIoU | ECE (calibrated) | ECE (softmax) | uncertainty AUROC "
        "| train + predict s |",
        "|---|---|---|---|---|---|---|",
    ]
    extra = "+".join(ATTRIBUTE_INPUTS[1:])
    names = (
        "hard (before)",
        "hard",
        f"hard (+{extra})",
        "standard (before)",
        "standard",
        f"standard (+{extra})",
    )
    for name in (*names, "demo"):
        rows = [run for run in runs if run["survey"] == name]
        if rows:
            snr = ", SNR 1.5" if name.startswith("hard") else ""
            lines.append(f"| {name} | {rows[0]['labelled']}{snr} | {' | '.join(_cells(rows))} |")
    if curve:
        lines += [
            "",
            "| hard survey, labelled inlines | 3 | 3 + 3 evenly spaced | 3 + 3 suggested |",
            "|---|---|---|---|",
            "| mIoU on the inlines labelled in neither | "
            + " | ".join(
                spread([run[f"miou_{key}"] for run in curve]) for key in ("start", "even", "suggested")
            )
            + " |",
        ]
    return "\n".join(lines)


def _cells(rows: list[dict]) -> list[str]:
    """mIoU, ECE, ECE before calibration, AUROC and seconds of one survey's runs."""
    cells = [
        spread([run[key] for run in rows]) if key in rows[0] else "–"
        for key in ("miou", "ece", "ece_uncalibrated", "auroc")
    ]
    if "train_s" in rows[0]:
        train, predict = (np.mean([run[key] for run in rows]) for key in ("train_s", "predict_s"))
        seconds = f"{train:.0f} + {predict:.0f}"
    else:
        seconds = f"{np.mean([r['workflow_s'] for r in rows]):.0f} (whole demo)"
    return [*cells, seconds]


def plot_curve(curve: list[dict], out: Path) -> None:
    """Plot mIoU against labelled inlines: 3, then 6 suggested or 6 evenly spaced, mean and spread."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axes = plt.subplots(figsize=(5, 3.5))
    for key, colour in (("even", "tab:grey"), ("suggested", "tab:blue")):
        values = np.array([[run["miou_start"], run[f"miou_{key}"]] for run in curve])
        label = "3 + 3 suggested" if key == "suggested" else "3 + 3 evenly spaced"
        axes.errorbar(
            [3, 6], values.mean(0), yerr=values.std(0), marker="o", capsize=4, color=colour, label=label
        )
    axes.set_xlabel("labelled inlines (of 96)")
    axes.set_ylabel("mIoU on the other inlines")
    axes.set_xticks([3, 6])
    axes.set_title(f"Hard synthetic surveys, {len(curve)} test seeds")
    axes.legend()
    figure.tight_layout()
    figure.savefig(out, dpi=110)
    plt.close(figure)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--seeds", choices=("test", "tuning"), default="test", help="Which seed list.")
    parser.add_argument("--quick", action="store_true", help="Small surveys, one seed: a smoke run.")
    parser.add_argument(
        "--only", choices=("surveys", "attributes", "demo", "suggest"), action="append", help="Parts to run."
    )
    parser.add_argument(
        "--survey", choices=[survey.name for survey in SURVEYS], action="append", help="Surveys to run (all)."
    )
    parser.add_argument("--before", action="store_true", help="Also run the surveys with the old defaults.")
    parser.add_argument("--markdown", type=Path, help="Also write the tables to this file.")
    parser.add_argument("--plot", type=Path, help="Write the suggested-vs-even plot (PNG) here.")
    parser.add_argument("--json", type=Path, help="Write every run's figures here.")
    args = parser.parse_args()
    seeds = TEST_SEEDS if args.seeds == "test" else TUNING_SEEDS
    shape = (48, 48, 64) if args.quick else SHAPE
    seeds = seeds[:1] if args.quick else seeds
    parts = args.only or ["surveys", "attributes", "demo", "suggest"]
    surveys = [survey for survey in SURVEYS if not args.survey or survey.name in args.survey]
    work = Path(tempfile.mkdtemp(prefix="seisfacies-quality-"))
    runs, curve = [], []
    try:
        for seed in seeds:
            if "surveys" in parts:
                runs += [_echo(survey_run(work, survey, seed, shape)) for survey in surveys]
                if args.before:
                    runs += [_echo(survey_run(work, survey, seed, shape, before=True)) for survey in surveys]
            if "attributes" in parts:
                runs += [
                    _echo(survey_run(work, survey, seed, shape, inputs=ATTRIBUTE_INPUTS))
                    for survey in surveys
                ]
            if "demo" in parts:
                runs.append(_echo(demo_run(work, seed, args.quick)))
            if "suggest" in parts:
                curve.append(_echo(suggest_run(work, seed, shape)))
    finally:
        shutil.rmtree(work, ignore_errors=True)
    table = summary_table(runs, curve, seeds)
    print(table)
    if args.markdown:
        args.markdown.write_text(table + "\n")
    if args.json:
        args.json.write_text(json.dumps({"runs": runs, "suggest": curve}, indent=2))
    if args.plot and curve:
        plot_curve(curve, args.plot)


def _echo(result: dict) -> dict:
    print(json.dumps(result), flush=True)
    return result


if __name__ == "__main__":
    main()
