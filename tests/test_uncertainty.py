"""Calibrated probabilities (temperature scaling), the ``uncertainty`` variable, and where to label next."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from seisfacies.models.calibration import expected_calibration_error, fit_temperature, normalised_entropy
from seisfacies.models.checkpoint import load_checkpoint
from seisfacies.pipeline.labels import UNCERTAINTY_ATTRS
from seisfacies.pipeline.store import open_store
from seisfacies.workflows.config import IngestConfig, LabelsConfig, PatchesConfig, PredictConfig, TrainConfig
from seisfacies.workflows.ingest import segy_to_zarr
from seisfacies.workflows.labels import attach_labels
from seisfacies.workflows.patches import extract_patches
from seisfacies.workflows.predict import predict_volume
from seisfacies.workflows.train import train_model
from tests.conftest import write_labelled_store


def test_a_fitted_temperature_lowers_the_calibration_error_of_over_confident_logits():
    generator = torch.Generator().manual_seed(0)
    targets = torch.randint(0, 4, (5000,), generator=generator)
    wrong = torch.rand(5000, generator=generator) < 0.25  # right 75% of the time...
    predicted = torch.where(wrong, (targets + 1) % 4, targets)
    logits = 8 * F.one_hot(predicted, 4).float() + torch.randn(5000, 4, generator=generator)  # ...sure of all
    before = expected_calibration_error(torch.softmax(logits, 1).numpy(), targets.numpy())
    temperature = fit_temperature(logits, targets)
    after = expected_calibration_error(torch.softmax(logits / temperature, 1).numpy(), targets.numpy())
    assert temperature > 2 and before > 0.2 and after < 0.05 < before


def test_normalised_entropy_is_zero_when_sure_and_one_when_uniform():
    probabilities = torch.tensor([[1.0, 0.0, 0.0], [1 / 3, 1 / 3, 1 / 3], [0.5, 0.5, 0.0]])
    assert normalised_entropy(probabilities).tolist() == pytest.approx([0.0, 1.0, np.log(2) / np.log(3)])


@pytest.fixture(scope="module")
def trained(synthetic_survey, tmp_path_factory):
    folder = tmp_path_factory.mktemp("calibration")
    store = write_labelled_store(synthetic_survey, folder)
    extract_patches(
        store, folder / "p.zarr", PatchesConfig(kind="section", size=16, per_class=60, split_block=8)
    )
    # big enough to learn (held-out accuracy about 0.75): a model at chance says nothing about calibration
    config = TrainConfig(model="cnn2d", epochs=8, model_options={"base": 8, "depth": 2}, seed=1)
    train_model(folder / "p.zarr", folder / "m.pt", config)
    return {"store": store, "model": folder / "m.pt", "folder": folder}


def test_the_recorded_temperature_lowers_the_held_out_error_and_calibration_error(trained):
    """The checkpoint's T makes the held-out patches' probabilities better: lower NLL and ECE than T = 1."""
    from seisfacies.models.calibration import held_out_logits
    from seisfacies.workflows.ranks import load_shard, patch_attrs
    from seisfacies.workflows.train import load_model

    model, payload = load_model(trained["model"])
    patches = str(trained["folder"] / "p.zarr")
    attrs = patch_attrs(patches)
    valid = load_shard(patches, 1, 0, 1, TrainConfig(model="cnn2d"), attrs)
    with torch.no_grad():
        logits, targets = held_out_logits(model, valid)
    temperature = payload["temperature"]
    assert temperature != 1.0
    nll = {t: F.cross_entropy(logits / t, targets).item() for t in (1.0, temperature)}
    ece = {
        t: expected_calibration_error(torch.softmax(logits / t, 1).numpy(), targets.numpy())
        for t in (1.0, temperature)
    }
    assert nll[temperature] < nll[1.0], nll
    assert ece[temperature] < ece[1.0], ece


def test_uncertainty_is_the_normalised_entropy_of_the_calibrated_probabilities(trained):
    predict_volume(trained["store"], trained["model"], PredictConfig(probabilities=True, uncertainty=True))
    dataset = open_store(trained["store"], require=("facies", "probability", "uncertainty"))
    uncertainty = dataset.uncertainty.values.astype(np.float32)
    probability = dataset.probability.values.astype(np.float32)
    assert dataset.uncertainty.dtype == np.float16 and dataset.uncertainty.dims == dataset.amplitude.dims
    for key, value in UNCERTAINTY_ATTRS.items():
        assert dataset.uncertainty.attrs[key] == value
    assert 0 <= uncertainty.min() and uncertainty.max() <= 1 and uncertainty.std() > 0.01
    expected = normalised_entropy(torch.from_numpy(probability), class_axis=0).numpy()
    np.testing.assert_allclose(uncertainty, expected, atol=5e-3)
    # where the classes are wrong, the model should be less sure than where they are right
    truth = dataset.labels.values
    wrong = dataset.facies.values != truth
    assert wrong.any() and uncertainty[wrong].mean() > uncertainty[~wrong].mean()


def test_probabilities_are_divided_by_the_checkpoints_temperature(trained):
    payload = load_checkpoint(trained["model"])
    hot = trained["folder"] / "hot.pt"
    torch.save({**payload, "temperature": payload["temperature"] * 4}, hot)
    results = {}
    for name, model in (("calibrated", trained["model"]), ("hotter", hot)):
        predict_volume(trained["store"], model, PredictConfig(probabilities=True, overwrite=True))
        dataset = open_store(trained["store"], require=("facies", "probability"))
        results[name] = (dataset.facies.values, dataset.probability.values.astype(np.float32))
    np.testing.assert_array_equal(results["calibrated"][0], results["hotter"][0])  # the classes stay
    top = results["calibrated"][1].max(axis=0).mean(), results["hotter"][1].max(axis=0).mean()
    assert top[1] < top[0] - 0.02  # a higher temperature makes every voxel less sure


def test_plot_shows_the_uncertainty_beside_the_facies(trained):
    from seisfacies.workflows.config import PlotConfig
    from seisfacies.workflows.plot import plot_section

    predict_volume(trained["store"], trained["model"], PredictConfig(uncertainty=True, overwrite=True))
    summary = plot_section(trained["store"], trained["folder"] / "u.png", PlotConfig())
    assert summary["panels"][-1].startswith("uncertainty") and len(summary["panels"]) == 3
    assert (trained["folder"] / "u.png").stat().st_size > 10_000


def _store_with_uncertainty(survey, folder, profile: np.ndarray, labelled_position: int):
    """A store whose ``uncertainty`` is ``profile`` along the inlines, labels on one inline."""
    from seisfacies.pipeline.commit import commit_variables, pending_name
    from seisfacies.pipeline.labels import prediction_template
    from seisfacies.pipeline.regions import write_region
    from seisfacies.pipeline.store import add_variables_template, store_chunks

    store = folder / "s.zarr"
    segy_to_zarr(survey["seismic"], store, IngestConfig(chunks="16,16,32"))
    truth = open_store(store).amplitude.shape
    labels = np.full(truth, -1, np.int16)
    labels[labelled_position] = 1
    np.save(folder / "few.npy", labels)
    attach_labels(store, folder / "few.npy", LabelsConfig())
    dataset = open_store(store)
    chunks = store_chunks(dataset)
    template = prediction_template(dataset, ["a", "b"], chunks, False, uncertainty=True)
    add_variables_template(template, str(store), {**chunks, "class": 2})
    everything = {dim: slice(None) for dim in dataset.amplitude.dims}
    write_region(str(store), pending_name("facies"), everything, np.zeros(truth, np.int8))
    values = np.broadcast_to(profile[:, None, None], truth).astype(np.float16)
    write_region(str(store), pending_name("uncertainty"), everything, values)
    commit_variables(str(store), ["facies", "uncertainty"])
    return store


def test_suggest_names_uncertain_inlines_spread_out_and_away_from_the_labels(synthetic_survey, tmp_path):
    import json

    from click.testing import CliRunner

    from seisfacies.workflows.cli import cli

    profile = np.full(40, 0.1)
    profile[5:10] = 0.9  # an uncertain stretch far from the labelled inline: the first pick is its middle
    profile[33] = 1.0  # the most uncertain inline of all, but beside the labelled one: never picked
    store = _store_with_uncertainty(synthetic_survey, tmp_path, profile, labelled_position=32)
    numbers = open_store(store).inline.values
    result = CliRunner().invoke(cli, ["suggest", str(store), "--count", "2", "--json"])
    assert result.exit_code == 0, result.output
    answer = json.loads(result.output)
    assert set(answer) == {"inlines", "scores", "labelled_inlines"}
    assert answer["labelled_inlines"] == [int(numbers[32])]
    # the second fills the widest gap left (between 7 and 32), not beside the first or the label
    assert answer["inlines"] == [int(numbers[7]), int(numbers[20])]
    assert 1 >= answer["scores"][0] > answer["scores"][1] > 0


def test_suggest_without_uncertainty_is_one_line(synthetic_survey, tmp_path):
    from click.testing import CliRunner

    from seisfacies.workflows.cli import cli
    from tests.test_cli import assert_one_line_error

    segy_to_zarr(synthetic_survey["seismic"], tmp_path / "s.zarr", IngestConfig())
    result = CliRunner().invoke(cli, ["suggest", str(tmp_path / "s.zarr")])
    assert_one_line_error(result, "uncertainty")
