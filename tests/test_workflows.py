"""Workflow files, the demo, docker-compose's services as processes, and TLS."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import segyio
import yaml
from click.testing import CliRunner

from seisfacies.pipeline.exceptions import ConfigError
from seisfacies.pipeline.store import open_store
from seisfacies.workflows.cli import cli
from seisfacies.workflows.run import load_workflow, run_workflow
from tests.conftest import BIN, free_port, process_cluster, stop_cluster, wait_for_workers

ROOT = Path(__file__).resolve().parents[1]

SMALL = """
name: small
steps:
  - synth: {out: data, shape: [32, 28, 48], seed: 2}
  - ingest: {segy: data/seismic.sgy, store: data/s.zarr, chunks: "16,14,48"}
  - labels: {store: data/s.zarr, source: data/labels.sgy, inlines: [104, 116, 126]}
  - patches: {store: data/s.zarr, patches: data/p.zarr, kind: section, size: 16, stride: 2, per_class: 40, split_block: 8}
  - train: {source: data/p.zarr, model_path: data/m.pt, model: cnn2d, epochs: 2, model_options: {base: 4, depth: 1}}
  - predict: {store: data/s.zarr, model_path: data/m.pt}
  - evaluate: {store: data/s.zarr, truth: data/labels.sgy, where: unlabelled}
"""


def _unlabelled_mean_iou(data: Path) -> float:
    """The SMALL workflow's score, by hand: facies against labels.sgy off the labelled inlines."""
    with segyio.open(data / "labels.sgy") as handle:
        truth = segyio.tools.cube(handle).astype(np.int64)
    facies = open_store(data / "s.zarr", require=("facies",)).facies.values
    truth[[4, 16, 26]] = -1  # inlines 104, 116 and 126 trained the model
    ious = []
    for label in np.unique(truth[truth >= 0]):
        true, predicted = truth == label, (facies == label) & (truth >= 0)
        ious.append((true & predicted).sum() / (true | predicted).sum())
    return float(np.mean(ious))


@pytest.fixture(scope="module")
def two_workers():
    """A `dask scheduler` and two `dask worker` processes on 127.0.0.1."""
    with process_cluster(2, "3GiB") as address:
        yield address


def write(tmp_path: Path, text: str, name: str = "wf.yaml") -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


@pytest.mark.parametrize(
    ("text", "words"),
    [
        ("steps:\n  - synth: {out: d, shap: [8, 8, 8]}\n", "key 'shap'"),
        ("steps:\n  - train: {source: p, model_path: m.pt, epochs: many}\n", "key 'epochs'"),
        ("steps:\n  - cook: {}\n", "unknown command 'cook'"),
        ("steps: [\n", "not valid YAML"),
        ("name: x\nsteps: []\n", "list of 'steps'"),
        ("steps:\n  - synth: {out: d}\nextra: 1\n", "unknown key 'extra'"),
        ("steps:\n  - !!python/object/apply:os.system ['echo pwned']\n", "not valid YAML"),
    ],
)
def test_bad_workflow_files_are_refused_before_anything_runs(tmp_path, text, words):
    path = write(tmp_path, text)
    with pytest.raises(ConfigError, match=words) as caught:
        run_workflow(path)
    assert "\n" not in str(caught.value) and "wf.yaml" in str(caught.value)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["wf.yaml"]
    result = CliRunner().invoke(cli, ["run", str(path)])
    assert result.exit_code == 2 and "Traceback" not in result.output


def test_relative_paths_resolve_against_the_workflow_folder(tmp_path):
    _, steps = load_workflow(write(tmp_path, SMALL))
    assert steps[1][1].segy == str(tmp_path / "data" / "seismic.sgy")


def test_workflow_runs_on_separate_scheduler_and_worker_processes(tmp_path, two_workers):
    from distributed import Client

    path = write(tmp_path, SMALL)
    with Client(two_workers) as client:
        record = run_workflow(path, client, echo=lambda line: None)
        assert [step["status"] for step in record["steps"]] == ["ran"] * 7
        assert record["metrics"]["mean_iou"] == round(_unlabelled_mean_iou(tmp_path / "data"), 4)
        run_record = json.loads((tmp_path / "small.run.json").read_text())
        assert run_record["versions"]["dask"] and run_record["steps"][4]["summary"]["epochs"] == 2
        again = run_workflow(path, client, echo=lambda line: None)
        assert [step["status"] for step in again["steps"]] == ["skipped"] * 7
        forced = run_workflow(path, client, force=True, echo=lambda line: None)
        assert [step["status"] for step in forced["steps"]] == ["ran"] * 7


def test_demo_reaches_a_good_mean_iou_on_unlabelled_inlines(tmp_path, cluster_client):
    result = CliRunner().invoke(
        cli,
        [
            "demo",
            "--out",
            str(tmp_path / "demo"),
            "--shape",
            "48",
            "48",
            "64",
            "--epochs",
            "6",
            "--scheduler",
            cluster_client.scheduler.address,
        ],
    )
    assert result.exit_code == 0, result.output
    record = json.loads((tmp_path / "demo" / "demo.run.json").read_text())
    assert record["metrics"]["where"] == "unlabelled"
    assert record["metrics"]["mean_iou"] > 0.83, record["metrics"]  # 0.89 measured; chance is about 0.1
    assert "xr.open_zarr" in result.output and (tmp_path / "demo" / "data" / "section.png").exists()
    steps = {step["step"]: step["summary"] for step in record["steps"]}  # the last of each name
    picks = steps["suggest"]["inlines"]
    section, facies_map = [step["summary"] for step in record["steps"] if step["step"] == "plot"]
    assert len(picks) == 3 and not set(picks) & set(steps["suggest"]["labelled_inlines"])
    assert section["marked_inlines"] == picks  # the picture marks what suggest proposes
    # the map along the generator's horizon h1: the window below it holds the channel where it cuts in
    assert (
        steps["map"]["maps"] == ["map_h1_facies", "map_h1_facies_fraction"] and steps["map"]["covered"] > 0.9
    )
    assert facies_map["maps"][0] == "horizon h1 (ms)" and (tmp_path / "demo" / "data" / "map.png").exists()
    assert f"label next (seisfacies suggest): inlines {', '.join(map(str, picks))}" in result.output
    assert "uncertainty" in open_store(tmp_path / "demo" / "data" / "seismic.zarr", require=("uncertainty",))


def compose_commands(data: Path, address: str, port: int, dashboard: int) -> dict[str, list[str]]:
    """The commands docker-compose.yml gives each service, pointed at loopback and a local folder."""
    services = yaml.safe_load((ROOT / "docker-compose.yml").read_text())["services"]
    replace = {
        "0.0.0.0": "127.0.0.1",
        "8786": str(port),
        ":8787": f"127.0.0.1:{dashboard}",
        "tcp://scheduler:8786": address,
        "/data/workflow.yaml": str(data / "workflow.yaml"),
    }
    commands = {}
    for name, service in services.items():
        command = [replace.get(part, part) for part in service["command"]]
        commands[name] = [str(BIN / command[0]), *command[1:]]
    return commands


def test_compose_services_run_as_local_processes(tmp_path):
    services = yaml.safe_load((ROOT / "docker-compose.yml").read_text())["services"]
    assert all(port.startswith("127.0.0.1:") for port in services["scheduler"]["ports"])
    assert set(services) == {"scheduler", "worker", "runner"}
    # one folder of the host, ./data unless $SEISFACIES_DATA says otherwise: no named volume to fill
    assert "volumes" not in yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    for name in ("worker", "runner"):
        assert services[name]["volumes"] == ["${SEISFACIES_DATA:-./data}:/data"], name
    assert "/data/workflow.yaml" in services["runner"]["command"]
    port, dashboard = free_port(), free_port()
    address = f"tcp://127.0.0.1:{port}"
    commands = compose_commands(tmp_path, address, port, dashboard)
    write(tmp_path, SMALL, "workflow.yaml")
    processes = [
        subprocess.Popen(commands["scheduler"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    ]
    time.sleep(1)
    processes += [
        subprocess.Popen(
            [*commands["worker"], "--host", "127.0.0.1", "--memory-limit", "3GiB"],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        for _ in range(2)
    ]
    try:
        wait_for_workers(address, 2)
        env = {**os.environ, "DASK_SCHEDULER_ADDRESS": address}
        runner = subprocess.run(commands["runner"], env=env, capture_output=True, text=True, timeout=600)
        assert runner.returncode == 0, runner.stderr[-2000:]
        assert "mean_iou" in runner.stdout and (tmp_path / "data" / "m.pt").exists()
    finally:
        stop_cluster(processes[0], processes[1:])


def test_tls_cluster_on_loopback_with_generated_certificates(tmp_path):
    pytest.importorskip("cryptography", reason="distributed generates TLS certificates with cryptography")
    from distributed import LocalCluster
    from distributed.security import Security

    from seisfacies.pipeline.cluster import ClusterSpec, connect
    from seisfacies.pipeline.store import open_store
    from seisfacies.pipeline.testing import write_test_segy
    from seisfacies.workflows.config import IngestConfig
    from seisfacies.workflows.ingest import segy_to_zarr

    security = Security.temporary()
    write_test_segy(tmp_path / "in.sgy", (6, 5, 8))
    with LocalCluster(
        n_workers=1,
        processes=True,
        protocol="tls",
        security=security,
        dashboard_address=":0",
        host="127.0.0.1",
    ) as cluster:
        assert cluster.scheduler_address.startswith("tls://")
        with connect(ClusterSpec(address=cluster.scheduler_address, security=security)) as client:
            segy_to_zarr(tmp_path / "in.sgy", tmp_path / "s.zarr", IngestConfig(), client)
    assert open_store(tmp_path / "s.zarr").amplitude.shape == (6, 5, 8)


def test_train_runs_again_when_the_models_defaults_or_the_release_change(monkeypatch):
    """``train: {model: cnn2d}`` reads the same before and after, but runs another training."""
    import dataclasses

    from seisfacies.models import registry
    from seisfacies.workflows import run

    step = run.STEPS["train"]
    options = step.model(source="p.zarr", model_path="m.pt", model="cnn2d")
    entry = registry.model_entry("cnn2d")
    seen = [run.step_state(step, options)["settings"]]
    monkeypatch.setitem(registry._REGISTRY, "cnn2d", dataclasses.replace(entry, epochs=12))
    seen.append(run.step_state(step, options)["settings"])
    shallower = dataclasses.make_dataclass(
        "Shallower", [("depth", int, 2)], bases=(entry.config_class,), frozen=True
    )
    monkeypatch.setitem(registry._REGISTRY, "cnn2d", dataclasses.replace(entry, config_class=shallower))
    seen.append(run.step_state(step, options)["settings"])
    monkeypatch.setitem(registry._REGISTRY, "cnn2d", entry)
    assert run.step_state(step, options)["settings"] == seen[0]  # nothing else moved
    installed = run.version
    monkeypatch.setattr(run, "version", lambda name: "99.0" if name == "seisfacies" else installed(name))
    seen.append(run.step_state(step, options)["settings"])
    assert len(set(seen)) == 4, seen


@pytest.mark.cluster
def test_the_example_workflow_runs_on_three_workers_and_scores_held_out_inlines(tmp_path):
    """workflows/example-survey.yaml as shipped, shrunk only in size and epochs, on 3 `dask worker`s."""
    from distributed import Client

    from seisfacies.workflows.config import SynthConfig
    from seisfacies.workflows.synth import write_synthetic_survey

    (tmp_path / "example-survey.yaml").write_text((ROOT / "workflows" / "example-survey.yaml").read_text())
    write_synthetic_survey(tmp_path / "survey", SynthConfig(shape=(36, 32, 48), seed=4))
    (tmp_path / "survey" / "seismic.sgy").rename(tmp_path / "survey" / "volume.sgy")
    (tmp_path / "survey" / "labels.sgy").rename(tmp_path / "survey" / "interpretation.sgy")
    smaller = {
        "ingest": {"chunks": "18,16,48"},
        "labels": {"inlines": [106, 118, 130]},
        "patches": {"size": 8, "stride": 2, "per_class": 40, "split_block": 8},
        "train": {"epochs": 2, "batch_size": 16, "model_options": {"base": 4, "depth": 1}},
    }
    lines: list[str] = []
    with process_cluster(3, "2GiB") as address, Client(address) as client:
        record = run_workflow(tmp_path / "example-survey.yaml", client, overrides=smaller, echo=lines.append)
    assert [step["status"] for step in record["steps"]] == ["ran"] * 9, lines
    train = next(step["summary"] for step in record["steps"] if step["step"] == "train")
    assert train["workers"] == 3
    metrics = record["metrics"]
    assert metrics["where"] == "unlabelled" and "generalisation" in metrics["scored_on"]
    assert metrics["pixel_accuracy"] > 0.3  # 2 epochs of a tiny net; chance is about 0.17
    assert (tmp_path / "work" / "facies.sgy").is_file() and (tmp_path / "work" / "inline.png").is_file()


def _loaded(names: tuple[str, ...]) -> list[bool]:
    return [name in sys.modules for name in names]


def _wait_until_loaded(client, address: str, names: tuple[str, ...], seconds: float = 120.0) -> None:
    deadline = time.monotonic() + seconds
    while not all(client.run(_loaded, names, workers=[address])[address]):
        assert time.monotonic() < deadline, f"{address} never imported {names}"
        time.sleep(0.2)


def test_a_step_imports_its_workers_modules_ahead_on_the_workers_its_tasks_use():
    """Training warms the worker its CPU rank takes (and only it), prediction every worker."""
    from seisfacies.pipeline.cluster import live_workers
    from seisfacies.workflows.api import local_cluster
    from seisfacies.workflows.steps import STEPS

    with local_cluster(2) as client:
        first, second = sorted(live_workers(client))
        assert not any(client.run(_loaded, ("torch",))[first])  # a fresh worker holds no torch
        STEPS["train"].warm(client)
        _wait_until_loaded(client, first, ("seisfacies.workflows.ranks", "torch._dynamo"))
        assert client.run(_loaded, ("torch",), workers=[second])[second] == [False]
        STEPS["predict"].warm(client)
        for address in (first, second):
            _wait_until_loaded(client, address, ("seisfacies.workflows.predict",))
