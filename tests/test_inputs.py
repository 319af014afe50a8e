"""What a model sees besides the amplitude: the ``depth`` input (each sample's place in its trace)."""

from __future__ import annotations

import numpy as np
import pytest

import seisfacies as sf
from seisfacies.models.checkpoint import load_checkpoint
from seisfacies.pipeline.segy_write import write_cube

SHAPE = (10, 40, 128)
TINY = {"base": 4, "depth": 1}  # sees 11 samples each way: nothing tells it how deep it is but the input


@pytest.fixture(scope="module")
def look_alike(tmp_path_factory):
    """White noise everywhere, an upper and a lower facies split at half the trace, labels on 3 inlines."""
    folder = tmp_path_factory.mktemp("depth")
    noise = np.random.default_rng(0).standard_normal(SHAPE).astype(np.float32)
    grid = {"inlines": np.arange(1, SHAPE[0] + 1), "crosslines": np.arange(1, SHAPE[1] + 1)}
    write_cube(str(folder / "noise.sgy"), noise, sample_format=5, **grid)
    truth = np.zeros(SHAPE, np.int16)
    truth[:, :, SHAPE[2] // 2 :] = 1
    labels = np.full(SHAPE, -1, np.int16)
    labels[[1, 5, 8]] = truth[[1, 5, 8]]
    np.save(folder / "labels.npy", labels)
    np.save(folder / "truth.npy", truth)
    store = folder / "s.zarr"
    sf.ingest(folder / "noise.sgy", store, chunks="5,40,128")
    sf.attach_labels(store, folder / "labels.npy", classes="upper,lower")
    models = {}
    for inputs in (("amplitude",), ("amplitude", "depth")):
        patches, model = folder / f"{len(inputs)}.zarr", folder / f"{len(inputs)}.pt"
        sf.extract_patches(
            store, patches, kind="section", size=32, per_class=120, inputs=inputs, val_fraction=0
        )
        sf.train(patches, model, epochs=20, model_options=TINY, seed=1)
        models[inputs] = model
    return {"folder": folder, "store": store, "truth": truth, "models": models}


def _accuracy(store, model, truth) -> float:
    # voxel by voxel: what the input alone tells (these labels are in depth order, which would help too)
    sf.predict(store, model, overwrite=True, class_order="voxel")
    facies = sf.open_store(store, require=("facies",)).facies.values
    unlabelled = np.ones(SHAPE[0], bool)
    unlabelled[[1, 5, 8]] = False
    return float((facies[unlabelled] == truth[unlabelled]).mean())


def test_the_depth_input_tells_apart_facies_that_look_alike_at_different_depths(look_alike):
    store, truth = look_alike["store"], look_alike["truth"]
    with_depth = _accuracy(store, look_alike["models"][("amplitude", "depth")], truth)
    without = _accuracy(store, look_alike["models"][("amplitude",)], truth)
    assert with_depth > 0.95 and without < 0.8, (with_depth, without)
    checkpoint = load_checkpoint(look_alike["models"][("amplitude", "depth")])
    assert (
        checkpoint["patch"]["inputs"] == ["amplitude", "depth"]
        and checkpoint["model_config"]["in_channels"] == 2
    )


def test_a_depth_model_predicts_the_same_whatever_the_chunking(look_alike, tmp_path):
    """The depth of a block's samples comes from where the block is, not from the block."""
    model = look_alike["models"][("amplitude", "depth")]
    sf.predict(look_alike["store"], model, overwrite=True)
    expected = sf.open_store(look_alike["store"], require=("facies",)).facies.values
    rechunked = tmp_path / "rechunked.zarr"
    sf.ingest(look_alike["folder"] / "noise.sgy", rechunked, chunks="3,7,40")
    sf.predict(rechunked, model)
    np.testing.assert_array_equal(sf.open_store(rechunked, require=("facies",)).facies.values, expected)


def test_the_depth_input_is_refused_where_it_cannot_go(look_alike, tmp_path):
    store = look_alike["store"]
    with pytest.raises(sf.ConfigError, match="--inputs depth: a trace patch is one window of samples"):
        sf.extract_patches(store, tmp_path / "t.zarr", kind="trace", size=16, inputs=("amplitude", "depth"))
    patches = tmp_path / "p.zarr"
    sf.extract_patches(store, patches, kind="section", size=16, per_class=10, inputs=("amplitude", "depth"))
    with pytest.raises(sf.ConfigError, match="cnn2d_patch takes no depth channel"):
        sf.train(patches, tmp_path / "m.pt", model="cnn2d_patch", epochs=1)
    with pytest.raises(sf.ConfigError, match="--inputs envelope: the store has no 'envelope'"):
        sf.extract_patches(store, patches, kind="section", inputs=("amplitude", "envelope"), overwrite=True)


def test_a_patch_store_from_before_inputs_reads_as_amplitude_only(look_alike, tmp_path):
    import shutil

    import zarr

    from seisfacies.workflows.ranks import input_channels, patch_attrs

    old = tmp_path / "old.zarr"
    shutil.copytree(look_alike["folder"] / "2.zarr", old)
    group = zarr.open_group(str(old), mode="r+")
    del group.attrs["inputs"]
    attrs = patch_attrs(str(old))
    assert attrs["inputs"] == ["amplitude"] and input_channels(attrs) == 1
