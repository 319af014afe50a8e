"""Which device each worker uses: its own GPU on its host, planned on the client.

Dask workers on one host all see the same GPUs unless each was started with
its own ``CUDA_VISIBLE_DEVICES``. Training ranks must each take a different
GPU (NCCL refuses two ranks on one: "Duplicate GPU detected"), and prediction
tasks should spread over a host's GPUs instead of all using ``cuda:0``. The
client asks every worker which GPUs it sees (:func:`visible_gpus`), plans the
devices with the pure functions below, and passes each task its device as a
string. Workers that declare a ``GPU`` resource (``dask worker --resources
GPU=1``) also get their GPU tasks annotated with it, so a GPU is never shared
with another GPU step.
"""

from __future__ import annotations

import os
import sys
from dataclasses import dataclass

from ..pipeline.cluster import live_workers
from ..pipeline.exceptions import ConfigError

#: Prediction tasks that may run at once on one GPU worker: one computes while the other reads or writes.
PREDICT_TASKS_PER_GPU = 2


@dataclass(frozen=True)
class Placement:
    """A worker's address, its host, and the GPUs it sees in CUDA's order.

    ``gpus`` holds the physical ids behind ``cuda:0``, ``cuda:1``, ... in that
    process (from ``CUDA_VISIBLE_DEVICES`` where it is set, else ``0..n-1``),
    so workers that see one GPU under different indices are recognised.
    """

    address: str
    host: str
    gpus: tuple[str, ...]


def visible_gpus() -> tuple[str, ...]:
    """The physical ids of the GPUs this process sees, in the order CUDA numbers them.

    Returns
    -------
    tuple of str
        Empty without CUDA.
    """
    if not _gpu_driver_present():
        return ()
    import torch  # here, not above: planning placements needs no torch

    count = torch.cuda.device_count() if torch.cuda.is_available() else 0
    listed = os.environ.get("CUDA_VISIBLE_DEVICES")
    if listed is None:
        return tuple(str(index) for index in range(count))
    return tuple(part.strip() for part in listed.split(",") if part.strip())[:count]


def host_of(address: str) -> str:
    """The host part of a worker address.

    Parameters
    ----------
    address : str
        ``tcp://HOST:PORT``.

    Returns
    -------
    str

    >>> host_of("tcp://10.0.0.5:40123")
    '10.0.0.5'
    """
    return address.split("://")[-1].rsplit(":", 1)[0]


def placements(workers: dict[str, tuple[str, ...]]) -> list[Placement]:
    """Placements of workers, sorted by address.

    Parameters
    ----------
    workers : dict
        Worker address -> the GPUs it sees.

    Returns
    -------
    list of Placement
    """
    return [Placement(address, host_of(address), tuple(workers[address])) for address in sorted(workers)]


def plan_devices(device: str, places: list[Placement], share: bool = False) -> list[str]:
    """The device of every worker: a GPU of its own on its host, or the CPU for all.

    Workers on one host take different GPUs (the first free one in each
    worker's own order, so workers started with ``CUDA_VISIBLE_DEVICES``
    keep theirs). Without ``share``, more workers on a host than GPUs there
    is refused: training ranks cannot share a GPU. With ``share`` (prediction)
    they take the host's GPUs in turn.

    Parameters
    ----------
    device : {"auto", "cpu", "cuda"}
        The ``--device`` option; ``auto`` is CUDA when every worker has a GPU.
    places : list of Placement
        The workers, in rank order.
    share : bool
        Let workers share a host's GPUs.

    Returns
    -------
    list of str
        ``cpu`` or ``cuda:N`` per worker (N in that worker's numbering).

    >>> two = [Placement("tcp://a:1", "a", ("0", "1")), Placement("tcp://a:2", "a", ("0", "1"))]
    >>> plan_devices("auto", two)
    ['cuda:0', 'cuda:1']
    >>> own = [Placement("tcp://a:1", "a", ("1",)), Placement("tcp://a:2", "a", ("0",))]
    >>> plan_devices("cuda", own)
    ['cuda:0', 'cuda:0']
    >>> plan_devices("auto", [Placement("tcp://a:1", "a", ())] + two[:1])
    ['cpu', 'cpu']
    >>> plan_devices("cuda", two + [Placement("tcp://a:3", "a", ("0", "1"))], share=True)
    ['cuda:0', 'cuda:1', 'cuda:0']
    """
    if device == "cpu" or (device == "auto" and not all(place.gpus for place in places)):
        return ["cpu"] * len(places)
    taken: dict[str, set[str]] = {}
    devices = []
    for rank, place in enumerate(places):
        if not place.gpus:
            raise ConfigError(
                f"option --device cuda: no CUDA device on the worker of rank {rank} ({place.address}); "
                "use --device cpu or workers with GPUs"
            )
        index = _take_free_gpu(place, taken)
        if index is None and share:  # every GPU of the host has a worker: start another round
            taken[place.host].clear()
            index = _take_free_gpu(place, taken)
        if index is None:
            raise ConfigError(too_many_ranks(places))
        devices.append(f"cuda:{index}")
    return devices


def _take_free_gpu(place: Placement, taken: dict[str, set[str]]) -> int | None:
    """The first GPU in ``place``'s own numbering that no earlier worker on its host took (and take it)."""
    used = taken.setdefault(place.host, set())
    for index, gpu in enumerate(place.gpus):
        if gpu not in used:
            used.add(gpu)
            return index
    return None


def too_many_ranks(places: list[Placement]) -> str:
    """The one-line refusal of more training ranks on a host than it has GPUs.

    Parameters
    ----------
    places : list of Placement
        The ranks' workers.

    Returns
    -------
    str

    >>> print(too_many_ranks([Placement("tcp://a:1", "a", ("0",)), Placement("tcp://a:2", "a", ("0",))]))
    option --workers 2: more training ranks than GPUs (host a: 2 ranks, 1 GPU(s)); one rank needs one GPU, \
so pass --workers 1 or fewer, start workers on more GPU hosts, or use --device cpu
    """
    ranks: dict[str, int] = {}
    gpus: dict[str, set[str]] = {}
    for place in places:
        ranks[place.host] = ranks.get(place.host, 0) + 1
        gpus.setdefault(place.host, set()).update(place.gpus)
    crowded = [host for host in ranks if ranks[host] > len(gpus[host])]
    detail = "; ".join(f"host {host}: {ranks[host]} ranks, {len(gpus[host])} GPU(s)" for host in crowded)
    fits = sum(min(ranks[host], len(gpus[host])) for host in ranks)
    return (
        f"option --workers {len(places)}: more training ranks than GPUs ({detail}); one rank needs "
        f"one GPU, so pass --workers {fits} or fewer, start workers on more GPU hosts, or use --device cpu"
    )


def pick_workers(device: str, count: int, workers: dict[str, tuple[str, ...]]) -> list[Placement]:
    """The workers to train on, in rank order: for a GPU run, one per free GPU, spread over hosts.

    Parameters
    ----------
    device : {"auto", "cpu", "cuda"}
        The ``--device`` option.
    count : int
        Ranks.
    workers : dict
        Worker address -> the GPUs it sees (:func:`visible_gpus`).

    Returns
    -------
    list of Placement
        ``count`` workers; :func:`plan_devices` says why, when they cannot all have a GPU.

    >>> gpus = {"tcp://a:1": ("0",), "tcp://a:2": ("0",), "tcp://b:1": ("0",)}
    >>> [place.address for place in pick_workers("cuda", 2, gpus)]
    ['tcp://a:1', 'tcp://b:1']
    """
    places = placements(workers)
    if len(places) < count:
        raise ConfigError(
            f"option --workers: {count} ranks asked for but the cluster has {len(places)} workers"
        )
    if device != "cpu":
        taken: dict[str, set[str]] = {}
        own_gpu = [place for place in places if _take_free_gpu(place, taken) is not None][:count]
        if len(own_gpu) == count:
            return own_gpu
    return spread_over_hosts(places)[:count]


#: Device files without which no GPU can be used on Linux: NVIDIA's driver, WSL's GPU bridge, ROCm's.
GPU_DEVICE_FILES = ("/dev/nvidiactl", "/dev/dxg", "/dev/kfd")


def _gpu_driver_present() -> bool:
    """False on a Linux host that has none of the GPU drivers' device files: no GPU can be seen there.

    Importing torch to ask costs a process 1.4 s; a training or prediction
    asks every worker, and a worker that runs no torch task would import it
    only to answer.
    """
    return not sys.platform.startswith("linux") or any(os.path.exists(path) for path in GPU_DEVICE_FILES)


def first_worker_per_host(addresses) -> list[str]:
    """The first worker of every host, by address: where ``--workers auto`` puts CPU training ranks.

    Parameters
    ----------
    addresses : iterable of str
        Worker addresses.

    Returns
    -------
    list of str

    >>> first_worker_per_host(["tcp://b:1", "tcp://a:2", "tcp://a:1"])
    ['tcp://a:1', 'tcp://b:1']
    """
    places = placements(dict.fromkeys(addresses, ()))
    return [place.address for place in spread_over_hosts(places)[: len({place.host for place in places})]]


def spread_over_hosts(places: list[Placement]) -> list[Placement]:
    """The workers in turn by host: the first of every host, then the second, ...

    CPU ranks on one host share its cores; ranks on different hosts add theirs.

    Parameters
    ----------
    places : list of Placement
        Sorted by address.

    Returns
    -------
    list of Placement

    >>> places = placements({"tcp://a:1": (), "tcp://a:2": (), "tcp://b:1": ()})
    >>> [place.address for place in spread_over_hosts(places)]
    ['tcp://a:1', 'tcp://b:1', 'tcp://a:2']
    """
    turn: dict[str, int] = {}
    order = []
    for place in places:
        order.append((turn.get(place.host, 0), len(order), place))
        turn[place.host] = turn.get(place.host, 0) + 1
    return [place for _, _, place in sorted(order, key=lambda item: item[:2])]


def rank_capacity(device: str, workers: dict[str, tuple[str, ...]]) -> tuple[int, str]:
    """How many training ranks bring compute of their own, and on what: one per GPU, else one per host.

    CPU workers on one host share its cores, so a second rank there adds a
    gradient all-reduce to every step and no compute.

    Parameters
    ----------
    device : {"auto", "cpu", "cuda"}
        The ``--device`` option.
    workers : dict
        Worker address -> the GPUs it sees (:func:`visible_gpus`).

    Returns
    -------
    tuple
        The count and ``"cpu"`` or ``"cuda"``.

    >>> rank_capacity("auto", {"tcp://a:1": (), "tcp://a:2": (), "tcp://b:1": ()})
    (2, 'cpu')
    >>> rank_capacity("auto", {"tcp://a:1": ("0", "1"), "tcp://a:2": ("0", "1"), "tcp://a:3": ("0", "1")})
    (2, 'cuda')
    >>> rank_capacity("cpu", {"tcp://a:1": ("0",), "tcp://a:2": ("1",)})
    (1, 'cpu')
    """
    places = placements(workers)
    if device != "cpu":
        taken: dict[str, set[str]] = {}
        own_gpu = sum(_take_free_gpu(place, taken) is not None for place in places)
        if own_gpu or device == "cuda":
            return max(1, own_gpu), "cuda"
    return max(1, len({place.host for place in places})), "cpu"


def host_ranks(addresses: list[str]) -> list[int]:
    """For each rank's worker, how many ranks share its host (they split its cores).

    Parameters
    ----------
    addresses : list of str
        The ranks' workers, in rank order.

    Returns
    -------
    list of int

    >>> host_ranks(["tcp://a:1", "tcp://b:1", "tcp://a:2"])
    [2, 1, 2]
    """
    hosts = [host_of(address) for address in addresses]
    return [hosts.count(host) for host in hosts]


def local_device(device: str) -> str:
    """The device for work in this process (no cluster).

    Parameters
    ----------
    device : {"auto", "cpu", "cuda"}
        The ``--device`` option.

    Returns
    -------
    str
        ``cpu`` or ``cuda:0``; ``cuda`` without a GPU is a one-line ConfigError.
    """
    return plan_devices(device, [Placement("this process", "localhost", visible_gpus())])[0]


def cluster_gpus(client) -> dict[str, tuple[str, ...]]:
    """Every worker's visible GPUs, asked of the workers themselves.

    Parameters
    ----------
    client : distributed.Client
        The cluster.

    Returns
    -------
    dict
        Worker address -> GPU ids.
    """
    return {address: tuple(gpus) for address, gpus in client.run(visible_gpus).items()}


def gpu_resources(client, addresses: list[str], share: int = 1) -> dict | None:
    """``{"GPU": 1 / share}`` when these workers declare a GPU resource, else None.

    Parameters
    ----------
    client : distributed.Client
        The cluster.
    addresses : list of str
        The workers the tasks run on.
    share : int
        Tasks that may hold one GPU at once.

    Returns
    -------
    dict or None
        Task resources for ``client.submit`` / ``client.map``.
    """
    info = live_workers(client)
    declared = [info[a].get("resources", {}).get("GPU", 0) >= 1 for a in addresses if a in info]
    return {"GPU": 1 / share} if declared and all(declared) else None


def worker_device(devices: dict[str, str] | None, fallback: str) -> str:
    """The device planned for the worker running this task.

    Parameters
    ----------
    devices : dict, optional
        Worker address -> device, from :func:`plan_devices`.
    fallback : str
        For a worker that joined after the plan, or work outside a cluster.

    Returns
    -------
    str
    """
    if not devices:
        return fallback
    from distributed import get_worker

    try:
        return devices.get(get_worker().address, fallback)
    except ValueError:  # not inside a worker: local threads
        return fallback
