"""Shared fixtures: real SEG-Y files, synthetic files and a real 2-process cluster."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
from pathlib import Path

import pytest

BIN = Path(sys.executable).parent

SHARED = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "segyio"
#: SEG-Y files written by fixtures, by file name, so tests can re-ingest them.
SYNTH_SOURCES: dict[str, str] = {}


def pytest_configure(config) -> None:
    """Take Ctrl-C as a terminal does, even where the suite was started as a background job.

    A non-interactive shell starts ``cmd &`` with SIGINT ignored, and an
    ignored signal passes to every program started from it: the commands the
    Ctrl-C tests start would never see their signal (and trained on after the
    test failed, slowing the rest of the suite).
    """
    if signal.getsignal(signal.SIGINT) is signal.SIG_IGN:
        signal.signal(signal.SIGINT, signal.default_int_handler)


@pytest.fixture(scope="session")
def shared_segy() -> Path:
    """Folder of real SEG-Y files from segyio's test data, or skip."""
    if not SHARED.is_dir():
        pytest.skip(f"real SEG-Y files not found at {SHARED} (the shared/ folder beside the project)")
    return SHARED


@pytest.fixture(scope="session")
def cluster_client():
    """A LocalCluster with 2 worker processes, shared by the whole session."""
    from distributed import Client, LocalCluster

    with LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=":0") as cluster:
        with Client(cluster) as client:
            yield client


@pytest.fixture(scope="session")
def synthetic_survey(tmp_path_factory):
    """The synthetic labelled survey (small) as SEG-Y files and its arrays."""
    from seisfacies.workflows.config import SynthConfig
    from seisfacies.workflows.synth import write_synthetic_survey

    folder = tmp_path_factory.mktemp("synth")
    summary = write_synthetic_survey(folder, SynthConfig(shape=(40, 36, 64), seed=3))
    SYNTH_SOURCES["seismic.sgy"] = summary["seismic"]
    return {"folder": folder, **summary}


def write_labelled_store(survey: dict, folder: Path) -> Path:
    """``folder/s.zarr``: the synthetic survey ingested in 16 x 16 x 32 chunks, every voxel labelled."""
    from seisfacies.workflows.config import IngestConfig, LabelsConfig
    from seisfacies.workflows.ingest import segy_to_zarr
    from seisfacies.workflows.labels import attach_labels

    store = folder / "s.zarr"
    segy_to_zarr(survey["seismic"], store, IngestConfig(chunks="16,16,32"))
    attach_labels(store, survey["labels"], LabelsConfig())
    return store


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def wait_for_workers(address: str, count: int, security=None) -> None:
    from distributed import Client

    with Client(address, timeout="30s", security=security) as client:
        client.wait_for_workers(count, timeout=60)


@contextlib.contextmanager
def process_cluster(n_workers: int, memory_limit: str = "2GiB", hosts: tuple[str, ...] = ()):
    """`dask scheduler` and `dask worker` processes (each under a nanny) on 127.0.0.1.

    ``hosts``: each worker's own loopback address (127.0.0.2, ...), so that
    the cluster looks like workers on several machines.
    """
    port = free_port()
    address = f"tcp://127.0.0.1:{port}"
    quiet = {"stdout": subprocess.DEVNULL, "stderr": subprocess.DEVNULL}
    processes = [
        subprocess.Popen(
            [
                BIN / "dask",
                "scheduler",
                "--host",
                "127.0.0.1",
                "--port",
                str(port),
                "--dashboard-address",
                f"127.0.0.1:{free_port()}",
            ],
            **quiet,
        )
    ]
    # no wait for the scheduler: a worker retries until it answers, and their imports overlap
    processes += [
        subprocess.Popen(
            [
                BIN / "dask",
                "worker",
                address,
                "--nthreads",
                "1",
                "--host",
                host,
                "--memory-limit",
                memory_limit,
            ],
            **quiet,
        )
        for host in hosts or ["127.0.0.1"] * n_workers
    ]
    try:
        wait_for_workers(address, n_workers)
        yield address
    finally:
        stop_cluster(processes[0], processes[1:])


def stop_cluster(scheduler: subprocess.Popen, workers: list[subprocess.Popen]) -> None:
    """Stop the workers, then their scheduler.

    A worker whose scheduler went first spends 8 s trying to reach it before
    it exits; stopped while the scheduler is up, it is gone in 0.3 s.
    """
    for process in workers:
        process.terminate()
    for process in workers:
        process.wait(timeout=30)
    scheduler.terminate()
    scheduler.wait(timeout=30)


def versionless(dataset):
    """``dataset`` loaded, without the write ids (and MDIO's ``createdOn``) that tell two commits of the same content apart."""
    from seisfacies.pipeline.commit import WRITE_ID_ATTR

    loaded = dataset.load()
    loaded.attrs.pop(WRITE_ID_ATTR, None)
    loaded.attrs.pop("createdOn", None)
    for variable in loaded.variables.values():
        variable.attrs.pop(WRITE_ID_ATTR, None)
    return loaded


@pytest.fixture(scope="module")
def labelled(synthetic_survey, tmp_path_factory):
    """A labelled store and its trace patches, for tests that run seisfacies commands on them."""
    from seisfacies.workflows.config import PatchesConfig
    from seisfacies.workflows.patches import extract_patches

    folder = tmp_path_factory.mktemp("labelled")
    store = write_labelled_store(synthetic_survey, folder)
    patches = folder / "p.zarr"
    extract_patches(store, patches, PatchesConfig(kind="trace", size=24, per_class=60, split_block=8))
    return store, patches


# ---------------------------------------------------------------- the documentation's code, run as a user would

ROOT = Path(__file__).resolve().parents[1]
#: The README first: the docs' blocks read what its tour and example wrote.
DOCUMENTS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
#: The tour's demo, shortened (one epoch, 48 of its 128 samples; the same inline numbers): the commands are the README's.
SHORTER = {"seisfacies demo": "seisfacies demo --epochs 1 --shape 96 96 48"}


def code_blocks(document: Path) -> list[tuple[str, str]]:
    """``(language, code)`` of every fenced block of a Markdown file, outside the set-up block CI runs."""
    import re

    text = re.sub(r"<!-- setup:begin -->.*?<!-- setup:end -->", "", document.read_text(), flags=re.S)
    return re.findall(r"^```(\w*)\n(.*?)^```$", text, flags=re.S | re.M)


@pytest.fixture(scope="session")
def documented_run(tmp_path_factory) -> dict:
    """Every Python and bash block of README.md and docs/, run in order in one folder, each a new process.

    Python blocks run as scripts (``python block.py``), as a user who pastes one
    into a file would; bash blocks under ``bash -euo pipefail``.
    Returns the folder and, per block, its document, code, exit status and output.
    """
    folder = tmp_path_factory.mktemp("docs")
    environment = {**os.environ, "PATH": f"{BIN}:{os.environ['PATH']}"}  # `seisfacies` of this Python
    runs = []
    for document in DOCUMENTS:
        for number, (language, code) in enumerate(code_blocks(document)):
            if language == "python":
                script = folder / f"{document.stem}_{number}.py"
                script.write_text(code)
                command = [sys.executable, script.name]
            elif language == "bash":
                for written, run in SHORTER.items():
                    code = code.replace(written, run)
                command = ["bash", "-euo", "pipefail", "-c", code]
            else:
                continue
            done = subprocess.run(
                command, cwd=folder, env=environment, capture_output=True, text=True, timeout=600
            )
            runs.append(
                {
                    "document": document.name,
                    "code": code,
                    "rc": done.returncode,
                    "out": done.stdout,
                    "err": done.stderr,
                }
            )
    return {"folder": folder, "runs": runs}
