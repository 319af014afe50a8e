"""Quality from few labels: sections with their neighbours as input channels, mirrored test-time averaging."""

from __future__ import annotations

import shutil

import numpy as np
import pytest
import torch

import seisfacies.workflows.predict as predict
from seisfacies.models.checkpoint import load_checkpoint
from seisfacies.models.inference import InferenceOptions, classify_block
from seisfacies.models.registry import create_model_for_patches
from seisfacies.pipeline.exceptions import ConfigError
from seisfacies.pipeline.store import open_store
from seisfacies.workflows.config import IngestConfig, PatchesConfig, PredictConfig, TrainConfig
from seisfacies.workflows.ingest import segy_to_zarr
from seisfacies.workflows.patches import extract_patches
from seisfacies.workflows.predict import predict_volume
from seisfacies.workflows.train import train_model
from tests.conftest import write_labelled_store

SIZE, NEIGHBOURS = 16, 2


@pytest.fixture(scope="module")
def neighbour_patches(synthetic_survey, tmp_path_factory):
    folder = tmp_path_factory.mktemp("neighbours")
    store = write_labelled_store(synthetic_survey, folder)
    config = PatchesConfig(
        kind="section", size=SIZE, per_class=40, split_block=8, augment=("flip",), neighbours=NEIGHBOURS
    )
    extract_patches(store, folder / "p.zarr", config)
    return {"store": store, "patches": folder / "p.zarr", "folder": folder}


def test_section_patches_carry_the_neighbouring_sections_clamped_at_the_edges(neighbour_patches):
    dataset = open_store(neighbour_patches["store"], require=("labels",))
    amplitude, labels = dataset.amplitude.values, dataset.labels.values
    patches = open_store(neighbour_patches["patches"], require=())
    x, y = patches.x.values, patches.y.values
    assert patches.x.dims == ("patch", "section_offset", "window_width", "window_vertical")
    assert patches.attrs["neighbours"] == NEIGHBOURS
    inlines = patches.inline_index.values
    assert inlines.min() < NEIGHBOURS and inlines.max() >= amplitude.shape[0] - NEIGHBOURS  # edges drawn
    for n, (i, j, k, flip) in enumerate(
        zip(inlines, patches.crossline_index.values, patches.sample_index.values, patches.flip.values)
    ):
        across = slice(j - SIZE // 2, j + SIZE // 2)
        down = slice(k - SIZE // 2, k + SIZE // 2)
        sections = np.clip(np.arange(i - NEIGHBOURS, i + NEIGHBOURS + 1), 0, amplitude.shape[0] - 1)
        expected_x, expected_y = amplitude[sections, across, down], labels[i, across, down]
        if flip:
            expected_x, expected_y = expected_x[:, ::-1], expected_y[::-1]
        np.testing.assert_array_equal(x[n], expected_x)
        np.testing.assert_array_equal(y[n], expected_y)


@pytest.fixture(scope="module")
def neighbour_model(neighbour_patches):
    out = neighbour_patches["folder"] / "m.pt"
    config = TrainConfig(model="cnn2d", epochs=2, model_options={"base": 4, "depth": 1}, seed=2)
    train_model(neighbour_patches["patches"], out, config)
    return out


def test_train_without_epochs_runs_the_models_own_and_records_them(neighbour_patches, tmp_path):
    out = tmp_path / "default.pt"
    summary = train_model(
        neighbour_patches["patches"], out, TrainConfig(model="cnn2d", model_options={"base": 4})
    )
    checkpoint = load_checkpoint(str(out))
    assert summary["epochs"] == 9 and len(checkpoint["history"]) == 9
    assert checkpoint["train_config"]["epochs"] == 9
    assert checkpoint["model_config"]["depth"] == 3  # the cnn2d default: three levels
    assert TrainConfig().epochs is None  # the option itself stays unset: the model decides


def test_resume_rebuilds_the_checkpoints_network_and_epochs_not_todays_defaults(neighbour_patches, tmp_path):
    # a checkpoint of the old defaults' shape (two levels, 12 epochs there; 3 here), cut short at 2
    out = tmp_path / "old.pt"
    old = TrainConfig(model="cnn2d", epochs=3, model_options={"base": 4, "depth": 2}, time_budget=0.001)
    train_model(neighbour_patches["patches"], out, old)  # stops after its first epoch
    assert len(load_checkpoint(str(out))["history"]) == 1
    train_model(neighbour_patches["patches"], out, TrainConfig(model="cnn2d", resume=True))
    checkpoint = load_checkpoint(str(out))
    assert checkpoint["model_config"]["depth"] == 2 and checkpoint["model_config"]["base"] == 4
    assert [row["epoch"] for row in checkpoint["history"]] == [1, 2, 3]  # its own 3 epochs, not 9


def test_a_model_with_neighbours_predicts_the_same_whatever_the_chunking(
    neighbour_patches, neighbour_model, synthetic_survey, tmp_path, monkeypatch
):
    whole = tmp_path / "whole.zarr"
    shutil.copytree(neighbour_patches["store"], whole)
    predict_volume(whole, neighbour_model, PredictConfig())
    expected = open_store(whole, require=("facies",)).facies.values
    # one chunk per task, 5 inlines a chunk: every task needs its neighbours' sections from the halo
    small = tmp_path / "small.zarr"
    segy_to_zarr(synthetic_survey["seismic"], small, IngestConfig(chunks="5,7,24"))
    monkeypatch.setattr(predict, "TASK_BUDGET_BYTES", 1)
    monkeypatch.setattr(predict, "MIN_HALOS_PER_TASK", 0)
    summary = predict_volume(small, neighbour_model, PredictConfig())
    assert summary["tasks"] > 8 * 6
    np.testing.assert_array_equal(open_store(small, require=("facies",)).facies.values, expected)


def _classify(model, block: np.ndarray, mirror: bool, **options) -> np.ndarray:
    payload = {
        "patch": {
            "kind": "section",
            "size": 8,
            "orientations": ["inline"],
            "volume_dims": ["inline", "crossline", "time"],
            "neighbours": 1,
        },
        "class_names": ["a", "b", "c"],
        "model_name": "cnn2d",
    }
    keep = tuple(slice(0, size) for size in block.shape)
    options = InferenceOptions(probabilities=True, mirror=mirror, **options)
    return classify_block(model, payload, block, keep, options).probability.astype(np.float32)


@pytest.mark.parametrize("mirror", [True, False])
def test_mirrored_averaging_gives_the_mirrored_answer_for_a_mirrored_section(mirror):
    torch.manual_seed(0)
    model = create_model_for_patches("cnn2d", 3, 8, in_channels=3, base=4, depth=1).eval()
    block = np.random.default_rng(0).normal(size=(5, 12, 16)).astype(np.float32)
    mirrored_answer = _classify(model, np.ascontiguousarray(block[:, ::-1]), mirror)
    answer = _classify(model, block, mirror)
    symmetric = np.allclose(mirrored_answer, answer[:, :, ::-1], atol=2e-3)
    assert symmetric == mirror  # an untrained net is not symmetric by itself; the average is


def test_neighbours_mirror_and_smoothing_give_the_same_answer_on_the_device_path():
    """The GPU's path (the whole block copied to the device, sections cut there) on the CPU device."""
    torch.manual_seed(0)
    model = create_model_for_patches("cnn2d", 3, 8, in_channels=3, base=4, depth=1).eval()
    block = np.random.default_rng(1).normal(size=(7, 12, 16)).astype(np.float32)
    host = _classify(model, block, True, smooth=2, batch_size=2, block_on_device=False)
    device = _classify(model, block, True, smooth=2, batch_size=2, block_on_device=True)
    np.testing.assert_allclose(device, host, atol=2e-4)  # float16 probabilities
    single = _classify(model, block, False, batch_size=2)
    assert np.abs(single - host).max() > 2e-3  # smoothing and mirroring did change the answer


def test_smoothing_runs_the_network_once_per_section():
    # smoothing over N sections must reuse their logits, not rerun them for every batch (5x the work
    # and memory at smooth 2 when one long section fills a pass)
    torch.manual_seed(0)
    model = create_model_for_patches("cnn2d", 3, 8, in_channels=3, base=4, depth=1).eval()
    seen = []
    model.register_forward_hook(lambda module, inputs, output: seen.append(len(inputs[0])))
    block = np.random.default_rng(2).normal(size=(7, 12, 16)).astype(np.float32)
    _classify(model, block, False, smooth=2, batch_size=1)
    assert sum(seen) == 7  # every section of the block through the network once


def test_neighbour_patches_are_refused_where_they_cannot_be_used(neighbour_patches, tmp_path):
    with pytest.raises(ConfigError, match="cnn2d_patch classifies one section at a time") as error:
        train_model(
            neighbour_patches["patches"], tmp_path / "m.pt", TrainConfig(model="cnn2d_patch", epochs=1)
        )
    assert "\n" not in str(error.value)
    with pytest.raises(ConfigError, match="option --neighbours 2: only section patches"):
        config = PatchesConfig(kind="trace", neighbours=2)
        extract_patches(neighbour_patches["store"], tmp_path / "p.zarr", config)
    assert not (tmp_path / "p.zarr").exists()
