"""Label sources and Dask-parallel patch extraction on real stores."""

from __future__ import annotations

import shutil

import numpy as np
import pytest
import segyio
import xarray as xr
import zarr

from seisfacies.pipeline.exceptions import LabelError, StoreError
from seisfacies.pipeline.segy_write import write_cube
from seisfacies.pipeline.store import open_store
from seisfacies.workflows.config import IngestConfig, LabelsConfig, PatchesConfig
from seisfacies.workflows.ingest import segy_to_zarr
from seisfacies.workflows.labels import attach_labels
from seisfacies.workflows.patches import extract_patches


@pytest.fixture(scope="module")
def volume_store(synthetic_survey, tmp_path_factory):
    """The synthetic survey ingested with small chunks, without labels."""
    folder = tmp_path_factory.mktemp("volume")
    segy_to_zarr(synthetic_survey["seismic"], folder / "s.zarr", IngestConfig(chunks="16,16,32"))
    return folder / "s.zarr"


@pytest.fixture
def fresh_store(volume_store, tmp_path):
    shutil.copytree(volume_store, tmp_path / "s.zarr")
    return tmp_path / "s.zarr"


@pytest.fixture(scope="module")
def labelled_store(volume_store, synthetic_survey, tmp_path_factory):
    store = tmp_path_factory.mktemp("labelled") / "s.zarr"
    shutil.copytree(volume_store, store)
    attach_labels(store, synthetic_survey["labels"], LabelsConfig())
    return store


def truth(synthetic_survey) -> np.ndarray:
    with segyio.open(synthetic_survey["labels"]) as handle:
        return segyio.tools.cube(handle).astype(np.int16)


def test_labels_from_segy_volume_take_class_names(labelled_store, synthetic_survey):
    store = open_store(labelled_store, require=("labels",))
    np.testing.assert_array_equal(store.labels.values, truth(synthetic_survey))
    assert store.labels.dtype == np.int16
    assert store.labels.attrs["flag_meanings"].split() == synthetic_survey["classes"]
    assert store.labels.attrs["flag_values"] == list(range(6))


def test_labels_from_npy_with_unlabelled_value(fresh_store, synthetic_survey, tmp_path):
    partial = np.full(truth(synthetic_survey).shape, 255, np.int16)
    partial[[5, 20, 33]] = truth(synthetic_survey)[[5, 20, 33]]
    np.save(tmp_path / "few.npy", partial)
    summary = attach_labels(
        fresh_store, tmp_path / "few.npy", LabelsConfig(unlabelled=255, classes="a,b,c,d,e,f")
    )
    labels = open_store(fresh_store, require=("labels",)).labels.values
    assert (labels[[5, 20, 33]] >= 0).all() and (labels[0] == -1).all()
    assert summary["classes"]["a"] == int((partial == 0).sum())


def test_labels_from_zarr_array_and_store(fresh_store, synthetic_survey, tmp_path):
    values = truth(synthetic_survey)
    zarr.create_array(str(tmp_path / "arr.zarr"), data=values)
    attach_labels(fresh_store, tmp_path / "arr.zarr", LabelsConfig())
    np.testing.assert_array_equal(open_store(fresh_store, require=("labels",)).labels.values, values)
    shutil.copytree(fresh_store, tmp_path / "other.zarr")
    np.testing.assert_array_equal(
        open_store(tmp_path / "other.zarr", require=("labels",)).labels.values, values
    )
    attach_labels(fresh_store, tmp_path / "other.zarr", LabelsConfig(overwrite=True))  # a store with `labels`
    np.testing.assert_array_equal(open_store(fresh_store, require=("labels",)).labels.values, values)
    with pytest.raises(LabelError, match="store itself"):
        attach_labels(fresh_store, fresh_store, LabelsConfig(overwrite=True))


def test_labels_from_csv_points_by_name_and_number(fresh_store, tmp_path):
    store = open_store(fresh_store)
    il, xl, t = store.inline.values, store.crossline.values, store.time.values
    (tmp_path / "p.csv").write_text(
        f"inline,crossline,time_or_depth,class\n{il[3]},{xl[4]},{t[10]},sand\n{il[7]},{xl[1]},{t[2]},1\n"
    )
    attach_labels(fresh_store, tmp_path / "p.csv", LabelsConfig(classes="shale,sand"))
    labels = open_store(fresh_store, require=("labels",)).labels.values
    assert labels[3, 4, 10] == 1 and labels[7, 1, 2] == 1 and (labels >= 0).sum() == 2


def test_labels_match_f3_geometry_by_header_values(shared_segy, tmp_path):
    segy_to_zarr(shared_segy / "f3.sgy", tmp_path / "f3.zarr", IngestConfig(chunks="8,8,32"))
    store = open_store(tmp_path / "f3.zarr")
    classes = (store.amplitude.values > 0).astype(np.int16) + 1
    write_cube(
        str(tmp_path / "f3-labels.sgy"),
        classes,
        inlines=store.inline.values,
        crosslines=store.crossline.values,
        sample_format=8,
        sorting="crossline",
    )
    attach_labels(
        tmp_path / "f3.zarr", tmp_path / "f3-labels.sgy", LabelsConfig(classes="none,negative,positive")
    )
    np.testing.assert_array_equal(
        open_store(tmp_path / "f3.zarr", require=("labels",)).labels.values, classes
    )


@pytest.mark.parametrize(
    ("content", "words"),
    [
        ("wrong-shape", "do not match"),
        ("nan", "NaN"),
        ("outside", "outside the classes"),
        ("unknown-name", "unknown class"),
        ("fraction", "whole class numbers"),
    ],
)
def test_bad_label_sources_leave_the_store_untouched(fresh_store, tmp_path, content, words):
    shape = open_store(fresh_store).amplitude.shape
    values = np.zeros(shape, np.float32)
    if content == "wrong-shape":
        values = np.zeros((shape[0] - 1, *shape[1:]), np.float32)
    elif content == "nan":
        values[3, 3, 3] = np.nan
    elif content == "outside":
        values[3, 3, 3] = 7
    elif content == "fraction":
        values[3, 3, 3] = 0.5
    source = tmp_path / "bad.npy"
    np.save(source, values)
    if content == "unknown-name":
        source = tmp_path / "bad.csv"
        source.write_text("inline,crossline,time,class\n100,300,0,granite\n")
    before = (fresh_store / "zarr.json").read_bytes()
    with pytest.raises(LabelError, match=words) as caught:
        attach_labels(fresh_store, source, LabelsConfig(classes="a,b,c"))
    assert "\n" not in str(caught.value)
    assert (fresh_store / "zarr.json").read_bytes() == before
    assert "labels" not in xr.open_zarr(fresh_store).variables


def test_existing_labels_need_overwrite(labelled_store, synthetic_survey):
    with pytest.raises(StoreError, match="--overwrite"):
        attach_labels(labelled_store, synthetic_survey["labels"], LabelsConfig())


def hand_cut(volume: np.ndarray, i: int, j: int, k: int, extent: tuple[int, int, int]) -> np.ndarray:
    starts = [c - e // 2 for c, e in zip((i, j, k), extent)]
    return volume[tuple(slice(s, s + e) for s, e in zip(starts, extent))]


@pytest.mark.parametrize(
    ("kind", "options", "extent"),
    [
        ("trace", {"size": 20}, {0: (1, 1, 20)}),
        ("section", {"size": 12, "orientation": "both"}, {0: (1, 12, 12), 1: (12, 1, 12)}),
        ("cube", {"size": 10, "dense": True}, {0: (10, 10, 10)}),
        ("cube", {"size": 9}, {0: (9, 9, 9)}),
    ],
)
def test_patches_equal_hand_cut_windows(labelled_store, tmp_path, kind, options, extent):
    summary = extract_patches(
        labelled_store, tmp_path / "p.zarr", PatchesConfig(kind=kind, per_class=40, stride=3, **options)
    )
    patches = xr.open_zarr(tmp_path / "p.zarr").load()
    store = open_store(labelled_store, require=("labels",)).load()
    amplitude, labels = store.amplitude.values, store.labels.values
    assert summary["count"] == patches.sizes["patch"] > 0
    assert not summary["classes_in_depth_order"]  # the channel lies within a layer: it goes back up
    for n in range(patches.sizes["patch"]):
        i, j, k = (int(patches[name][n]) for name in ("inline_index", "crossline_index", "sample_index"))
        window = extent[int(patches.orientation[n])]
        expected = hand_cut(amplitude, i, j, k, window).reshape(patches.x[n].shape)
        np.testing.assert_array_equal(patches.x.values[n], expected)
        if patches.y.ndim > 1:
            np.testing.assert_array_equal(
                patches.y.values[n], hand_cut(labels, i, j, k, window).reshape(patches.y[n].shape)
            )
        else:
            assert patches.y.values[n] == labels[i, j, k]
    # windows cross the 16 x 16 x 32 chunk edges, so halos were needed
    crossing = (patches.crossline_index.values % 16 < 6) | (patches.crossline_index.values % 16 > 10)
    assert crossing.any()


def test_classes_are_balanced_and_split_has_no_overlap(labelled_store, tmp_path):
    extract_patches(
        labelled_store,
        tmp_path / "p.zarr",
        PatchesConfig(kind="section", size=8, per_class=20, stride=2, split_block=8, val_fraction=0.3),
    )
    patches = xr.open_zarr(tmp_path / "p.zarr").load()
    train = patches.split.values == 0
    centre = patches.y.values[:, 4, 4]
    counts = np.bincount(centre[train], minlength=6)
    assert counts.tolist() == [20] * 6  # every class has more than 20 training candidates in this survey
    voxels = {0: set(), 1: set()}
    for n in range(patches.sizes["patch"]):
        i, j, k = (int(patches[name][n]) for name in ("inline_index", "crossline_index", "sample_index"))
        voxels[int(patches.split[n])].update(
            (i, jj, kk) for jj in range(j - 4, j + 4) for kk in range(k - 4, k + 4)
        )
    assert voxels[1] and not voxels[0] & voxels[1]


def test_same_seed_same_store_on_threads_and_cluster(labelled_store, tmp_path, cluster_client):
    config = PatchesConfig(kind="section", size=8, per_class=25, augment=("flip", "scale"), seed=11)
    extract_patches(labelled_store, tmp_path / "threads.zarr", config)
    extract_patches(labelled_store, tmp_path / "cluster.zarr", config, cluster_client)
    threads = xr.open_zarr(tmp_path / "threads.zarr").load()
    cluster = xr.open_zarr(tmp_path / "cluster.zarr").load()
    xr.testing.assert_identical(threads.drop_attrs(), cluster.drop_attrs())
    assert (threads.flip.values == 1).any() and not np.all(threads.scale.values == 1)
    other = PatchesConfig(kind="section", size=8, per_class=25, seed=12)
    extract_patches(labelled_store, tmp_path / "other.zarr", other)
    other_store = xr.open_zarr(tmp_path / "other.zarr")

    def positions(p):
        return set(zip(*(p[n].values.tolist() for n in ("inline_index", "crossline_index", "sample_index"))))

    assert positions(other_store) != positions(threads)


def test_flip_augmentation_mirrors_the_section(labelled_store, tmp_path):
    extract_patches(
        labelled_store,
        tmp_path / "p.zarr",
        PatchesConfig(kind="section", size=8, per_class=10, augment=("flip",)),
    )
    patches = xr.open_zarr(tmp_path / "p.zarr").load()
    flipped = np.flatnonzero(patches.flip.values == 1)
    for n in flipped[:5]:
        key = [
            (patches[name].values == patches[name].values[n])
            for name in ("inline_index", "crossline_index", "sample_index")
        ]
        twin = np.flatnonzero(key[0] & key[1] & key[2] & (patches.flip.values == 0))[0]
        np.testing.assert_array_equal(patches.x.values[n], patches.x.values[twin][::-1])


def test_patches_need_labels(volume_store, tmp_path):
    with pytest.raises(StoreError, match="seisfacies labels"):
        extract_patches(volume_store, tmp_path / "p.zarr", PatchesConfig(kind="trace"))


def test_cut_tasks_own_whole_chunks_of_one_volume_column_and_every_row_once():
    from seisfacies.pipeline.patches import PatchSpec
    from seisfacies.workflows.patches import PATCH_CHUNK, cut_spans

    rng = np.random.default_rng(0)
    i, j = np.sort(rng.integers(0, 192, 5000)), rng.integers(0, 192, 5000)
    column = i // 64 * 3 + j // 64
    order = np.lexsort((j, i, column))  # volume order, chunk column by chunk column
    rows = {"i": i[order], "j": j[order]}
    dims = ("inline", "crossline", "time")
    spec = PatchSpec("section", dims, (192, 192, 256), 64, 4, ("inline",), 8, 0, True)
    spans = cut_spans(rows, spec, {"inline": 64, "crossline": 64, "time": 256})
    assert spans[0][0] == 0 and spans[-1][1] == 5000
    assert all(stop == start for (_, stop), (start, _) in zip(spans, spans[1:]))  # every row once
    assert all(start % PATCH_CHUNK == 0 for start, _ in spans)  # no two tasks write one chunk
    columns_of_chunk_starts = [column[order][start] for start, _ in spans]
    assert len(spans) >= len(set(columns_of_chunk_starts)) >= 8  # about one task per column, not per 256 rows
    assert len(spans) < 5000 // PATCH_CHUNK


def test_a_survey_too_small_for_the_asked_validation_is_refused_in_one_line(labelled_store, tmp_path):
    """Before: exit 0 with 'validation: 0' for every class (the split had one block)."""
    config = PatchesConfig(kind="section", size=32, orientation="both", val_fraction=0.3, per_class=300)
    with pytest.raises(LabelError, match=r"--val-fraction 0.3: no validation patch fits") as refused:
        extract_patches(labelled_store, tmp_path / "p.zarr", config)
    message = str(refused.value)
    assert "\n" not in message and "1 split block(s) of 64 x 64 traces" in message
    assert "--size 10 or smaller" in message and "--orientation inline" in message
    assert not (tmp_path / "p.zarr").exists() and not list(tmp_path.iterdir())
    smaller = extract_patches(labelled_store, tmp_path / "p.zarr", config.model_copy(update={"size": 10}))
    assert sum(smaller["validation"].values()) > 0


@pytest.mark.parametrize("chunks", ["16,16,64", "16,16,32"], ids=["whole traces", "split traces"])
@pytest.mark.parametrize("goes_back_up", [False, True], ids=["intervals", "one trace back up"])
def test_labels_in_depth_order_are_found_whether_a_chunk_holds_whole_traces_or_not(
    synthetic_survey, tmp_path, chunks, goes_back_up
):
    """Whole-trace chunks count the order with the candidates; split ones read whole traces for it.

    The trace that goes back up does so across the 32-sample chunk boundary,
    where neither chunk alone shows it.
    """
    store = tmp_path / "s.zarr"
    segy_to_zarr(synthetic_survey["seismic"], store, IngestConfig(chunks=chunks))
    labels = np.broadcast_to((np.arange(64) // 16).astype(np.int16), (40, 36, 64)).copy()  # four intervals
    if goes_back_up:
        labels[5, 7, 28:32] = 3  # the deepest class just above the boundary, the third below it
    np.save(tmp_path / "labels.npy", labels)
    attach_labels(store, tmp_path / "labels.npy", LabelsConfig())
    summary = extract_patches(store, tmp_path / "p.zarr", PatchesConfig(kind="trace", size=16, per_class=20))
    assert summary["classes_in_depth_order"] is not goes_back_up
