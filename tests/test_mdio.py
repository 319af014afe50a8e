"""MDIO v1 in and out, OpenVDS out: checked with TGS's ``multidimio`` and Bluware's ``openvds`` themselves.

MDIO stores are made by MDIO's own ``segy_to_mdio``, read back with
``mdio.open_mdio`` and exported with ``mdio_to_segy``; VDS files are read
back with ``openvds``. Both come with the test extra (``pip install -e ".[test]"``).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import pytest
import segyio

import seisfacies as sf
from seisfacies.pipeline.testing import write_test_segy

mdio = pytest.importorskip("mdio", reason="the MDIO tests need multidimio (pip install -e '.[test]')")
openvds = pytest.importorskip("openvds", reason="the VDS tests need openvds (pip install -e '.[test]')")
from segy.standards import get_segy_standard  # noqa: E402  (multidimio's SEG-Y library)


def mdio_from_segy(segy: Path, out: Path, *, file_header: bool = False, monkeypatch=None) -> Path:
    """An MDIO v1 post-stack store written by MDIO's own converter."""
    from mdio import segy_to_mdio
    from mdio.builder.template_registry import TemplateRegistry

    if file_header:
        monkeypatch.setenv("MDIO__IMPORT__SAVE_SEGY_FILE_HEADER", "1")
    template = TemplateRegistry().get("PostStack3DTime")
    segy_to_mdio(get_segy_standard(1.0), template, str(segy), str(out))
    return out


def mdio_export(store, out: Path) -> bytes:
    """The SEG-Y file MDIO's exporter writes from a store."""
    mdio.mdio_to_segy(get_segy_standard(1.0), str(store), str(out))
    return out.read_bytes()


def test_the_header_tables_are_the_segy_standard_mdio_uses():
    from seisfacies.pipeline import mdio as ours

    standard = get_segy_standard(1.0)
    placed = ours.header_dtype("big", packed=False)
    fields = standard.trace.header.fields
    assert [field.name for field in fields] == list(ours.TRACE_HEADER_NAMES)
    assert [field.byte - 1 for field in fields] == [
        placed.fields[name][1] for name in ours.TRACE_HEADER_NAMES
    ]
    assert [np.dtype(field.format.value) for field in fields] == [
        placed.fields[name][0].newbyteorder("=") for name in ours.TRACE_HEADER_NAMES
    ]
    mdio_headers = np.dtype(
        [(name, standard.trace.header.dtype[name].newbyteorder("<")) for name in placed.names]
    )
    assert ours.header_dtype() == mdio_headers
    binary = {field.name: field.byte for field in standard.binary_header.fields}
    assert {**dict(ours.BINARY_HEADER_FIELDS), "segy_revision": 301} == binary


@pytest.mark.cluster
def test_the_chain_runs_in_place_on_a_store_mdio_wrote(cluster_client, tmp_path, monkeypatch):
    sf.synth(tmp_path / "d", shape=(24, 20, 32), seed=4)
    seismic, labels = tmp_path / "d" / "seismic.sgy", tmp_path / "d" / "labels.sgy"
    survey = mdio_from_segy(seismic, tmp_path / "survey.mdio", file_header=True, monkeypatch=monkeypatch)
    exported_before = mdio_export(survey, tmp_path / "before.sgy")
    own = tmp_path / "own.zarr"
    sf.ingest(seismic, own, chunks="12,10,32", client=cluster_client)

    for store in (survey, own):
        sf.attach_labels(store, labels, inlines=(104, 112, 120), client=cluster_client)
    patches, model = tmp_path / "p.zarr", tmp_path / "m.pt"
    sf.extract_patches(
        survey, patches, kind="trace", size=16, per_class=60, split_block=8, client=cluster_client
    )
    sf.train(patches, model, model="mlp", epochs=3, client=cluster_client)
    for store in (survey, own):
        sf.predict(store, model, probabilities=True, uncertainty=True, client=cluster_client)

    # MDIO reads the new variables on the template's dims, and still exports the same amplitude
    opened, here = mdio.open_mdio(survey), sf.open_store(own, require=("facies",))
    for name in ("labels", "facies", "uncertainty"):
        assert opened[name].dims == ("inline", "crossline", "time")
        np.testing.assert_array_equal(opened[name].values, here[name].values)
    assert (opened.facies.values >= 0).all() and opened.probability.sizes["class"] == 6
    assert mdio_export(survey, tmp_path / "after.sgy") == exported_before

    # the other commands read it as they read ours
    assert sf.evaluate(survey, truth=labels)["mean_iou"] == sf.evaluate(own, truth=labels)["mean_iou"]
    assert sf.suggest(survey, count=2)["inlines"] == sf.suggest(own, count=2)["inlines"]
    sf.plot(survey, tmp_path / "section.png")
    sf.import_horizons(survey, [tmp_path / "d" / "horizons.txt"], columns="name,inline,crossline,time")
    sf.map_horizon(survey, horizon="h1", to="h2", variable="facies", client=cluster_client)
    sf.add_attributes(survey, add=("envelope",), client=cluster_client)
    opened = mdio.open_mdio(survey)
    assert opened.map_h1_facies.dims == ("inline", "crossline") and (opened.map_h1_facies.values >= 0).any()
    assert (
        opened.envelope.dims == opened.amplitude.dims
        and mdio_export(survey, tmp_path / "x.sgy") == exported_before
    )

    # our SEG-Y export from MDIO's headers: the source file's trace headers, the facies as samples
    sf.export(survey, tmp_path / "facies.sgy", variable="facies", client=cluster_client)
    with segyio.open(seismic) as source, segyio.open(tmp_path / "facies.sgy") as written:
        assert [dict(h) for h in written.header] == [dict(h) for h in source.header]
        np.testing.assert_array_equal(segyio.tools.cube(written), here.facies.values.astype(np.float32))
        assert written.text[0] == source.text[0]


def test_our_stores_are_mdio_stores(tmp_path, monkeypatch):
    sf.synth(tmp_path / "d", shape=(16, 12, 24), seed=2)
    seismic = tmp_path / "d" / "seismic.sgy"
    theirs = mdio_from_segy(seismic, tmp_path / "theirs.mdio", file_header=True, monkeypatch=monkeypatch)
    ours = tmp_path / "ours.zarr"
    sf.ingest(seismic, ours)

    opened = mdio.open_mdio(ours)
    assert opened.attrs["attributes"]["defaultVariableName"] == "amplitude"
    assert opened.attrs["name"] == "PostStack3DTime"
    reference = mdio.open_mdio(theirs)
    for field in ("inline", "crossline", "cdp_x", "cdp_y", "coordinate_scalar", "sample_interval"):
        np.testing.assert_array_equal(opened.headers.values[field], reference.headers.values[field])
    assert opened.segy_file_header.attrs == reference.segy_file_header.attrs
    # MDIO's exporter writes the same file from either store
    assert mdio_export(ours, tmp_path / "ours.sgy") == mdio_export(theirs, tmp_path / "theirs.sgy")


def test_dead_traces_of_an_mdio_store_read_as_those_of_ours(tmp_path):
    missing = ((0, 1), (3, 3), (5, 0))
    cube = write_test_segy(tmp_path / "holes.sgy", (6, 5, 10), missing=missing)
    survey = mdio_from_segy(tmp_path / "holes.sgy", tmp_path / "holes.mdio")
    assert np.isnan(mdio.open_mdio(survey).amplitude.values[0, 1]).all()  # MDIO's fill

    dataset = sf.open_store(survey)
    from seisfacies.pipeline.regions import read_region

    whole = {"inline": slice(None), "crossline": slice(None), "time": slice(None)}
    np.testing.assert_array_equal(read_region(str(survey), "amplitude", whole), cube)
    assert not dataset.trace_mask.values[3, 3] and dataset.trace_mask.values.sum() == 30 - len(missing)

    # SEG-Y written back from MDIO's headers holds the live traces, in order
    sf.export(survey, tmp_path / "back.sgy")
    with segyio.open(tmp_path / "holes.sgy", ignore_geometry=True) as source:
        with segyio.open(tmp_path / "back.sgy", ignore_geometry=True) as written:
            assert written.tracecount == source.tracecount == 27
            assert [dict(h) for h in written.header] == [dict(h) for h in source.header]
            np.testing.assert_array_equal(written.trace.raw[:], source.trace.raw[:])


def test_the_samples_are_the_variable_mdio_names_the_default(tmp_path):
    write_test_segy(tmp_path / "s.sgy", (6, 5, 10))
    survey = mdio_from_segy(tmp_path / "s.sgy", tmp_path / "s.mdio")
    (survey / "amplitude").rename(survey / "seismic")
    root = json.loads((survey / "zarr.json").read_text())
    root["attributes"]["attributes"]["defaultVariableName"] = "seismic"
    (survey / "zarr.json").write_text(json.dumps(root))

    dataset = sf.open_store(survey)
    assert "seismic" not in dataset.variables
    sf.export(survey, tmp_path / "s.vds")
    vds = read_vds(tmp_path / "s.vds")
    np.testing.assert_array_equal(vds["values"], dataset.amplitude.values)
    openvds.close(vds["handle"])


def test_an_mdio_v0_store_is_one_line(tmp_path):
    import zarr

    old = zarr.open_group(str(tmp_path / "old.mdio"), mode="w", zarr_format=2)
    old.create_array("data/chunked_012", shape=(2, 2, 2), dtype="f4")
    old.create_array("metadata/live_mask", shape=(2, 2), dtype="bool")
    with pytest.raises(
        sf.StoreError, match=r"old\.mdio: an MDIO v0 store \(Zarr v2\); seisfacies reads MDIO v1"
    ):
        sf.open_store(tmp_path / "old.mdio")


# ---------------------------------------------------------------- OpenVDS


def read_vds(path: Path):
    """Axes, values, the layout and a transformer from grid index to world x/y, read with openvds."""
    handle = openvds.open(str(path), "")
    layout = openvds.getLayout(handle)
    axes = [layout.getAxisDescriptor(dim) for dim in range(3)]
    shape = tuple(axis.getNumSamples() for axis in axes)
    request = openvds.getAccessManager(handle).requestVolumeSubset(
        (0, 0, 0), shape, format=layout.getChannelFormat(0)
    )
    values = request.data.reshape(shape[::-1])
    grid = layout.getVDSIJKGridDefinitionFromMetadata()
    transformer = openvds.IJKCoordinateTransformer(grid, tuple(shape[d] for d in grid.dimensionMap))
    described = [(a.getName(), a.getUnit(), a.getCoordinateMin(), a.getCoordinateMax()) for a in axes]
    return {"handle": handle, "layout": layout, "axes": described, "values": values, "to_world": transformer}


def test_export_vds_amplitude_with_axes_coordinates_and_dead_traces(tmp_path):
    missing = ((0, 1), (4, 2))
    write_test_segy(tmp_path / "s.sgy", (9, 7, 40), missing=missing, inline_step=2)
    store = tmp_path / "s.zarr"
    sf.ingest(tmp_path / "s.sgy", store, chunks="4,4,16")
    summary = sf.export(store, tmp_path / "a.vds")
    assert summary["brick_size"] == 32 and "note" not in summary

    vds = read_vds(tmp_path / "a.vds")
    dataset = sf.open_store(store)
    assert vds["axes"] == [
        ("Time", "ms", float(dataset.time[0]), float(dataset.time[-1])),
        ("Crossline", "unitless", 20.0, 26.0),
        ("Inline", "unitless", 1.0, 17.0),
    ]
    values = vds["values"]
    live = dataset.trace_mask.values
    np.testing.assert_array_equal(values[live], dataset.amplitude.values[live])
    assert (values[~live] == -999.25).all() and vds["layout"].getChannelNoValue(0) == -999.25
    # every trace's x/y from the VDS coordinate system is its cdp_x/cdp_y, to the centimetre
    for i, j in zip(*np.nonzero(live)):
        x, y, _ = vds["to_world"].IJKIndexToWorld((int(i), int(j), 0))
        assert (x, y) == pytest.approx((float(dataset.cdp_x[i, j]), float(dataset.cdp_y[i, j])), abs=0.01)
    openvds.close(vds["handle"])


def test_export_vds_classes_and_probabilities(labelled, tmp_path):
    store, patches = labelled
    model = tmp_path / "m.pt"
    sf.train(patches, model, model="mlp", epochs=1)
    sf.predict(store, model, probabilities=True, overwrite=True)
    dataset = sf.open_store(store, require=("facies", "probability"))
    names = dataset.facies.attrs["flag_meanings"].split()

    sf.export(store, tmp_path / "f.vds", variable="facies")
    vds = read_vds(tmp_path / "f.vds")
    assert vds["values"].dtype == np.uint8
    np.testing.assert_array_equal(vds["values"], dataset.facies.values)
    assert json.loads(vds["layout"].getMetadataString("seisfacies", "ClassNames")) == names
    assert vds["layout"].getChannelName(0) == "facies"
    openvds.close(vds["handle"])

    sf.export(store, tmp_path / "p.vds", variable="probability", class_name=names[1])
    vds = read_vds(tmp_path / "p.vds")
    expected = dataset.probability.sel({"class": names[1]}).values.astype(np.float32)
    np.testing.assert_array_equal(vds["values"], expected)
    assert vds["layout"].getChannelName(0) == f"probability {names[1]}"
    openvds.close(vds["handle"])


def test_vds_without_openvds_says_how_to_install_it(labelled, tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "openvds", None)  # as if it were not installed
    with pytest.raises(sf.StoreError, match=r'writing \.vds needs OpenVDS: pip install "seisfacies\[vds\]"'):
        sf.export(labelled[0], tmp_path / "a.vds")
    assert not (tmp_path / "a.vds").exists()
