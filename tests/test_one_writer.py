"""One writer per output, readers that say who writes, and write ids that tell versions apart."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import textwrap
import time

import pytest

from seisfacies.pipeline.commit import lock_holder, lock_path
from tests.conftest import BIN

pytestmark = pytest.mark.cluster


def _seisfacies(*args) -> subprocess.CompletedProcess:
    return subprocess.run([BIN / "seisfacies", *map(str, args)], capture_output=True, text=True, timeout=300)


def _one_line_error(result: subprocess.CompletedProcess) -> str:
    assert result.returncode == 2 and "Traceback" not in result.stderr, result.stderr
    errors = [line for line in result.stderr.splitlines() if line.startswith("seisfacies: error:")]
    assert len(errors) == 1, result.stderr
    return errors[0]


def _wait_for(condition, what: str, seconds: float = 120) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, f"no {what} within {seconds} s"
        time.sleep(0.2)


def test_a_second_training_into_the_same_model_is_refused_and_a_dead_writers_lock_is_taken_over(
    labelled, tmp_path
):
    _, patches = labelled
    model = tmp_path / "m.pt"
    first = subprocess.Popen(
        [str(BIN / "seisfacies"), "train", str(patches), str(model), "--model", "mlp", "--epochs", "100000"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        _wait_for(model.exists, "first checkpoint")
        second = _one_line_error(_seisfacies("train", patches, model, "--model", "mlp", "--overwrite"))
        assert f"{model}: being written by pid {first.pid} on {socket.gethostname()} since " in second
        assert "(seisfacies train)" in second and "wait for it to finish" in second
        plain = _one_line_error(_seisfacies("train", patches, model, "--model", "mlp"))  # checked first
        assert "being written by pid" in plain and "--resume" not in plain and "--overwrite" not in plain
        partial = _one_line_error(_seisfacies("predict", labelled[0], model))
        assert "partial checkpoint" in partial  # a reader of the model is not a second writer
    finally:
        first.kill()  # SIGKILL: no cleanup runs, the lock stays behind
        first.wait()
    assert os.path.exists(lock_path(model)) and lock_holder(model) is None  # left, and nobody's
    third = _seisfacies("train", patches, model, "--model", "mlp", "--epochs", "2", "--overwrite")
    assert third.returncode == 0, third.stderr
    assert not os.path.exists(lock_path(model))


def test_a_second_run_of_a_workflow_is_refused_at_once_not_after_skipping_steps(labelled, tmp_path):
    _, patches = labelled
    workflow = tmp_path / "long.yaml"
    workflow.write_text(
        textwrap.dedent(f"""\
            name: long
            steps:
              - train: {{source: {patches}, model_path: m.pt, model: mlp, epochs: 100000}}
            """)
    )
    first = subprocess.Popen(
        [str(BIN / "seisfacies"), "run", str(workflow)], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
    )
    try:
        _wait_for((tmp_path / "m.pt").exists, "checkpoint of the first run")
        second = _seisfacies("run", workflow)
        line = _one_line_error(second)
        assert f"being written by pid {first.pid}" in line and "(seisfacies run)" in line
        assert "up to date" not in second.stdout and "--overwrite" not in line
    finally:
        first.send_signal(signal.SIGINT)
        first.wait(timeout=60)
    assert not os.path.exists(lock_path(tmp_path / ".long.steps.json"))


HOLD_WHILE_WRITING = """
import sys, time
from seisfacies.pipeline.commit import writing
from seisfacies.pipeline.commit import mark_incomplete
with writing(sys.argv[1], "seisfacies predict"):
    mark_incomplete(sys.argv[1], ["facies"])  # what predict does while it switches the new facies in
    print("holding", flush=True)
    time.sleep(600)
"""


def test_a_reader_of_a_variable_being_written_names_the_writer_not_a_stopped_run(labelled, tmp_path):
    store = tmp_path / "copy.zarr"
    shutil.copytree(labelled[0], store)  # a copy: the test leaves it half-predicted
    writer = subprocess.Popen(
        [sys.executable, "-c", HOLD_WHILE_WRITING, str(store)], stdout=subprocess.PIPE, text=True
    )
    try:
        assert writer.stdout.readline().strip() == "holding"
        busy = _one_line_error(_seisfacies("evaluate", store))
        assert f"variable 'facies' is being written by pid {writer.pid} on {socket.gethostname()}" in busy
        assert "wait for it to finish" in busy and "--overwrite" not in busy
        competing = _one_line_error(_seisfacies("predict", store, tmp_path / "none.pt", "--overwrite"))
        assert f"being written by pid {writer.pid}" in competing
    finally:
        writer.kill()
        writer.wait()
    stopped = _one_line_error(_seisfacies("evaluate", store))
    assert "a run stopped before it finished" in stopped and "--overwrite" in stopped
