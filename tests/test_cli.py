"""Every command through the real CLI: exit codes, one-line errors, outputs."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys

import matplotlib.image
import numpy as np
import pytest
import segyio
from click.testing import CliRunner

from seisfacies.pipeline.store import open_store
from seisfacies.pipeline.testing import write_test_segy
from seisfacies.workflows.cli import cli
from tests.conftest import BIN


@pytest.fixture
def run(cluster_client):
    """Invoke ``seisfacies`` against the session's 2-process cluster."""
    address = cluster_client.scheduler.address

    def invoke(*args: str, scheduler: bool = True):
        argv = [*args, "--scheduler", address] if scheduler else list(args)
        return CliRunner().invoke(cli, argv, catch_exceptions=False)

    return invoke


def assert_one_line_error(result, *words: str) -> None:
    assert result.exit_code == 2, result.output
    lines = [line for line in result.output.splitlines() if line.startswith("seisfacies: error")]
    assert len(lines) == 1, result.output
    assert "Traceback" not in result.output
    for word in words:
        assert word in lines[0]


def test_synth_ingest_export_round_trip(tmp_path, run):
    result = run("synth", str(tmp_path / "d"), "--shape", "12", "10", "16", "--seed", "1", scheduler=False)
    assert result.exit_code == 0, result.output
    result = run("ingest", str(tmp_path / "d" / "seismic.sgy"), str(tmp_path / "s.zarr"), "--chunks", "5,5,8")
    assert result.exit_code == 0, result.output
    assert open_store(tmp_path / "s.zarr").amplitude.shape == (12, 10, 16)
    result = run("export", str(tmp_path / "s.zarr"), str(tmp_path / "out.sgy"))
    assert result.exit_code == 0, result.output
    assert (tmp_path / "out.sgy").read_bytes() == (tmp_path / "d" / "seismic.sgy").read_bytes()


def test_synth_is_deterministic_by_seed(tmp_path, run):
    for name in ("a", "b"):
        assert run("synth", str(tmp_path / name), "--shape", "10", "10", "12", scheduler=False).exit_code == 0
    assert (tmp_path / "a" / "seismic.sgy").read_bytes() == (tmp_path / "b" / "seismic.sgy").read_bytes()
    result = run("synth", str(tmp_path / "a"), "--shape", "10", "10", "12", scheduler=False)
    assert_one_line_error(result, "already exists", "--overwrite")


def test_ingest_bad_inputs_exit_2_and_leave_nothing(tmp_path, run):
    truncated = tmp_path / "cut.sgy"
    write_test_segy(truncated, (3, 3, 8))
    truncated.write_bytes(truncated.read_bytes()[:-10])
    assert_one_line_error(run("ingest", str(truncated), str(tmp_path / "s.zarr")), "cut.sgy", "truncated")
    assert_one_line_error(run("ingest", str(tmp_path / "nope.sgy"), str(tmp_path / "s.zarr")), "no such file")
    good = tmp_path / "good.sgy"
    write_test_segy(good, (3, 3, 8))
    assert_one_line_error(run("ingest", str(good), str(tmp_path / "s.zarr"), "--chunks", "1,2"), "--chunks")
    assert_one_line_error(
        run("ingest", str(good), str(tmp_path / "s.zarr"), "--iline-byte", "0"), "--iline-byte"
    )
    assert sorted(p.name for p in tmp_path.iterdir()) == ["cut.sgy", "good.sgy"]
    result = run("ingest", str(good), str(tmp_path / "s.zarr"), "--endian", "sideways")
    assert result.exit_code == 2 and "'--endian'" in result.output and "'sideways'" in result.output
    assert "auto" in result.output and "Traceback" not in result.output  # the choices are listed
    assert sorted(p.name for p in tmp_path.iterdir()) == ["cut.sgy", "good.sgy"]


def test_scheduler_from_environment(tmp_path, cluster_client):
    source = tmp_path / "in.sgy"
    write_test_segy(source, (3, 3, 8))
    env = {"DASK_SCHEDULER_ADDRESS": cluster_client.scheduler.address}
    result = CliRunner().invoke(cli, ["ingest", str(source), str(tmp_path / "s.zarr")], env=env)
    assert result.exit_code == 0, result.output
    assert cluster_client.scheduler.address in result.output


def test_label_patch_train_predict_evaluate_plot_export_commands(tmp_path, run, monkeypatch):
    # relative paths, and the workers' working folder is not this one: every path a task gets must be absolute
    monkeypatch.chdir(tmp_path)
    assert run("synth", "d", "--shape", "24", "20", "32", scheduler=False).exit_code == 0
    assert run("ingest", "d/seismic.sgy", "s.zarr", "--chunks", "12,10,32").exit_code == 0
    result = run("labels", "s.zarr", "d/labels.sgy")
    assert result.exit_code == 0 and "parallel" in result.output, result.output
    result = run(
        "patches",
        "s.zarr",
        "p.zarr",
        "--kind",
        "section",
        "--size",
        "8",
        "--per-class",
        "20",
        "--split-block",
        "8",
        "--augment",
        "flip",
    )
    assert result.exit_code == 0 and "train:" in result.output, result.output
    result = run(
        "train",
        "p.zarr",
        "m.pt",
        "--model",
        "cnn2d",
        "--epochs",
        "2",
        "--model-options",
        '{"base": 4, "depth": 1}',
        "--json",
    )
    assert result.exit_code == 0 and '"epochs": 2' in result.output, result.output
    result = run("predict", "s.zarr", "m.pt", "--probabilities", "--json")
    assert result.exit_code == 0, result.output
    predicted = json.loads(result.output[result.output.index("{") :])
    assert predicted["model_sha256"] == hashlib.sha256((tmp_path / "m.pt").read_bytes()).hexdigest()
    assert_one_line_error(run("predict", "s.zarr", "m.pt"), "already has", "--overwrite")
    result = run("evaluate", "s.zarr", "--json")
    assert result.exit_code == 0, result.output
    metrics = json.loads(result.output[result.output.index("{") :])
    store = open_store(tmp_path / "s.zarr", require=("facies", "labels"))
    labelled = store.labels.values >= 0
    by_hand = float((store.facies.values[labelled] == store.labels.values[labelled]).mean())
    assert metrics["pixel_accuracy"] == round(by_hand, 4) and metrics["voxels"] == int(labelled.sum())
    result = run("evaluate", "s.zarr", "--truth", "d/labels.sgy")  # for people: tables with the class names
    table = result.output[result.output.index("class  ") :]
    assert "parallel" in table and "% of the true class" in table and "unclass" in table, result.output
    assert f"{metrics['class_iou']['parallel']:.3f}" in table.splitlines()[1]
    result = run("plot", "s.zarr", "s.png", scheduler=False)
    assert result.exit_code == 0, result.output
    picture = matplotlib.image.imread(tmp_path / "s.png")
    colours = np.unique((picture[..., :3] * 255).astype(np.uint8).reshape(-1, 3), axis=0)
    assert picture.shape[0] > 200 and picture.shape[1] > 400 and len(colours) > 50  # panels, not a blank
    result = run("plot", "s.zarr", "t.png", "--truth", "d/labels.sgy", scheduler=False)
    assert result.exit_code == 0 and "errors (" in result.output and "truth" in result.output, result.output
    wrong = (store.facies.values[12] != store.labels.values[12]).mean()  # the middle inline, fully labelled
    assert f"errors ({wrong:.1%} of the labelled voxels)" in result.output
    result = run("export", "s.zarr", "f.sgy", "--variable", "facies")
    assert result.exit_code == 0, result.output
    with segyio.open(tmp_path / "f.sgy") as exported, segyio.open(tmp_path / "d" / "seismic.sgy") as source:
        assert np.array_equal(segyio.tools.cube(exported), store.facies.values.astype(np.float32))
        assert list(exported.ilines) == list(source.ilines) and list(exported.xlines) == list(source.xlines)
        assert exported.header[7] == source.header[7]  # the source's trace headers, unchanged


def test_bad_options_of_the_later_commands(tmp_path, run):
    assert_one_line_error(run("labels", str(tmp_path / "none.zarr"), "x.npy"), "not a seisfacies store")
    assert_one_line_error(
        run("train", str(tmp_path / "none.zarr"), str(tmp_path / "m.pt")), "neither a patch store"
    )
    assert_one_line_error(
        run("train", str(tmp_path), str(tmp_path / "m.pt"), "--optimizer", "lbfgs"), "--optimizer"
    )
    assert_one_line_error(
        run("train", str(tmp_path), str(tmp_path / "m.pt"), "--model-options", "{"), "--model-options"
    )
    assert_one_line_error(
        run("patches", str(tmp_path), str(tmp_path / "p"), "--kind", "trace", "--augment", "rotate"),
        "--augment",
    )
    assert_one_line_error(run("evaluate", str(tmp_path / "none.zarr")), "not a seisfacies store")
    assert_one_line_error(run("predict", str(tmp_path / "none.zarr"), "m.pt"), "not a seisfacies store")


def test_write_failures_are_one_line_errors(tmp_path, run):
    source = tmp_path / "in.sgy"
    write_test_segy(source, (3, 3, 8))
    assert run("ingest", str(source), str(tmp_path / "s.zarr")).exit_code == 0
    result = run("export", str(tmp_path / "s.zarr"), "/proc/seisfacies-export.sgy")
    assert_one_line_error(result, "run the command again")


def test_a_local_cluster_that_cannot_start_is_a_one_line_error(tmp_path):
    """A worker that fails at start-up (here a preload module that does not exist) is not a traceback.

    ``ingest``, ``labels``, ``evaluate`` and ``export`` without a scheduler run on threads of their own
    process (no cluster to start), so this uses ``attributes``, which starts a LocalCluster.
    """
    write_test_segy(tmp_path / "in.sgy", (3, 3, 8))
    assert (
        subprocess.run([BIN / "seisfacies", "ingest", tmp_path / "in.sgy", tmp_path / "s.zarr"]).returncode
        == 0
    )
    env = {**os.environ, "DASK_DISTRIBUTED__WORKER__PRELOAD": '["no_such_module_for_seisfacies"]'}
    result = subprocess.run(
        [BIN / "seisfacies", "attributes", tmp_path / "s.zarr", "--add", "envelope"],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
    )
    assert result.returncode == 2 and "Traceback" not in result.stderr, result.stderr
    assert result.stderr.strip().splitlines() == [
        "seisfacies: error: cannot start a local Dask cluster (ModuleNotFoundError: No module named "
        "'no_such_module_for_seisfacies'); check the Dask configuration (worker preload, ports, temporary folder) "
        "or pass --scheduler ADDRESS"
    ]
    assert not (tmp_path / "s.zarr" / "envelope").exists()


def test_a_local_cluster_gives_the_client_process_its_environment_back(monkeypatch):
    """The nannies' OMP_NUM_THREADS=1 (and more) stay the workers' only.

    distributed sets them in the starting process and leaves them there: every program started from
    the client afterwards, a user's PyTorch script included, ran on one thread.
    """
    import seisfacies as sf

    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    monkeypatch.setenv("MALLOC_TRIM_THRESHOLD_", "131072")  # the user's own value
    with sf.local_cluster(workers=1) as client:
        in_worker = next(iter(client.run(lambda: os.environ.get("OMP_NUM_THREADS")).values()))
        during = os.environ.get("OMP_NUM_THREADS")
        started = subprocess.run(
            [BIN / "python", "-c", "import os; print(os.environ.get('OMP_NUM_THREADS'))"],
            capture_output=True,
            text=True,
        ).stdout.strip()
    assert in_worker == "1"  # the workers keep Dask's settings
    assert (during, started, os.environ.get("OMP_NUM_THREADS")) == (None, "None", None)
    assert os.environ["MALLOC_TRIM_THRESHOLD_"] == "131072"


@pytest.mark.parametrize(
    "entry",
    [
        "from seisfacies.workflows.cli import main; main(['--version'])",
        "import torch; from seisfacies.workflows.torch_worker import prepare_torch_process; "
        "prepare_torch_process(1)",
    ],
    ids=["command", "torch worker"],
)
def test_a_command_or_torch_worker_exits_without_collecting_and_still_runs_exit_handlers(tmp_path, entry):
    """The interpreter's exit collections cost a process that imported torch 0.6 s; the heap is frozen instead.

    A handler registered before the freeze runs after it (the interpreter runs
    them in reverse) and records what it sees.
    """
    seen = tmp_path / "seen.txt"
    code = (
        "import atexit, gc, pathlib\n"
        f"atexit.register(lambda: pathlib.Path({str(seen)!r}).write_text(str(gc.get_freeze_count() > 0)))\n"
        f"{entry}\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, capture_output=True)
    assert seen.read_text() == "True"


def test_commands_on_threads_do_not_import_the_distributed_scheduler(tmp_path):
    """`ingest`, `labels` and `export` run on threads of their own process, with no worker processes.

    `labels` and `export` started a LocalCluster, which took longer than their
    work. Asking dask for its scheduler by name imported `distributed` to look
    for a client: 0.3 s of a whole ingest process. (Writing a template of new
    variables still imports it, inside dask: `labels` does.)
    """
    write_test_segy(tmp_path / "in.sgy", (3, 3, 8))
    np.save(tmp_path / "labels.npy", np.arange(72, dtype=np.int16).reshape(3, 3, 8) % 2)
    store, out = str(tmp_path / "s.zarr"), str(tmp_path / "out.sgy")
    commands = [
        ["ingest", str(tmp_path / "in.sgy"), store],
        ["labels", store, str(tmp_path / "labels.npy"), "--classes", "a,b"],
        ["export", store, out, "--variable", "labels"],
    ]
    code = (
        "import sys\n"
        "from seisfacies.workflows.cli import main\n"
        f"for command in {commands!r}:\n"
        "    try:\n"
        "        main(command)\n"
        "    except SystemExit as exit:\n"
        "        assert not exit.code, exit.code\n"
        "    print(command[0], 'distributed' in sys.modules)\n"
    )
    result = subprocess.run([sys.executable, "-c", code], check=True, capture_output=True, text=True)
    assert "ingest False" in result.stdout.splitlines()
    assert "dashboard" not in result.stderr  # no LocalCluster started
    with segyio.open(out, ignore_geometry=True) as exported:
        assert [list(exported.trace[n]) for n in (0, 4)] == [[0, 1] * 4, [0, 1] * 4]
