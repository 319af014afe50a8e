"""The interpreter's survey: picked horizons, labels between them, maps along them, attributes as inputs.

Real Zarr stores ingested from SEG-Y (the synthetic survey: a rotated grid,
16 x 16 x 32 chunks, so every command runs several tasks), the session's
2-process cluster, and results compared with NumPy and SciPy computed here.
"""

from __future__ import annotations

import numpy as np
import pytest
import scipy.signal
import xarray as xr
from click.testing import CliRunner

import seisfacies as sf
from seisfacies.models.checkpoint import load_checkpoint
from seisfacies.pipeline.exceptions import HorizonError
from seisfacies.pipeline.horizons import check_fit, fit_grid, picks_text, rotated_grid
from seisfacies.pipeline.segy_write import write_cube
from seisfacies.workflows.cli import cli
from tests.test_cli import assert_one_line_error


@pytest.fixture(scope="module")
def survey(synthetic_survey, tmp_path_factory):
    """The synthetic survey ingested, with its generator's horizons h1..h5 read back as arrays."""
    folder = tmp_path_factory.mktemp("interpretation")
    store = folder / "s.zarr"
    sf.ingest(synthetic_survey["seismic"], store, chunks="16,16,32")
    dataset = sf.open_store(store)
    picks = np.loadtxt(synthetic_survey["horizons"], dtype=str, skiprows=2)
    surfaces = np.full((5, dataset.sizes["inline"], dataset.sizes["crossline"]), np.nan)
    for name, inline, crossline, time in picks:
        i = int(inline) - int(dataset.inline[0])
        j = int(crossline) - int(dataset.crossline[0])
        surfaces[int(name[1:]) - 1, i, j] = float(time)
    return {"folder": folder, "store": store, "surfaces": surfaces, "dataset": dataset, **synthetic_survey}


def _copy(survey, tmp_path, name="s.zarr"):
    import shutil

    target = tmp_path / name
    shutil.copytree(survey["store"], target)
    return target


def _write(path, lines: list[str]) -> str:
    path.write_text("\n".join(lines) + "\n")
    return str(path)


def test_horizons_from_a_name_column_land_on_the_grid_shallow_to_deep(survey, tmp_path):
    store = _copy(survey, tmp_path)
    summary = sf.import_horizons(store, survey["horizons"], columns="name,inline,crossline,time")
    horizons = sf.open_store(store, require=("horizons",)).horizons
    assert horizons.dims == ("horizon", "inline", "crossline")
    assert [str(h) for h in horizons.horizon.values] == ["h1", "h2", "h3", "h4", "h5"]
    assert horizons.attrs["units"] == "ms" and horizons.attrs["positive"] == "down"
    np.testing.assert_allclose(horizons.values, survey["surfaces"], atol=0.01)  # NaN where not picked
    picked = np.isfinite(survey["surfaces"]).sum(axis=(1, 2))
    assert [summary["horizons"][f"h{n + 1}"]["picked"] for n in range(5)] == picked.tolist()
    assert "grid_fit_residual" not in summary


def test_xy_picks_on_a_rotated_grid_give_the_same_horizon_as_line_numbers(survey, tmp_path):
    store = _copy(survey, tmp_path)
    dataset = survey["dataset"]
    x, y = dataset.cdp_x.values, dataset.cdp_y.values
    jitter = np.random.default_rng(0).uniform(-2.0, 2.0, (2, *x.shape))  # well inside a 25 m bin
    top = survey["surfaces"][1]
    rows = ["X,Y,TWT", *(f"{x[i, j] + jitter[0, i, j]:.2f},{y[i, j] + jitter[1, i, j]:.2f},{top[i, j]:.2f}"
                         for i, j in np.argwhere(np.isfinite(top)))]  # fmt: skip
    summary = sf.import_horizons(store, _write(tmp_path / "top.csv", rows), columns="x,y,time")
    stored = sf.open_store(store, require=("horizons",)).horizons.sel(horizon="top").values
    np.testing.assert_allclose(stored, top, atol=0.01)
    assert summary["grid_fit_residual"] < 0.01  # the grid itself is exactly regular
    angle_x, angle_y = rotated_grid(5, 4, azimuth_deg=30.0)
    rng = np.random.default_rng(1)
    with pytest.raises(HorizonError, match="not a regular grid"):
        check_fit(fit_grid(angle_x + rng.normal(0, 8.0, angle_x.shape), angle_y), "s.zarr")


@pytest.mark.parametrize(
    ("lines", "columns", "words"),
    [
        (
            ["inline crossline time", "100 300 40", "999 300 40"],
            "inline,crossline,time",
            ["top.txt:3", "inline 999"],
        ),
        (["100 300 40", "101 300 9000"], "inline,crossline,time", ["top.txt:2", "time 9000", "range"]),
        (["100 300 40", "100 300 80"], "inline,crossline,time", ["top.txt:2", "picked twice", "line 1"]),
        (["100 300 40", "oops"], "inline,crossline,time", ["top.txt:2", "'oops'"]),
        (["100 300 40"], "inline,crossline,depth", ["picks are in depth", "is in time"]),
        (["1 2 3"], "inline,x,time", ["--columns"]),
        (["600000 6900000 40"], "x,y,time", ["top.txt:1", "off the store's grid"]),
        (["a/b 100 300 40"], "name,inline,crossline,time", ["top.txt:1", "'a/b' is not a word"]),
    ],
)
def test_bad_picks_are_one_line_naming_the_file_line_and_value(survey, tmp_path, lines, columns, words):
    store = _copy(survey, tmp_path)
    picks = _write(tmp_path / "top.txt", lines)
    result = CliRunner().invoke(cli, ["horizons", str(store), picks, "--columns", columns])
    assert_one_line_error(result, *words)
    assert "horizons" not in xr.open_zarr(store).variables  # nothing half-written


def test_crossing_horizons_are_refused_with_the_pick_that_crosses(survey, tmp_path):
    store = _copy(survey, tmp_path)
    upper = _write(tmp_path / "upper.txt", ["100 300 40", "100 301 40", "100 302 90"])
    lower = _write(tmp_path / "lower.txt", ["100 300 60", "100 301 60", "100 302 70"])
    result = CliRunner().invoke(cli, ["horizons", str(store), upper, lower])
    assert_one_line_error(result, "upper.txt:3", "'upper' at 90", "lower.txt:3", "cross")


def test_gaps_stay_empty_unless_a_fill_is_asked_for(survey, tmp_path):
    store = _copy(survey, tmp_path)
    inline, crossline = np.meshgrid(np.arange(100, 140), np.arange(300, 336), indexing="ij")
    plane = 20.0 + 0.5 * (inline - 100) + 0.25 * (crossline - 300)  # linear: filled exactly
    picked = (inline % 4 == 0) & (crossline % 3 == 0) | (inline == 139) | (crossline == 335)
    rows = [f"{a} {b} {t:.3f}" for a, b, t in zip(inline[picked], crossline[picked], plane[picked])]
    path = _write(tmp_path / "plane.txt", rows)
    sf.import_horizons(store, path)
    stored = sf.open_store(store, require=("horizons",)).horizons.values[0]
    assert np.isnan(stored[~picked]).all() and np.allclose(stored[picked], plane[picked], atol=1e-3)
    summary = sf.import_horizons(store, path, fill="linear", overwrite=True)
    filled = sf.open_store(store, require=("horizons",)).horizons.values[0]
    assert summary["horizons"]["plane"]["filled"] == int((~picked).sum())
    np.testing.assert_allclose(filled, plane, atol=1e-3)
    sf.import_horizons(store, path, fill="nearest", overwrite=True)
    nearest = sf.open_store(store, require=("horizons",)).horizons.values[0]
    assert np.isfinite(nearest).all() and np.isin(nearest.round(3), plane[picked].round(3)).all()


def test_labels_between_horizons_are_the_intervals_numpy_gives(survey, tmp_path, cluster_client):
    store = _copy(survey, tmp_path)
    surfaces = survey["surfaces"][[0, 1, 3]].copy()  # h1, h2, h4
    surfaces[1, :5] = np.nan  # h2 unpicked on the first five inlines: between h1 and h4 unlabelled there
    dataset = survey["dataset"]
    text = picks_text(surfaces, ["h1", "h2", "h4"], dataset.inline.values, dataset.crossline.values)
    picks = _write(tmp_path / "picks.txt", text.splitlines())
    sf.import_horizons(store, picks, columns="name,inline,crossline,time")
    summary = sf.attach_labels(
        store, between=("h1", "h2", "h4"), classes="above,upper,lower,below", crosslines=(310, 320),
        client=cluster_client,
    )  # fmt: skip
    time = survey["dataset"].time.values
    expected = np.full(survey["dataset"].amplitude.shape, -1, np.int16)
    for interval in range(4):
        inside = np.ones(expected.shape, bool)
        if interval:
            inside &= time >= surfaces[interval - 1][..., None]
        if interval < 3:
            inside &= time < surfaces[interval][..., None]
        expected[inside] = interval
    expected[:, [j for j in range(36) if j + 300 not in (310, 320)]] = -1
    labels = sf.open_store(store, require=("labels",)).labels
    np.testing.assert_array_equal(labels.values, expected)
    assert labels.attrs["flag_meanings"] == "above upper lower below" and summary["kind"] == "horizons"
    assert set(np.unique(labels.values[:5, 10]).tolist()) == {-1, 0, 3}  # h2 missing: nothing between h1, h4
    patches = sf.extract_patches(store, tmp_path / "p.zarr", kind="section", size=16, per_class=20,
                                 orientation="crossline", client=cluster_client)  # fmt: skip
    assert set(patches["train"]) == {"above", "upper", "lower", "below"} and patches["classes_in_depth_order"]
    # intervals between horizons: training from the store adds the depth input, predict decides in depth order
    trained = sf.train(store, tmp_path / "m.pt", epochs=1, model_options={"base": 4, "depth": 1},
                       client=cluster_client)  # fmt: skip
    checkpoint = load_checkpoint(tmp_path / "m.pt")
    assert "stratigraphic intervals" in trained["patches_note"]
    assert (
        checkpoint["patch"]["inputs"] == ["amplitude", "depth"]
        and checkpoint["patch"]["classes_in_depth_order"]
    )
    assert sf.predict(store, tmp_path / "m.pt", client=cluster_client)["class_order"] == "depth"
    assert (np.diff(sf.open_store(store, require=("facies",)).facies.values, axis=-1) >= 0).all()


def test_labels_between_refuse_unknown_or_misordered_horizons(survey, tmp_path):
    store = _copy(survey, tmp_path)
    sf.import_horizons(store, survey["horizons"], columns="name,inline,crossline,time")
    with pytest.raises(HorizonError, match="also in"):
        sf.import_horizons(store, [survey["horizons"], survey["horizons"]], overwrite=True,
                           columns="name,inline,crossline,time")  # fmt: skip
    for between, words in (("h1,h9", ["--between", "'h9'", "h1, h2"]), ("h3,h1", ["'h3' lies below 'h1'"])):
        result = CliRunner().invoke(cli, ["labels", str(store), "--between", between])
        assert_one_line_error(result, *words)
    result = CliRunner().invoke(cli, ["labels", str(store), "--between", "h1,h2", "--classes", "a,b"])
    assert_one_line_error(result, "--classes", "give 3 names")
    result = CliRunner().invoke(cli, ["labels", str(store)])
    assert_one_line_error(result, "SOURCE", "--between")


def _numpy_window(volume, time, upper, lower, include_lower):
    below = time >= upper[..., None]
    above = time <= lower[..., None] if include_lower else time < lower[..., None]
    return below & above


def test_maps_equal_numpy_over_the_window_and_export_as_gridded_text(survey, tmp_path, cluster_client):
    store = _copy(survey, tmp_path)
    sf.import_horizons(store, survey["horizons"], columns="name,inline,crossline,time")
    sf.attach_labels(store, survey["labels"], client=cluster_client)
    dataset = sf.open_store(store, require=("labels",))
    time, amplitude, labels = dataset.time.values, dataset.amplitude.values, dataset.labels.values
    h1, h2 = survey["surfaces"][0], survey["surfaces"][1]

    sf.map_horizon(store, horizon="h2", variable="amplitude", window=(-12.0, 8.0), client=cluster_client)
    inside = _numpy_window(amplitude, time, h2 - 12, h2 + 8, include_lower=True)
    with np.errstate(invalid="ignore"):
        rms = np.sqrt((np.where(inside, amplitude.astype(np.float64) ** 2, 0).sum(-1)) / inside.sum(-1))
    stored = sf.open_store(store, require=("map_h2_amplitude",)).map_h2_amplitude
    np.testing.assert_allclose(stored.values, rms, rtol=1e-5)
    assert stored.dims == ("inline", "crossline") and stored.attrs["horizon"] == "h2"

    summary = sf.map_horizon(store, horizon="h1", to="h2", variable="labels", client=cluster_client)
    inside = _numpy_window(labels, time, h1, h2, include_lower=False)
    counts = np.stack([(inside & (labels == c)).sum(-1) for c in range(6)])
    maps = sf.open_store(store, require=tuple(summary["maps"]))
    majority = np.where(counts.sum(0) > 0, counts.argmax(0), -1)
    np.testing.assert_array_equal(maps.map_h1_labels.values, majority)
    with np.errstate(invalid="ignore"):
        np.testing.assert_allclose(maps.map_h1_labels_fraction.values, counts / counts.sum(0), rtol=1e-6)
    assert summary["to"] == "h2" and summary["covered"] == pytest.approx(float((majority >= 0).mean()))

    out = tmp_path / "h2_rms.txt"
    written = sf.export(store, out, variable="map_h2_amplitude", client=cluster_client)
    table = np.loadtxt(out)
    i, j = table[:, 2].astype(int) - 100, table[:, 3].astype(int) - 300
    assert written["nodes"] == len(table) == int(np.isfinite(rms).sum())
    np.testing.assert_allclose(table[:, 0], dataset.cdp_x.values[i, j], atol=0.01)
    np.testing.assert_allclose(table[:, 1], dataset.cdp_y.values[i, j], atol=0.01)
    np.testing.assert_allclose(table[:, 4], rms[i, j], rtol=1e-5)

    picture = sf.plot(store, tmp_path / "map.png", map="h1")
    assert picture["maps"][0] == "horizon h1 (ms)" and len(picture["maps"]) == 2
    assert (tmp_path / "map.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    result = CliRunner().invoke(cli, ["plot", str(store), str(tmp_path / "x.png"), "--map", "nowhere"])
    assert_one_line_error(result, "--map 'nowhere'", "map_h1_labels", "h1, h2")


def test_new_labels_retire_the_maps_made_from_the_old_ones(survey, tmp_path, cluster_client):
    store = _copy(survey, tmp_path)
    sf.import_horizons(store, survey["horizons"], columns="name,inline,crossline,time")
    sf.attach_labels(store, survey["labels"], client=cluster_client)
    sf.map_horizon(store, horizon="h2", variable="labels", client=cluster_client)
    assert "map_h2_labels" in sf.open_store(store).data_vars
    sf.attach_labels(store, between=("h1", "h2"), overwrite=True, client=cluster_client)
    dataset = sf.open_store(store)
    assert "map_h2_labels" not in dataset.data_vars and "label_class" not in dataset.coords


def test_attributes_equal_scipy_on_whole_traces(survey, tmp_path, cluster_client):
    store = _copy(survey, tmp_path)
    summary = sf.add_attributes(
        store, add=("envelope", "phase", "frequency", "rms:20"), client=cluster_client
    )
    assert (
        summary["variables"] == ["envelope", "phase", "frequency", "rms"]
        and summary["rms_window_samples"] == 5
    )
    dataset = sf.open_store(store, require=("envelope", "rms"))
    for i, j in ((0, 0), (17, 22), (39, 35)):  # the store's vertical chunks are 32 of 64 samples
        trace = dataset.amplitude.values[i, j].astype(np.float64)
        analytic = scipy.signal.hilbert(trace)
        np.testing.assert_allclose(dataset.envelope.values[i, j], np.abs(analytic), rtol=1e-4, atol=1e-5)
        phase = np.angle(analytic, deg=True)
        np.testing.assert_allclose(dataset.phase.values[i, j], phase, atol=1e-3)
        frequency = np.gradient(np.unwrap(np.angle(analytic))) / (2 * np.pi) / 0.004
        np.testing.assert_allclose(dataset.frequency.values[i, j], frequency, rtol=1e-4, atol=1e-3)
        padded = np.pad(trace**2, 2, mode="symmetric")
        rms = np.sqrt(np.convolve(padded, np.ones(5) / 5, mode="valid"))
        np.testing.assert_allclose(dataset.rms.values[i, j], rms, rtol=1e-4)
    assert dataset.frequency.attrs["units"] == "Hz" and dataset.phase.attrs["units"] == "degree"
    result = CliRunner().invoke(cli, ["attributes", str(store), "--add", "sweetness"])
    assert_one_line_error(result, "--add 'sweetness'", "envelope")


@pytest.fixture(scope="module")
def hinted(tmp_path_factory):
    """Noise amplitude, facies nothing in it shows, and a `hint` volume (an interpreter's attribute) that does."""
    folder = tmp_path_factory.mktemp("hint")
    shape = (24, 40, 64)
    rng = np.random.default_rng(0)
    noise = rng.standard_normal(shape).astype(np.float32)
    grid = {"inlines": np.arange(1, shape[0] + 1), "crosslines": np.arange(1, shape[1] + 1)}
    write_cube(str(folder / "noise.sgy"), noise, sample_format=5, **grid)
    blobs = rng.integers(0, 2, (shape[0], shape[1] // 8, shape[2] // 16))
    truth = np.repeat(np.repeat(blobs, 8, axis=1), 16, axis=2).astype(np.int16)
    labelled = np.zeros(shape, bool)  # five inlines and five crosslines, for sections of either orientation
    labelled[[1, 6, 11, 16, 21]] = labelled[:, [3, 12, 21, 30, 38]] = True
    labels = np.where(labelled, truth, -1).astype(np.int16)
    np.save(folder / "labels.npy", labels)
    store = folder / "s.zarr"
    sf.ingest(folder / "noise.sgy", store, chunks="12,20,64")
    sf.attach_labels(store, folder / "labels.npy", classes="left,right")
    hint = (truth + 0.3 * rng.standard_normal(shape)).astype(np.float32)
    dims = ("inline", "crossline", "time")
    xr.Dataset({"hint": (dims, hint, {"long_name": "an attribute"})}).to_zarr(
        store, mode="a", consolidated=True
    )
    return {"folder": folder, "store": store, "truth": truth, "labelled": labelled}


@pytest.mark.parametrize("orientation", ["inline", "crossline"])
def test_an_attribute_input_reaches_the_model_in_training_and_prediction(hinted, orientation, cluster_client):
    folder, store, truth = hinted["folder"], hinted["store"], hinted["truth"]
    patches, model = folder / f"{orientation}.zarr", folder / f"{orientation}.pt"
    sf.extract_patches(store, patches, kind="section", size=16, per_class=150, inputs=("amplitude", "hint"),
                       orientation=orientation, val_fraction=0, client=cluster_client)  # fmt: skip
    sf.train(patches, model, epochs=12, model_options={"base": 4, "depth": 1}, seed=1, client=cluster_client)
    checkpoint = load_checkpoint(model)
    assert (
        checkpoint["patch"]["inputs"] == ["amplitude", "hint"]
        and checkpoint["model_config"]["in_channels"] == 2
    )
    assert set(checkpoint["normalisation"]["inputs"]["hint"]) == {"mean", "std"}
    sf.predict(store, model, overwrite=True, smooth=0, client=cluster_client)  # each inline its own facies
    facies = sf.open_store(store, require=("facies",)).facies.values
    others = ~hinted["labelled"]
    accuracy = float((facies[others] == truth[others]).mean())
    assert accuracy > 0.95, (
        accuracy
    )  # the amplitude alone is noise: only the hint, read in the right place, tells


def test_a_model_with_an_attribute_input_refuses_a_store_without_it(hinted, tmp_path):
    model = next(hinted["folder"].glob("*.pt"), None) or pytest.skip("no model trained in this session")
    bare = tmp_path / "bare.zarr"
    sf.ingest(hinted["folder"] / "noise.sgy", bare)
    result = CliRunner().invoke(cli, ["predict", str(bare), str(model)])
    assert_one_line_error(result, "has no 'hint'")


def test_a_one_line_survey_takes_horizons_labels_maps_and_their_pictures(tmp_path, cluster_client):
    """One inline: no x/y grid to fit, so maps are drawn on the line grid and exported with the traces' x/y."""
    rng = np.random.default_rng(2)
    section = rng.standard_normal((1, 30, 50)).astype(np.float32)
    write_cube(str(tmp_path / "line.sgy"), section, inlines=np.array([7]), crosslines=np.arange(1, 31))
    store = tmp_path / "line.zarr"
    sf.ingest(tmp_path / "line.sgy", store)
    picks = _write(tmp_path / "top.txt", [f"7 {xl} {40 + 2 * xl}" for xl in range(1, 31)])
    sf.import_horizons(store, picks)
    labels = sf.attach_labels(store, between=("top",), client=cluster_client)
    above = int(sum((np.arange(50) * 4.0 < 40 + 2 * xl).sum() for xl in range(1, 31)))
    assert labels["classes"] == {"above_top": above, "below_top": 30 * 50 - above}
    sf.map_horizon(store, horizon="top", variable="amplitude", window=(0.0, 0.0), client=cluster_client)
    rms = sf.open_store(store, require=("map_top_amplitude",)).map_top_amplitude.values[0]
    rows = [(40 + 2 * xl) / 4 for xl in range(1, 31)]
    expected = [abs(section[0, n, int(k)]) if k == int(k) else np.nan for n, k in enumerate(rows)]
    np.testing.assert_allclose(
        rms, expected, rtol=1e-5
    )  # a zero-width window: the sample at the pick, if any
    drawn = sf.plot(store, tmp_path / "map.png", map="top")
    assert drawn["drawn_on"].startswith("inline/crossline")
    written = sf.export(store, tmp_path / "top.txt.out", variable="map_top_amplitude", client=cluster_client)
    assert written["nodes"] == int(np.isfinite(expected).sum())
