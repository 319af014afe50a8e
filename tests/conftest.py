"""Shared fixtures: real SEG-Y files, synthetic files and a real 2-process cluster."""

from __future__ import annotations

from pathlib import Path

import pytest

SHARED = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "segyio"
#: SEG-Y files written by fixtures, by file name, so tests can re-ingest them.
SYNTH_SOURCES: dict[str, str] = {}


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
    from workflows.config import SynthConfig
    from workflows.synth import write_synthetic_survey

    folder = tmp_path_factory.mktemp("synth")
    summary = write_synthetic_survey(folder, SynthConfig(shape=(40, 36, 64), seed=3))
    SYNTH_SOURCES["seismic.sgy"] = summary["seismic"]
    return {"folder": folder, **summary}
