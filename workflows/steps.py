"""Every step of the chain, declared once: the command, the Python function and the workflow step.

A row of :data:`STEPS` names the step's options (a config model of
:mod:`.config`), its path arguments, the library function that runs it, what
it reads and writes (for workflow re-runs), and the words that describe it.
From that row :mod:`.cli` builds the ``seisfacies NAME`` command,
:mod:`.api` builds the ``sf.<api_name>`` function, and :mod:`.run` validates
and runs ``- NAME: {...}`` in a workflow file. A new step is a config model
and a row here (and its ``sf.`` name in the top-level package's list, which
a test checks).

Only the standard library, pydantic and the config models are imported here:
``seisfacies --help`` reads this table.
"""

from __future__ import annotations

import contextlib
import functools
import importlib
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

from pydantic import create_model

from . import config as cfg


@dataclass(frozen=True)
class Step:
    """One step of the chain, as plain data.

    ``inputs`` and ``outputs`` are path templates filled from the step's
    options (``"{store}/labels"``): a file, or a Zarr store or array folder.
    """

    name: str  # the command and the workflow-file key
    config: type  # the options: a model of workflows/config.py
    function: str  # "module:function" in seisfacies.workflows, imported when the step runs
    arguments: tuple[str, ...]  # path arguments, passed before the config
    inputs: tuple[str, ...]
    outputs: tuple[str, ...]
    summary: str  # one line: the command's help, the function's first docstring line
    api_name: str  # the Python function: sf.<api_name>
    argument_help: tuple[str, ...]  # one description per argument
    returns: str  # what the summary dict holds
    client: bool = True  # the function takes the Dask client
    local_threads: bool = False  # without a scheduler the command runs tasks on threads, not a LocalCluster
    metavars: tuple[str, ...] = ()  # the arguments' names on the command line (default: their names)
    python_names: tuple[str, ...] = ()  # the arguments' names in the Python function (default: their names)
    required: tuple[str, ...] = ()  # options the command line requires
    option_paths: tuple[str, ...] = ()  # options (not arguments) that are paths too
    resolve: str | None = None  # "module:function": the options as they will run (defaults filled in)
    report: str | None = None  # "module:function": the summary as text for people (default key: value lines)
    variadic: bool = False  # the last argument takes one or more paths (a list)
    optional: tuple[str, ...] = ()  # arguments that may be left out (None)
    worker_imports: tuple[str, ...] = ()  # modules its tasks import, imported ahead by `warm`
    tasks_on: Literal["every worker", "ranks"] = "every worker"  # the workers `warm` imports them on
    check: str | None = None  # "module:function": refuses bad (paths, config) before a cluster starts

    @property
    def paths(self) -> tuple[str, ...]:
        """Option names that are paths (resolved against the workflow's folder)."""
        return self.arguments + self.option_paths

    @property
    def model(self) -> type:
        """A workflow step's options: the config's fields plus the path arguments, checked strictly."""
        return _step_model(self.config, self.arguments, self.variadic, self.optional)

    def resolved(self, options) -> dict:
        """The options as the step will run them: the command's own defaults filled in."""
        if self.resolve is None:
            return options.model_dump(mode="json")
        return imported(self.resolve)(options)

    def warm(self, client) -> None:
        """Start importing the step's ``worker_imports`` on the workers its tasks run on; return at once.

        A worker imports a task's modules when the task arrives: a training
        rank's (torch, then PyTorch's compiler stack, which every
        ``torch.optim`` optimiser imports when it is built) took 2.3 s there,
        after this process had taken 1.8 s to import its own. Started first,
        the two overlap. A training warms only the first worker of each host
        (``tasks_on="ranks"``): there ``--workers auto`` puts CPU ranks, and a
        LocalCluster's other workers share this process's cores. The imports
        run on a daemon thread of each worker, not as a task, so a command
        refused before its tasks start (a model another run is writing)
        closes its LocalCluster without waiting for them.

        Parameters
        ----------
        client : distributed.Client or None
            The cluster; None (this process) warms nothing.
        """
        if client is None or not self.worker_imports:
            return
        from ..pipeline.cluster import live_workers
        from .devices import first_worker_per_host

        workers = list(live_workers(client))
        chosen = first_worker_per_host(workers) if self.tasks_on == "ranks" else workers
        client.run(import_in_background, self.worker_imports, workers=chosen, on_error="ignore")

    def check_inputs(self, paths: list, config) -> None:
        """Refuse bad paths or options before the command starts a cluster.

        A LocalCluster takes seconds to start and to close; a refusal that waits
        for one (a partial checkpoint given to ``predict``: 7 s) makes a user
        wait for a line the files alone could give. The step's function runs
        the same checks again, for the Python API and workflow files.
        """
        if self.check:
            imported(self.check)(*paths, config)

    def call(self, paths: list, config, client) -> dict:
        """Run the library function on ``paths`` and a validated ``config``, its workers warmed first."""
        self.warm(client)
        function = imported(self.function)
        return function(*paths, config, client) if self.client else function(*paths, config)

    def run(self, options, client) -> dict:
        """Run a workflow step from its validated step options.

        A ``local_threads`` step runs on threads of this process when the
        client's cluster is a LocalCluster this process started: its workers
        share this machine, and their first tasks would import what this
        process already holds (the chain benchmark's ingest: 2.5 s on the
        workers, 1.1 s here).
        """
        from ..pipeline.cluster import started_here

        paths = [getattr(options, argument) for argument in self.arguments]
        config = self.config(**options.model_dump(exclude=set(self.arguments)))
        here = self.local_threads and started_here(client)
        return self.call(paths, config, None if here else client)


def import_in_background(names: tuple[str, ...]) -> None:
    """Start importing modules on a daemon thread of this process, ahead of the tasks that need them.

    A task that needs one meanwhile waits on Python's import lock for it, as
    it would for its own import; a process that exits first does not wait. A
    module that fails to import is left to the task that needs it to report,
    with its own error. See :meth:`Step.warm`.

    Parameters
    ----------
    names : tuple of str
        Module names.
    """

    def import_each() -> None:
        for name in names:
            with contextlib.suppress(Exception):
                importlib.import_module(name)

    threading.Thread(target=import_each, name="seisfacies-imports", daemon=True).start()


@functools.cache
def _step_model(config: type, arguments: tuple[str, ...], variadic: bool, optional: tuple[str, ...]) -> type:
    name = config.__name__.removesuffix("Config") + "Step"
    fields = {argument: (str | None, None) if argument in optional else (str, ...) for argument in arguments}
    if variadic:
        fields[arguments[-1]] = (list[str], ...)
    return create_model(name, __base__=config, **fields)


def imported(target: str) -> Callable:
    """The function ``"module:name"`` of :mod:`seisfacies.workflows`, imported now.

    Parameters
    ----------
    target : str
        ``"module:name"``.

    Returns
    -------
    callable
    """
    module, name = target.split(":")
    return getattr(importlib.import_module(f"{__package__}.{module}"), name)


STORE = "A store written by `seisfacies ingest` (a path or URL)."
STEPS: dict[str, Step] = {
    step.name: step
    for step in (
        Step("synth", cfg.SynthConfig, "synth:write_synthetic_survey", ("out",),
             (), ("{out}/seismic.sgy", "{out}/labels.sgy", "{out}/horizons.txt"),
             "Write a synthetic labelled survey: OUT_DIR/seismic.sgy, labels.sgy and horizons.txt (picks).",
             "synth", ("The folder to write.",), "The files written and the class names.", client=False,
             metavars=("OUT_DIR",), python_names=("out_dir",)),
        Step("ingest", cfg.IngestConfig, "ingest:segy_to_zarr", ("segy", "store"),
             ("{segy}",), ("{store}/amplitude",),
             "Ingest a post-stack SEG-Y file into a chunked Zarr v3 store.",
             "ingest", ("The SEG-Y file (a path or URL).", "The store to write."),
             "The geometry, sizes, formats and seconds.", local_threads=True),
        Step("horizons", cfg.HorizonsConfig, "horizons:import_horizons", ("store", "files"),
             ("{files}", "{store}/amplitude"), ("{store}/horizons",),
             "Import picked horizons (ASCII: inline/crossline or x/y, and time or depth) into a store.",
             "import_horizons", (STORE, "Pick files, one horizon each or several with a name column."),
             "Per horizon: its file, picked and filled traces and range; the x/y grid fit's residual.",
             client=False, metavars=("STORE", "FILE..."), variadic=True),
        Step("attributes", cfg.AttributesConfig, "attributes:add_attributes", ("store",),
             ("{store}/amplitude",), (),
             "Compute attributes (envelope, phase, frequency, RMS) along the traces as store variables.",
             "add_attributes", (STORE,), "The variables written and the seconds taken.", required=("add",)),
        Step("labels", cfg.LabelsConfig, "labels:attach_labels", ("store", "source"),
             ("{source}", "{store}/amplitude", "{store}/horizons"), ("{store}/labels",),
             "Attach labels (SEG-Y volume, .npy, Zarr or CSV points, or the intervals between horizons).",
             "attach_labels", (STORE, "The labels: a SEG-Y volume on the grid, .npy, Zarr or CSV points "
                                      "(left out with --between)."),
             "Labelled voxels per class and the labelled fraction.", metavars=("STORE", "[SOURCE]"),
             optional=("source",), local_threads=True),
        Step("patches", cfg.PatchesConfig, "patches:extract_patches", ("store", "patches"),
             ("{store}/amplitude", "{store}/labels"), ("{patches}",),
             "Cut class-balanced training patches from a labelled store.",
             "extract_patches", (STORE + " With labels.", "The patch store to write."),
             "Patch counts per split and class.", required=("kind",), local_threads=True),
        Step("train", cfg.TrainConfig, "train:train_model", ("source", "model_path"),
             ("{source}/x", "{source}/y", "{source}/amplitude", "{source}/labels"), ("{model_path}",),
             "Train a model on a patch store (or a labelled store: patches are cut first).",
             "train", ("A patch store, or a store with labels.", "The checkpoint to write."),
             "Final losses and accuracies, epochs, seconds and file names.",
             metavars=("SOURCE", "MODEL.pt"), resolve="train:resolved_settings",
             worker_imports=("seisfacies.workflows.ranks", "torch._dynamo"), tasks_on="ranks",
             check="train:check_output"),
        Step("predict", cfg.PredictConfig, "predict:predict_volume", ("store", "model_path"),
             ("{model_path}", "{store}/amplitude"), ("{store}/facies",),
             "Classify every voxel of a store with a trained model (writes `facies`).",
             "predict", (STORE, "A checkpoint written by `seisfacies train`."),
             "The variables written, the model and the voxels left unclassified.",
             metavars=("STORE", "MODEL.pt"), worker_imports=("seisfacies.workflows.predict",),
             check="predict:check_prediction"),
        Step("evaluate", cfg.EvaluateConfig, "evaluate:evaluate_store", ("store",),
             ("{store}/facies", "{store}/labels", "{truth}"), (),
             "Pixel accuracy, mean class accuracy, mean IoU, FWIoU and the confusion matrix.",
             "evaluate", (STORE + " With facies.",),
             "The scores, per-class IoU and the confusion matrix.",
             option_paths=("truth",), report="evaluate:report", local_threads=True),
        Step("suggest", cfg.SuggestConfig, "suggest:suggest_inlines", ("store",),
             ("{store}/uncertainty", "{store}/labels"), (),
             "Name the inlines to label next: uncertain ones, away from labelled inlines and each other.",
             "suggest", (STORE + " With uncertainty (`seisfacies predict --uncertainty`).",),
             "`inlines` (best first), their `scores` and the `labelled_inlines` already labelled.",
             client=False),
        Step("map", cfg.MapConfig, "maps:map_horizon", ("store",),
             ("{store}/horizons", "{store}/{variable}"), ("{store}/map_{horizon}_{variable}",),
             "Map facies, probability, uncertainty or RMS amplitude in a window along a horizon.",
             "map_horizon", (STORE + " With horizons (`seisfacies horizons`).",),
             "The maps written (store variables), the window and the share of traces they cover.",
             required=("horizon",)),
        Step("plot", cfg.PlotConfig, "plot:plot_section", ("store", "out"),
             ("{store}/amplitude", "{store}/labels", "{store}/facies", "{store}/uncertainty"), ("{out}",),
             "Draw a section with the predicted facies (and the labels beside it).",
             "plot", (STORE + " With facies.", "The PNG file to write."),
             "The picture, the section and its panels.", client=False),
        Step("export", cfg.ExportConfig, "export:zarr_to_segy", ("store", "out"),
             ("{store}/{variable}",), ("{out}",),
             "Write a store variable as SEG-Y with the source file's headers, as OpenVDS (OUT.vds), "
             "or a map as gridded text.",
             "export", (STORE, "The file to write (path or URL): .sgy, .vds (OpenVDS), or text for a map."),
             "The file written, the variable and its format.", local_threads=True),
    )
}  # fmt: skip
