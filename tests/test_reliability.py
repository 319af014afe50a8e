"""Reliability: hostile SEG-Y files, workers killed mid-run, interrupted runs."""

from __future__ import annotations

import errno
import os
import random
import shutil
import signal
import subprocess
import threading
import time
from pathlib import Path

import numpy as np
import pytest
import xarray as xr

from seisfacies.pipeline.cluster import live_workers
from seisfacies.pipeline.commit import INCOMPLETE_ATTR, mark_incomplete
from seisfacies.pipeline.exceptions import ClusterError, SeisFaciesError, StoreError
from seisfacies.pipeline.segy import open_segy_dataset
from seisfacies.pipeline.store import open_store
from seisfacies.pipeline.testing import segyio_grid, write_large_segy, write_test_segy
from seisfacies.workflows.config import IngestConfig, LabelsConfig, PatchesConfig, PredictConfig, TrainConfig
from seisfacies.workflows.ingest import segy_to_zarr
from seisfacies.workflows.labels import attach_labels
from seisfacies.workflows.patches import extract_patches
from seisfacies.workflows.predict import predict_volume
from seisfacies.workflows.train import train_model
from tests.conftest import BIN, process_cluster, versionless

FUZZ_CASES = 1500


class CaseTimeout(Exception):
    pass


def _alarm(signum, frame):
    raise CaseTimeout


def mutate(data: bytes, rng: random.Random) -> bytes:
    """Corrupt textual/binary/trace headers or truncate, a few ways at once."""
    data = bytearray(data)
    for _ in range(rng.randint(1, 4)):
        action = rng.random()
        if action < 0.45:  # random bytes in the headers (textual, binary, first trace headers)
            position = rng.randrange(min(len(data), 3600 + 240 * 4))
            data[position] = rng.randrange(256)
        elif action < 0.75:  # a binary-header field set to an extreme value
            field = rng.choice([3217, 3221, 3225, 3505, 3501])
            data[field - 1 : field + 1] = rng.choice(
                [0, 1, 255, 65535, 32768, rng.randrange(65536)]
            ).to_bytes(2, "big")
        elif action < 0.9:  # cut the file short anywhere
            del data[rng.randrange(len(data)) :]
        else:  # scramble the line numbers of a trace
            trace = 3600 + rng.randrange(8) * (240 + 50 * 4)
            if trace + 196 < len(data):
                data[trace + 188 : trace + 196] = bytes(rng.randrange(256) for _ in range(8))
    return bytes(data)


def _agrees_with_segyio(path: Path, dataset: xr.Dataset, case) -> bool:
    """Where segyio reads a file too, the values and sample times must be segyio's; False if it cannot."""
    try:
        expected = segyio_grid(path, dataset.attrs["byte_order"], dataset.attrs["inline_byte"])
    except (RuntimeError, ValueError, OSError, IndexError):
        return False
    if expected["cube"].shape != dataset.amplitude.shape:
        return False  # segyio takes another trace length from the headers; ours refused or agreed with them
    np.testing.assert_array_equal(dataset.amplitude.values, expected["cube"], err_msg=f"case {case}")
    np.testing.assert_allclose(
        dataset[dataset.amplitude.dims[2]].values, expected["samples"], err_msg=f"case {case}"
    )
    return True


def test_fuzzed_segy_gives_a_result_or_one_line_error(tmp_path, shared_segy):
    """A few thousand corrupted files: a correct read or SeisFaciesError, nothing else, no hang."""
    bases = [
        (shared_segy / name).read_bytes()
        for name in ("small.sgy", "small-lsb.sgy", "f3.sgy", "Format5msb.sgy")
    ]
    rng = random.Random(20261124)
    outcomes = {"read": 0, "refused": 0, "compared": 0}
    previous = signal.signal(signal.SIGALRM, _alarm)
    try:
        for case in range(FUZZ_CASES):
            path = tmp_path / f"case{case % 8}.sgy"
            path.write_bytes(mutate(rng.choice(bases), rng))
            signal.alarm(10)
            try:
                dataset = open_segy_dataset(path)
                outcomes["read"] += 1
                outcomes["compared"] += _agrees_with_segyio(path, dataset, case)
            except SeisFaciesError as error:
                assert "\n" not in str(error) and str(error), f"case {case}: {error!r}"
                outcomes["refused"] += 1
            except CaseTimeout:
                pytest.fail(f"case {case}: reading took more than 10 s")
            finally:
                signal.alarm(0)
    finally:
        signal.signal(signal.SIGALRM, previous)
    assert outcomes["read"] > 50 and outcomes["refused"] > 50 and outcomes["compared"] > 50, outcomes


def test_fuzzed_files_leave_no_output_when_refused(tmp_path, shared_segy):
    rng = random.Random(7)
    base = (shared_segy / "small.sgy").read_bytes()
    for case in range(40):
        path = tmp_path / "in.sgy"
        path.write_bytes(mutate(base, rng))
        out = tmp_path / f"s{case}.zarr"
        try:
            segy_to_zarr(path, out, IngestConfig())
        except SeisFaciesError:
            assert not out.exists()
        else:
            _agrees_with_segyio(path, open_store(out), case)  # raises where segyio reads other values
        assert not list(tmp_path.glob(".*partial*"))


def test_nonfinite_samples_are_counted_refused_and_never_classified(tmp_path):
    source = tmp_path / "nan.sgy"
    cube = write_test_segy(source, (8, 8, 16), sample_format=5)
    data = bytearray(source.read_bytes())
    data[3600 + 240 : 3600 + 244] = np.array([np.nan], ">f4").tobytes()  # first sample of trace 0
    source.write_bytes(bytes(data))
    summary = segy_to_zarr(source, tmp_path / "s.zarr", IngestConfig())
    assert (
        summary["nonfinite_samples"] == 1 and open_store(tmp_path / "s.zarr").attrs["nonfinite_samples"] == 1
    )
    with pytest.raises(SeisFaciesError, match="1 samples are NaN"):
        segy_to_zarr(source, tmp_path / "r.zarr", IngestConfig(nonfinite="refuse"))
    assert not (tmp_path / "r.zarr").exists()
    labels = (cube > cube.mean()).astype(np.int16)
    np.save(tmp_path / "l.npy", labels)
    attach_labels(tmp_path / "s.zarr", tmp_path / "l.npy", LabelsConfig(classes="low,high"))
    extract_patches(
        tmp_path / "s.zarr",
        tmp_path / "p.zarr",
        PatchesConfig(kind="trace", size=8, per_class=20, split_block=4),
    )
    train_model(tmp_path / "p.zarr", tmp_path / "m.pt", TrainConfig(model="mlp", epochs=1))
    result = predict_volume(tmp_path / "s.zarr", tmp_path / "m.pt", PredictConfig())
    facies = open_store(tmp_path / "s.zarr", require=("facies",)).facies.values
    assert (
        result["unclassified_nonfinite_voxels"] == 1
        and facies[0, 0, 0] == -1
        and (facies[facies != -1] >= 0).all()
    )


def test_interrupted_variable_is_refused_then_finished_by_a_rerun(tmp_path):
    source = tmp_path / "in.sgy"
    cube = write_test_segy(source, (6, 6, 12))
    segy_to_zarr(source, tmp_path / "s.zarr", IngestConfig())
    np.save(tmp_path / "l.npy", (cube > cube.mean()).astype(np.int16))
    attach_labels(tmp_path / "s.zarr", tmp_path / "l.npy", LabelsConfig())
    mark_incomplete(tmp_path / "s.zarr", ["labels"])  # as if the run had died switching the new labels in
    with pytest.raises(StoreError, match="incomplete.*seisfacies labels"):
        open_store(tmp_path / "s.zarr", require=("labels",))
    attach_labels(tmp_path / "s.zarr", tmp_path / "l.npy", LabelsConfig())  # no --overwrite needed
    store = open_store(tmp_path / "s.zarr", require=("labels",))
    assert store.attrs[INCOMPLETE_ATTR] == [] and (store.labels.values >= 0).all()


# --- workers killed mid-run on a cluster of real processes -------------------------------------------


@pytest.fixture(scope="module")
def three_workers():
    """`dask scheduler` + 3 `dask worker` processes (each under a nanny that restarts it)."""
    with process_cluster(3) as address:
        yield address


def kill_one_worker_when(client, started: threading.Event, running: threading.Thread) -> bool:
    """SIGKILL one worker process once work has begun; True if the run was still going.

    The victim is the second worker by address: training puts rank 1 there.
    """
    started.wait(timeout=120)
    pids = client.run(os.getpid)
    os.kill(pids[sorted(pids)[1]], signal.SIGKILL)
    return running.is_alive()


def run_while_killing(function, client, watch: Path, pattern: str) -> bool:
    """Run ``function`` in a thread; kill a worker as soon as ``pattern`` files appear under ``watch``."""
    errors, started = [], threading.Event()

    def target():
        try:
            function()
        except Exception as error:  # noqa: BLE001  (re-raised in the test thread below)
            errors.append(error)

    thread = threading.Thread(target=target)
    thread.start()

    def watcher():
        deadline = time.time() + 120
        while time.time() < deadline and not list(watch.glob(pattern)):
            time.sleep(0.005)
        started.set()

    threading.Thread(target=watcher, daemon=True).start()
    was_running = kill_one_worker_when(client, started, thread)
    thread.join(timeout=600)
    if errors:
        raise errors[0]
    return was_running


@pytest.fixture(scope="module")
def fault_volume(tmp_path_factory):
    folder = tmp_path_factory.mktemp("faults")
    cube = write_test_segy(folder / "big.sgy", (120, 120, 400), sample_format=1)
    np.save(folder / "labels.npy", ((cube % 7) > 3).astype(np.int16))
    return folder


def test_ingest_survives_a_killed_worker(fault_volume, three_workers, tmp_path):
    from distributed import Client

    segy_to_zarr(fault_volume / "big.sgy", tmp_path / "ref.zarr", IngestConfig(chunks="8,8,400"))
    with Client(three_workers) as client:
        went_on = run_while_killing(
            lambda: segy_to_zarr(
                fault_volume / "big.sgy", tmp_path / "s.zarr", IngestConfig(chunks="8,8,400"), client
            ),
            client,
            tmp_path,
            ".s.zarr.partial-*/amplitude/c/*/*/*",
        )
    assert went_on, "the run finished before a worker could be killed"
    xr.testing.assert_identical(
        versionless(open_store(tmp_path / "ref.zarr")), versionless(open_store(tmp_path / "s.zarr"))
    )


def test_patches_and_prediction_survive_a_killed_worker(fault_volume, three_workers, tmp_path):
    from distributed import Client

    store = tmp_path / "s.zarr"
    segy_to_zarr(fault_volume / "big.sgy", store, IngestConfig(chunks="8,8,400"))
    attach_labels(store, fault_volume / "labels.npy", LabelsConfig(classes="a,b"))
    config = PatchesConfig(kind="section", size=16, per_class=3000, stride=2)
    extract_patches(store, tmp_path / "ref.zarr", config)
    with Client(three_workers) as client:
        assert run_while_killing(
            lambda: extract_patches(store, tmp_path / "p.zarr", config, client),
            client,
            tmp_path,
            ".p.zarr.partial-*/y/c/*/*/*",
        )
        xr.testing.assert_identical(
            xr.open_zarr(tmp_path / "ref.zarr").load().drop_attrs(),
            xr.open_zarr(tmp_path / "p.zarr").load().drop_attrs(),
        )
        train_model(
            tmp_path / "p.zarr",
            tmp_path / "m.pt",
            TrainConfig(model="cnn2d", epochs=1, model_options={"base": 2, "depth": 1}),
        )
        predict_volume(store, tmp_path / "m.pt", PredictConfig(batch_size=64))
        reference = open_store(store, require=("facies",)).facies.values
        assert run_while_killing(
            lambda: predict_volume(store, tmp_path / "m.pt", PredictConfig(overwrite=True), client),
            client,
            store,
            "facies/c/*/*/*",
        )
    np.testing.assert_array_equal(open_store(store, require=("facies",)).facies.values, reference)


def test_training_restarts_from_checkpoint_or_fails_clearly(fault_volume, three_workers, tmp_path):
    from distributed import Client

    store = tmp_path / "s.zarr"
    segy_to_zarr(fault_volume / "big.sgy", store, IngestConfig(chunks="40,40,400"))
    attach_labels(store, fault_volume / "labels.npy", LabelsConfig(classes="a,b"))
    extract_patches(store, tmp_path / "p.zarr", PatchesConfig(kind="trace", size=32, per_class=4000))
    config = TrainConfig(model="mlp", epochs=20, workers=2, timeout=20)
    with Client(three_workers) as client:
        client.wait_for_workers(3, timeout=60)
        started = time.time()
        with pytest.raises(ClusterError, match="training rank"):
            run_while_killing(
                lambda: train_model(tmp_path / "p.zarr", tmp_path / "a.pt", config, client),
                client,
                tmp_path,
                "a.pt",
            )
        assert time.time() - started < 120  # failed within the process-group timeout, no hang
        client.wait_for_workers(3, timeout=60)
        summary = {}
        run_while_killing(
            lambda: summary.update(
                train_model(
                    tmp_path / "p.zarr",
                    tmp_path / "b.pt",
                    config.model_copy(update={"max_restarts": 2}),
                    client,
                )
            ),
            client,
            tmp_path,
            "b.pt",
        )
    assert summary["restarts"] >= 1 and summary["epochs"] == 20


def _wave(rng, shape):
    """Cheap, deterministic samples for big test files."""
    return np.broadcast_to(np.sin(np.arange(shape[-1], dtype=np.float32) * 0.05) * 1000, shape)


def _peak_per_worker_mb(client, action) -> float:
    from distributed.diagnostics import MemorySampler

    sampler = MemorySampler()
    with sampler.sample("run", client=client, measure="process", interval=0.1):
        action()
    return float(sampler.to_pandas()["run"].max()) / 2**20 / len(live_workers(client))


def _train_tiny_cnn2d(folder: Path, store: Path) -> Path:
    """Ingest a 40 x 40 x 64 two-class survey into ``store`` and train a tiny cnn2d on it in ``folder``."""
    labels = np.zeros((40, 40, 64), np.int16)
    labels[:, :, 32:] = 1
    write_test_segy(folder / "tiny.sgy", labels.shape)
    segy_to_zarr(folder / "tiny.sgy", store, IngestConfig())
    np.save(folder / "l.npy", labels)
    attach_labels(store, folder / "l.npy", LabelsConfig(classes="up,down"))
    extract_patches(store, folder / "p.zarr", PatchesConfig(kind="section", size=16, per_class=20))
    train_model(
        folder / "p.zarr",
        folder / "m.pt",
        TrainConfig(model="cnn2d", epochs=1, model_options={"base": 2, "depth": 1}),
    )
    return folder / "m.pt"


def test_ingest_and_prediction_hold_a_per_worker_memory_limit(tmp_path):
    """Workers capped far below the volume finish without a worker killed or paused for good."""
    from distributed import Client, LocalCluster

    shape = (256, 256, 4800)  # 1.2 GiB of IBM floats: 3x the ingest workers' cap
    write_large_segy(tmp_path / "big.sgy", shape, values=_wave)
    size_mb = (tmp_path / "big.sgy").stat().st_size / 2**20
    with (
        LocalCluster(
            n_workers=2, threads_per_worker=1, memory_limit="400MiB", dashboard_address=":0"
        ) as cluster,
        Client(cluster) as client,
    ):
        pids = client.run(os.getpid)
        peak = _peak_per_worker_mb(
            client, lambda: segy_to_zarr(tmp_path / "big.sgy", tmp_path / "s.zarr", IngestConfig(), client)
        )
        assert client.run(os.getpid) == pids, "a worker was restarted"
    assert size_mb > 3 * 400 and peak < 400, (size_mb, peak)
    store = open_store(tmp_path / "s.zarr")
    assert store.amplitude.shape == shape and float(store.amplitude[5, 7, 100]) == pytest.approx(
        _wave(None, (4800,))[100], rel=1e-6
    )
    (tmp_path / "big.sgy").unlink()
    # a prediction task holds one chunk column of whole traces, whatever the volume's size: four columns
    # of 64 x 64 traces of 4800 samples, two tasks a worker (the whole volume took 3.5x as long)
    shape = (128, 128, 4800)
    write_large_segy(tmp_path / "deep.sgy", shape, values=_wave)
    segy_to_zarr(tmp_path / "deep.sgy", tmp_path / "s.zarr", IngestConfig(overwrite=True))
    _train_tiny_cnn2d(tmp_path, tmp_path / "t.zarr")  # its two classes are in depth order
    summary = {}
    with (
        LocalCluster(
            n_workers=2, threads_per_worker=1, memory_limit="1GiB", dashboard_address=":0"
        ) as cluster,
        Client(cluster) as client,
    ):
        pids = client.run(os.getpid)
        # no mirroring: it adds one batch's second pass to a task (bounded by --batch-size, not the
        # survey) and doubles the compute; the windows and whole traces under test are the same
        peak = _peak_per_worker_mb(
            client,
            lambda: summary.update(
                predict_volume(
                    tmp_path / "s.zarr", tmp_path / "m.pt", PredictConfig(batch_size=8, mirror=False), client
                )
            ),
        )
        assert client.run(os.getpid) == pids, "a worker was restarted"
    assert peak < 0.8 * 1024, peak  # below the pause threshold: no worker waited for memory
    facies = open_store(tmp_path / "s.zarr", require=("facies",)).facies
    assert facies.shape == shape
    # whole 4800-sample traces decided in depth order, a window at a time: a task holding whole
    # columns of inputs and log-probabilities ran these workers out of memory
    assert summary["class_order"] == "depth" and summary["tasks"] == 4
    assert not [warning for warning in summary.get("warnings", []) if "voxel by voxel" in warning]
    assert (facies[::37, ::41].diff("time") >= 0).all()


@pytest.fixture
def small_disk(tmp_path):
    """A real 1 MiB file system (tmpfs) that fills up; mounting it needs root."""
    disk = tmp_path / "disk"
    disk.mkdir()
    mounted = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", str(disk)], capture_output=True, text=True
    )
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a 1 MiB tmpfs here (needs root): {mounted.stderr.strip()}")
    try:
        yield disk
    finally:
        subprocess.run(["umount", str(disk)], check=False)


def fill_disk(disk: Path, room: int) -> None:
    """Write ``disk/filler`` so that only ``room`` bytes stay free."""
    free = os.statvfs(disk)
    (disk / "filler").write_bytes(b"\0" * max(0, free.f_bavail * free.f_frsize - room))


def test_disk_full_while_ingesting_is_a_one_line_error_and_leaves_nothing(tmp_path, small_disk):
    write_large_segy(tmp_path / "noise.sgy", (32, 32, 500))  # 2 MB of noise: cannot fit in 1 MiB
    result = subprocess.run(
        [BIN / "seisfacies", "ingest", tmp_path / "noise.sgy", small_disk / "s.zarr"],
        capture_output=True,
        text=True,
        timeout=300,
    )
    lines = result.stderr.strip().splitlines()
    assert result.returncode == 2 and "Traceback" not in result.stderr, result.stderr
    assert [line for line in lines if "No space left" in line] == lines[-1:] and "free disk space" in lines[
        -1
    ]
    assert list(small_disk.iterdir()) == []  # the temporary store was removed, nothing looks complete


def test_disk_full_while_predicting_is_one_line_and_a_rerun_finishes(tmp_path, small_disk):
    _train_tiny_cnn2d(tmp_path, small_disk / "s.zarr")
    fill_disk(small_disk, room=8 * 1024)  # not even the root metadata fits
    predict = [BIN / "seisfacies", "predict", small_disk / "s.zarr", tmp_path / "m.pt", "--probabilities"]
    result = subprocess.run(predict, capture_output=True, text=True, timeout=300)
    assert result.returncode == 2 and "Traceback" not in result.stderr, result.stderr
    assert "No space left on device" in result.stderr.strip().splitlines()[-1]
    with pytest.raises(StoreError, match="has no 'facies'"):  # the store is as it was
        open_store(small_disk / "s.zarr", require=("facies",))
    assert open_store(small_disk / "s.zarr").amplitude.shape == (40, 40, 64)
    (small_disk / "filler").unlink()
    assert (
        subprocess.run(predict, capture_output=True, timeout=300).returncode == 0
    )  # a re-run finishes the job
    assert open_store(small_disk / "s.zarr", require=("facies", "probability")).facies.shape == (40, 40, 64)


def test_a_disk_filling_at_any_step_of_prediction_keeps_the_old_result_whole(tmp_path, small_disk):
    """Sweep the free space so the disk fills at each step of a ``predict --overwrite`` in turn.

    The steps: the variables' template, chunks, metadata rewrites (zarr
    writes a temporary file and renames) and the switch. After each failure
    the store holds the previous prediction whole (its values and its
    model's hash), or refuses ``facies`` as caught in the switch; never a mix.
    """
    store, first = small_disk / "s.zarr", _train_tiny_cnn2d(tmp_path, small_disk / "s.zarr")
    second = tmp_path / "second.pt"
    train_model(
        tmp_path / "p.zarr",
        second,
        TrainConfig(model="cnn2d", epochs=1, seed=7, model_options={"base": 2, "depth": 1}),
    )
    amplitude = open_store(store).amplitude.values
    results = {}
    for model in (second, first):  # the first model's result is in the store when the sweep starts
        predict_volume(store, model, PredictConfig(probabilities=True, overwrite=True))
        predicted = open_store(store, require=("facies", "probability"))
        results[predicted.facies.attrs["model_sha256"]] = (
            predicted.facies.values,
            predicted.probability.values,
        )
    assert not np.array_equal(*[probability for _, probability in results.values()])  # two results
    outcomes = []
    for room_kib in range(0, 200, 8):
        fill_disk(small_disk, room=room_kib * 1024)
        try:
            predict_volume(store, second, PredictConfig(probabilities=True, overwrite=True))
            outcomes.append("finished")
        except OSError as error:
            assert error.errno == errno.ENOSPC, error
            outcomes.append("failed")
        try:
            predicted = open_store(store, require=("facies", "probability"))
            facies, probability = results[predicted.facies.attrs["model_sha256"]]
            assert np.array_equal(predicted.facies.values, facies), room_kib
            assert np.array_equal(predicted.probability.values, probability), room_kib
            assert predicted.probability.attrs["model_sha256"] == predicted.facies.attrs["model_sha256"]
            outcomes[-1] += ", whole"
        except StoreError as refused:
            assert "incomplete" in str(refused), refused
            outcomes[-1] += ", refused"
        assert np.array_equal(open_store(store).amplitude.values, amplitude)  # the input stays intact
        assert not [path for path in store.rglob("*") if "partial" in path.name]  # no temporary file left
        (small_disk / "filler").unlink()
        if outcomes[-1].startswith("finished"):
            break
    assert "failed, whole" in outcomes and outcomes[-1] == "finished, whole", outcomes


def plain_user() -> list[str]:
    """Return a command prefix under which file modes apply.

    None is needed for a plain user; root runs under setpriv without the
    capabilities that let it read and write anything.
    """
    if os.geteuid() != 0:
        return []
    setpriv = shutil.which("setpriv")
    if setpriv is None:
        pytest.skip("running as root without util-linux's setpriv, so file modes cannot be made to apply")
    return [setpriv, "--bounding-set", "-dac_override,-dac_read_search"]


def run_as_plain_user(*args, scheduler: str, umask: int = 0o022) -> str:
    """Run ``seisfacies ARGS`` as a plain user; assert exit 2 with one line and return that line."""
    result = subprocess.run(
        [*plain_user(), BIN / "seisfacies", *args, "--scheduler", scheduler],
        capture_output=True,
        text=True,
        timeout=300,
        umask=umask,
    )
    errors = [line for line in result.stderr.splitlines() if line.startswith("seisfacies: error")]
    assert result.returncode == 2 and "Traceback" not in result.stderr and len(errors) == 1, result.stderr
    return errors[0]


@pytest.fixture
def small_store(tmp_path):
    write_test_segy(tmp_path / "in.sgy", (12, 10, 16))
    segy_to_zarr(tmp_path / "in.sgy", tmp_path / "s.zarr", IngestConfig())
    np.save(tmp_path / "labels.npy", np.zeros((12, 10, 16), np.int16))
    return tmp_path / "s.zarr"


def test_permission_problems_are_refused_before_any_work(tmp_path, small_store, cluster_client):
    address = cluster_client.scheduler.address
    (tmp_path / "unreadable.sgy").write_bytes((tmp_path / "in.sgy").read_bytes())
    (tmp_path / "unreadable.sgy").chmod(0o000)
    (tmp_path / "read-only").mkdir(mode=0o555)
    before = sorted(path.name for path in tmp_path.iterdir())

    line = run_as_plain_user("ingest", tmp_path / "unreadable.sgy", tmp_path / "a.zarr", scheduler=address)
    assert "unreadable.sgy: permission denied; make the file readable" in line
    line = run_as_plain_user(
        "ingest", tmp_path / "in.sgy", tmp_path / "read-only" / "a.zarr", scheduler=address
    )
    assert "cannot write in the folder" in line and "read-only" in line
    line = run_as_plain_user("train", small_store, tmp_path / "read-only" / "m.pt", scheduler=address)
    assert "cannot write in the folder" in line
    small_store.chmod(0o555)
    line = run_as_plain_user("labels", small_store, tmp_path / "labels.npy", scheduler=address)
    assert "s.zarr: the store is read-only for this user" in line

    assert sorted(path.name for path in tmp_path.iterdir()) == before and not any(
        (tmp_path / "read-only").iterdir()
    )
    assert "labels" not in open_store(small_store).variables  # the store was not touched


def test_permission_denied_while_writing_leaves_nothing_that_looks_complete(
    tmp_path, small_store, cluster_client
):
    """A umask that forbids writing what the command itself creates: the first write in a new folder fails."""
    address, out = cluster_client.scheduler.address, tmp_path / "out"
    out.mkdir()
    line = run_as_plain_user("ingest", tmp_path / "in.sgy", out / "a.zarr", scheduler=address, umask=0o222)
    assert f"{out / 'a.zarr'}/" in line and "Permission denied; fix the permissions" in line
    assert list(out.iterdir()) == []  # the temporary store was removed

    line = run_as_plain_user("labels", small_store, tmp_path / "labels.npy", scheduler=address, umask=0o222)
    assert f"{small_store}/" in line and "Permission denied" in line
    with pytest.raises(StoreError, match="the store has no 'labels'"):  # the new labels never switched in
        open_store(small_store, require=("labels",))
    labels = [BIN / "seisfacies", "labels", small_store, tmp_path / "labels.npy", "--scheduler", address]
    assert (
        subprocess.run(labels, capture_output=True, timeout=300).returncode == 0
    )  # a re-run finishes the job
    assert open_store(small_store, require=("labels",)).labels.shape == (12, 10, 16)
