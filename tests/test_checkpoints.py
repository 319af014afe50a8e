"""Checkpoints that say what they are, and predictions made from exactly one of them."""

from __future__ import annotations

import hashlib
import os
import signal
import subprocess
import time

import numpy as np
import pytest

from seisfacies.models.checkpoint import load_checkpoint, training_progress
from seisfacies.pipeline.store import open_store
from seisfacies.workflows.config import PredictConfig, TrainConfig
from seisfacies.workflows.predict import predict_volume
from seisfacies.workflows.train import train_model
from tests.conftest import BIN

pytestmark = pytest.mark.cluster


def _seisfacies(*args, **kwargs) -> subprocess.CompletedProcess:
    return subprocess.run([BIN / "seisfacies", *map(str, args)], capture_output=True, text=True, **kwargs)


def _exit_status(process: subprocess.Popen, timeout: float) -> int:
    """Its exit status; if it is still running, its threads' stacks in the failure, and it killed."""
    try:
        return process.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        process.send_signal(signal.SIGUSR1)  # the CLI's faulthandler prints every thread's stack
        time.sleep(2)
        process.kill()
        stacks = process.communicate()[1].decode(errors="replace")
        raise AssertionError(f"still running {timeout} s after the signal:\n{stacks[-6000:]}") from None


def test_an_interrupted_training_leaves_a_checkpoint_that_says_it_is_partial(labelled, tmp_path):
    store, patches = labelled
    model = tmp_path / "m.pt"
    command = [BIN / "seisfacies", "train", patches, model, "--model", "mlp", "--epochs", "100000"]
    training = subprocess.Popen(list(map(str, command)), stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 120
    while not model.exists() and time.monotonic() < deadline:  # the first epoch's checkpoint
        time.sleep(0.2)
    assert model.exists(), "no checkpoint within 120 s"
    training.send_signal(signal.SIGINT)  # Ctrl-C
    assert _exit_status(training, timeout=60) == 130
    final, epoch, planned = training_progress(load_checkpoint(model))
    assert not final and 1 <= epoch < planned == 100000

    refused = _seisfacies("predict", store, model)
    assert refused.returncode == 2 and "Traceback" not in refused.stderr
    assert "dask:" not in refused.stderr  # refused from the files, before a cluster started
    assert f"is a partial checkpoint (epoch {epoch} of 100000)" in refused.stderr
    errors = [line for line in refused.stderr.splitlines() if line.startswith("seisfacies: error:")]
    assert len(errors) == 1 and f"`seisfacies train {patches} {model} --resume`" in errors[0]
    assert "facies" not in open_store(store).variables  # nothing written

    again = _seisfacies("train", patches, model, "--model", "mlp", "--epochs", "3")
    assert again.returncode == 2 and "partial checkpoint" in again.stderr and "--resume" in again.stderr
    assert "dask:" not in again.stderr

    allowed = _seisfacies("predict", store, model, "--allow-partial", "--overwrite")
    assert allowed.returncode == 0, allowed.stderr
    facies = open_store(store, require=("facies",)).facies
    assert facies.attrs["model_partial"] == f"epoch {epoch} of 100000"
    scored = _seisfacies("evaluate", store)
    assert scored.returncode == 0 and "partial checkpoint" in scored.stderr


def test_a_finished_training_is_final_and_a_resume_past_its_end_stays_final(labelled, tmp_path):
    _, patches = labelled
    train_model(patches, tmp_path / "m.pt", TrainConfig(model="mlp", epochs=2))
    assert training_progress(load_checkpoint(tmp_path / "m.pt")) == (True, 2, 2)
    train_model(patches, tmp_path / "m.pt", TrainConfig(model="mlp", epochs=3, resume=True))
    assert training_progress(load_checkpoint(tmp_path / "m.pt")) == (True, 3, 3)


def test_every_block_comes_from_the_checkpoint_the_record_names(labelled, tmp_path, cluster_client):
    """A checkpoint rewritten under the same modification time (``cp -p``, ``rsync -t``) is a new model.

    The workers keep models loaded between runs; they must use the bytes this
    run read, and the store's record must name their hash.
    """
    store, patches = labelled
    first, second, target = tmp_path / "first.pt", tmp_path / "second.pt", tmp_path / "m.pt"
    train_model(patches, first, TrainConfig(model="mlp", epochs=1, seed=1, lr=1e-4))
    train_model(patches, second, TrainConfig(model="mlp", epochs=6, seed=2))
    config = PredictConfig(overwrite=True)

    def predicted_with(source) -> np.ndarray:
        target.write_bytes(source.read_bytes())
        os.utime(target, ns=(1_700_000_000_000_000_000,) * 2)  # the same mtime for both versions
        summary = predict_volume(store, target, config, cluster_client)
        assert summary["model_sha256"] == hashlib.sha256(source.read_bytes()).hexdigest()
        return open_store(store, require=("facies",)).facies.values

    with_first = predicted_with(first)  # every worker now holds the first model
    with_second = predicted_with(second)
    predict_volume(store, second, config, cluster_client)
    reference = open_store(store, require=("facies",)).facies.values
    assert (with_first != reference).mean() > 0.05  # the two models disagree: the check can fail
    np.testing.assert_array_equal(with_second, reference)
