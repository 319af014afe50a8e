"""The ``seisfacies`` command: parse options, build one config, call one function.

Heavy modules are imported inside each command so ``seisfacies --help`` is fast.
User errors (:class:`seisfacies.pipeline.exceptions.SeisFaciesError`, invalid options)
print one line and exit with status 2.
"""

from __future__ import annotations

import contextlib
import errno
import faulthandler
import json
import os
import signal
import sys
from collections.abc import Callable
from pathlib import Path

import click

from ..pipeline.exceptions import SeisFaciesError
from .options import build_config, with_config_options
from .steps import STEPS, Step, imported


class UserError(click.ClickException):
    """A one-line error with exit status 2, as for bad usage."""

    exit_code = 2

    def show(self, file=None) -> None:
        click.echo(f"seisfacies: error: {self.format_message()}", err=True)


class Interrupted(UserError):
    """Ctrl-C: one line and exit status 130, as shells expect."""

    exit_code = 130


class SeisFaciesGroup(click.Group):
    """Turns the project's own errors into one-line messages."""

    def invoke(self, ctx: click.Context):
        try:
            return super().invoke(ctx)
        except KeyboardInterrupt:  # each command has removed its partial output or marked it incomplete
            from ..pipeline.commit import remove_unfinished

            remove_unfinished()  # the workers have stopped: nothing can write into them any more
            raise Interrupted(
                f"{ctx.invoked_subcommand or 'command'} interrupted; nothing half-written was kept as "
                "finished, run the command again to redo it"
            ) from None
        except SeisFaciesError as error:
            raise UserError(str(error)) from None
        except click.UsageError as error:  # a bad option value or a missing argument: one line too
            command = (
                f"seisfacies {ctx.invoked_subcommand} --help"
                if ctx.invoked_subcommand
                else "seisfacies --help"
            )
            message = " ".join(error.format_message().split()).rstrip(".")
            raise UserError(f"{message}; see {command}") from None
        except OSError as error:  # disk full, permissions, a vanished file: outputs were cleaned up or marked
            raise UserError(describe_os_error(error)) from None


#: What to do about a failed read or write, by errno.
OS_ERROR_ADVICE = {
    errno.ENOSPC: "free disk space, then run the command again",
    errno.EDQUOT: "free space within your disk quota, then run the command again",
    errno.EACCES: "fix the permissions or choose another path, then run the command again",
    errno.EPERM: "fix the permissions or choose another path, then run the command again",
    errno.EROFS: "the file system is read-only; write the output somewhere else",
}


def describe_os_error(error: OSError) -> str:
    """One line for an operating-system error: which file, what happened, what to do.

    Parameters
    ----------
    error : OSError
        The error.

    Returns
    -------
    str

    >>> full = OSError(errno.ENOSPC, "No space left on device", "/d/.s.zarr.partial-0123abcd/zarr.json")
    >>> describe_os_error(full)
    '/d/s.zarr/zarr.json: No space left on device; free disk space, then run the command again'
    """
    from ..pipeline.commit import output_path_of

    where = f"{output_path_of(str(error.filename))}: " if error.filename else ""
    reason = error.strerror or (str(error).splitlines() or [type(error).__name__])[0]
    advice = OS_ERROR_ADVICE.get(error.errno, "check the path and the free space, then run the command again")
    return f"{where}{reason}; {advice}"


#: Path arguments: the commands' own readers name an unreadable file and say what to do.
PATH = click.Path(readable=False)


def emit(summary: dict, as_json: bool = False, text: str | None = None) -> None:
    """Print a command's summary for people, or as JSON.

    A ``warning`` (or ``warnings``) entry also goes to stderr, so it is seen
    even when the summary is piped away.

    Parameters
    ----------
    summary : dict
        The command's result.
    as_json : bool
        Print JSON instead of ``key: value`` lines.
    text : str, optional
        What to print for people instead of the ``key: value`` lines.
    """
    for warning in [summary.get("warning"), *summary.get("warnings", [])]:
        if warning:
            click.echo(f"seisfacies: warning: {warning}", err=True)
    if as_json:
        click.echo(json.dumps(summary, indent=2, default=str))
        return
    if text is not None:
        click.echo(text)
        return
    for key, value in summary.items():
        click.echo(f"{key}: {value}")


def scheduler_option(function: Callable) -> Callable:
    """Add ``--scheduler ADDRESS`` (default ``$DASK_SCHEDULER_ADDRESS``) to a command.

    Parameters
    ----------
    function : Callable
        The command function; it receives ``scheduler``.

    Returns
    -------
    Callable
    """
    return click.option(
        "--scheduler",
        envvar="DASK_SCHEDULER_ADDRESS",
        default=None,
        metavar="ADDRESS",
        help="Dask scheduler address (else $DASK_SCHEDULER_ADDRESS, else a LocalCluster).",
    )(function)


def json_option(function: Callable) -> Callable:
    """Add ``--json`` (print the summary as JSON) to a command.

    Parameters
    ----------
    function : Callable
        The command function; it receives ``as_json``.

    Returns
    -------
    Callable
    """
    return click.option("--json", "as_json", is_flag=True, help="Print the summary as JSON.")(function)


@contextlib.contextmanager
def cluster_client(scheduler: str | None, workers: int | None = None, local_threads: bool = False):
    """Connect to ``scheduler`` or start a LocalCluster; print the dashboard link.

    Parameters
    ----------
    scheduler : str | None
        The scheduler address.
    workers : int | None
        Worker count.
    local_threads : bool
        Without a scheduler, run the tasks on threads of this process (yields
        None) instead of starting a LocalCluster: for steps whose work releases
        the GIL (reading, decoding, compressing), where starting worker
        processes would cost more than the step itself.
    """
    from ..pipeline.cluster import ClusterSpec, connect

    if local_threads and not scheduler:
        yield None
        return
    with connect(ClusterSpec(address=scheduler, n_workers=workers)) as client:
        click.echo(f"dask: {client.scheduler.address} dashboard {client.dashboard_link}", err=True)
        yield client


def local_workers(config) -> int | None:
    """The LocalCluster size of a step without a scheduler: a training's ranks, else Dask's default.

    ``--workers auto`` trains on one rank per GPU, or on one rank on a CPU-only
    machine (ranks there would share its cores), so that many workers start.

    Parameters
    ----------
    config : pydantic.BaseModel
        The step's options.

    Returns
    -------
    int or None
    """
    workers = getattr(config, "workers", None)
    if workers != "auto":
        return workers
    from .devices import visible_gpus

    return max(1, len(visible_gpus())) if config.device != "cpu" else 1


@click.group(cls=SeisFaciesGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="seisfacies")
def cli() -> None:
    """Seismic facies classification on Dask: SEG-Y -> Zarr -> patches -> PyTorch -> facies."""


def step_command(step: Step) -> click.Command:
    """The ``seisfacies NAME`` command of a step: its paths, its config's options, one call, the summary.

    Parameters
    ----------
    step : Step
        A row of :data:`~seisfacies.workflows.steps.STEPS`.

    Returns
    -------
    click.Command
    """

    def command(scheduler: str | None = None, as_json: bool = False, **values) -> None:
        paths = [values.pop(argument) for argument in step.arguments]
        if step.variadic:
            paths[-1] = list(paths[-1])
        config = build_config(step.config, **values)
        step.check_inputs(paths, config)
        if not step.client:
            summary = step.call(paths, config, None)
        else:  # a training step sizes its local cluster to its ranks
            workers = None if scheduler else local_workers(config)
            with cluster_client(scheduler, workers, local_threads=step.local_threads) as client:
                summary = step.call(paths, config, client)
        emit(summary, as_json, text=imported(step.report)(summary) if step.report and not as_json else None)

    command = json_option(command)
    if step.client:
        command = scheduler_option(command)
    command = with_config_options(step.config, step.required)(command)
    metavars = step.metavars or tuple(argument.upper() for argument in step.arguments)
    for n, (argument, metavar) in reversed(list(enumerate(zip(step.arguments, metavars)))):
        many = {"nargs": -1} if step.variadic and n == len(step.arguments) - 1 else {}
        required = argument not in step.optional
        command = click.argument(argument, metavar=metavar, type=PATH, required=required, **many)(command)
    return click.command(step.name, help=step.summary)(command)


for _step in STEPS.values():
    cli.add_command(step_command(_step))


@cli.command("run")
@click.argument("workflow", type=PATH)
@click.option("--force", is_flag=True, help="Run every step, even those whose outputs are up to date.")
@scheduler_option
@click.option("--workers", type=int, default=None, help="LocalCluster size when no scheduler is given.")
def run_command(workflow: str, force: bool, scheduler: str | None, workers: int | None) -> None:
    """Run a workflow file (YAML): every step in order on one Dask client."""
    from .run import load_workflow, required_workers, run_workflow

    _, steps = load_workflow(workflow)  # validate the whole file before anything starts
    if not scheduler and workers is None:  # a local cluster as large as the workflow asks
        workers = max(required_workers(steps), os.cpu_count() or 1)
    with cluster_client(scheduler, workers) as client:
        record = run_workflow(workflow, client, force=force, echo=lambda line: click.echo(line, err=True))
    emit(
        {
            "workflow": record["workflow"],
            "seconds": record["seconds"],
            **record["metrics"],
            "record": record["record"],
        }
    )


@cli.command()
@click.option(
    "--out",
    default="seisfacies-demo",
    show_default=True,
    type=click.Path(file_okay=False),
    help="Folder for the demo's data, store, model and pictures.",
)
@click.option(
    "--shape", nargs=3, type=int, default=None, metavar="IL XL NS", help="Survey size (default 96 96 128)."
)
@click.option("--epochs", type=int, default=None, help="Training epochs (default: the model's, 9 for cnn2d).")
@click.option("--force", is_flag=True, help="Redo every step even if its outputs are up to date.")
@scheduler_option
def demo(out: str, shape, epochs: int | None, force: bool, scheduler: str | None) -> None:
    """The whole chain on a synthetic survey labelled on five inlines: a few minutes on a laptop."""
    from .demo import run_demo

    with cluster_client(scheduler) as client:
        record = run_demo(
            out,
            client,
            shape=tuple(shape) if shape else None,
            epochs=epochs,
            force=force,
            echo=lambda line: click.echo(line, err=True),
        )
    metrics, outputs = record["metrics"], record["outputs"]
    click.echo(f"demo finished in {record['seconds']:.0f} s; scores on the inlines nobody labelled:")
    for key in ("pixel_accuracy", "mean_class_accuracy", "mean_iou", "frequency_weighted_iou"):
        click.echo(f"  {key}: {metrics[key]}")
    click.echo("  class IoU: " + ", ".join(f"{k} {v}" for k, v in metrics["class_iou"].items()))
    for key, value in outputs.items():
        click.echo(f"{key}: {value}")
    click.echo(f"run record: {record['record']}")
    again = ["--out", out, *(["--shape", *map(str, shape)] if shape else [])]
    again += ["--epochs", str(epochs)] if epochs else []
    _echo_label_next(record, outputs, " ".join(again))
    click.echo("open it in xarray:")
    click.echo("  import xarray as xr")
    click.echo(f"  ds = xr.open_zarr({outputs['store']!r})")
    click.echo(
        "  ds.facies.isel(inline=ds.sizes['inline'] // 2).plot(x='crossline', y='time', yincrease=False)"
    )


def _echo_label_next(record: dict, outputs: dict, demo_options: str) -> None:
    """The inlines the demo's suggest step proposes, and the two commands that try them."""
    suggested = next(step["summary"] for step in record["steps"] if step["step"] == "suggest")
    picks, labelled = suggested["inlines"], suggested["labelled_inlines"]
    store = outputs["store"]
    source = str(Path(store).with_name("labels.sgy"))
    click.echo(f"label next (seisfacies suggest): inlines {', '.join(map(str, picks))}; to try it:")
    inlines = ",".join(map(str, sorted([*labelled, *picks])))
    click.echo(f"  seisfacies labels {store} {source} --inlines {inlines} --overwrite")
    click.echo(f"  seisfacies demo {demo_options}   # keeps your labels, retrains, scores again")


def main(argv: list[str] | None = None) -> None:
    """Console entry point.

    Parameters
    ----------
    argv : list[str] | None
        Command-line arguments (default: sys.argv).
    """
    from .torch_worker import skip_collection_at_exit

    skip_collection_at_exit()
    if hasattr(signal, "SIGUSR1"):  # a run that seems stuck: `kill -USR1 PID` prints where each thread is
        faulthandler.register(signal.SIGUSR1, all_threads=True)
    cli.main(args=argv, prog_name="seisfacies")


if __name__ == "__main__":
    main(sys.argv[1:])
