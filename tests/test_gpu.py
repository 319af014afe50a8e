"""GPU placement and the GPU code paths, on CPU machines.

Workers of a real LocalCluster are told they have GPUs by replacing
``torch.cuda.is_available`` and ``device_count`` inside each worker process,
so the client's planning, refusals and task resources are exercised end to
end; the tensor paths a GPU takes (device-resident shards, no per-step host
synchronisation, whole blocks copied to the device) run on the CPU device.
"""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from click.testing import CliRunner

from seisfacies.models.inference import InferenceOptions, classify_block
from seisfacies.models.registry import create_model_for_patches
from seisfacies.models.training import FitOptions, NonFiniteLoss, fit
from seisfacies.pipeline.cluster import live_workers, run_tasks
from seisfacies.pipeline.exceptions import ClusterError, ConfigError
from seisfacies.workflows import devices
from seisfacies.workflows.cli import cli
from seisfacies.workflows.config import PatchesConfig, PredictConfig, TrainConfig
from seisfacies.workflows.devices import (
    Placement,
    cluster_gpus,
    gpu_resources,
    pick_workers,
    plan_devices,
    visible_gpus,
)
from seisfacies.workflows.patches import extract_patches
from seisfacies.workflows.predict import _gpu_plan
from seisfacies.workflows.ranks import run_ranks
from tests.conftest import write_labelled_store
from tests.test_cli import assert_one_line_error

BENCHMARKS = Path(__file__).resolve().parents[1] / "benchmarks"


def _fake_gpus(count: int, visible: str | None = None) -> None:
    """Make this (worker) process believe it has ``count`` CUDA devices, and a GPU driver."""
    if not hasattr(torch.cuda, "_real_gpus"):
        torch.cuda._real_gpus = (torch.cuda.is_available, torch.cuda.device_count, devices.GPU_DEVICE_FILES)
    torch.cuda.is_available = lambda: count > 0
    torch.cuda.device_count = lambda: count
    devices.GPU_DEVICE_FILES = ("/",)
    if visible is None:
        os.environ.pop("CUDA_VISIBLE_DEVICES", None)
    else:
        os.environ["CUDA_VISIBLE_DEVICES"] = visible


def _real_gpus() -> None:
    if hasattr(torch.cuda, "_real_gpus"):
        torch.cuda.is_available, torch.cuda.device_count, devices.GPU_DEVICE_FILES = torch.cuda._real_gpus
    os.environ.pop("CUDA_VISIBLE_DEVICES", None)


@contextlib.contextmanager
def faked_gpus(client, count: int, visible: dict[str, str] | None = None):
    """Every worker sees ``count`` GPUs (``visible``: its own CUDA_VISIBLE_DEVICES) until the block ends."""
    try:
        for address in live_workers(client):
            client.run(_fake_gpus, count, (visible or {}).get(address), workers=[address])
        yield
    finally:
        client.run(_real_gpus)


@pytest.fixture(scope="module")
def patch_store(synthetic_survey, tmp_path_factory):
    folder = tmp_path_factory.mktemp("gpu")
    store = write_labelled_store(synthetic_survey, folder)
    patches = folder / "p.zarr"
    extract_patches(store, patches, PatchesConfig(kind="trace", size=16, per_class=40, split_block=8))
    return patches


def test_visible_gpus_follow_cuda_visible_devices(monkeypatch):
    monkeypatch.setattr(devices, "GPU_DEVICE_FILES", ("/",))  # a driver, as on a GPU host
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)
    monkeypatch.delenv("CUDA_VISIBLE_DEVICES", raising=False)
    assert visible_gpus() == ("0", "1")
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "3,1")
    assert visible_gpus() == ("3", "1")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert visible_gpus() == ()


def test_a_host_without_a_gpu_driver_answers_without_importing_torch():
    """The workers a training or prediction asks for their GPUs must not import torch only to answer."""
    code = (
        "import sys; from seisfacies.workflows import devices; "
        "devices.GPU_DEVICE_FILES = ('/no/such/driver',); "
        "print(devices.visible_gpus(), 'torch' in sys.modules)"
    )
    answer = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert answer.stdout.split() == ["()", "False"]


def test_more_ranks_than_gpus_on_a_host_are_refused_naming_hosts_and_counts():
    places = [
        Placement("tcp://a:1", "a", ("0", "1")),
        Placement("tcp://a:2", "a", ("0", "1")),
        Placement("tcp://a:3", "a", ("0", "1")),
        Placement("tcp://b:1", "b", ("0",)),
    ]
    assert plan_devices("cuda", places[:2] + places[3:]) == ["cuda:0", "cuda:1", "cuda:0"]
    with pytest.raises(ConfigError) as refused:
        plan_devices("auto", places)
    message = str(refused.value)
    assert "host a: 3 ranks, 2 GPU(s)" in message and "--workers 3 or fewer" in message
    assert "host b" not in message
    # prediction tasks may share: the third worker on host a takes GPU 0 again
    assert plan_devices("cuda", places, share=True) == ["cuda:0", "cuda:1", "cuda:0", "cuda:0"]


def test_picking_ranks_spreads_them_over_hosts_with_free_gpus():
    workers = {"tcp://a:1": ("0",), "tcp://a:2": ("0",), "tcp://b:1": ("0",), "tcp://c:1": ()}
    chosen = pick_workers("cuda", 2, workers)
    assert [place.address for place in chosen] == ["tcp://a:1", "tcp://b:1"]
    assert plan_devices("cuda", chosen) == ["cuda:0", "cuda:0"]
    # three ranks cannot each have a GPU: the plan refuses instead of sharing one
    with pytest.raises(ConfigError, match="more training ranks than GPUs"):
        plan_devices("cuda", pick_workers("cuda", 3, {k: v for k, v in workers.items() if v}))


def test_ranks_on_one_host_take_their_own_gpus_on_a_real_cluster(cluster_client):
    addresses = sorted(live_workers(cluster_client))
    with faked_gpus(cluster_client, 2):
        seen = cluster_gpus(cluster_client)
        assert set(seen.values()) == {("0", "1")}
        assert plan_devices("cuda", pick_workers("cuda", 2, seen)) == ["cuda:0", "cuda:1"]
    own = {addresses[0]: "1", addresses[1]: "0"}  # each worker started with its own GPU
    with faked_gpus(cluster_client, 1, own):
        seen = cluster_gpus(cluster_client)
        assert seen == {addresses[0]: ("1",), addresses[1]: ("0",)}
        assert plan_devices("cuda", pick_workers("cuda", 2, seen)) == ["cuda:0", "cuda:0"]


def test_two_ranks_on_a_one_gpu_host_are_refused_before_any_work(cluster_client, patch_store, tmp_path):
    out = tmp_path / "m.pt"
    argv = [
        "train",
        str(patch_store),
        str(out),
        "--device",
        "cuda",
        "--workers",
        "2",
        "--epochs",
        "1",
        "--model",
        "mlp",
    ]
    with faked_gpus(cluster_client, 1):
        started = time.perf_counter()
        result = CliRunner().invoke(cli, [*argv, "--scheduler", cluster_client.scheduler.address])
        seconds = time.perf_counter() - started
    assert_one_line_error(
        result, "--workers 2", "host 127.0.0.1: 2 ranks, 1 GPU(s)", "--workers 1", "--device cpu"
    )
    assert not out.exists() and not list(tmp_path.iterdir())
    assert seconds < 60, "refused before the ranks' process group would time out"


def test_cuda_on_workers_without_gpus_is_one_line(cluster_client, patch_store, tmp_path):
    argv = [
        "train",
        str(patch_store),
        str(tmp_path / "m.pt"),
        "--device",
        "cuda",
        "--epochs",
        "1",
        "--model",
        "mlp",
    ]
    with faked_gpus(cluster_client, 0):
        result = CliRunner().invoke(cli, [*argv, "--scheduler", cluster_client.scheduler.address])
    assert_one_line_error(result, "--device cuda", "no CUDA device on the worker of rank 0", "--device cpu")


def test_predict_spreads_gpu_workers_and_holds_a_share_of_their_gpu_resource(tmp_path):
    from distributed import Client, LocalCluster

    with (
        LocalCluster(
            n_workers=2, threads_per_worker=4, resources={"GPU": 1}, dashboard_address=":0"
        ) as cluster,
        Client(cluster) as client,
    ):
        addresses = sorted(live_workers(client))
        with faked_gpus(client, 2):
            devices, resources = _gpu_plan(client, PredictConfig(device="cuda"))
        assert devices == {addresses[0]: "cuda:0", addresses[1]: "cuda:1"}
        assert resources == {"GPU": 0.5}
        assert gpu_resources(client, addresses) == {"GPU": 1.0}
        # the scheduler honours the share: two tasks at once per worker, though it has four threads
        spans = run_tasks(_busy_span, list(range(8)), client, resources=resources, progress=False)
        for address in addresses:
            mine = [(start, end) for worker, start, end in spans if worker == address]
            running = [sum(s < (start + end) / 2 < e for s, e in mine) for start, end in mine]
            assert max(running) == 2, mine
        with faked_gpus(client, 0):
            assert _gpu_plan(client, PredictConfig(device="auto")) == (None, None)
            with pytest.raises(Exception, match="no worker has a CUDA device"):
                _gpu_plan(client, PredictConfig(device="cuda"))


def _busy_span(item: int) -> tuple[str, float, float]:
    from distributed import get_worker

    start = time.time()
    time.sleep(0.3)
    return get_worker().address, start, time.time()


def test_a_failed_rank_reports_its_own_error_not_the_peers_broken_connection(
    cluster_client, patch_store, tmp_path
):
    import shutil

    import zarr

    broken = tmp_path / "p.zarr"
    shutil.copytree(patch_store, broken)
    group = zarr.open_group(broken, mode="r+")
    x, train = group["x"][:], np.flatnonzero(group["split"][:] == 0)
    rechunked = group.create_array(
        "x", shape=x.shape, dtype=x.dtype, chunks=(1, *x.shape[1:]), overwrite=True
    )
    rechunked[:] = x
    zarr.consolidate_metadata(broken)
    last = int(train[-1])  # the last training patch is in rank 1's shard only
    (broken / "x" / "c" / str(last) / "0").write_bytes(b"not a chunk")
    config = TrainConfig(model="mlp", epochs=2, workers=2, timeout=20)
    with pytest.raises(ClusterError) as failed:
        run_ranks(str(broken), str(tmp_path / "m.pt"), config, cluster_client, lambda record: None, "run")
    message = str(failed.value)
    assert message.startswith("training rank 1 failed: "), message
    assert "Connection closed" not in message and "None" not in message and "no exception" not in message


def _nan_model_and_data():
    torch.manual_seed(0)
    model = create_model_for_patches("mlp", 3, 8)
    x = torch.randn(64, 8)
    y = torch.randint(0, 3, (64,))
    return model, {0: (x, y)}


def test_training_without_a_sync_per_step_trains_the_same_and_still_reports_the_bad_step():
    histories, states = [], []
    for each_step in (True, False):
        model, data = _nan_model_and_data()
        options = FitOptions(epochs=3, check_each_step=each_step, lr=0.01)
        history = fit(model, data, data[0], torch.ones(3), (16, 4), options, torch.device("cpu"))
        histories.append([{k: v for k, v in record.items() if k != "seconds"} for record in history])
        states.append(model.state_dict())
    assert histories[0] == histories[1]
    for key in states[0]:
        torch.testing.assert_close(states[0][key], states[1][key])
    for each_step in (True, False):
        model, data = _nan_model_and_data()
        poisoned = {0: (torch.full((64, 8), float("inf")), data[0][1])}
        options = FitOptions(epochs=1, check_each_step=each_step)
        with pytest.raises(NonFiniteLoss, match="epoch 1, step 1 of 4"):
            fit(model, poisoned, None, torch.ones(3), (16, 4), options, torch.device("cpu"))


@pytest.mark.parametrize("orientation", ["inline", "crossline"])
def test_a_block_copied_to_the_device_gives_the_same_classes(orientation):
    torch.manual_seed(1)
    model = create_model_for_patches("cnn2d", 4, 16, base=4, depth=2).eval()
    payload = {
        "model_name": "cnn2d",
        "class_names": ["a", "b", "c", "d"],
        "patch": {"kind": "section", "size": 16, "orientations": [orientation]},
    }
    block = np.random.default_rng(0).normal(size=(12, 20, 24)).astype(np.float32)
    keep = (slice(2, 10), slice(2, 18), slice(0, 24))
    outputs = [
        classify_block(
            model,
            payload,
            block,
            keep,
            InferenceOptions(batch_size=3, probabilities=True, block_on_device=on),
        )
        for on in (False, True)
    ]
    np.testing.assert_array_equal(outputs[0].facies, outputs[1].facies)
    np.testing.assert_allclose(outputs[0].probability, outputs[1].probability, atol=1e-3)
    assert np.ptp(outputs[0].probability) > 0.01  # an untrained net, but not a constant output


@pytest.mark.skipif(
    not torch.cuda.is_available(), reason="needs a CUDA GPU; the CPU runs cover these code paths"
)
@pytest.mark.parametrize("script", ["train.py", "predict.py"])
def test_benchmarks_run_on_cuda(script):
    args = ["--epochs", "1", "--shape", "48", "48", "64"]
    result = subprocess.run(
        [sys.executable, script, "--device", "cuda", *args],
        cwd=BENCHMARKS,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert result.returncode == 0, result.stderr
    assert "x" in result.stdout


def test_benchmarks_refuse_cuda_without_a_gpu_in_one_line():
    if torch.cuda.is_available():
        pytest.skip("this machine has a GPU")
    result = subprocess.run(
        [sys.executable, "train.py", "--device", "cuda"],
        cwd=BENCHMARKS,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode != 0
    assert result.stderr.strip().splitlines() == [
        "train.py: --device cuda: this machine has no CUDA device; run it on a GPU machine"
    ]


def test_two_ranks_without_a_per_step_check_stop_on_a_blown_up_loss_in_one_line(
    patch_store, tmp_path, cluster_client
):
    from seisfacies.pipeline.exceptions import ModelError
    from seisfacies.workflows.train import train_model

    config = TrainConfig(
        model="mlp", optimizer="sgd", lr=1e30, epochs=3, schedule="constant", workers=2, timeout=30
    )
    started = time.perf_counter()
    with pytest.raises(ModelError, match=r"training rank \d: .*NaN or infinite at epoch 1, step \d+ of \d+"):
        train_model(patch_store, tmp_path / "m.pt", config, cluster_client)
    assert time.perf_counter() - started < 25, "both ranks stopped; neither waited for the other's timeout"


def _peer_failure_now():
    raise RuntimeError("[gloo/transport/tcp/pair.cc:534] Connection closed by peer [127.0.0.1]:4242")


def _own_failure_later():
    time.sleep(1.0)
    raise KeyError("x/c/290/0: not a chunk")


def test_the_rank_with_its_own_error_is_reported_even_when_a_peers_broken_connection_comes_first(
    cluster_client,
):
    from distributed import wait

    from seisfacies.workflows.ranks import _first_cause

    futures = [
        cluster_client.submit(_peer_failure_now, pure=False),
        cluster_client.submit(_own_failure_later, pure=False),
    ]
    wait(futures[:1])
    rank, error = _first_cause(futures, [futures[0]])  # what run_ranks sees: only rank 0 failed so far
    assert (rank, type(error)) == (1, KeyError)
