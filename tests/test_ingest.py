"""SEG-Y -> Zarr ingestion and Zarr -> SEG-Y export on synthetic and real files."""

from __future__ import annotations

import numpy as np
import pytest
import segyio
import xarray as xr

from seisfacies.pipeline.exceptions import GeometryError, SegyFormatError, StoreError
from seisfacies.pipeline.segy import read_block, read_traces, scan_survey, scan_trace_headers
from seisfacies.pipeline.segy_format import float32_to_ibm
from seisfacies.pipeline.store import open_store
from seisfacies.pipeline.testing import segyio_grid, write_test_segy
from seisfacies.workflows.config import ExportConfig, IngestConfig
from seisfacies.workflows.export import zarr_to_segy
from seisfacies.workflows.ingest import segy_to_zarr
from tests.conftest import versionless

FORMATS = (1, 2, 3, 5, 6, 8, 9, 10, 11, 12, 16)


def test_ibm_floats_written_at_every_exponent_read_back_through_segyio():
    """Every float32 exponent and sign: segyio's decoder gives each value back, truncated as IBM's mantissa."""
    rng = np.random.default_rng(0)
    exponents = np.arange(-126, 128)[:, None]
    values = (rng.uniform(1, 2, (len(exponents), 32)) * 2.0**exponents).astype(np.float32)
    values = np.append(values * rng.choice(np.float32([-1, 1]), values.shape), np.float32([0.0, -0.0]))
    words = float32_to_ibm(values)
    decoded = segyio.tools.native(words.astype(">u4"))
    assert (np.abs(decoded) <= np.abs(values)).all() and (np.sign(decoded) == np.sign(values)).all()
    np.testing.assert_allclose(decoded, values, rtol=2.0**-20, atol=0)  # 21 of 24 mantissa bits at worst
    assert list(words[-2:]) == [0, 0x80000000]
    # IBM values encode back to their words (segyio reads IBM's -0 as +0)
    np.testing.assert_array_equal(float32_to_ibm(decoded[:-2]), words[:-2])


@pytest.mark.parametrize("sample_format", FORMATS)
@pytest.mark.parametrize("endian", ["big", "little"])
def test_every_format_and_byte_order_round_trips(tmp_path, sample_format, endian):
    source = tmp_path / "in.sgy"
    cube = write_test_segy(source, (5, 4, 7), sample_format=sample_format, endian=endian, missing=[(1, 2)])
    summary = segy_to_zarr(source, tmp_path / "s.zarr", IngestConfig(chunks="2,3,4"))
    store = open_store(tmp_path / "s.zarr")
    assert summary["byte_order"] == endian and summary["sample_format"] == sample_format
    np.testing.assert_array_equal(store.amplitude.values, cube)
    assert store.trace_mask.values.sum() == 19 and not store.trace_mask.values[1, 2]
    zarr_to_segy(tmp_path / "s.zarr", tmp_path / "out.sgy", ExportConfig())
    assert (tmp_path / "out.sgy").read_bytes() == source.read_bytes()


@pytest.mark.parametrize("sorting", ["inline", "crossline"])
@pytest.mark.parametrize("chunks", ["1,1,3", "4,2,100", "inline=3,crossline=5,time=2"])
def test_sorting_chunking_steps_and_coordinates(tmp_path, sorting, chunks):
    source = tmp_path / "in.sgy"
    write_test_segy(
        source,
        (6, 5, 9),
        sample_format=1,
        sorting=sorting,
        inline_step=2,
        crossline_step=3,
        delay_ms=40,
        missing=[(0, 0), (5, 4)],
    )
    segy_to_zarr(source, tmp_path / "s.zarr", IngestConfig(chunks=chunks))
    store = open_store(tmp_path / "s.zarr")
    oracle = segyio_grid(source, "big")
    np.testing.assert_array_equal(store.amplitude.values, oracle["cube"])
    np.testing.assert_array_equal(store.inline.values, oracle["inlines"])
    np.testing.assert_array_equal(store.crossline.values, oracle["crosslines"])
    np.testing.assert_allclose(store.time.values, oracle["samples"])
    assert store.time.values[0] == 40.0 and store.time.attrs["units"] == "ms"
    assert store.attrs["trace_sorting"] == sorting
    with segyio.open(str(source), ignore_geometry=True) as handle:
        scale = 0.01  # the writer uses scalar -100
        first = handle.header[0]
        il, xl = first[segyio.TraceField.INLINE_3D], first[segyio.TraceField.CROSSLINE_3D]
        x = float(store.cdp_x.sel(inline=il, crossline=xl).values)
        assert x == pytest.approx(first[segyio.TraceField.CDP_X] * scale)
    assert np.isnan(store.cdp_x.values[0, 0])
    # what tasks write keeps the declared chunks; the grid variables written whole are one chunk here
    declared = tuple(store.amplitude.encoding["chunks"][:2])
    assert store.headers.encoding["chunks"] == declared == store.trace_headers.encoding["chunks"][:2]
    for name in ("trace_mask", "trace_index", "cdp_x", "cdp_y"):
        assert store[name].encoding["chunks"] == (6, 5), name
    # MDIO's header records, written a chunk at a time, each where its trace is
    live, records = store.trace_mask.values, store.headers.values
    grid = np.meshgrid(store.inline.values, store.crossline.values, indexing="ij")
    assert (records["inline"][live] == grid[0][live]).all() and (
        records["crossline"][live] == grid[1][live]
    ).all()
    assert (records["inline"][~live] == 0).all() and live.sum() == 28
    zarr_to_segy(tmp_path / "s.zarr", tmp_path / "out.sgy", ExportConfig())
    assert (tmp_path / "out.sgy").read_bytes() == source.read_bytes()


def test_store_layout_contract(tmp_path):
    source = tmp_path / "in.sgy"
    write_test_segy(source, (4, 3, 5), sample_format=5)
    segy_to_zarr(source, tmp_path / "s.zarr", IngestConfig(domain="depth"))
    store = xr.open_zarr(tmp_path / "s.zarr", zarr_format=3, consolidated=True)
    assert store.amplitude.dims == ("inline", "crossline", "depth")
    assert store.amplitude.dtype == np.float32
    assert store.cdp_x.dtype == np.float64 and store.trace_mask.dtype == bool
    assert store.trace_headers.shape == (4, 3, 240)
    assert store.depth.attrs["units"] == "m"
    for key in (
        "textual_header",
        "binary_header",
        "source_file",
        "source_size",
        "sample_format",
        "byte_order",
        "seisfacies_version",
    ):
        assert key in store.attrs
    assert store.attrs["binary_header"]["Format"] == 5
    assert store.amplitude.encoding["compressors"]


def test_distributed_cluster_gives_the_same_store(tmp_path, cluster_client):
    source = tmp_path / "in.sgy"
    write_test_segy(source, (9, 7, 12), sample_format=1, missing=[(3, 3)])
    segy_to_zarr(source, tmp_path / "threads.zarr", IngestConfig(chunks="2,3,5"))
    segy_to_zarr(source, tmp_path / "cluster.zarr", IngestConfig(chunks="2,3,5"), cluster_client)
    threads, cluster = open_store(tmp_path / "threads.zarr"), open_store(tmp_path / "cluster.zarr")
    xr.testing.assert_identical(versionless(threads), versionless(cluster))


def test_xarray_backend_is_lazy_and_indexable(shared_segy):
    dataset = xr.open_dataset(shared_segy / "f3.sgy", engine="segy", chunks={})
    assert dataset.amplitude.chunks is not None
    with segyio.open(str(shared_segy / "f3.sgy")) as handle:
        cube = segyio.tools.cube(handle)
    np.testing.assert_array_equal(dataset.amplitude.isel(inline=3, crossline=[1, 4]).values, cube[3][[1, 4]])
    np.testing.assert_array_equal(dataset.amplitude[:, 2, 10:20].values, cube[:, 2, 10:20])
    assert dataset.amplitude.sel(inline=120, crossline=880).shape == (75,)


EXACT = [
    "small.sgy",
    "small-lsb.sgy",
    "tiny.sgy",
    "f3.sgy",
    "normal-small.sgy",
    "acute-small.sgy",
    "Format1msb.sgy",
    "Format5msb.sgy",
    "Format3lsb.sgy",
    "Format8msb.sgy",
]


@pytest.mark.parametrize("name", EXACT)
def test_real_files_ingest_exactly(tmp_path, shared_segy, name):
    segy_to_zarr(shared_segy / name, tmp_path / "s.zarr", IngestConfig(chunks="2,3,16"))
    store = open_store(tmp_path / "s.zarr")
    with segyio.open(str(shared_segy / name), endian=store.attrs["byte_order"]) as handle:
        np.testing.assert_array_equal(store.amplitude.values, segyio.tools.cube(handle))
        np.testing.assert_array_equal(store.inline.values, handle.ilines)
        np.testing.assert_array_equal(store.crossline.values, handle.xlines)
        np.testing.assert_allclose(store.time.values, handle.samples)
        first = handle.header[0]
        scalar = first[segyio.TraceField.SourceGroupScalar]
        factor = scalar if scalar > 0 else (1 / -scalar if scalar < 0 else 1)
        assert store.cdp_x.values[0, 0] == pytest.approx(first[segyio.TraceField.CDP_X] * factor)
        assert store.cdp_y.values[0, 0] == pytest.approx(first[segyio.TraceField.CDP_Y] * factor)
    zarr_to_segy(tmp_path / "s.zarr", tmp_path / "out.sgy", ExportConfig())
    assert (tmp_path / "out.sgy").read_bytes() == (shared_segy / name).read_bytes()


def test_rotated_grids_keep_per_trace_coordinates(tmp_path, shared_segy):
    for name in ("normal-small.sgy", "acute-small.sgy"):
        segy_to_zarr(shared_segy / name, tmp_path / name, IngestConfig())
        store = open_store(tmp_path / name)
        with segyio.open(str(shared_segy / name)) as handle:
            xs = handle.attributes(segyio.TraceField.CDP_X)[:].reshape(5, 5)
        assert np.unique(store.cdp_x.values).size == np.unique(xs).size


@pytest.mark.parametrize(
    ("name", "error", "words"),
    [
        ("broken.sgy", SegyFormatError, "truncated"),
        ("text.sgy", SegyFormatError, "no traces"),
        ("small-ps.sgy", GeometryError, "pre-stack"),
    ],
)
def test_real_bad_files_are_refused_and_nothing_is_written(tmp_path, shared_segy, name, error, words):
    with pytest.raises(error, match=words) as caught:
        segy_to_zarr(shared_segy / name, tmp_path / "s.zarr", IngestConfig())
    assert "\n" not in str(caught.value) and name in str(caught.value)
    assert list(tmp_path.iterdir()) == []


def test_reads_of_runs_of_every_length_and_a_file_cut_after_the_scan(tmp_path):
    source = tmp_path / "in.sgy"
    cube = write_test_segy(source, (4, 3, 50))
    survey = scan_survey(source)
    wanted = np.array([0, 1, 2, 5, 7, 8, 11])  # runs of 3, 1, 2 and 1 traces through one buffer
    _, samples = read_traces(survey.layout, wanted)
    np.testing.assert_array_equal(samples, cube.reshape(12, 50)[wanted])
    with open(source, "r+b") as handle:
        handle.truncate(source.stat().st_size - 10)
    with pytest.raises(SegyFormatError, match="truncated or changed during the run"):
        read_block(survey.layout, survey.geometry.trace_index)
    with pytest.raises(SegyFormatError, match="truncated or changed during the run"):
        scan_trace_headers(survey.layout, 0, survey.layout.n_traces, {"inline": (189, 4)})


def test_wrong_byte_positions_are_refused(tmp_path):
    source = tmp_path / "in.sgy"
    write_test_segy(source, (4, 4, 5))
    with pytest.raises(GeometryError, match="--iline-byte"):
        segy_to_zarr(source, tmp_path / "s.zarr", IngestConfig(iline_byte=9, xline_byte=13))
    with pytest.raises(SegyFormatError, match="not the start"):
        segy_to_zarr(source, tmp_path / "s.zarr", IngestConfig(iline_byte=190))
    assert not (tmp_path / "s.zarr").exists()


def test_alternative_byte_positions_are_honoured(tmp_path):
    source = tmp_path / "in.sgy"
    write_test_segy(source, (4, 3, 5), iline_byte=9, xline_byte=21)
    segy_to_zarr(source, tmp_path / "s.zarr", IngestConfig(iline_byte=9, xline_byte=21))
    assert open_store(tmp_path / "s.zarr").amplitude.shape == (4, 3, 5)


def test_irregular_grid_is_refused(tmp_path):
    source = tmp_path / "in.sgy"
    write_test_segy(source, (3, 3, 5), inline_step=1)
    with segyio.open(str(source), "r+", ignore_geometry=True) as handle:
        handle.header[4] = {segyio.TraceField.INLINE_3D: 100000}
    with pytest.raises(GeometryError, match="regular 3D grid"):
        segy_to_zarr(source, tmp_path / "s.zarr", IngestConfig())


def test_existing_store_needs_overwrite(tmp_path):
    source = tmp_path / "in.sgy"
    write_test_segy(source, (3, 3, 5))
    segy_to_zarr(source, tmp_path / "s.zarr", IngestConfig())
    with pytest.raises(StoreError, match="--overwrite"):
        segy_to_zarr(source, tmp_path / "s.zarr", IngestConfig())
    segy_to_zarr(source, tmp_path / "s.zarr", IngestConfig(overwrite=True))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in.sgy", "s.zarr"]


def test_source_is_never_modified(tmp_path):
    source = tmp_path / "in.sgy"
    write_test_segy(source, (3, 3, 5))
    before, mtime = source.read_bytes(), source.stat().st_mtime_ns
    source.chmod(0o444)
    segy_to_zarr(source, tmp_path / "s.zarr", IngestConfig())
    assert source.read_bytes() == before and source.stat().st_mtime_ns == mtime


def test_export_refuses_existing_output_and_wrong_variable(tmp_path):
    source = tmp_path / "in.sgy"
    write_test_segy(source, (3, 3, 5))
    segy_to_zarr(source, tmp_path / "s.zarr", IngestConfig())
    with pytest.raises(StoreError, match="--overwrite"):
        zarr_to_segy(tmp_path / "s.zarr", source, ExportConfig())
    with pytest.raises(StoreError, match="no 'facies'"):
        zarr_to_segy(tmp_path / "s.zarr", tmp_path / "f.sgy", ExportConfig(variable="facies"))
