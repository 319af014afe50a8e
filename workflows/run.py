"""Workflow files: the whole chain as YAML steps, validated before anything runs.

A workflow is ``{name, steps: [{COMMAND: {options}}, ...]}``; each step's
options are those of the CLI command (paths included), checked strictly.
Relative paths are resolved against the workflow's folder. A step whose
outputs exist and are newer than its inputs is skipped unless ``force``.
"""

from __future__ import annotations

import json
import platform
import time
from collections.abc import Callable
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from pipeline.exceptions import ConfigError
from workflows import config as cfg

PathFields = dict[str, str]  # field -> "in" or "out"


class Step:
    """One command of a workflow: its option model, paths and runner."""

    def __init__(
        self, name: str, model: type, paths: PathFields, outputs: Callable, inputs: Callable, run: Callable
    ):
        self.name, self.model, self.paths = name, model, paths
        self.outputs, self.inputs, self.run = outputs, inputs, run


def _store_var(store, variable):
    return Path(store) / variable / "zarr.json"


def _steps() -> dict[str, Step]:
    from workflows.evaluate import evaluate_store
    from workflows.export import zarr_to_segy
    from workflows.ingest import segy_to_zarr
    from workflows.labels import attach_labels
    from workflows.patches import extract_patches
    from workflows.plot import plot_section
    from workflows.predict import predict_volume
    from workflows.synth import write_synthetic_survey
    from workflows.train import train_model

    return {
        "synth": Step(
            "synth",
            cfg.SynthStep,
            {"out": "out"},
            lambda s: [Path(s.out) / "seismic.sgy", Path(s.out) / "labels.sgy"],
            lambda s: [],
            lambda s, c: write_synthetic_survey(s.out, cfg.SynthConfig(**s.options())),
        ),
        "ingest": Step(
            "ingest",
            cfg.IngestStep,
            {"segy": "in", "store": "out"},
            lambda s: [Path(s.store) / "zarr.json"],
            lambda s: [Path(s.segy)],
            lambda s, c: segy_to_zarr(s.segy, s.store, cfg.IngestConfig(**s.options()), c),
        ),
        "labels": Step(
            "labels",
            cfg.LabelsStep,
            {"store": "in", "source": "in"},
            lambda s: [_store_var(s.store, "labels")],
            lambda s: [Path(s.source), _store_var(s.store, "amplitude")],
            lambda s, c: attach_labels(s.store, s.source, cfg.LabelsConfig(**s.options()), c),
        ),
        "patches": Step(
            "patches",
            cfg.PatchesStep,
            {"store": "in", "patches": "out"},
            lambda s: [Path(s.patches) / "zarr.json"],
            lambda s: [_store_var(s.store, "labels")],
            lambda s, c: extract_patches(s.store, s.patches, cfg.PatchesConfig(**s.options()), c),
        ),
        "train": Step(
            "train",
            cfg.TrainStep,
            {"source": "in", "model_path": "out"},
            lambda s: [Path(s.model_path)],
            lambda s: [Path(s.source) / "zarr.json"],
            lambda s, c: train_model(s.source, s.model_path, cfg.TrainConfig(**s.options()), c),
        ),
        "predict": Step(
            "predict",
            cfg.PredictStep,
            {"store": "in", "model_path": "in"},
            lambda s: [_store_var(s.store, "facies")],
            lambda s: [Path(s.model_path), _store_var(s.store, "amplitude")],
            lambda s, c: predict_volume(s.store, s.model_path, cfg.PredictConfig(**s.options()), c),
        ),
        "evaluate": Step(
            "evaluate",
            cfg.EvaluateStep,
            {"store": "in", "truth": "in"},
            lambda s: [],
            lambda s: [],
            lambda s, c: evaluate_store(s.store, cfg.EvaluateConfig(**s.options()), c),
        ),
        "plot": Step(
            "plot",
            cfg.PlotStep,
            {"store": "in", "out": "out"},
            lambda s: [Path(s.out)],
            lambda s: [_store_var(s.store, "facies")],
            lambda s, c: plot_section(s.store, s.out, cfg.PlotConfig(**s.options())),
        ),
        "export": Step(
            "export",
            cfg.ExportStep,
            {"store": "in", "out": "out"},
            lambda s: [Path(s.out)],
            lambda s: [_store_var(s.store, s.variable)],
            lambda s, c: zarr_to_segy(s.store, s.out, cfg.ExportConfig(**s.options()), c),
        ),
    }


def load_workflow(
    path: str | Path, base: str | Path | None = None, overrides: dict[str, dict] | None = None
) -> tuple[str, list[tuple[Step, Any]]]:
    """Parse and validate a workflow file; return its name and validated steps."""
    path = Path(path)
    try:
        document = yaml.safe_load(path.read_text())
    except FileNotFoundError:
        raise ConfigError(f"{path}: no such workflow file") from None
    except yaml.YAMLError as error:
        raise ConfigError(f"{path}: not valid YAML ({str(error).splitlines()[0]})") from None
    if not isinstance(document, dict) or not isinstance(document.get("steps"), list) or not document["steps"]:
        raise ConfigError(f"{path}: a workflow needs a list of 'steps'")
    unknown = sorted(set(document) - {"name", "description", "steps"})
    if unknown:
        raise ConfigError(f"{path}: unknown key {unknown[0]!r}; expected name, description, steps")
    base = Path(base) if base else path.resolve().parent
    steps, known = [], _steps()
    for number, item in enumerate(document["steps"], start=1):
        if not isinstance(item, dict) or len(item) != 1:
            raise ConfigError(f"{path}: step {number} must be one 'command: {{options}}' mapping")
        ((name, options),) = item.items()
        if name not in known:
            raise ConfigError(
                f"{path}: step {number}: unknown command {name!r}; expected one of {', '.join(known)}"
            )
        options = {**(options or {}), **(overrides or {}).get(name, {})}
        steps.append((known[name], _validated(known[name], options, path, number, base)))
    return str(document.get("name", path.stem)), steps


def _validated(step: Step, options: dict, path: Path, number: int, base: Path):
    try:
        parsed = step.model(**options)
    except ValidationError as error:
        first = error.errors()[0]
        key = ".".join(str(part) for part in first["loc"])
        raise ConfigError(f"{path}: step {number} ({step.name}): key {key!r}: {first['msg']}") from None
    resolved = {
        name: str(base / getattr(parsed, name))
        for name in step.paths
        if getattr(parsed, name) is not None and not Path(getattr(parsed, name)).is_absolute()
    }
    return parsed.model_copy(update=resolved)


def _mtime(path: Path) -> float | None:
    return path.stat().st_mtime if path.exists() else None


def up_to_date(step: Step, options) -> bool:
    """Outputs exist and none is older than any input."""
    outputs = [_mtime(p) for p in step.outputs(options)]
    if not outputs or None in outputs:
        return False
    inputs = [t for t in (_mtime(p) for p in step.inputs(options)) if t is not None]
    return not inputs or min(outputs) >= max(inputs)


def run_workflow(
    path: str | Path,
    client=None,
    force: bool = False,
    base: str | Path | None = None,
    record: str | Path | None = None,
    echo: Callable[[str], None] = print,
    overrides: dict[str, dict] | None = None,
) -> dict:
    """Run every step in order on one client; write a run record beside the outputs."""
    name, steps = load_workflow(path, base, overrides)
    results, started = [], time.perf_counter()
    for step, options in steps:
        if not force and up_to_date(step, options):
            echo(f"[{step.name}] up to date, skipped")
            results.append({"step": step.name, "status": "skipped"})
            continue
        echo(f"[{step.name}] running")
        clock = time.perf_counter()
        existing = any(p.exists() for p in step.outputs(options))
        if "overwrite" in type(options).model_fields:
            options = options.model_copy(update={"overwrite": options.overwrite or existing or force})
        summary = step.run(options, client)
        results.append(
            {
                "step": step.name,
                "status": "ran",
                "seconds": round(time.perf_counter() - clock, 2),
                "summary": summary,
            }
        )
    run_record = {
        "workflow": name,
        "file": str(Path(path).resolve()),
        "seconds": round(time.perf_counter() - started, 2),
        "steps": results,
        "metrics": _metrics(results),
        "versions": versions(),
    }
    record_path = Path(record) if record else Path(base or Path(path).resolve().parent) / f"{name}.run.json"
    record_path.write_text(json.dumps(run_record, indent=2, default=str))
    run_record["record"] = str(record_path)
    return run_record


def _metrics(results: list[dict]) -> dict:
    evaluated = [r["summary"] for r in results if r["step"] == "evaluate" and r["status"] == "ran"]
    if not evaluated:
        return {}
    keys = (
        "pixel_accuracy",
        "mean_class_accuracy",
        "mean_iou",
        "frequency_weighted_iou",
        "class_iou",
        "where",
    )
    return {key: evaluated[-1][key] for key in keys}


def versions() -> dict:
    found = {"python": platform.python_version()}
    for package in ("seisfacies", "dask", "distributed", "xarray", "zarr", "numpy", "torch", "segyio"):
        try:
            found[package] = version(package)
        except PackageNotFoundError:
            found[package] = None
    return found
