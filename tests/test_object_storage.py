"""The whole chain on a real S3-compatible server on loopback (moto in server mode).

Configured the standard way: AWS_* environment variables, AWS_ENDPOINT_URL
included, set before the worker processes start, so they reach the same
bucket as the client.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import segyio
import xarray as xr

import seisfacies as sf
from tests.conftest import free_port

pytest.importorskip("moto", reason="the S3 tests need moto[server] (pip install -e '.[test]')")
s3fs = pytest.importorskip("s3fs")

BUCKET = "survey-bucket"


@pytest.fixture(scope="module")
def s3_server(tmp_path_factory):
    """A moto S3 server on 127.0.0.1; yields its endpoint and its request log."""
    port = free_port()
    log = tmp_path_factory.mktemp("moto") / "requests.log"
    with log.open("w") as handle:
        server = subprocess.Popen(
            [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
            stdout=handle,
            stderr=subprocess.STDOUT,
        )
    endpoint = f"http://127.0.0.1:{port}"
    settings = {
        "AWS_ENDPOINT_URL": endpoint,
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_DEFAULT_REGION": "us-east-1",
    }
    saved = {key: os.environ.get(key) for key in settings}
    os.environ.update(settings)
    try:
        for _ in range(100):
            try:
                s3fs.S3FileSystem(skip_instance_cache=True).ls("")
                break
            except Exception:  # noqa: BLE001 (the server is still starting)
                time.sleep(0.1)
        fs = s3fs.S3FileSystem(skip_instance_cache=True)
        fs.mkdir(BUCKET)
        yield {"endpoint": endpoint, "log": log}
    finally:
        server.terminate()
        server.wait(timeout=30)
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
        s3fs.S3FileSystem.clear_instance_cache()


@pytest.fixture(scope="module")
def s3_cluster(s3_server):
    """Worker processes started after the AWS_* variables are set, as on a real deployment."""
    from distributed import Client, LocalCluster

    with LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=":0") as cluster:
        with Client(cluster) as client:
            yield client


def _url(*parts: str) -> str:
    return "/".join([f"s3://{BUCKET}", *parts])


def _gets(log: Path, key: str) -> dict[str, int]:
    """GET requests for one object in the server's log, by status (206: a ranged read)."""
    statuses: dict[str, int] = {}
    for status in re.findall(rf'"GET /{BUCKET}/{re.escape(key)}[^"]*" (\d+)', _log_text(log)):
        statuses[status] = statuses.get(status, 0) + 1
    return statuses


@pytest.mark.cluster
def test_the_whole_chain_on_object_storage_matches_the_local_run(s3_server, s3_cluster, tmp_path):
    fs = s3fs.S3FileSystem()
    sf.synth(tmp_path / "d", shape=(24, 20, 32), seed=4)
    for name in ("seismic.sgy", "labels.sgy"):
        fs.put_file(str(tmp_path / "d" / name), f"{BUCKET}/in/{name}")

    store, patches, model = _url("work", "s.zarr"), _url("work", "p.zarr"), _url("work", "m.pt")
    sf.ingest(_url("in", "seismic.sgy"), store, chunks="12,10,32", client=s3_cluster)
    sf.attach_labels(store, _url("in", "labels.sgy"), inlines=(104, 112, 120), client=s3_cluster)
    sf.extract_patches(store, patches, kind="trace", size=16, per_class=60, split_block=8, client=s3_cluster)
    sf.train(patches, model, model="mlp", epochs=3, client=s3_cluster)
    sf.predict(store, model, probabilities=True, client=s3_cluster)
    sf.export(store, _url("work", "facies.sgy"), variable="facies", client=s3_cluster)

    # the same chain on local files, with the same model: the same numbers
    local = tmp_path / "s.zarr"
    sf.ingest(tmp_path / "d" / "seismic.sgy", local, chunks="12,10,32")
    sf.attach_labels(local, tmp_path / "d" / "labels.sgy", inlines=(104, 112, 120))
    fs.get_file(f"{BUCKET}/work/m.pt", str(tmp_path / "m.pt"))
    sf.predict(local, tmp_path / "m.pt", probabilities=True)
    sf.export(local, tmp_path / "facies.sgy", variable="facies")
    remote, here = sf.open_store(store, require=("facies", "labels")), sf.open_store(local)
    assert np.array_equal(remote.amplitude.values, here.amplitude.values)
    assert np.array_equal(remote.labels.values, here.labels.values)
    assert np.array_equal(remote.facies.values, here.facies.values)
    assert (remote.facies.values >= 0).all() and remote.probability.sizes["class"] == 6
    fs.get_file(f"{BUCKET}/work/facies.sgy", str(tmp_path / "remote.sgy"))
    assert (tmp_path / "remote.sgy").read_bytes() == (tmp_path / "facies.sgy").read_bytes()
    with segyio.open(tmp_path / "remote.sgy") as handle:
        assert np.array_equal(segyio.tools.cube(handle), here.facies.values.astype(np.float32))
    assert not [path for path in fs.ls(f"{BUCKET}/work") if ".partial" in path or "_pending" in path]


@pytest.mark.cluster
def test_horizons_labels_between_maps_and_attributes_on_object_storage(s3_server, s3_cluster, tmp_path):
    fs = s3fs.S3FileSystem()
    sf.synth(tmp_path / "d", shape=(24, 20, 32), seed=5)
    for name in ("seismic.sgy", "horizons.txt"):
        fs.put_file(str(tmp_path / "d" / name), f"{BUCKET}/in5/{name}")
    store, local = _url("work5", "s.zarr"), tmp_path / "s.zarr"
    runs = ((store, _url("in5", "seismic.sgy"), _url("in5", "horizons.txt")),
            (local, tmp_path / "d" / "seismic.sgy", tmp_path / "d" / "horizons.txt"))  # fmt: skip
    for target, source, picks in runs:
        sf.ingest(source, target, chunks="12,10,32", client=s3_cluster)
        sf.import_horizons(target, [picks], columns="name,inline,crossline,time")
        sf.attach_labels(target, between=("h1", "h2"), client=s3_cluster)
        sf.map_horizon(target, horizon="h1", to="h2", variable="amplitude", client=s3_cluster)
        sf.add_attributes(target, add=("envelope",), client=s3_cluster)
    remote, here = (
        sf.open_store(store, require=("labels", "map_h1_amplitude", "envelope")),
        sf.open_store(local),
    )
    for name in ("horizons", "labels", "map_h1_amplitude", "envelope"):
        np.testing.assert_array_equal(remote[name].values, here[name].values)
    assert (remote.labels.values >= 0).any() and not [p for p in fs.ls(f"{BUCKET}/work5") if "_pending" in p]


@pytest.mark.cluster
def test_an_mdio_survey_on_object_storage_is_labelled_trained_and_predicted_in_place(
    s3_server, s3_cluster, tmp_path, monkeypatch
):
    mdio = pytest.importorskip("mdio", reason="the MDIO tests need multidimio (pip install -e '.[test]')")
    from tests.test_mdio import mdio_export, mdio_from_segy

    fs = s3fs.S3FileSystem()
    sf.synth(tmp_path / "d", shape=(24, 20, 32), seed=6)
    local = mdio_from_segy(
        tmp_path / "d" / "seismic.sgy", tmp_path / "survey.mdio", file_header=True, monkeypatch=monkeypatch
    )
    exported = mdio_export(local, tmp_path / "before.sgy")
    fs.put(str(local), f"{BUCKET}/mdio/", recursive=True)
    fs.put_file(str(tmp_path / "d" / "labels.sgy"), f"{BUCKET}/mdio/labels.sgy")
    survey, model = _url("mdio", "survey.mdio"), _url("mdio", "m.pt")

    for store in (survey, local):
        sf.attach_labels(store, _url("mdio", "labels.sgy"), inlines=(104, 112, 120), client=s3_cluster)
    sf.train(survey, model, model="mlp", epochs=2, client=s3_cluster)
    for store in (survey, local):
        sf.predict(store, model, uncertainty=True, client=s3_cluster)

    remote, here = mdio.open_mdio(survey), mdio.open_mdio(local)
    for name in ("labels", "facies", "uncertainty"):
        np.testing.assert_array_equal(remote[name].values, here[name].values)
    assert (remote.facies.values >= 0).all()
    fs.get(f"{BUCKET}/mdio/survey.mdio", str(tmp_path / "back.mdio"), recursive=True)
    assert mdio_export(tmp_path / "back.mdio", tmp_path / "after.sgy") == exported


@pytest.mark.cluster
def test_segy_on_object_storage_is_read_in_ranges(s3_server, s3_cluster, tmp_path):
    from seisfacies.pipeline.testing import write_test_segy

    fs = s3fs.S3FileSystem()
    write_test_segy(tmp_path / "big.sgy", (16, 12, 64))
    fs.put_file(str(tmp_path / "big.sgy"), f"{BUCKET}/ranged/big.sgy")
    sf.ingest(_url("ranged", "big.sgy"), _url("ranged", "s.zarr"), chunks="4,12,64", client=s3_cluster)
    statuses = _gets(s3_server["log"], "ranged/big.sgy")
    assert statuses.get("206", 0) >= 4  # header reads and one range per task
    assert statuses.get("200", 0) == 0, statuses  # never the whole object


@pytest.mark.cluster
def test_a_workflow_file_with_storage_options_runs_on_object_storage(s3_server, s3_cluster, tmp_path):
    fs = s3fs.S3FileSystem()
    sf.synth(tmp_path / "d", shape=(12, 10, 16))
    fs.put_file(str(tmp_path / "d" / "seismic.sgy"), f"{BUCKET}/wf/seismic.sgy")
    (tmp_path / "w.yaml").write_text(
        "name: w\n"
        f"storage_options: {{s3: {{endpoint_url: '{s3_server['endpoint']}'}}}}\n"
        "steps:\n"
        f"  - ingest: {{segy: {_url('wf', 'seismic.sgy')}, store: {_url('wf', 's.zarr')}}}\n"
    )
    first = sf.run_workflow(tmp_path / "w.yaml", client=s3_cluster, echo=lambda line: None)
    again = sf.run_workflow(tmp_path / "w.yaml", client=s3_cluster, echo=lambda line: None)
    assert [step["status"] for step in first["steps"]] != ["skipped"]
    assert [step["status"] for step in again["steps"]] == ["skipped"]  # fingerprints work on S3 too
    assert sf.open_store(_url("wf", "s.zarr")).sizes["inline"] == 12


def test_a_missing_object_is_one_line(s3_server, tmp_path):
    with pytest.raises(sf.SegyFormatError, match=rf"s3://{BUCKET}/nowhere.sgy: no such file"):
        sf.ingest(_url("nowhere.sgy"), tmp_path / "s.zarr")
    with pytest.raises(sf.StoreError, match=rf"s3://{BUCKET}/nowhere.zarr: not a seisfacies store"):
        sf.open_store(_url("nowhere.zarr"))


def test_a_re_ingested_survey_of_the_same_grid_is_a_new_version_for_run(s3_server, tmp_path):
    """The old fingerprint (``zarr.json``'s ETag) was the same for both: ``run`` kept the old model."""
    from seisfacies.workflows.run import fingerprint

    store = _url("versions.zarr")
    versions = []
    for seed in (1, 2):
        sf.synth(tmp_path / str(seed), shape=(12, 10, 16), seed=seed)
        sf.ingest(tmp_path / str(seed) / "seismic.sgy", store, overwrite=True)
        versions.append(fingerprint(f"{store}/amplitude"))
    assert sf.open_store(store).amplitude.shape == (12, 10, 16)
    assert None not in versions and versions[0] != versions[1]


def test_opening_a_store_reads_its_root_metadata_once(s3_server, tmp_path):
    """It read the root's twice and then every variable's own ``zarr.json``: one request each.

    The root holds a consolidated copy of them all, which a commit writes last
    (test_trust: a stopped commit leaves none, never a stale one).
    """
    sf.synth(tmp_path, shape=(12, 10, 16), seed=3)
    store = _url("opened.zarr")
    sf.ingest(tmp_path / "seismic.sgy", store)
    before = _metadata_requests(s3_server["log"], "opened.zarr")
    dataset = sf.open_store(store)
    read = _metadata_requests(s3_server["log"], "opened.zarr")[len(before) :]
    assert read == ["opened.zarr/zarr.json"], read
    assert dataset.amplitude.shape == (12, 10, 16) and dataset.amplitude.attrs["long_name"]


def test_setting_attributes_writes_the_metadata_once(s3_server, tmp_path):
    """Zarr's ``attrs.update`` wrote a node's ``zarr.json`` once per key: four requests for a provenance."""
    from seisfacies.pipeline.commit import set_variable_attrs, update_root_attrs

    sf.synth(tmp_path, shape=(12, 10, 16), seed=3)
    store = _url("attributes.zarr")
    sf.ingest(tmp_path / "seismic.sgy", store)
    before = _metadata_requests(s3_server["log"], "attributes.zarr", "PUT")
    update_root_attrs(store, {"a": 1, "b": 2, "c": 3})
    set_variable_attrs(
        store, "amplitude", {"model_file": "m.pt", "model_sha256": "0f", "model_name": "cnn2d"}
    )
    written = _metadata_requests(s3_server["log"], "attributes.zarr", "PUT")[len(before) :]
    assert written == ["attributes.zarr/zarr.json", "attributes.zarr/amplitude/zarr.json"], written
    dataset = xr.open_zarr(store, consolidated=False)
    assert {"a": 1, "b": 2, "c": 3}.items() <= dataset.attrs.items()
    assert dataset.amplitude.attrs["model_name"] == "cnn2d" and dataset.amplitude.attrs["long_name"]


def _metadata_requests(log: Path, prefix: str, method: str = "GET") -> list[str]:
    """The ``zarr.json`` objects under ``prefix`` read (or written) so far, in order, once the log stops growing."""
    pattern = rf'"{method} /{BUCKET}/({re.escape(prefix)}/(?:[^" ?]*/)?zarr\.json)[ "]'
    found = None
    for _ in range(50):
        time.sleep(0.05)
        found, before = re.findall(pattern, _log_text(log)), found
        if found == before:
            break
    return found


def _log_text(log: Path) -> str:
    """The server's log without the colours it writes."""
    return re.sub(r"\x1b\[[0-9;]*m", "", log.read_text())
