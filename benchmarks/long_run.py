"""A training of at least 15 minutes on a real F3 line, run as a user runs it: it must finish.

    python benchmarks/long_run.py [--minutes 15] [--line ../shared/data/f3-lines/f3_line1.sgy]

Ingests one real F3 line and its labels, then trains cnn2d with the
``seisfacies train`` command on a separate cluster (``dask scheduler`` and two
``dask worker`` processes on 127.0.0.1), two ranks, for as many epochs as the
minutes hold (``--time-budget``), with the default monitor, timeouts and no
restarts allowed. Before the rank monitor asked the scheduler which workers
live, such a training died at random with "its worker was lost" (two of three
tries on a real F3 line). Prints the epochs, the time, the restarts and the
exit status.
"""

from __future__ import annotations

import argparse
import json
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

SHARED = Path(__file__).resolve().parents[2] / "shared" / "data" / "f3-lines"
BIN = Path(sys.executable).parent


def _seisfacies(*args) -> subprocess.CompletedProcess:
    return subprocess.run([BIN / "seisfacies", *map(str, args)], capture_output=True, text=True)


def _cluster(workers: int) -> tuple[str, list[subprocess.Popen]]:
    """A scheduler and worker processes on loopback, as a shared cluster would run them."""
    from distributed import Client

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    address = f"tcp://127.0.0.1:{port}"
    quiet = {"stdout": subprocess.DEVNULL, "stderr": subprocess.DEVNULL}
    scheduler = [
        BIN / "dask",
        "scheduler",
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--dashboard-address",
        ":0",
    ]
    processes = [subprocess.Popen(scheduler, **quiet)]
    time.sleep(1)
    worker = [BIN / "dask", "worker", address, "--nthreads", "1", "--host", "127.0.0.1"]
    processes += [subprocess.Popen(worker, **quiet) for _ in range(workers)]
    with Client(address, timeout="30s") as client:
        client.wait_for_workers(workers, timeout=60)
    return address, processes


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--minutes", type=float, default=15.0)
    parser.add_argument("--line", type=Path, default=SHARED / "f3_line1.sgy")
    args = parser.parse_args()
    if not args.line.exists():
        print(f"skipped: {args.line} is not here (the real F3 lines of ../shared/data/f3-lines/)")
        return
    labels = args.line.with_name(args.line.stem + "_labels.sgy")
    folder = Path(tempfile.mkdtemp(prefix="seisfacies-long-"))
    store, model = folder / "line.zarr", folder / "cnn2d.pt"
    for step in (("ingest", args.line, store), ("labels", store, labels)):
        done = _seisfacies(*step)
        assert done.returncode == 0, done.stderr
    address, processes = _cluster(2)
    started = time.perf_counter()
    try:
        trained = _seisfacies(
            "train", store, model, "--model", "cnn2d", "--epochs", 10_000, "--time-budget", args.minutes * 60,
            "--workers", 2, "--scheduler", address, "--json",
        )  # fmt: skip
    finally:
        for process in reversed(processes):
            process.terminate()
    seconds = time.perf_counter() - started
    # the summary is the JSON object after the per-epoch lines
    summary = json.loads(trained.stdout[trained.stdout.index("\n{") :]) if trained.returncode == 0 else {}
    print(
        json.dumps(
            {
                "line": str(args.line),
                "exit_status": trained.returncode,
                "error": trained.stderr.strip().splitlines()[-1:] if trained.returncode else [],
                "minutes": round(seconds / 60, 1),
                "epochs": summary.get("epochs"),
                "restarts": summary.get("restarts"),
                "val_accuracy": summary.get("val_accuracy"),
            },
            indent=2,
        )
    )


if __name__ == "__main__":
    main()
