"""The commit protocol under faults: the old output or the new one, whole, whatever step fails.

Locally each writing command is killed (SIGKILL: no cleanup runs) at a step
in each quarter of its run and at each of its last five, counted by
``tests/kill_at.py``. The commands that run on workers connect to one
cluster that outlives each killed client, as a user's long-lived cluster
does. On object storage a real S3 server (moto) refuses one
write request, or every write from the Nth on, at a write in each sixth of
the command's writes and at each of its last four. After
each fault, seisfacies and plain ``xarray.open_zarr`` read the old output or
the new one whole (or refuse a variable caught in its switch), and the next
run of the command finishes and leaves nothing behind.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
from pathlib import Path

import dask
import numpy as np
import pytest
import segyio
import xarray as xr

import seisfacies as sf
from seisfacies.models.checkpoint import load_checkpoint
from seisfacies.pipeline.commit import lock_path
from seisfacies.workflows.config import IngestConfig, PredictConfig
from seisfacies.workflows.ingest import segy_to_zarr
from seisfacies.workflows.predict import predict_volume
from tests.conftest import process_cluster

pytestmark = pytest.mark.slow

KILL_AT = Path(__file__).with_name("kill_at.py")
SHAPE = (16, 12, 32)


def _command(kill_at: int, folder: Path, *args) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, KILL_AT, str(kill_at), str(folder), *map(str, args)],
        capture_output=True,
        text=True,
        timeout=300,
    )


def _changes(folder: Path, *args) -> int:
    """How many changes to the file system the command makes, run whole."""
    result = _command(0, folder, *args)
    assert result.returncode == 0, result.stderr
    return int(re.search(r"changes: (\d+)", result.stderr).group(1))


def _kill_points(changes: int) -> list[int]:
    """A step in each quarter of the run and each of the last five, where the commit ends.

    Where the commit itself falls varies by command (an ingest's exchange of
    folders comes before some sixty removals of the old copy), so the
    quarters land before and after it; the last steps release the lock.
    """
    return sorted({1, *(changes * part // 4 for part in (1, 2, 3)), *range(max(1, changes - 4), changes + 1)})


def _sweep(folder: Path, reset, args: tuple, check) -> list[str]:
    """Kill the command at each point after ``reset()``; what ``check()`` found after each kill."""
    reset()
    points = _kill_points(_changes(folder, *args))
    seen = []
    for point in points:
        reset()
        killed = _command(point, folder, *args)
        assert killed.returncode in (-9, 0), (point, killed.stderr)
        if killed.returncode == 0:  # threads make the count vary a little: a point past this run's own count
            assert check() == "new", point
            continue
        seen.append(check())
    finished = _command(0, folder, *args)  # the next run takes the dead writer's lock and finishes
    assert finished.returncode == 0, finished.stderr
    assert check() == "new"
    left = [p for p in folder.rglob("*") if ".partial" in p.name or ".old-" in p.name or p.suffix == ".lock"]
    assert not left, left
    return seen


@pytest.fixture(scope="module")
def surveys(tmp_path_factory):
    """Two surveys on one grid, their stores, two different models, in one folder."""
    folder = tmp_path_factory.mktemp("faults")
    for seed in (1, 2):
        sf.synth(folder / f"d{seed}", shape=SHAPE, seed=seed)
    store = folder / "s.zarr"
    sf.ingest(folder / "d1" / "seismic.sgy", store, chunks="8,12,32")
    sf.attach_labels(store, folder / "d1" / "labels.sgy")
    sf.extract_patches(store, folder / "p.zarr", kind="trace", size=16, per_class=30, split_block=4)
    for seed in (1, 2):
        sf.train(folder / "p.zarr", folder / f"m{seed}.pt", model="mlp", epochs=1, seed=seed)
    cubes = {seed: segyio.tools.cube(str(folder / f"d{seed}" / "seismic.sgy")) for seed in (1, 2)}
    return {"folder": folder, "store": store, "cubes": cubes}


@pytest.fixture(scope="module")
def scheduler(surveys):
    """``--scheduler ADDRESS`` of one 2-worker cluster for the commands that run on workers.

    Each killed client leaves that cluster to the next command, as one killed
    on a user's long-lived cluster does; and no command pays for starting
    worker processes of its own.
    """
    with process_cluster(2) as address:
        yield ("--scheduler", address)


def test_a_killed_ingest_leaves_the_old_store_or_the_new(surveys):
    folder, cubes = surveys["folder"], surveys["cubes"]
    store = folder / "killed.zarr"

    def reset():
        sf.ingest(folder / "d1" / "seismic.sgy", store, chunks="8,12,32", overwrite=True)

    def check():
        ours = sf.open_store(store).amplitude.values
        plain = xr.open_zarr(store).amplitude.values
        assert np.array_equal(ours, plain)
        return {1: "old", 2: "new"}[next(s for s, cube in cubes.items() if np.array_equal(ours, cube))]

    args = ("ingest", folder / "d2" / "seismic.sgy", store, "--chunks", "8,12,32", "--overwrite")
    assert set(_sweep(folder, reset, args, check)) == {"old", "new"}


def test_a_killed_patch_cut_leaves_the_old_patch_store_or_the_new(surveys, scheduler):
    folder, store = surveys["folder"], surveys["store"]
    patches = folder / "killed-patches.zarr"
    options = dict(kind="trace", size=16, per_class=30, split_block=4)
    versions = {}
    for seed in (1, 2):
        sf.extract_patches(store, patches, seed=seed, overwrite=True, **options)
        versions[seed] = xr.open_zarr(patches).x.values
    assert not np.array_equal(versions[1], versions[2])

    def check():
        x = xr.open_zarr(patches).x.values
        return {1: "old", 2: "new"}[next(s for s, v in versions.items() if np.array_equal(x, v))]

    args = ("patches", store, patches, "--kind", "trace", "--size", 16, "--per-class", 30)
    args += ("--split-block", 4, "--seed", 2, "--overwrite", *scheduler)
    seen = _sweep(
        folder, lambda: sf.extract_patches(store, patches, seed=1, overwrite=True, **options), args, check
    )
    assert set(seen) == {"old", "new"}


def test_a_killed_prediction_keeps_the_old_facies_or_refuses_them(surveys, scheduler):
    folder, store = surveys["folder"], surveys["store"]
    results = {}
    for seed in (2, 1):
        sf.predict(store, folder / f"m{seed}.pt", probabilities=True, overwrite=True)
        predicted = sf.open_store(store, require=("facies", "probability"))
        results[predicted.facies.attrs["model_sha256"]] = (seed, predicted.probability.values)

    def check():
        try:
            predicted = sf.open_store(store, require=("facies", "probability"))
        except sf.StoreError as refused:
            assert "incomplete (a run stopped before it finished)" in str(refused), refused
            return "refused"
        seed, probability = results[predicted.facies.attrs["model_sha256"]]
        assert predicted.probability.attrs["model_sha256"] == predicted.facies.attrs["model_sha256"]
        assert np.array_equal(predicted.probability.values, probability)
        assert np.array_equal(xr.open_zarr(store).probability.values, probability)  # plain xarray too
        return {1: "old", 2: "new"}[seed]

    args = ("predict", store, folder / "m2.pt", "--probabilities", "--overwrite", *scheduler)
    reset = lambda: sf.predict(store, folder / "m1.pt", probabilities=True, overwrite=True)  # noqa: E731
    assert {"old", "new"} <= set(_sweep(folder, reset, args, check))


def test_a_killed_training_leaves_a_whole_checkpoint(surveys, scheduler):
    folder = surveys["folder"]
    model = folder / "killed.pt"
    old = (folder / "m1.pt").read_bytes()

    def reset():
        model.write_bytes(old)

    def check():
        payload = load_checkpoint(model)  # never a truncated file
        return "old" if model.read_bytes() == old else "new" if payload["final"] else "partial"

    args = ("train", folder / "p.zarr", model, "--model", "mlp", "--epochs", 2, "--seed", 5, "--overwrite")
    args += scheduler
    assert {"old", "new"} <= set(_sweep(folder, reset, args, check))


def test_a_killed_export_leaves_the_old_file_or_the_new(surveys):
    folder, store = surveys["folder"], surveys["store"]
    out = folder / "killed.sgy"
    versions = {}
    for variable in ("amplitude", "facies"):
        sf.export(store, out, variable=variable, overwrite=True)
        versions[variable] = out.read_bytes()

    def check():
        return {versions["amplitude"]: "old", versions["facies"]: "new"}[out.read_bytes()]

    args = ("export", store, out, "--variable", "facies", "--overwrite")
    reset = lambda: sf.export(store, out, variable="amplitude", overwrite=True)  # noqa: E731
    assert set(_sweep(folder, reset, args, check)) == {"old", "new"}


# ---------------------------------------------------------------- object storage


@pytest.fixture(scope="module")
def faulty_s3():
    """A moto S3 server that refuses writes on demand, configured the standard way (AWS_*)."""
    pytest.importorskip("moto", reason="the S3 tests need moto[server] (pip install -e '.[test]')")
    s3fs = pytest.importorskip("s3fs")
    from tests.faulty_s3 import FaultyS3

    server = FaultyS3()
    settings = {
        "AWS_ENDPOINT_URL": server.endpoint,
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_DEFAULT_REGION": "us-east-1",
    }
    saved = {key: os.environ.get(key) for key in settings}
    os.environ.update(settings)
    s3fs.S3FileSystem.clear_instance_cache()
    try:
        s3fs.S3FileSystem().mkdir("faults")
        # reads compute here: workers of a cluster started earlier would not have these AWS settings
        with dask.config.set(scheduler="threads"):
            yield server
    finally:
        server.close()
        for key, value in saved.items():
            os.environ.pop(key) if value is None else os.environ.__setitem__(key, value)
        s3fs.S3FileSystem.clear_instance_cache()


def _ingest(segy: Path, store: str, overwrite: bool = False) -> None:
    """In this process: the server counts every write of the command (no worker started earlier)."""
    segy_to_zarr(segy, store, IngestConfig(overwrite=overwrite))


def _predict(store: str, model: Path) -> None:
    predict_volume(store, model, PredictConfig(overwrite=True))


def _fault_points(writes: int) -> list[int]:
    """A write in each sixth of the command's writes and each of the last four (the commit's)."""
    return sorted({1, *range(1, writes + 1, max(1, writes // 6)), *range(max(1, writes - 3), writes + 1)})


def _which(found: np.ndarray, cubes: dict) -> int | None:
    return next((seed for seed, cube in cubes.items() if np.array_equal(found, cube)), None)


def test_a_new_store_on_object_storage_is_written_once_and_appears_whole(surveys, faulty_s3):
    """Written in place (no copy of its data); an outage at any write leaves no store that looks whole."""
    folder, cubes = surveys["folder"], surveys["cubes"]
    store = "s3://faults/new.zarr"
    faulty_s3.heal()
    _ingest(folder / "d1" / "seismic.sgy", store)
    writes = faulty_s3.writes
    assert faulty_s3.copies == ["/faults/new.zarr/zarr.json"]  # only the root metadata moved: data once
    seen = set()
    for point in _fault_points(writes):
        _remove(store)
        faulty_s3.outage_from(point)
        with pytest.raises((OSError, sf.SeisFaciesError)):
            _ingest(folder / "d2" / "seismic.sgy", store)
        faulty_s3.heal()
        try:  # no store at all, or (an outage after the root metadata landed) the new one whole
            found = sf.open_store(store).amplitude.values
            assert np.array_equal(found, xr.open_zarr(store).amplitude.values)
            seen.add(_which(found, cubes))
        except sf.StoreError as refused:
            assert "not a seisfacies store" in str(refused), refused
            with pytest.raises((FileNotFoundError, KeyError, ValueError)):  # plain xarray: no store there
                xr.open_zarr(store)
            seen.add("none")
        _ingest(folder / "d2" / "seismic.sgy", store, overwrite=True)  # the next run clears what was left
        assert _which(sf.open_store(store).amplitude.values, cubes) == 2
    assert "none" in seen and None not in seen, seen


def _remove(url: str) -> None:
    import s3fs

    s3fs.S3FileSystem().rm(url.removeprefix("s3://"), recursive=True)


def test_a_failed_overwrite_on_object_storage_leaves_the_old_store_or_the_new(surveys, faulty_s3):
    folder, cubes = surveys["folder"], surveys["cubes"]
    store = "s3://faults/replaced.zarr"
    faulty_s3.heal()
    _ingest(folder / "d1" / "seismic.sgy", store, overwrite=True)
    faulty_s3.heal()
    _ingest(folder / "d2" / "seismic.sgy", store, overwrite=True)
    writes = faulty_s3.writes
    seen = set()
    for point in _fault_points(writes):
        faulty_s3.heal()
        _ingest(folder / "d1" / "seismic.sgy", store, overwrite=True)
        faulty_s3.fail_at(point)
        try:
            _ingest(folder / "d2" / "seismic.sgy", store, overwrite=True)
        except (OSError, sf.SeisFaciesError):
            pass
        faulty_s3.heal()
        found = sf.open_store(store).amplitude.values
        assert np.array_equal(found, xr.open_zarr(store).amplitude.values)
        seen.add(_which(found, cubes))
    assert seen == {1, 2}, seen  # never neither (None)


def test_a_failed_prediction_on_object_storage_keeps_the_old_facies(surveys, faulty_s3):
    folder = surveys["folder"]
    store = "s3://faults/predicted.zarr"
    faulty_s3.heal()
    _ingest(folder / "d1" / "seismic.sgy", store, overwrite=True)
    results = {}
    for seed in (2, 1):
        faulty_s3.heal()
        _predict(store, folder / f"m{seed}.pt")
        facies = sf.open_store(store, require=("facies",)).facies
        results[facies.attrs["model_sha256"]] = facies.values
    writes = faulty_s3.writes
    seen = set()
    for point in _fault_points(writes):
        faulty_s3.heal()
        _predict(store, folder / "m1.pt")
        faulty_s3.fail_at(point)
        try:
            _predict(store, folder / "m2.pt")
        except (OSError, sf.SeisFaciesError):
            pass
        faulty_s3.heal()
        try:
            facies = sf.open_store(store, require=("facies",)).facies
        except sf.StoreError as refused:
            assert "incomplete" in str(refused), refused
            seen.add("refused")
            continue
        assert np.array_equal(facies.values, results[facies.attrs["model_sha256"]])
        seen.add(facies.attrs["model_sha256"])
    assert set(results) <= seen, seen
    faulty_s3.heal()
    _predict(store, folder / "m2.pt")  # whatever a fault left, a re-run finishes
    facies = sf.open_store(store, require=("facies",)).facies
    assert np.array_equal(facies.values, results[facies.attrs["model_sha256"]])
    assert not _exists(lock_path(store))


def _exists(url: str) -> bool:
    import s3fs

    return s3fs.S3FileSystem(skip_instance_cache=True).exists(url.removeprefix("s3://"))


RACER = """
import sys, time
from seisfacies.pipeline.commit import writing
from seisfacies.pipeline.exceptions import StoreError
time.sleep(max(0.0, float(sys.argv[2]) - time.time()))  # both start at the same instant
try:
    with writing(sys.argv[1], "racer"):
        print("won", flush=True)
        time.sleep(1.5)
except StoreError:
    print("refused", flush=True)
"""


def test_two_writers_starting_at_once_on_object_storage_never_both_win(faulty_s3):
    """The lock is an exclusive create (If-None-Match); written then read back, both could win."""
    faulty_s3.heal()
    for round_ in range(4):
        start = time.time() + 3
        racers = [
            subprocess.Popen(
                [sys.executable, "-c", RACER, f"s3://faults/race-{round_}.zarr", str(start)],
                stdout=subprocess.PIPE,
                text=True,
                env=os.environ.copy(),
            )
            for _ in range(2)
        ]
        outcomes = sorted(racer.communicate(timeout=120)[0].strip() for racer in racers)
        assert outcomes == ["refused", "won"], (round_, outcomes)
