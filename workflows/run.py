"""Workflow files: the whole chain as YAML steps, validated before anything runs.

A workflow is ``{name, steps: [{COMMAND: {options}}, ...]}``; each step's
options are those of the CLI command (paths included), checked strictly.
Relative paths are resolved against the workflow's folder. A step is skipped
(unless ``force``) only when it last ran with the same settings on the same
versions of its inputs and its outputs are complete and untouched since; a
digest of both is recorded in ``.NAME.steps.json`` beside the run record. A
step that runs changes its outputs, so every step downstream runs too. A
step whose outputs someone replaced since with whole ones of their own (say,
labels on more inlines) is kept rather than redone, and what reads them runs.
"""

from __future__ import annotations

import collections
import hashlib
import json
import os
import platform
import time
from collections.abc import Callable
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from ..pipeline import location
from ..pipeline.cluster import live_workers
from ..pipeline.commit import WRITE_ID_ATTR, incomplete_variables, write_file, writing
from ..pipeline.exceptions import ConfigError
from .steps import STEPS, Step


def load_workflow(
    path: str | Path, base: str | Path | None = None, overrides: dict[str, dict] | None = None
) -> tuple[str, list[tuple[Step, Any]]]:
    """Parse and validate a workflow file; return its name and validated steps.

    Parameters
    ----------
    path : str | Path
        The file or store.
    base : str | Path | None
    overrides : dict[str, dict] | None

    Returns
    -------
    tuple[str, list[tuple[Step, Any]]]
    """
    return workflow_steps(read_workflow(path), path, base, overrides)


def read_workflow(path: str | Path) -> dict:
    """Read a workflow file and check its top level (keys, steps list, storage_options).

    Parameters
    ----------
    path : str or Path
        The workflow file.

    Returns
    -------
    dict
        The parsed document.
    """
    path = Path(path)
    try:
        document = yaml.safe_load(path.read_text())
    except FileNotFoundError:
        raise ConfigError(f"{path}: no such workflow file") from None
    except yaml.YAMLError as error:
        raise ConfigError(f"{path}: not valid YAML ({str(error).splitlines()[0]})") from None
    if not isinstance(document, dict) or not isinstance(document.get("steps"), list) or not document["steps"]:
        raise ConfigError(f"{path}: a workflow needs a list of 'steps'")
    unknown = sorted(set(document) - {"name", "description", "steps", "storage_options"})
    if unknown:
        raise ConfigError(
            f"{path}: unknown key {unknown[0]!r}; expected name, description, storage_options, steps"
        )
    storage = document.get("storage_options") or {}
    if not isinstance(storage, dict) or not all(isinstance(value, dict) for value in storage.values()):
        raise ConfigError(
            f"{path}: storage_options must map a protocol to its options, e.g. "
            "{s3: {endpoint_url: 'http://127.0.0.1:9000'}}"
        )
    return document


def workflow_steps(
    document: dict, path: str | Path, base: str | Path | None = None, overrides: dict[str, dict] | None = None
) -> tuple[str, list[tuple[Step, Any]]]:
    """Validate a read workflow's steps, paths resolved against ``base`` (default: the file's folder).

    Parameters
    ----------
    document : dict
        What :func:`read_workflow` returned.
    path : str or Path
        The workflow file, for messages and the default base.
    base : str or Path, optional
        The folder relative paths are resolved against.
    overrides : dict, optional
        Step name -> options that replace the file's in every step of that name;
        ``name:N`` (``plot:1``) -> those of its N-th step only.

    Returns
    -------
    tuple
        The workflow's name and its (step, validated options) pairs.
    """
    path = Path(path)
    base = Path(base) if base else path.resolve().parent
    steps, known, seen = [], STEPS, collections.Counter()
    for number, item in enumerate(document["steps"], start=1):
        if not isinstance(item, dict) or len(item) != 1:
            raise ConfigError(f"{path}: step {number} must be one 'command: {{options}}' mapping")
        ((name, options),) = item.items()
        if name not in known:
            raise ConfigError(
                f"{path}: step {number}: unknown command {name!r}; expected one of {', '.join(known)}"
            )
        seen[name] += 1
        given = overrides or {}
        options = {**(options or {}), **given.get(name, {}), **given.get(f"{name}:{seen[name]}", {})}
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
        name: _resolved(getattr(parsed, name), base)
        for name in step.paths
        if getattr(parsed, name) is not None
    }
    return parsed.model_copy(update=resolved)


def _resolved(path: str | list[str], base: Path) -> str | list[str]:
    """A path (or a list of them) relative to the workflow's folder, URLs and absolute paths as they are."""
    if isinstance(path, list):
        return [_resolved(one, base) for one in path]
    return path if location.is_url(path) or Path(path).is_absolute() else str(base / path)


#: Files up to this size are identified by their content; larger ones (SEG-Y inputs) by size and time.
HASHED_FILE_BYTES = 256 * 2**20


def fingerprint(path: Path) -> str | None:
    """What identifies a file's or Zarr node's current version (None: absent).

    A Zarr array or store is identified by the write id its last commit
    stamped (an array without its own, by its store's); a file by its
    content's sha256, or by size and modification time (ETag on object
    storage) beyond :data:`HASHED_FILE_BYTES`. Stores written by other tools
    carry no write id and fall back to their ``zarr.json``'s size and time.

    Parameters
    ----------
    path : Path
        The file or store.

    Returns
    -------
    str | None
    """
    path = str(path)
    metadata = location.join(path, "zarr.json")
    if location.exists(metadata):
        write_id = _write_id(path)
        if write_id is not None:
            return f"write:{write_id}"
        path = metadata  # a store from another tool: its metadata's size and time
    try:
        if location.is_url(path):
            size, version = location.size_and_version(path)
        else:
            stat = os.stat(path)
            size, version = stat.st_size, stat.st_mtime_ns
        if path != metadata and location.is_file(path) and size <= HASHED_FILE_BYTES:
            return f"sha256:{_content_sha256(path)}"
    except FileNotFoundError:
        return None
    return f"{size}:{version}"


def _write_id(node: str) -> str | None:
    """The write id of a Zarr node, or of the store it is an array of."""
    for candidate in (node, location.parent(node)):
        try:
            with location.open_file(location.join(candidate, "zarr.json"), "rb") as handle:
                attributes = json.loads(handle.read()).get("attributes", {})
        except (FileNotFoundError, ValueError):
            continue
        if WRITE_ID_ATTR in attributes:
            return attributes[WRITE_ID_ATTR]
    return None


def _content_sha256(path: str) -> str:
    digest = hashlib.sha256()
    with location.open_file(path, "rb") as handle:
        while block := handle.read(2**20):
            digest.update(block)
    return digest.hexdigest()


def _complete(path: str) -> bool:
    """False for a store variable still listed as incomplete in its store's root."""
    store = location.parent(path)
    if not location.exists(location.join(path, "zarr.json")) or not location.exists(
        location.join(store, "zarr.json")
    ):
        return True  # a file, or a whole store (written under a temporary name, complete once there)
    return location.name(path) not in incomplete_variables(store)


def _paths(templates: tuple[str, ...], options) -> list[str]:
    """Fill path templates from the options; a template naming an unset option is left out."""
    values = options.model_dump()
    unset = [key for key, value in values.items() if value is None]
    kept = [template for template in templates if not any(f"{{{key}}}" in template for key in unset)]
    paths = []
    for template in kept:  # a list of paths (horizon files) fills a template once per path
        lists = [key for key, value in values.items() if isinstance(value, list) and f"{{{key}}}" in template]
        variants = [{}] if not lists else [{lists[0]: value} for value in values[lists[0]]]
        paths += [template.format(**{**values, **variant}) for variant in variants]
    return paths


def _fingerprints(templates: tuple[str, ...], options) -> dict[str, str | None]:
    return {str(path): fingerprint(path) for path in _paths(templates, options)}


def settings_digest(options, step: Step | None = None) -> str:
    """A digest of what a step runs: its resolved options (``overwrite`` aside) and seisfacies' version.

    Resolved, not as written: ``train: {model: cnn2d}`` runs other epochs and
    another network when a release changes the model's defaults, and a new
    release may compute any step differently.

    Parameters
    ----------
    options
        The step's validated options.
    step : Step, optional
        The command, whose defaults fill in what the options leave unset.

    Returns
    -------
    str
    """
    settings = step.resolved(options) if step is not None else options.model_dump(mode="json")
    settings.pop("overwrite", None)
    text = json.dumps(
        {"settings": settings, "seisfacies": _version("seisfacies")}, sort_keys=True, default=str
    )
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def step_state(step: Step, options) -> dict:
    """The settings and input versions a step would run with now.

    Parameters
    ----------
    step : Step
    options
        Options by name.

    Returns
    -------
    dict
    """
    return {
        "settings": settings_digest(options, step),
        "inputs": _fingerprints(step.inputs, options),
    }


def rerun_decision(step: Step, options, recorded: dict | None) -> tuple[str, dict, dict]:
    """Whether a step runs again, from what it last recorded; each input and output fingerprinted once.

    Parameters
    ----------
    step : Step
        The command.
    options : pydantic.BaseModel
        Its validated options.
    recorded : dict, optional
        What was recorded when it last ran (settings, inputs, outputs).

    Returns
    -------
    tuple
        ``"skip"`` (same settings and inputs, outputs whole and untouched: running it
        again would give what is there), ``"keep"`` (the same, but someone replaced
        the outputs since with whole ones of their own, say labels on more inlines:
        a missing or half-written output is never that) or ``"run"``; then the
        step's current settings and inputs, and its outputs' fingerprints.
    """
    now, outputs = step_state(step, options), _fingerprints(step.outputs, options)
    same = bool(recorded) and {k: recorded.get(k) for k in ("settings", "inputs")} == now
    whole = all(version is not None and _complete(path) for path, version in outputs.items())
    if not (same and whole):
        return "run", now, outputs
    if recorded.get("outputs") == outputs:
        return "skip", now, outputs
    return ("keep" if outputs else "run"), now, outputs


def required_workers(steps: list) -> int:
    """The most workers any step asks for (a training step's ``workers``), at least 1.

    Parameters
    ----------
    steps : list
        ``(step, options)`` pairs from :func:`load_workflow`.

    Returns
    -------
    int
    """
    return max([1, *(_asked_workers(options) for _, options in steps)])


def _asked_workers(options) -> int:
    """The workers a step cannot run without: a training's explicit ``workers`` (auto fits any cluster)."""
    workers = getattr(options, "workers", 1)
    return workers if isinstance(workers, int) else 1


def check_workers(path: str | Path, steps: list, client) -> None:
    """Refuse a workflow that asks for more workers than the cluster has, before any step runs.

    Parameters
    ----------
    path : str or Path
        The workflow file, for the message.
    steps : list
        ``(step, options)`` pairs from :func:`load_workflow`.
    client : distributed.Client or None
        The cluster; None runs in this process (one rank).
    """
    needed = required_workers(steps)
    have = len(live_workers(client)) if client is not None else 1
    if needed > have:
        step = next(step.name for step, options in steps if _asked_workers(options) == needed)
        raise ConfigError(
            f"{path}: step {step!r} asks for workers: {needed} but the cluster has {have}; "
            f"set workers: {have} in the file, or start more workers (seisfacies run --workers {needed} "
            "for a local cluster)"
        )


def run_workflow(
    path: str | Path,
    client=None,
    force: bool = False,
    base: str | Path | None = None,
    record: str | Path | None = None,
    echo: Callable[[str], None] = print,
    overrides: dict[str, dict] | None = None,
) -> dict:
    """Run every step in order on one client; write a run record beside the outputs.

    Parameters
    ----------
    path : str | Path
        The file or store.
    client
        The Dask client; None runs in this process.
    force : bool
        Run even when outputs are up to date.
    base : str | Path | None
    record : str | Path | None
    echo : Callable[[str], None]
        Where progress lines go.
    overrides : dict[str, dict] | None

    Returns
    -------
    dict
    """
    document = read_workflow(path)
    name, steps = workflow_steps(document, path, base, overrides)
    check_workers(path, steps, client)
    storage = document.get("storage_options") or {}
    if storage:  # object-store settings for this process and every worker
        location.configure(storage)
        if client is not None:
            client.run(location.configure, storage)
    folder = Path(base or Path(path).resolve().parent)
    state_path = folder / f".{name}.steps.json"
    with writing(state_path, "seisfacies run"):  # a second run of this workflow is refused at once
        return _run_steps(name, path, steps, client, force, folder, state_path, record, echo)


def _run_steps(name, path, steps, client, force, folder, state_path, record, echo) -> dict:
    """The steps of :func:`run_workflow`, in order, with the workflow's step record held."""
    state = json.loads(state_path.read_text()) if state_path.exists() else {}
    results, started = [], time.perf_counter()
    for number, (step, options) in enumerate(steps, start=1):
        key = f"{number}:{step.name}"
        step.warm(client)  # the decision may import what the step's workers import: overlap the two
        decision, before, outputs = rerun_decision(step, options, state.get(key))
        if not force and decision == "skip":
            echo(f"[{step.name}] up to date, skipped")
            results.append({"step": step.name, "status": "skipped", "summary": state[key].get("summary")})
            continue
        if not force and decision == "keep":
            # the user's edit (more labels, a prediction with probabilities) wins over redoing the step
            echo(f"[{step.name}] outputs changed since this workflow wrote them: kept (--force redoes it)")
            state[key] = {**state[key], "outputs": outputs}
            _write_json(state_path, state)
            results.append({"step": step.name, "status": "kept", "summary": state[key].get("summary")})
            continue
        echo(f"[{step.name}] running")
        clock = time.perf_counter()
        existing = any(version is not None for version in outputs.values())
        if "overwrite" in type(options).model_fields:
            options = options.model_copy(update={"overwrite": options.overwrite or existing or force})
        state.pop(key, None)
        summary = step.run(options, client)
        outputs = _fingerprints(step.outputs, options)
        state[key] = {**before, "outputs": outputs, "summary": json.loads(json.dumps(summary, default=str))}
        _write_json(state_path, state)
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
    record_path = Path(record) if record else folder / f"{name}.run.json"
    _write_json(record_path, run_record)
    run_record["record"] = str(record_path)
    return run_record


def _write_json(path: Path, document: dict) -> None:
    """Write a JSON record whole: a reader sees the old record or the new one."""
    write_file(path, json.dumps(document, indent=2, default=str).encode())


def _metrics(results: list[dict]) -> dict:
    evaluated = [r["summary"] for r in results if r["step"] == "evaluate" and r.get("summary")]
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
    metrics = {key: evaluated[-1][key] for key in keys}
    held_out = evaluated[-1]["where"] == "unlabelled"
    metrics["scored_on"] = (
        "held-out voxels the training labels did not cover: generalisation"
        if held_out
        else evaluated[-1].get("warning", f"{evaluated[-1]['where']} voxels of {evaluated[-1]['truth']}")
    )
    return metrics


def _version(package: str) -> str | None:
    try:
        return version(package)
    except PackageNotFoundError:
        return None


def versions() -> dict:
    """Python's and the main packages' versions, for the run record.

    Returns
    -------
    dict
        Package name -> version (None when it is not installed).
    """
    packages = ("seisfacies", "dask", "distributed", "xarray", "zarr", "numpy", "torch", "segyio")
    return {"python": platform.python_version(), **{package: _version(package) for package in packages}}
