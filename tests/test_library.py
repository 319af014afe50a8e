"""seisfacies as a library: the Python API, and stores that read naturally in plain xarray."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import segyio
import xarray as xr

import seisfacies as sf
from seisfacies.pipeline.commit import commit_variables, pending_name
from seisfacies.pipeline.regions import write_region
from seisfacies.pipeline.store import add_variables_template


@pytest.fixture(scope="module")
def api_survey(documented_run):
    """The folder where the README's Python example ran as a script (``tests/test_docs.py``)."""
    return documented_run["folder"], None


@pytest.mark.cluster
def test_the_readme_python_api_example_runs_the_whole_chain(api_survey):
    folder, _ = api_survey
    ds = sf.open_store(folder / "survey" / "seismic.zarr")
    assert {"facies", "probability", "uncertainty", "labels"} <= set(ds.data_vars)
    assert (folder / "survey" / "channel.sgy").is_file()
    history = json.loads((folder / "survey" / "cnn2d.pt.history.json").read_text())
    assert len(history) == 40  # one record per epoch


def test_keyword_options_are_validated_and_named_as_keywords(tmp_path):
    with pytest.raises(sf.ConfigError, match=r"^option epochs: Input should be greater than or equal to 1"):
        sf.train(tmp_path / "p.zarr", tmp_path / "m.pt", epochs=0)
    with pytest.raises(sf.ConfigError, match=r"^option per_clas: Extra inputs are not permitted"):
        sf.extract_patches(tmp_path / "s.zarr", tmp_path / "p.zarr", kind="trace", per_clas=3)


@pytest.mark.cluster
def test_plain_xarray_reads_class_names_and_cdp_coordinates(api_survey):
    folder, _ = api_survey
    ds = xr.open_zarr(folder / "survey" / "seismic.zarr")  # plain xarray, not seisfacies' reader
    names = ds.facies.attrs["flag_meanings"].split()
    assert ds["class"].values.tolist() == names
    channel = ds.probability.sel({"class": "channel"})
    index = names.index("channel")
    assert np.array_equal(channel.values, ds.probability.isel({"class": index}).values, equal_nan=True)
    for name in ("amplitude", "facies"):
        section = ds[name].isel(inline=3)
        assert {"cdp_x", "cdp_y"} <= set(section.coords), name
    with segyio.open(folder / "survey" / "seismic.sgy") as handle:
        first = handle.header[0]
        scalar = first[segyio.TraceField.SourceGroupScalar]
        factor = 1 / abs(scalar) if scalar < 0 else (scalar or 1)
        x = first[segyio.TraceField.CDP_X] * factor
        inline, crossline = first[segyio.TraceField.INLINE_3D], first[segyio.TraceField.CROSSLINE_3D]
    assert float(ds.facies.sel(inline=inline, crossline=crossline).cdp_x) == pytest.approx(x)


@pytest.mark.cluster
def test_export_of_one_class_probability(api_survey):
    folder, _ = api_survey
    ds = sf.open_store(folder / "survey" / "seismic.zarr")
    expected = ds.probability.sel({"class": "channel"}).values.astype(np.float32)
    with (
        segyio.open(folder / "survey" / "channel.sgy") as out,
        segyio.open(folder / "survey" / "seismic.sgy") as src,
    ):
        assert np.allclose(segyio.tools.cube(out), expected, atol=1e-6, equal_nan=True)
        assert out.header[5] == src.header[5] and out.text[0] == src.text[0]
    with pytest.raises(sf.StoreError, match="the classes are"):
        sf.export(
            folder / "survey" / "seismic.zarr", folder / "x.sgy", variable="probability", class_name="gravel"
        )
    with pytest.raises(sf.StoreError, match="pick one with --class"):
        sf.export(folder / "survey" / "seismic.zarr", folder / "x.sgy", variable="probability")
    assert not (folder / "x.sgy").exists()


def test_text_header_lines_and_trace_header_fields_match_segyio(shared_segy, tmp_path):
    source = shared_segy / "small.sgy"
    sf.ingest(source, tmp_path / "s.zarr")
    ds = sf.open_store(tmp_path / "s.zarr")
    lines = ds.attrs["textual_header"].splitlines()
    assert len(lines) == 40 and {len(line) for line in lines} == {80}
    headers = sf.open_trace_headers(tmp_path / "s.zarr")
    assert headers.INLINE_3D.chunks is not None  # lazy: nothing read yet
    with segyio.open(source) as handle:
        assert [line.rstrip() for line in lines[:3]] == segyio.tools.wrap(handle.text[0]).splitlines()[:3]
        for trace in (0, 7, len(handle.trace) - 1):
            want = handle.header[trace]
            where = (headers.INLINE_3D == want[segyio.TraceField.INLINE_3D]) & (
                headers.CROSSLINE_3D == want[segyio.TraceField.CROSSLINE_3D]
            )
            got = headers.where(where.compute(), drop=True).isel(inline=0, crossline=0)
            for name in ("CDP_X", "TRACE_SEQUENCE_FILE", "offset", "SourceGroupScalar"):
                assert int(got[name]) == want[getattr(segyio.TraceField, name)], (trace, name)


def test_a_half_written_variable_is_invisible_to_plain_xarray(tmp_path):
    sf.synth(tmp_path / "d", shape=(16, 12, 16))
    sf.ingest(tmp_path / "d" / "seismic.sgy", tmp_path / "s.zarr", chunks="8,12,16")
    store = tmp_path / "s.zarr"
    dataset = sf.open_store(store)
    template = dataset[[]].assign(facies=(dataset.amplitude.dims, np.zeros(dataset.amplitude.shape, np.int8)))
    template["facies"] = template.facies.chunk({"inline": 8, "crossline": 12, "time": 16})
    add_variables_template(template, store, {"inline": 8, "crossline": 12, "time": 16})
    region = {"inline": slice(0, 8), "crossline": slice(0, 12), "time": slice(0, 16)}
    write_region(str(store), pending_name("facies"), region, np.full((8, 12, 16), 3, np.int8))
    assert "facies" not in xr.open_zarr(store).variables  # half written: not there at all
    assert "facies" not in xr.open_zarr(store, consolidated=False).variables
    with pytest.raises(sf.StoreError, match="the store has no 'facies'"):
        sf.open_store(store, require=("facies",))
    rest = {"inline": slice(8, 16), "crossline": slice(0, 12), "time": slice(0, 16)}
    write_region(str(store), pending_name("facies"), rest, np.full((8, 12, 16), 4, np.int8))
    commit_variables(store, ["facies"])
    facies = xr.open_zarr(store).facies.values
    assert (facies[:8] == 3).all() and (facies[8:] == 4).all()
    assert not (store / "_pending").exists()


# ---------------------------------------------------------------- what a new user tripped over


def test_output_folders_that_do_not_exist_are_created(tmp_path):
    sf.synth(tmp_path / "d", shape=(12, 10, 16))
    summary = sf.ingest(tmp_path / "d" / "seismic.sgy", tmp_path / "new" / "deeper" / "s.zarr")
    assert Path(summary["store"]).is_dir() and sf.open_store(tmp_path / "new" / "deeper" / "s.zarr").sizes


@pytest.mark.cluster
def test_evaluate_against_the_training_labels_says_so(api_survey):
    folder, _ = api_survey
    store = folder / "survey" / "seismic.zarr"
    assert "measures fit, not generalisation" in sf.evaluate(store)["warning"]
    # a pathlib.Path is an option value like its text (it was refused: "Input should be a valid string")
    assert "warning" not in sf.evaluate(store, truth=folder / "survey" / "labels.sgy", where="unlabelled")


@pytest.mark.cluster
def test_predict_warns_when_the_store_is_not_like_the_training_survey(api_survey, tmp_path):
    folder, _ = api_survey
    model = folder / "survey" / "cnn2d.pt"
    other = tmp_path / "other.zarr"  # the same traces, read with another sample interval
    sf.ingest(folder / "survey" / "seismic.sgy", other, sample_interval=1.0)
    summary = sf.predict(other, model)
    assert any("sample interval is 1 where the model was trained on" in line for line in summary["warnings"])
    assert "warnings" not in sf.predict(folder / "survey" / "seismic.zarr", model, overwrite=True)


@pytest.mark.cluster
def test_a_workflow_asking_for_more_workers_than_the_cluster_is_refused_before_any_step(
    tmp_path, cluster_client
):
    sf.synth(tmp_path / "d", shape=(12, 10, 16))
    (tmp_path / "w.yaml").write_text(
        "name: w\nsteps:\n"
        "  - ingest: {segy: d/seismic.sgy, store: s.zarr}\n"
        "  - labels: {store: s.zarr, source: d/labels.sgy}\n"
        "  - train: {source: s.zarr, model_path: m.pt, model: mlp, workers: 4}\n"
    )
    with pytest.raises(
        sf.ConfigError, match=r"w.yaml: step 'train' asks for workers: 4 but the cluster has 2"
    ):
        sf.run_workflow(tmp_path / "w.yaml", client=cluster_client)
    assert not (tmp_path / "s.zarr").exists()  # nothing ran
