"""``seisfacies demo``: the shipped demo workflow, run in a folder of the user's choice."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from ..pipeline.exceptions import ConfigError
from .run import run_workflow
from .synth import FIRST_CROSSLINE, FIRST_INLINE

DEMO = Path(__file__).with_name("demo.yaml")


def demo_overrides(shape: tuple[int, int, int] | None, epochs: int | None) -> dict[str, dict]:
    """Options that shrink the demo (CI runs it small): five evenly spaced labelled inlines.

    Parameters
    ----------
    shape : tuple[int, int, int] | None
        The array's shape.
    epochs : int | None
        Number of epochs.

    Returns
    -------
    dict[str, dict]

    >>> demo_overrides((40, 32, 64), 3)["labels"]
    {'inlines': [104, 112, 120, 128, 136]}
    """
    overrides: dict[str, dict] = {}
    if shape is not None:
        if min(shape) < 24:
            raise ConfigError(f"option --shape {shape}: the demo needs at least 24 samples along each axis")
        step = shape[0] / 5
        overrides["synth"] = {"shape": list(shape)}
        overrides["labels"] = {"inlines": [FIRST_INLINE + int(step * (n + 0.5)) for n in range(5)]}
        size = min(64, 1 << (min(shape[1], shape[2]) * 2 // 3).bit_length() - 1)
        overrides["patches"] = {"size": size, "stride": max(2, size // 16)}
        overrides["plot:1"] = {"crossline": FIRST_CROSSLINE + shape[1] // 2}  # the section, not the map
    if epochs is not None:
        overrides["train"] = {"epochs": epochs}
    return overrides


def run_demo(
    out: str | Path,
    client=None,
    shape=None,
    epochs: int | None = None,
    force: bool = False,
    echo: Callable[[str], None] = print,
) -> dict:
    """Run the demo workflow in ``out``; return the run record with the paths to look at.

    Parameters
    ----------
    out : str | Path
        The output path.
    client
        The Dask client; None runs in this process.
    shape
        The array's shape.
    epochs : int | None
        Number of epochs.
    force : bool
        Run even when outputs are up to date.
    echo : Callable[[str], None]
        Where progress lines go.

    Returns
    -------
    dict
    """
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    record = run_workflow(
        DEMO, client, force=force, base=out, echo=echo, overrides=demo_overrides(shape, epochs)
    )
    data = out / "data"
    record["outputs"] = {
        "store": str(data / "seismic.zarr"),
        "model": str(data / "cnn2d.pt"),
        "picture": str(data / "section.png"),
        "map": str(data / "map.png"),
        "facies_segy": str(data / "facies.sgy"),
    }
    return record
