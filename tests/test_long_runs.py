"""Long and busy runs: the rank monitor's view of the cluster, empty validation shards, a loaded machine."""

from __future__ import annotations

import shutil
import time

import dask
import numpy as np
import pytest
import zarr

from seisfacies.models.checkpoint import load_checkpoint
from seisfacies.pipeline.cluster import live_workers
from seisfacies.pipeline.exceptions import ConfigError
from seisfacies.workflows import ranks
from seisfacies.workflows.config import LabelsConfig, PatchesConfig, TrainConfig
from seisfacies.workflows.labels import attach_labels
from seisfacies.workflows.patches import extract_patches
from seisfacies.workflows.train import train_model
from tests.conftest import process_cluster, write_labelled_store

pytestmark = pytest.mark.cluster

#: The client's own refresh of its cached scheduler identity, made frequent: the race then
#: shows in about 1 look in 10 instead of rarely in an hour (distributed's default is 2 s).
FAST_REFRESH = {"distributed.client.scheduler-info-interval": "2ms"}


@pytest.fixture(scope="module")
def trace_patches(labelled):
    return labelled[1]


@pytest.fixture
def refreshing_client(cluster_client):
    """A second client of the session's 2-worker cluster whose cached identity is refreshed every 2 ms."""
    from distributed import Client

    with dask.config.set(FAST_REFRESH), Client(cluster_client.scheduler.address) as client:
        yield client


def test_live_workers_never_misses_a_live_worker_while_the_cache_is_refreshed(refreshing_client):
    expected = set(live_workers(refreshing_client))
    assert len(expected) == 2
    looks, started = 0, time.perf_counter()
    while time.perf_counter() - started < 2.0:
        assert set(live_workers(refreshing_client)) == expected
        looks += 1
    assert looks > 200  # enough looks that the cached view would have come back empty many times


def test_the_rank_monitor_never_reports_a_live_worker_lost(
    trace_patches, tmp_path, refreshing_client, monkeypatch
):
    # the monitor looks every 5 ms instead of 0.5 s: hundreds of looks in one short training
    monkeypatch.setattr(ranks, "MONITOR_POLL_S", 0.005)
    config = TrainConfig(model="mlp", epochs=40, batch_size=16, workers=2, seed=1)
    summary = train_model(trace_patches, tmp_path / "m.pt", config, refreshing_client)
    assert summary["epochs"] == 40 and summary["restarts"] == 0


def _with_validation_rows(patches, folder, rows: int):
    """A copy of the patch store whose validation split is its first ``rows`` validation patches."""
    copy = folder / "few-valid.zarr"
    shutil.copytree(patches, copy)
    split = zarr.open_array(store=str(copy / "split"), mode="r+")
    values = split[:]
    valid = np.flatnonzero(values == 1)
    values[valid[rows:]] = 0
    split[:] = values
    return copy


@pytest.mark.parametrize("rows", [1, 0])
def test_two_ranks_train_when_one_holds_no_validation_patch(trace_patches, tmp_path, cluster_client, rows):
    patches = _with_validation_rows(trace_patches, tmp_path, rows)
    config = TrainConfig(model="mlp", epochs=2, batch_size=16, workers=2)
    summary = train_model(patches, tmp_path / "m.pt", config, cluster_client)
    record = load_checkpoint(tmp_path / "m.pt")["history"][-1]
    assert summary["epochs"] == 2
    # the one held-out patch is counted once, on whichever rank holds it; none: no validation at all
    assert ("val_accuracy" in record) == bool(rows)
    if rows:
        assert record["val_accuracy"] in (0.0, 1.0)


def test_four_ranks_train_on_point_labels(synthetic_survey, tmp_path):
    """CSV points give a handful of patches: some of the four ranks hold no validation patch."""
    from distributed import Client, LocalCluster

    store = write_labelled_store(synthetic_survey, tmp_path)
    rng = np.random.default_rng(0)
    labels = zarr.open_array(store=str(store / "labels"), mode="r")[:]
    inline = zarr.open_array(store=str(store / "inline"), mode="r")[:]
    crossline = zarr.open_array(store=str(store / "crossline"), mode="r")[:]
    time_axis = zarr.open_array(store=str(store / "time"), mode="r")[:]
    classes = synthetic_survey["classes"]
    lines = ["inline,crossline,time,class"]
    for _ in range(24):
        i, j, k = (int(rng.integers(0, n)) for n in labels.shape)
        lines.append(f"{inline[i]},{crossline[j]},{time_axis[k]},{classes[labels[i, j, k]]}")
    (tmp_path / "points.csv").write_text("\n".join(lines) + "\n")
    attach_labels(store, tmp_path / "points.csv", LabelsConfig(classes=",".join(classes), overwrite=True))
    patches = tmp_path / "p.zarr"
    extract_patches(store, patches, PatchesConfig(kind="trace", size=16, split_block=4, val_fraction=0.2))
    valid = int((zarr.open_array(store=str(patches / "split"), mode="r")[:] == 1).sum())
    assert 0 < valid < 4, valid  # fewer than the ranks: contiguous shards leave some empty
    with (
        LocalCluster(n_workers=4, threads_per_worker=1, processes=True, dashboard_address=":0") as cluster,
        Client(cluster) as client,
    ):
        summary = train_model(
            patches, tmp_path / "m.pt", TrainConfig(model="mlp", epochs=2, batch_size=8, workers=4), client
        )
    assert summary["workers"] == 4 and summary["epochs"] == 2


def test_workers_auto_trains_one_rank_per_host_and_one_where_a_step_is_too_small(labelled, tmp_path):
    """Workers on two loopback addresses stand for two machines; two of the three share one."""
    from distributed import Client

    store, trace_patches = labelled
    sections = tmp_path / "sections.zarr"
    extract_patches(store, sections, PatchesConfig(kind="section", size=32, per_class=8, split_block=8))
    hosts = ("127.0.0.1", "127.0.0.1", "127.0.0.2")
    with process_cluster(3, hosts=hosts) as address, Client(address) as client:
        cnn = train_model(sections, tmp_path / "cnn.pt", TrainConfig(model="cnn2d", epochs=1), client)
        mlp = train_model(trace_patches, tmp_path / "mlp.pt", TrainConfig(model="mlp", epochs=1), client)
    assert cnn["workers"] == 2, cnn  # a cnn2d step is 7 GFLOP: one rank on each host pays
    assert "trained on 2 of 3 workers: one rank per host" in cnn["workers_note"]
    assert mlp["workers"] == 1, mlp  # the mlp's step is far shorter than a gradient all-reduce
    assert "trained on 1 of 3 workers: a step (" in mlp["workers_note"] and "too small" in mlp["workers_note"]
    assert load_checkpoint(tmp_path / "cnn.pt")["train_config"]["workers"] == 2


def test_a_batch_smaller_than_the_shards_is_refused_in_one_line(trace_patches, tmp_path):
    config = TrainConfig(model="mlp", epochs=1, batch_size=2, shards=4)
    with pytest.raises(ConfigError, match="option --batch-size 2: .* 4 shards") as caught:
        train_model(trace_patches, tmp_path / "m.pt", config)
    assert "\n" not in str(caught.value) and not (tmp_path / "m.pt").exists()


@pytest.mark.slow
def test_the_demo_chain_passes_on_a_cluster_with_its_cpus_oversubscribed(tmp_path):
    """Three busy loops on this machine's cores while the demo chain runs on a separate 2-worker cluster.

    A busy machine stretches every step: heartbeats, the ranks' rendezvous and
    collectives, the monitor's looks. Nothing may fail for being slow.
    """
    import json
    import subprocess
    import sys

    from tests.conftest import BIN, process_cluster

    loops = [subprocess.Popen([sys.executable, "-c", "while True: pass"]) for _ in range(3)]
    try:
        with process_cluster(2) as address:
            demo = [BIN / "seisfacies", "demo", "--out", tmp_path, "--shape", "32", "32", "48"]
            result = subprocess.run(
                [*demo, "--epochs", "1", "--scheduler", address], capture_output=True, text=True, timeout=1200
            )
    finally:
        for loop in loops:
            loop.kill()
            loop.wait()
    assert result.returncode == 0, result.stderr[-2000:]
    record = json.loads((tmp_path / "demo.run.json").read_text())
    assert {step["status"] for step in record["steps"]} == {"ran"} and len(record["steps"]) == 13
    train = next(step for step in record["steps"] if step["step"] == "train")
    assert train["summary"]["restarts"] == 0  # the training was never restarted
