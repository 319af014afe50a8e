"""``seisfacies synth``: write a synthetic labelled survey as two SEG-Y files."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ..pipeline.commit import check_output, staged, write_file
from ..pipeline.horizons import picks_text
from ..pipeline.segy_write import write_cube
from ..pipeline.synth import make_synthetic_survey
from .config import SynthConfig

FIRST_INLINE = 100
FIRST_CROSSLINE = 300


def write_synthetic_survey(out_dir: str | Path, config: SynthConfig) -> dict:
    """Write ``seismic.sgy`` (IBM float), ``labels.sgy`` (2-byte integer classes) and ``horizons.txt``.

    ``horizons.txt`` holds the tops of the generator's layers, ``h1`` (shallow)
    to ``h5``, as picks ``name inline crossline time`` (ms) inside the survey.

    Parameters
    ----------
    out_dir : str | Path
    config : SynthConfig
        The step's options.

    Returns
    -------
    dict
    """
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    seismic, labels, horizons = out_dir / "seismic.sgy", out_dir / "labels.sgy", out_dir / "horizons.txt"
    for path in (seismic, labels, horizons):
        check_output(path, config.overwrite, "file")
    survey = make_synthetic_survey(config.shape, config.seed)
    n_il, n_xl, _ = config.shape
    grid = {
        "inlines": np.arange(FIRST_INLINE, FIRST_INLINE + n_il),
        "crosslines": np.arange(FIRST_CROSSLINE, FIRST_CROSSLINE + n_xl),
    }
    classes = ",".join(survey.class_names)
    for path, cube, sample_format in ((seismic, survey.amplitude, 1), (labels, survey.labels, 3)):
        with staged(path, kind="file") as partial:
            text = {1: f"seisfacies synthetic survey, seed {config.seed}", 2: f"classes {classes}"}
            write_cube(str(partial), cube, sample_format=sample_format, text=text, **grid)
    write_file(horizons, _horizon_picks(survey, grid, config.seed).encode())
    return {
        "seismic": str(seismic),
        "labels": str(labels),
        "horizons": str(horizons),
        "shape": list(config.shape),
        "classes": list(survey.class_names),
    }


def _horizon_picks(survey, grid: dict, seed: int) -> str:
    """The generator's layer tops as a pick file, in ms; picks below the last sample left out."""
    times = survey.horizons * survey.sample_interval_ms
    last = (survey.amplitude.shape[-1] - 1) * survey.sample_interval_ms
    times = np.where(times <= last, times, np.nan)
    names = [f"h{n + 1}" for n in range(len(times))]
    header = f"seisfacies synthetic survey, seed {seed}: layer tops, time in ms"
    return picks_text(times, names, grid["inlines"], grid["crosslines"], header)
