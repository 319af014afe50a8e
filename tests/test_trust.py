"""No silent wrong answer: each test here failed on the code before its fix.

Non-finite samples, leak-free splits for every patch kind and orientation,
the time scalar, unclassified voxels in the metrics, stale state in training
restarts and workflow re-runs, stale consolidated metadata, data-parallel
BatchNorm and shards, and the smaller review findings.
"""

from __future__ import annotations

import glob
import json
import os
import signal
import subprocess
import threading
import time
from importlib.metadata import metadata
from pathlib import Path

import numpy as np
import pytest
import segyio
import torch
import xarray as xr
import yaml
from click.testing import CliRunner

import seisfacies as sf
from seisfacies.models.checkpoint import load_checkpoint
from seisfacies.pipeline.cluster import run_tasks
from seisfacies.pipeline.commit import (
    INCOMPLETE_ATTR,
    WRITE_ID_ATTR,
    consolidate,
    mark_incomplete,
    set_variable_attrs,
    update_root_attrs,
)
from seisfacies.pipeline.exceptions import ConfigError, LabelError, ModelError, SegyFormatError, StoreError
from seisfacies.pipeline.labels import class_dtype, to_classes
from seisfacies.pipeline.patches import ORIENTATIONS
from seisfacies.pipeline.segy import open_segy_dataset, read_block, read_layout
from seisfacies.pipeline.segy_write import write_cube
from seisfacies.pipeline.store import open_store
from seisfacies.pipeline.synth import make_synthetic_survey
from seisfacies.pipeline.testing import write_large_segy, write_test_segy
from seisfacies.workflows.cli import cli
from seisfacies.workflows.config import (
    EvaluateConfig,
    ExportConfig,
    IngestConfig,
    LabelsConfig,
    PatchesConfig,
    PredictConfig,
    TrainConfig,
)
from seisfacies.workflows.evaluate import evaluate_store
from seisfacies.workflows.export import zarr_to_segy
from seisfacies.workflows.ingest import segy_to_zarr
from seisfacies.workflows.labels import attach_labels
from seisfacies.workflows.patches import extract_patches
from seisfacies.workflows.predict import predict_volume
from seisfacies.workflows.ranks import load_shard, patch_attrs
from seisfacies.workflows.run import run_workflow
from seisfacies.workflows.train import train_model
from tests.conftest import BIN, process_cluster, write_labelled_store
from tests.test_cli import assert_one_line_error
from tests.test_workflows import SMALL

SMALL_CNN = {"base": 8, "depth": 2}
LABELLED_INLINES = [4, 14, 24, 34]


# --- 1. Non-finite samples ------------------------------------------------------------------------


def _write_survey(path: Path, amplitude: np.ndarray, dead_every: int | None = None) -> None:
    """IEEE-float SEG-Y of a synthetic survey; one NaN sample in every ``dead_every``-th trace."""
    cube = amplitude.copy()
    if dead_every:
        flat = cube.reshape(-1, cube.shape[2])
        flat[::dead_every, flat.shape[1] // 3] = np.nan
    n_il, n_xl, _ = cube.shape
    write_cube(
        str(path), cube, inlines=np.arange(n_il) + 100, crosslines=np.arange(n_xl) + 300, sample_format=5
    )


@pytest.fixture(scope="module")
def dead_sample_surveys(tmp_path_factory):
    """The same survey clean and with dead samples, each trained and predicted with all defaults of the API."""
    folder = tmp_path_factory.mktemp("nonfinite")
    survey = make_synthetic_survey((40, 36, 64), seed=3)
    few = np.full(survey.labels.shape, -1, np.int16)
    few[LABELLED_INLINES] = survey.labels[LABELLED_INLINES]
    np.save(folder / "few.npy", few)
    np.save(folder / "truth.npy", survey.labels)
    results = {}
    for name, dead_every in (("clean", None), ("dead", 50)):
        _write_survey(folder / f"{name}.sgy", survey.amplitude, dead_every)
        store = folder / f"{name}.zarr"
        segy_to_zarr(folder / f"{name}.sgy", store, IngestConfig(chunks="16,16,64"))
        attach_labels(store, folder / "few.npy", LabelsConfig(classes=",".join(survey.class_names)))
        patches = PatchesConfig(
            kind="section", size=16, stride=2, per_class=80, split_block=8, augment=("flip",)
        )
        config = TrainConfig(model="cnn2d", epochs=6, lr=3e-3, batch_size=16, model_options=SMALL_CNN)
        summary = train_model(store, folder / f"{name}.pt", config, patches_config=patches)
        predict_volume(store, folder / f"{name}.pt", PredictConfig())
        results[name] = {"store": store, "model": folder / f"{name}.pt", "summary": summary}
    return {"folder": folder, "truth": survey.labels, **results}


def _unlabelled_pixel_accuracy(store: Path, truth: np.ndarray) -> float:
    facies = open_store(store, require=("facies",)).facies.values
    unlabelled = np.ones(truth.shape[0], bool)
    unlabelled[LABELLED_INLINES] = False
    return float((facies[unlabelled] == truth[unlabelled]).mean())


def test_dead_samples_never_enter_the_statistics_or_the_loss(dead_sample_surveys):
    dead = dead_sample_surveys["dead"]
    attrs = patch_attrs(dead["summary"]["patches"])
    assert np.isfinite(attrs["mean"]) and np.isfinite(attrs["std"]) and attrs["std"] > 0
    history = load_checkpoint(dead["model"])["history"]
    assert all(np.isfinite(record["train_loss"]) for record in history), history


def test_dead_samples_are_unclassified_and_the_rest_as_good_as_the_clean_survey(dead_sample_surveys):
    truth = dead_sample_surveys["truth"]
    store = open_store(dead_sample_surveys["dead"]["store"], require=("facies",))
    facies, amplitude = store.facies.values, store.amplitude.values
    np.testing.assert_array_equal(facies == -1, ~np.isfinite(amplitude))
    assert (~np.isfinite(amplitude)).sum() == 40 * 36 // 50 + 1  # one dead sample in every 50th trace
    clean = _unlabelled_pixel_accuracy(dead_sample_surveys["clean"]["store"], truth)
    dead = _unlabelled_pixel_accuracy(dead_sample_surveys["dead"]["store"], truth)
    assert clean > 0.6, clean  # a model that learned something, so the comparison means something
    assert abs(clean - dead) <= 0.05, (clean, dead)


def test_evaluate_counts_unclassified_voxels_as_wrong_like_numpy(dead_sample_surveys):
    folder, truth = dead_sample_surveys["folder"], dead_sample_surveys["truth"]
    result = evaluate_store(
        dead_sample_surveys["dead"]["store"], EvaluateConfig(truth=str(folder / "truth.npy"))
    )
    facies = open_store(dead_sample_surveys["dead"]["store"], require=("facies",)).facies.values
    assert result["pixel_accuracy"] == round(float((facies == truth).mean()), 4)
    assert result["confusion_columns"][-1] == "unclassified"
    assert result["unclassified_voxels"] == int((facies == -1).sum()) > 0
    matrix = np.array(result["confusion_matrix"])
    assert matrix.shape == (6, 7) and matrix.sum() == truth.size


def test_a_loss_that_blows_up_stops_training_naming_the_step(labelled_store, tmp_path):
    extract_patches(labelled_store, tmp_path / "p.zarr", PatchesConfig(kind="trace", size=16, per_class=40))
    config = TrainConfig(model="mlp", optimizer="sgd", lr=1e30, epochs=3, schedule="constant")
    with pytest.raises(ModelError, match=r"NaN or infinite at epoch 1, step \d+ of \d+; lower --lr"):
        train_model(tmp_path / "p.zarr", tmp_path / "m.pt", config)


# --- 2. Leak-free validation for every kind and orientation ---------------------------------------


@pytest.fixture(scope="module")
def labelled_store(synthetic_survey, tmp_path_factory):
    """The small synthetic survey, every voxel labelled."""
    return write_labelled_store(synthetic_survey, tmp_path_factory.mktemp("labelled"))


def _extent(kind: str, size: int, orientation: int) -> tuple[int, int, int]:
    if kind == "trace":
        return (1, 1, size)
    if kind == "cube":
        return (size, size, size)
    return (1, size, size) if orientation == ORIENTATIONS["inline"] else (size, 1, size)


@pytest.mark.parametrize(
    "kind, orientation",
    [
        ("section", "inline"),
        ("section", "crossline"),
        ("section", "both"),
        ("cube", "inline"),
        ("trace", "inline"),
    ],
)
def test_no_voxel_is_under_both_a_training_and_a_validation_window(
    labelled_store, tmp_path, kind, orientation
):
    size = {"section": 8, "cube": 8, "trace": 16}[kind]
    config = PatchesConfig(kind=kind, size=size, stride=2, per_class=60, orientation=orientation, split_block=8,
                           val_fraction=0.3, dense=kind == "cube")  # fmt: skip
    extract_patches(labelled_store, tmp_path / "p.zarr", config)
    _assert_splits_apart(xr.open_zarr(tmp_path / "p.zarr").load(), kind, size)


def _assert_splits_apart(patches, kind: str, size: int) -> None:
    """Both splits hold windows, and no voxel is under a window of each."""
    shape = tuple(patches.attrs["volume_shape"])
    covered = {0: np.zeros(shape, bool), 1: np.zeros(shape, bool)}
    for n in range(patches.sizes["patch"]):
        centre = [int(patches[name][n]) for name in ("inline_index", "crossline_index", "sample_index")]
        extent = _extent(kind, size, int(patches.orientation[n]))
        window = tuple(slice(c - e // 2, c - e // 2 + e) for c, e in zip(centre, extent))
        assert all(0 <= part.start and part.stop <= limit for part, limit in zip(window, shape))
        covered[int(patches.split[n])][window] = True
    assert covered[0].any() and covered[1].any()
    assert not (covered[0] & covered[1]).any(), f"{(covered[0] & covered[1]).sum()} voxels in both splits"


def test_a_survey_too_small_for_a_split_that_trains_every_class_is_refused_then_split(tmp_path):
    """One column of blocks: split along the vertical only where every class still trains, else one line.

    On 93c14ff this cut no validation patch without a word. Split along the vertical, it trained on
    chaotic and bright only and validated on the other classes (the layers lie at different depths).
    """
    sf.synth(tmp_path / "d", shape=(64, 64, 96), seed=5)
    sf.ingest(tmp_path / "d" / "seismic.sgy", tmp_path / "s.zarr")
    sf.attach_labels(tmp_path / "s.zarr", tmp_path / "d" / "labels.sgy")
    config = PatchesConfig(kind="section", size=32, orientation="both", val_fraction=0.3, per_class=300)
    with pytest.raises(LabelError, match=r"not all of any class's labels; use --size 16 or smaller"):
        extract_patches(tmp_path / "s.zarr", tmp_path / "p.zarr", config)
    summary = extract_patches(
        tmp_path / "s.zarr", tmp_path / "p.zarr", config.model_copy(update={"size": 16})
    )
    assert min(summary["train"].values()) > 0 and sum(summary["validation"].values()) > 0, summary
    patches = xr.open_zarr(tmp_path / "p.zarr").load()
    for split in (0, 1):
        orientations = set(patches.orientation.values[patches.split.values == split].tolist())
        assert orientations == {0, 1}, (split, orientations, summary)
    _assert_splits_apart(patches, "section", 16)


def test_a_class_labelled_only_inside_validation_blocks_still_trains(tmp_path):
    """A rare class whose labels all fall in validation blocks trains; the summary says so.

    Before, MalenoV's salt points on F3 inline 339 got 0 training and 100 validation patches, exit 0.
    """
    from seisfacies.pipeline.patches import choose_validation_blocks

    shape, block = (64, 64, 32), 32
    noise = np.random.default_rng(3).standard_normal(shape).astype(np.float32)
    write_cube(
        str(tmp_path / "n.sgy"), noise, sample_format=5, inlines=np.arange(1, 65), crosslines=np.arange(1, 65)
    )
    held_out = choose_validation_blocks({(i, j): 1 for i in (0, 1) for j in (0, 1)}, 0.25, seed=0).pop()
    labels = np.full(shape, -1, np.int16)
    labels[4::8] = 0  # common: every eighth inline, everywhere
    inlines, crosslines = (slice(b * block + 4, b * block + 28) for b in held_out)
    labels[inlines, crosslines] = np.where(labels[inlines, crosslines] == 0, 1, -1)  # rare: one block only
    np.save(tmp_path / "labels.npy", labels)
    sf.ingest(tmp_path / "n.sgy", tmp_path / "s.zarr")
    sf.attach_labels(tmp_path / "s.zarr", tmp_path / "labels.npy", classes="common,rare")
    summary = sf.extract_patches(tmp_path / "s.zarr", tmp_path / "p.zarr", kind="section", size=16,
                                 split_block=block, val_fraction=0.25, per_class=50, seed=0)  # fmt: skip
    assert summary["train"]["rare"] > 0 and summary["validation"]["rare"] == 0, summary
    assert summary["validation"]["common"] > 0 and "no validation patch of rare" in summary["split_note"]
    _assert_splits_apart(xr.open_zarr(tmp_path / "p.zarr").load(), "section", 16)


def test_every_labelled_inline_gives_patches_whatever_the_stride(synthetic_survey, tmp_path):
    segy_to_zarr(synthetic_survey["seismic"], tmp_path / "s.zarr", IngestConfig())
    attach_labels(tmp_path / "s.zarr", synthetic_survey["labels"], LabelsConfig(inlines=(105, 111, 122, 130)))
    for orientation in ("inline", "both"):
        # no validation split: four labelled inlines of a 40 x 36 survey hold no validation block
        # for both orientations (refused in one line since), and the split is not what is tested here
        config = PatchesConfig(kind="section", size=16, stride=4, per_class=400, orientation=orientation,
                               val_fraction=0.0, overwrite=True)  # fmt: skip
        extract_patches(tmp_path / "s.zarr", tmp_path / "p.zarr", config)
        patches = xr.open_zarr(tmp_path / "p.zarr")
        inline_sections = patches.inline_index.values[patches.orientation.values == ORIENTATIONS["inline"]]
        assert sorted(set(inline_sections.tolist())) == [5, 11, 22, 30]  # none is a multiple of the stride


# --- 3. The time axis ------------------------------------------------------------------------------


def test_time_axis_applies_the_time_scalar_like_segyio(tmp_path):
    path = tmp_path / "scaled.sgy"
    write_cube(str(path), np.ones((3, 4, 10), np.float32), inlines=np.arange(3) + 1, crosslines=np.arange(4) + 1,
               delay_ms=10000)  # fmt: skip
    with segyio.open(str(path), "r+", ignore_geometry=True) as handle:
        for number in range(handle.tracecount):
            handle.header[number] = {segyio.TraceField.ScalarTraceHeader: -10}
    with segyio.open(str(path), ignore_geometry=True) as handle:
        expected = np.asarray(handle.samples)
    assert expected[0] == 1000.0
    np.testing.assert_allclose(open_segy_dataset(path).time.values, expected)
    np.testing.assert_allclose(xr.open_dataset(path, engine="segy").time.values, expected)
    segy_to_zarr(path, tmp_path / "s.zarr", IngestConfig())
    np.testing.assert_allclose(open_store(tmp_path / "s.zarr").time.values, expected)


def test_a_zero_sample_interval_is_an_error_or_an_explicit_option(tmp_path):
    path = tmp_path / "nointerval.sgy"
    write_cube(str(path), np.ones((2, 2, 5), np.float32), inlines=np.arange(2) + 1, crosslines=np.arange(2) + 1,
               sample_interval_us=0)  # fmt: skip
    with pytest.raises(SegyFormatError, match="nointerval.sgy.*sample interval of 0.*--sample-interval"):
        segy_to_zarr(path, tmp_path / "s.zarr", IngestConfig())
    assert not (tmp_path / "s.zarr").exists()
    segy_to_zarr(path, tmp_path / "s.zarr", IngestConfig(sample_interval=2.0))
    assert open_store(tmp_path / "s.zarr").time.values.tolist() == [0.0, 2.0, 4.0, 6.0, 8.0]
    assert open_segy_dataset(path, sample_interval=0.5).time.values[1] == 0.5
    with segyio.open(str(path), "r+", ignore_geometry=True) as handle:  # two headers that disagree
        handle.bin.update(hdt=2000)
        handle.header[0] = {segyio.TraceField.TRACE_SAMPLE_INTERVAL: 4000}
    with pytest.raises(
        SegyFormatError, match="2000 us and the first trace header 4000 us; pass --sample-interval"
    ):
        open_segy_dataset(path)


# --- 5. Stale state --------------------------------------------------------------------------------


def _kill_rank_worker_when_it_starts(client, deadline: float = 120) -> None:
    """Kill the worker that runs a training rank as soon as the rank is running there."""
    stop = time.time() + deadline
    while time.time() < stop:
        for worker, keys in client.processing().items():
            if any(str(key).startswith("train-rank") for key in keys):
                time.sleep(0.3)  # inside the first epoch: its shards are read, no checkpoint yet
                os.kill(client.run(os.getpid, workers=[worker])[worker], signal.SIGKILL)
                return
        time.sleep(0.01)


def test_a_restarted_overwrite_never_continues_an_older_run(labelled_store, tmp_path):
    from distributed import Client

    extract_patches(labelled_store, tmp_path / "p.zarr", PatchesConfig(kind="trace", size=32, per_class=2500))
    model = tmp_path / "m.pt"
    stale = TrainConfig(model="mlp", epochs=1, seed=1, batch_size=4)
    train_model(tmp_path / "p.zarr", model, stale)
    stale_history = load_checkpoint(model)["history"]
    config = stale.model_copy(update={"epochs": 2, "seed": 2, "overwrite": True, "max_restarts": 2})
    with process_cluster(2) as address, Client(address) as client:
        killer = threading.Thread(target=_kill_rank_worker_when_it_starts, args=(client,))
        killer.start()
        summary = train_model(tmp_path / "p.zarr", model, config, client)
        killer.join()
    history = load_checkpoint(model)["history"]
    assert summary["restarts"] >= 1
    assert len(history) == 2 and history[0] != stale_history[0], (history, stale_history)


def _small_workflow(folder: Path, inlines: list[int]) -> Path:
    document = yaml.safe_load(SMALL)
    document["steps"][2]["labels"]["inlines"] = inlines
    path = folder / "wf.yaml"
    path.write_text(yaml.safe_dump(document))
    return path


def test_a_rerun_does_nothing_unless_settings_or_inputs_changed(tmp_path, cluster_client):
    path = _small_workflow(tmp_path, [104, 116, 126])
    first = run_workflow(path, cluster_client, echo=lambda line: None)
    assert [step["status"] for step in first["steps"]] == ["ran"] * 7
    again = run_workflow(path, cluster_client, echo=lambda line: None)
    assert [step["status"] for step in again["steps"]] == ["skipped"] * 7
    assert again["metrics"] == first["metrics"]
    _small_workflow(tmp_path, [106, 118, 128])  # the labelled inlines change
    changed = run_workflow(path, cluster_client, echo=lambda line: None)
    assert [step["status"] for step in changed["steps"]] == ["skipped"] * 2 + ["ran"] * 5
    labelled = np.flatnonzero(
        (open_store(tmp_path / "data" / "s.zarr", require=("labels",)).labels.values >= 0).any((1, 2))
    )
    assert labelled.tolist() == [6, 18, 28]


def test_outputs_the_user_changed_are_kept_and_what_depends_on_them_reruns(tmp_path, cluster_client):
    path = _small_workflow(tmp_path, [104, 116, 126])
    run_workflow(path, cluster_client, echo=lambda line: None)
    store = tmp_path / "data" / "s.zarr"
    # the user labels two more inlines by hand, as the demo's "label next" advice says
    sf.attach_labels(
        store, tmp_path / "data" / "labels.sgy", inlines=(104, 110, 116, 120, 126), overwrite=True
    )
    lines: list[str] = []
    again = run_workflow(path, cluster_client, echo=lines.append)
    statuses = [step["status"] for step in again["steps"]]
    assert statuses == ["skipped", "skipped", "kept"] + ["ran"] * 4, lines  # before: labels ran again
    assert "[labels] outputs changed since this workflow wrote them: kept (--force redoes it)" in lines
    labelled = np.flatnonzero((open_store(store, require=("labels",)).labels.values >= 0).any((1, 2)))
    assert labelled.tolist() == [4, 10, 16, 20, 26]  # the user's labels, not the file's three inlines
    assert [step["status"] for step in run_workflow(path, cluster_client, echo=print)["steps"]] == [
        "skipped"
    ] * 7
    forced = run_workflow(path, cluster_client, force=True, echo=lambda line: None)
    assert [step["status"] for step in forced["steps"]] == ["ran"] * 7
    labelled = np.flatnonzero((open_store(store, require=("labels",)).labels.values >= 0).any((1, 2)))
    assert labelled.tolist() == [4, 16, 26]


def test_an_incomplete_output_is_never_up_to_date(tmp_path, cluster_client):
    path = _small_workflow(tmp_path, [104, 116, 126])
    run_workflow(path, cluster_client, echo=lambda line: None)
    root = tmp_path / "data" / "s.zarr" / "zarr.json"
    document = json.loads(root.read_text())
    document["attributes"]["seisfacies_incomplete"] = ["facies"]  # as a run stopped half-way leaves it
    root.write_text(json.dumps(document))
    again = run_workflow(path, cluster_client, echo=lambda line: None)
    assert [step["step"] for step in again["steps"] if step["status"] == "ran"] == ["predict", "evaluate"]


# --- 6. Data-parallel training ---------------------------------------------------------------------


@pytest.fixture(scope="module")
def section_patches(labelled_store, tmp_path_factory):
    out = tmp_path_factory.mktemp("sections") / "p.zarr"
    extract_patches(labelled_store, out, PatchesConfig(kind="section", size=16, stride=2, per_class=41,
                                                       split_block=8))  # fmt: skip
    return out


def test_two_ranks_train_like_one_process_with_batchnorm(section_patches, tmp_path, cluster_client):
    config = TrainConfig(model="cnn2d", optimizer="sgd", epochs=2, batch_size=4, lr=0.01, schedule="constant",
                         shards=2, seed=5, model_options={"base": 4, "depth": 1})  # fmt: skip
    train_model(section_patches, tmp_path / "one.pt", config)
    train_model(
        section_patches, tmp_path / "two.pt", config.model_copy(update={"workers": 2}), cluster_client
    )
    one, two = load_checkpoint(tmp_path / "one.pt"), load_checkpoint(tmp_path / "two.pt")
    for first, second in zip(one["history"], two["history"]):
        for key in ("train_loss", "val_loss"):
            assert first[key] == pytest.approx(second[key], rel=1e-3), (
                key,
                one["history"],
                two["history"],
            )
    for key, value in one["state_dict"].items():
        torch.testing.assert_close(value, two["state_dict"][key], rtol=1e-4, atol=1e-5, msg=key)


def test_shards_hold_every_training_patch(section_patches):
    attrs = patch_attrs(str(section_patches))
    n_train = int((xr.open_zarr(section_patches).split.values == 0).sum())
    shards = next(count for count in (3, 4, 5, 7) if n_train % count)  # uneven shards are the case under test
    config = TrainConfig(model="cnn2d")
    sizes = [len(load_shard(str(section_patches), 0, s, shards, config, attrs)[0]) for s in range(shards)]
    assert sum(sizes) == n_train and max(sizes) - min(sizes) <= 1


def test_shards_that_do_not_fit_the_ranks_are_refused_before_any_work(section_patches, tmp_path):
    with pytest.raises(ConfigError, match="--shards 1: must be a multiple of --workers 2"):
        train_model(section_patches, tmp_path / "m.pt", TrainConfig(model="cnn2d", workers=2, shards=1))
    assert not (tmp_path / "m.pt").exists()


# --- 7. Smaller findings ---------------------------------------------------------------------------


def test_label_values_beyond_int16_are_refused_not_wrapped(labelled_store, tmp_path):
    with pytest.raises(LabelError, match="label value 40000 is outside"):
        to_classes(np.array([1.0, 40000.0]), unlabelled=None, n_classes=None)
    shape = open_store(labelled_store).amplitude.shape
    values = np.zeros(shape, np.int32)
    values[0, 0, 0] = 40000
    np.save(tmp_path / "big.npy", values)
    with pytest.raises(LabelError, match="big.npy"):
        attach_labels(labelled_store, tmp_path / "big.npy", LabelsConfig(overwrite=True))


def test_unclassified_values_are_refused_by_an_unsigned_export(tmp_path):
    write_test_segy(tmp_path / "u8.sgy", (4, 3, 6), sample_format=16)
    segy_to_zarr(tmp_path / "u8.sgy", tmp_path / "s.zarr", IngestConfig())
    labels = np.full((4, 3, 6), -1, np.int16)
    labels[0] = 1
    np.save(tmp_path / "l.npy", labels)
    attach_labels(tmp_path / "s.zarr", tmp_path / "l.npy", LabelsConfig(classes="a,b"))
    with pytest.raises(StoreError, match=r"out.sgy.*value -1 does not fit the 1-byte unsigned"):
        zarr_to_segy(tmp_path / "s.zarr", tmp_path / "out.sgy", ExportConfig(variable="labels"))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["l.npy", "s.zarr", "u8.sgy"]


def test_more_than_127_classes_keep_their_numbers():
    from seisfacies.models.inference import BlockOutput

    output = BlockOutput((1, 1, 2), 200, probabilities=False, dtype=class_dtype(200))
    logits = torch.zeros(1, 200, 1, 2)
    logits[0, 150, 0, 0] = logits[0, 199, 0, 1] = 1.0
    output.put((slice(None), slice(None), slice(None)), logits)
    assert output.facies.tolist() == [[[150, 199]]]


def test_segy_label_volumes_use_the_store_header_bytes(tmp_path):
    cube = np.random.default_rng(0).normal(size=(4, 5, 8)).astype(np.float32)
    labels = (np.arange(4)[:, None, None] % 3 * np.ones((4, 5, 8))).astype(np.float32)
    grid = {"inlines": np.arange(4) + 7, "crosslines": np.arange(5) + 40, "iline_byte": 9, "xline_byte": 21}
    write_cube(str(tmp_path / "seismic.sgy"), cube, **grid)
    write_cube(str(tmp_path / "labels.sgy"), labels, sample_format=3, **grid)
    segy_to_zarr(tmp_path / "seismic.sgy", tmp_path / "s.zarr", IngestConfig(iline_byte=9, xline_byte=21))
    attach_labels(tmp_path / "s.zarr", tmp_path / "labels.sgy", LabelsConfig(classes="a,b,c"))
    np.testing.assert_array_equal(open_store(tmp_path / "s.zarr", require=("labels",)).labels.values, labels)


def _sleep_or_fail(item: tuple[str, int]) -> int:
    folder, number = item
    if number == 0:
        raise ValueError("task 0 failed on purpose")
    time.sleep(1.0)
    Path(folder, f"done-{number}").touch()
    return number


def test_a_failed_task_is_reported_at_once_and_the_rest_cancelled(tmp_path, cluster_client):
    with pytest.raises(ValueError, match="task 0 failed on purpose"):
        run_tasks(_sleep_or_fail, [(str(tmp_path), n) for n in range(8)], cluster_client)
    assert len(list(tmp_path.glob("done-*"))) <= 2  # at most the tasks already running


def test_requires_python_is_what_zarr_3_needs():
    assert metadata("seisfacies")["Requires-Python"] == ">=3.11"


def test_reading_many_files_keeps_a_bounded_number_of_descriptors(tmp_path):
    def open_descriptors() -> int:
        return len(os.listdir("/proc/self/fd"))

    paths = []
    for number in range(48):
        paths.append(tmp_path / f"f{number}.sgy")
        write_test_segy(paths[-1], (2, 2, 4))
    before = open_descriptors()
    for path in paths:
        layout = read_layout(path)
        read_block(layout, np.array([[0]]))
    assert open_descriptors() - before <= 32


# --- Failures name their cause ---------------------------------------------------------------------


@pytest.fixture
def cli_run(cluster_client):
    address = cluster_client.scheduler.address

    def invoke(*args: str, env: dict | None = None, scheduler: bool = True):
        argv = [*args, "--scheduler", address] if scheduler else list(args)
        return CliRunner().invoke(cli, argv, catch_exceptions=False, env=env)

    return invoke


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the error on a machine without CUDA")
def test_a_failed_rank_reports_its_real_error(section_patches, tmp_path, cli_run):
    result = cli_run(
        "train", str(section_patches), str(tmp_path / "m.pt"), "--device", "cuda", "--epochs", "1"
    )
    # refused on the client, before any rank starts (earlier: the rank's own error, "training rank 0: ...")
    assert_one_line_error(result, "--device cuda", "no CUDA device on the worker of rank 0", "--device cpu")


def test_resume_refuses_a_checkpoint_from_another_store(labelled_store, synthetic_survey, tmp_path):
    other = tmp_path / "other.zarr"
    segy_to_zarr(synthetic_survey["seismic"], other, IngestConfig(chunks="16,16,32"))
    attach_labels(other, synthetic_survey["labels"], LabelsConfig())
    patches = PatchesConfig(kind="trace", size=16, per_class=20)
    extract_patches(labelled_store, tmp_path / "a.zarr", patches)
    extract_patches(other, tmp_path / "b.zarr", patches)
    train_model(tmp_path / "a.zarr", tmp_path / "m.pt", TrainConfig(model="mlp", epochs=1))
    with pytest.raises(
        ConfigError, match=r"m.pt: --resume: the checkpoint was trained on .*s.zarr, not .*other.zarr"
    ):
        train_model(tmp_path / "b.zarr", tmp_path / "m.pt", TrainConfig(model="mlp", epochs=2, resume=True))
    assert load_checkpoint(tmp_path / "m.pt")["epoch"] == 1


@pytest.mark.parametrize("address", ["not a url", "foo:bar"])
def test_a_bad_scheduler_address_is_one_line(tmp_path, address):
    write_test_segy(tmp_path / "in.sgy", (3, 3, 8))
    runner = CliRunner()
    result = runner.invoke(
        cli, ["ingest", str(tmp_path / "in.sgy"), str(tmp_path / "s.zarr"), "--scheduler", address]
    )
    assert_one_line_error(result, repr(address), "tcp://")
    result = runner.invoke(cli, ["ingest", str(tmp_path / "in.sgy"), str(tmp_path / "s.zarr")],
                           env={"DASK_SCHEDULER_ADDRESS": address})  # fmt: skip
    assert_one_line_error(result, repr(address), "DASK_SCHEDULER_ADDRESS")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in.sgy"]


def test_random_bytes_are_refused_naming_the_file(tmp_path, cli_run):
    (tmp_path / "noise.sgy").write_bytes(np.random.default_rng(1).bytes(20000))
    result = cli_run("ingest", str(tmp_path / "noise.sgy"), str(tmp_path / "s.zarr"))
    assert_one_line_error(result, "noise.sgy", "not a SEG-Y file")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["noise.sgy"]


def test_ctrl_c_during_ingest_is_one_line_exit_130_and_leaves_nothing(tmp_path):
    write_large_segy(tmp_path / "big.sgy", (160, 160, 600))
    command = [str(BIN / "seisfacies"), "ingest", "big.sgy", "s.zarr", "--chunks", "16,16,600"]
    process = subprocess.Popen(command, cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                               start_new_session=True)  # fmt: skip
    deadline = time.time() + 120
    while time.time() < deadline and not glob.glob(str(tmp_path / ".s.zarr.partial-*" / "amplitude" / "c")):
        time.sleep(0.02)
    time.sleep(0.3)
    assert process.poll() is None, "ingest finished before it could be interrupted"
    os.killpg(process.pid, signal.SIGINT)  # as a terminal's Ctrl-C: the whole process group
    _, stderr = process.communicate(timeout=120)
    lines = stderr.decode().strip().splitlines()
    assert process.returncode == 130, stderr.decode()
    assert "Traceback" not in stderr.decode() and "KeyboardInterrupt" not in stderr.decode(), stderr.decode()
    assert lines[-1].startswith("seisfacies: error: ingest interrupted"), lines
    assert sorted(p.name for p in tmp_path.iterdir()) == ["big.sgy"]


def test_train_on_a_store_smaller_than_the_default_patch_picks_one_that_fits(tmp_path, cli_run):
    assert cli_run("synth", str(tmp_path / "d"), "--shape", "48", "48", "64", scheduler=False).exit_code == 0
    assert cli_run("ingest", str(tmp_path / "d" / "seismic.sgy"), str(tmp_path / "s.zarr")).exit_code == 0
    result = cli_run(
        "labels", str(tmp_path / "s.zarr"), str(tmp_path / "d" / "labels.sgy"), "--inlines", "110,130"
    )
    assert result.exit_code == 0, result.output
    result = cli_run("train", str(tmp_path / "s.zarr"), str(tmp_path / "m.pt"), "--epochs", "1",
                     "--model-options", '{"base": 4, "depth": 1}')  # fmt: skip
    assert result.exit_code == 0, result.output
    assert "section patches of 48 instead" in result.output
    assert load_checkpoint(tmp_path / "m.pt")["patch"]["size"] == 48


def test_a_commit_stopped_after_any_metadata_write_leaves_no_stale_consolidated_copy(tmp_path):
    """A commit's writes in order: the incomplete mark, the variables, the root's attributes, the copy.

    The root's consolidated copy was rewritten with the mark and kept through
    the rest: plain xarray, which reads that copy, saw the old variables'
    attributes (their write id, the model's hash) over the new data, also
    after a writer killed before the end.
    """
    sf.synth(tmp_path / "d", shape=(8, 8, 16))
    store = tmp_path / "s.zarr"
    sf.ingest(tmp_path / "d" / "seismic.sgy", store)
    new = "the commit's new id"
    mark_incomplete(store, ["amplitude"])
    set_variable_attrs(store, "amplitude", {WRITE_ID_ATTR: new})
    with pytest.warns(RuntimeWarning, match="non-consolidated metadata"):  # stopped here
        assert xr.open_zarr(store).amplitude.attrs[WRITE_ID_ATTR] == new
    with pytest.raises(sf.StoreError, match="'amplitude' is incomplete"):
        sf.open_store(store)
    update_root_attrs(store, {INCOMPLETE_ATTR: []})
    with pytest.warns(RuntimeWarning, match="non-consolidated metadata"):  # or here
        assert xr.open_zarr(store).amplitude.attrs[WRITE_ID_ATTR] == new
    assert sf.open_store(store).amplitude.attrs[WRITE_ID_ATTR] == new
    consolidate(store)
    assert xr.open_zarr(store, consolidated=True).amplitude.attrs[WRITE_ID_ATTR] == new
