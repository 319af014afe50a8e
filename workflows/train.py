"""``seisfacies train``: data-parallel training, one PyTorch rank per Dask worker.

The client validates everything (options, patches, model, shards), then
:mod:`seisfacies.workflows.ranks` runs the ranks; the training itself is
:func:`seisfacies.models.training.fit`. A lost rank fails the run, or restarts
it from this run's last checkpoint (``--max-restarts``).
"""

from __future__ import annotations

import dataclasses
import json
import time
import uuid
from pathlib import Path

import zarr
from tqdm.auto import tqdm

from ..models import list_models, model_entry
from ..models.checkpoint import load_checkpoint, package_version, training_progress
from ..models.checkpoint import load_model as _load_model
from ..models.training import local_batch
from ..pipeline import location
from ..pipeline.commit import check_folder_writable, check_not_being_written, write_file, writes
from ..pipeline.exceptions import ClusterError, ConfigError, ModelError, SeisFaciesError
from ..pipeline.store import open_store
from ..pipeline.survey import survey_record
from .config import PatchesConfig, TrainConfig
from .patches import fitting_patches
from .ranks import (
    model_for,
    one_line,
    patch_attrs,
    resolve_ranks,
    run_ranks,
    shard_count,
    training_count,
)


def check_compatible(config: TrainConfig, attrs: dict) -> None:
    """Refuse a model that cannot eat these patches, with the allowed values.

    Parameters
    ----------
    config : TrainConfig
        The model asked for.
    attrs : dict
        The patch store's attributes (``kind``, ``dense``).
    """
    entry = _entry(config)
    if attrs["kind"] not in entry.patch_kinds:
        fitting = [name for name in list_models() if model_entry(name).patch_kinds[0] == attrs["kind"]]
        raise ConfigError(
            f"option --model: {config.model} trains on {'/'.join(entry.patch_kinds)} patches "
            f"but the patch store holds {attrs['kind']} patches; "
            f"use --model {' or '.join(fitting)} or cut {entry.patch_kinds[0]} patches"
        )
    if entry.dense and attrs["kind"] == "section" and not attrs["dense"]:
        raise ConfigError("option --model: cnn2d needs dense section labels")
    extra = [name for name in attrs.get("inputs", ()) if name != "amplitude"]
    if extra and not entry.dense:
        raise ConfigError(
            f"option --model: {config.model} takes no {extra[0]} channel; use a fully convolutional model "
            "(cnn2d, cnn3d) or cut patches with --inputs amplitude"
        )
    if attrs.get("neighbours") and not entry.dense:
        raise ConfigError(
            f"option --model: {config.model} classifies one section at a time, but the patches carry "
            f"{attrs['neighbours']} neighbouring sections on each side; use a fully convolutional model "
            "(cnn2d) or cut patches with --neighbours 0"
        )


def _check_batch(config: TrainConfig, n_train: int, shards: int) -> None:
    """Refuse a global batch the shards cannot share (it would silently grow to one patch a shard)."""
    try:
        local_batch(config.optimizer, config.batch_size, n_train, shards)
    except ValueError as error:
        raise ConfigError(
            f"option --batch-size {config.batch_size}: {error}; use --batch-size {shards} or more, "
            "or fewer --workers / --shards"
        ) from None


def _entry(config: TrainConfig):
    try:
        return model_entry(config.model)
    except ValueError as error:
        raise ConfigError(f"option --model: {error}") from None


@writes("out")
def train_model(
    source: str | Path,
    out: str | Path,
    config: TrainConfig,
    client=None,
    patches_config: PatchesConfig | None = None,
) -> dict:
    """Train ``config.model`` on a patch store (or a labelled volume store) and write MODEL.pt.

    Parameters
    ----------
    source : str or Path
        A patch store, or a store with labels (patches are cut first).
    out : str or Path
        The checkpoint to write.
    config : TrainConfig
        The training options.
    client : distributed.Client, optional
        The cluster; None trains in this process.
    patches_config : PatchesConfig, optional
        The patches to cut from a volume store (default: the model's).

    Returns
    -------
    dict
        The summary: last losses and accuracies, epochs, seconds, files.
    """
    # absolute: ranks run on workers, whose working folder may differ
    source, out = location.resolve(source), location.resolve(out)
    check_output(source, out, config)
    patches, note = _patch_store(source, out, config, client, patches_config)
    attrs = patch_attrs(str(patches))
    run_id = uuid.uuid4().hex
    if config.resume:
        recorded = _resumable_checkpoint(out, patches, attrs)
        run_id, config = recorded.get("run_id") or run_id, as_recorded(config, recorded)
    check_compatible(config, attrs)
    model_for(config, attrs)  # options checked on the client, before any worker starts
    config = with_model_epochs(config)
    n_train = training_count(str(patches))
    config, ranks_note = resolve_ranks(config, client, attrs, n_train)
    _check_batch(config, n_train, shard_count(n_train, config.workers, config.shards))
    started = time.perf_counter()
    survey = _training_survey(attrs)
    result, restarts = _run_with_restarts(patches, out, config, client, run_id, survey)
    history = result["history"] if result else load_checkpoint(out)["history"]
    history_path = location.with_name(out, location.name(out) + ".history.json")
    write_file(history_path, json.dumps(history, indent=2).encode())
    seconds = time.perf_counter() - started
    summary = _summary(out, patches, config, history, attrs, seconds, restarts, history_path, n_train)
    notes = {"workers_note": ranks_note, "patches_note": note}
    return {**summary, **{key: text for key, text in notes.items() if text}}


def check_output(source: str | Path, out: str | Path, config: TrainConfig) -> None:
    """Refuse a checkpoint path this run may not write, before any work starts.

    Another run writing it, one there already (without ``--overwrite`` or
    ``--resume``), none there to resume, or a folder this user cannot write.

    Parameters
    ----------
    source : str or Path
        The patch store or labelled store (not read here).
    out : str or Path
        The checkpoint to write.
    config : TrainConfig
        The training options.

    Raises
    ------
    ConfigError
        Naming the file and the option that would let the run go on.
    """
    out = location.resolve(out)
    check_not_being_written(out)
    if location.exists(out) and not (config.overwrite or config.resume):
        raise ConfigError(f"{out}: {_existing_model(out)}")
    if config.resume and not location.exists(out):
        raise ConfigError(f"{out}: --resume needs an existing checkpoint; train without --resume first")
    check_folder_writable(out)


def as_recorded(config: TrainConfig, checkpoint: dict) -> TrainConfig:
    """A resumed run's config: what the user left unset is what the checkpoint was trained with.

    Defaults change between releases (cnn2d: depth 2 and 12 epochs, then depth
    3 and 9); a resumed run must rebuild the checkpoint's network and stop at
    its epochs, not today's defaults.

    Parameters
    ----------
    config : TrainConfig
        The options given with ``--resume``.
    checkpoint : dict
        The loaded checkpoint.

    Returns
    -------
    TrainConfig

    >>> recorded = {"model_config": {"n_classes": 6, "base": 16, "depth": 2}, "train_config": {"epochs": 12}}
    >>> resumed = as_recorded(TrainConfig(model="cnn2d", model_options={"base": 8}, resume=True), recorded)
    >>> resumed.model_options, resumed.epochs
    ({'base': 8, 'depth': 2}, 12)
    """
    fitted = {"n_classes", "in_samples", "in_channels"}  # filled in from the patches anyway
    recorded = checkpoint.get("model_config", {})
    network = {key: value for key, value in recorded.items() if key not in fitted | {"activation"}}
    update = {"model_options": {**network, **config.model_options}}
    if config.activation is None and "activation" in recorded:
        update["activation"] = recorded["activation"]
    if config.epochs is None:
        update["epochs"] = checkpoint.get("train_config", {}).get("epochs")
    return config.model_copy(update=update)


def with_model_epochs(config: TrainConfig) -> TrainConfig:
    """The config with ``epochs`` set: the model's own when the user gave none.

    Parameters
    ----------
    config : TrainConfig
        Training options; ``model`` is registered.

    Returns
    -------
    TrainConfig

    >>> [with_model_epochs(TrainConfig(model=name)).epochs for name in ("cnn2d", "mlp")]
    [9, 12]
    >>> with_model_epochs(TrainConfig(model="cnn2d", epochs=3)).epochs
    3
    """
    if config.epochs is not None:
        return config
    return config.model_copy(update={"epochs": model_entry(config.model).epochs})


#: Model config fields filled in from the patches, not chosen by the user.
FITTED_FIELDS = ("n_classes", "in_samples", "in_channels")


def resolved_settings(config: TrainConfig) -> dict:
    """The options a training actually runs with: the model's own epochs, network and activation where unset.

    Digests of these (``seisfacies run``'s up-to-date check) change when a
    release changes a model's defaults, though the options as written do not.

    Parameters
    ----------
    config : TrainConfig
        The options as given (a workflow step's, with its paths).

    Returns
    -------
    dict
        Every option, JSON-ready, with ``epochs``, ``activation`` and ``model_options`` resolved.

    >>> settings = resolved_settings(TrainConfig(model="cnn2d"))
    >>> settings["epochs"], settings["activation"], settings["model_options"]["depth"]
    (9, 'relu', 3)
    """
    settings = config.model_dump(mode="json")
    try:
        entry = model_entry(config.model)
    except ValueError:  # refused with its own message when the step runs
        return settings
    network = {
        field.name: field.default
        for field in dataclasses.fields(entry.config_class)
        if field.default is not dataclasses.MISSING and field.name not in FITTED_FIELDS
    }
    network.update(config.model_options)
    if config.activation is not None:
        network["activation"] = config.activation
    epochs = config.epochs if config.epochs is not None else entry.epochs
    return {**settings, "epochs": epochs, "activation": network.get("activation"), "model_options": network}


def _training_survey(attrs: dict) -> dict:
    """What predict compares a store with: the training survey's geometry and amplitude statistics."""
    record = {"amplitude_mean": float(attrs["mean"]), "amplitude_std": float(attrs["std"])}
    source = attrs.get("source_store")
    if source:
        try:
            record.update(survey_record(open_store(source)), store=str(source))
        except SeisFaciesError:  # the volume store has moved: the statistics still tell
            pass
    return record


def _run_with_restarts(patches: Path, out: Path, config: TrainConfig, client, run_id: str, survey: dict):
    restarts = 0
    bar = tqdm(total=config.epochs, desc=f"train {config.model}", unit="epoch", disable=None, leave=False)
    with bar:
        while True:
            try:
                result = run_ranks(str(patches), str(out), config, client, _progress(bar), run_id, survey)
                return result, restarts
            except ClusterError:
                if restarts >= config.max_restarts:
                    raise
                restarts += 1
                # only this run's own checkpoint may be continued; an older file at OUT is not ours
                resume = _checkpoint_run(out) == run_id
                bar.write(
                    f"restarting {'from the last checkpoint' if resume else 'from scratch'} "
                    f"({restarts}/{config.max_restarts})"
                )
                config = config.model_copy(update={"resume": resume})


def _progress(bar):
    """Show each epoch's record on the bar; where no bar shows (a log, a pipe), write a line now and then."""

    def show(record: dict) -> None:
        bar.update(record["epoch"] - bar.n)
        bar.set_postfix({key: value for key, value in record.items() if key.endswith(("loss", "accuracy"))})
        if bar.disable and logged_epoch(record["epoch"], bar.total):
            bar.write(" ".join(f"{k}={v}" for k, v in record.items()))

    return show


def logged_epoch(epoch: int, epochs: int) -> bool:
    """Whether a log without a progress bar gets a line for ``epoch``: first, last, every tenth of the run.

    A long run leaves a dozen lines in a log, not one per epoch.

    Parameters
    ----------
    epoch : int
        The epoch just finished, from 1.
    epochs : int
        The epochs of the run.

    Returns
    -------
    bool

    >>> [epoch for epoch in range(1, 41) if logged_epoch(epoch, 40)]
    [1, 4, 8, 12, 16, 20, 24, 28, 32, 36, 40]
    >>> [epoch for epoch in range(1, 4) if logged_epoch(epoch, 3)]
    [1, 2, 3]
    """
    return epoch in (1, epochs) or epoch % max(1, epochs // 10) == 0


def _checkpoint_run(out: Path) -> str | None:
    """The run id recorded in the checkpoint at ``out``, if there is a readable one."""
    try:
        return load_checkpoint(out).get("run_id")
    except (OSError, ValueError, KeyError, RuntimeError):
        return None


def _resumable_checkpoint(out: Path, patches: Path, attrs: dict) -> dict:
    """The checkpoint to continue; refuse one trained on other data."""
    try:
        payload = load_checkpoint(out)
    except (ValueError, KeyError, RuntimeError) as error:
        raise ModelError(f"{out}: cannot --resume: {one_line(error)}") from None
    trained_on = payload.get("source_store") or payload.get("patch_store")
    here = attrs.get("source_store") or str(patches)
    same_patches = payload.get("patch") == {key: attrs[key] for key in payload.get("patch", {})}
    if payload.get("class_names") != list(attrs["class_names"]) or not same_patches or trained_on != here:
        raise ConfigError(
            f"{out}: --resume: the checkpoint was trained on {trained_on or 'other patches'}, not {here}; "
            "train it afresh with --overwrite, or resume on the store it was trained on"
        )
    return payload


def _patch_store(source: str, out: str, config: TrainConfig, client, patches_config) -> tuple[str, str]:
    """The patch store to train on: ``source`` itself, or patches cut from a volume store."""
    if location.exists(location.join(source, "x", "zarr.json")):
        return source, ""
    if not location.exists(location.join(source, "labels", "zarr.json")):
        raise ConfigError(
            f"{source}: neither a patch store nor a store with labels; run `seisfacies labels` first"
        )
    from .patches import extract_patches, labels_in_depth_order

    entry = _entry(config)  # an unknown model is refused before any patch is cut
    note, depth_note, ordered = "", "", None
    if patches_config is None:
        sizes = tuple(zarr.open_array(store=location.join(source, "amplitude"), mode="r").shape)
        patches_config, note = fitting_patches(config.model, sizes)
        if config.inputs is None and entry.dense:
            ordered = labels_in_depth_order(source, client)  # read once: the cut below records it too
            if ordered:
                patches_config = patches_config.model_copy(
                    update={"inputs": (*patches_config.inputs, "depth")}
                )
                depth_note = STRATIGRAPHIC_NOTE
    if config.inputs is not None:
        patches_config = patches_config.model_copy(update={"inputs": config.inputs})
    target = location.with_name(out, location.name(out).rsplit(".", 1)[0] + ".patches.zarr")
    overwriting = patches_config.model_copy(update={"overwrite": True})
    cut = extract_patches(source, target, overwriting, client, labels_ordered=ordered)
    return target, "; ".join(part for part in (note, depth_note, cut.get("split_note", "")) if part)


#: Why a training from a store added the depth input (measured on the real F3 lines: docs/quality.md).
STRATIGRAPHIC_NOTE = (
    "the labels are stratigraphic intervals (no labelled trace goes back up the class codes): the model "
    "also sees each sample's depth in its trace; --inputs amplitude leaves it out"
)


def _summary(out, patches, config, history, attrs, seconds, restarts, history_path, n_train) -> dict:
    last = history[-1] if history else {}
    return {
        "model": str(out),
        "architecture": config.model,
        "optimizer": config.optimizer,
        "patches": str(patches),
        "classes": list(attrs["class_names"]),
        "epochs": len(history),
        "workers": config.workers,
        **{key: value for key, value in last.items() if key.endswith(("loss", "accuracy"))},
        "seconds": round(seconds, 1),
        "samples_per_second": round(n_train * len(history) / max(seconds, 1e-9), 1),
        "restarts": restarts,
        "history": str(history_path),
        "seisfacies_version": package_version(),
    }


def _existing_model(out: str) -> str:
    """Why an existing model file stops a training without --overwrite or --resume, and what to do."""
    try:
        final, epoch, planned = training_progress(load_checkpoint(out))
    except ValueError:  # not a checkpoint of ours: only --overwrite helps
        final, epoch, planned = True, 0, None
    if final:
        return "the model file exists; pass --overwrite to replace it or --resume to continue"
    return (
        f"a partial checkpoint (epoch {epoch} of {planned or '?'}) of a training that stopped early; "
        "pass --resume to continue it or --overwrite to start afresh"
    )


def refuse_partial(payload: dict, path, allowed: bool = False) -> bool:
    """Refuse a checkpoint of a training that stopped early, unless allowed; True where partial.

    Parameters
    ----------
    payload : dict
        The loaded checkpoint.
    path : str or Path
        Its file, for the message.
    allowed : bool
        ``--allow-partial``: use it anyway.

    Returns
    -------
    bool
        Whether the checkpoint is partial (only ever True when allowed).
    """
    final, epoch, planned = training_progress(payload)
    if not final and not allowed:
        raise ModelError(
            f"{path} is a partial checkpoint (epoch {epoch} of {planned or '?'}); continue it with "
            f"`seisfacies train {payload.get('patch_store') or 'PATCHES'} {path} --resume`, "
            "or pass --allow-partial to use it anyway"
        )
    return not final


def load_model(path: str | Path | bytes, name: str | Path | None = None):
    """Model and metadata from a checkpoint; a bad file is a one-line ModelError.

    Parameters
    ----------
    path : str, Path or bytes
        The checkpoint, or its bytes.
    name : str or Path, optional
        The file the bytes came from, for the error message.

    Returns
    -------
    tuple
        The model (CPU) and the checkpoint's payload.
    """
    try:
        return _load_model(path, name=None if name is None else str(name))
    except ValueError as error:
        raise ModelError(one_line(error)) from None
