"""The ``seisfacies`` command: parse options, build one config, call one function.

Heavy modules are imported inside each command so ``seisfacies --help`` is fast.
User errors (:class:`pipeline.exceptions.SeisFaciesError`, invalid options)
print one line and exit with status 2.
"""

from __future__ import annotations

import contextlib
import errno
import json
import sys
from collections.abc import Callable

import click
from pydantic import ValidationError

from pipeline.exceptions import ConfigError, SeisFaciesError


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
            from pipeline.store import remove_unfinished

            remove_unfinished()  # the workers have stopped: nothing can write into them any more
            raise Interrupted(
                f"{ctx.invoked_subcommand or 'command'} interrupted; nothing half-written was kept as "
                "finished, run the command again to redo it"
            ) from None
        except SeisFaciesError as error:
            raise UserError(str(error)) from None
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

    >>> full = OSError(errno.ENOSPC, "No space left on device", "/d/.s.zarr.partial-0123abcd/zarr.json")
    >>> describe_os_error(full)
    '/d/s.zarr/zarr.json: No space left on device; free disk space, then run the command again'
    """
    from pipeline.store import output_path_of

    where = f"{output_path_of(str(error.filename))}: " if error.filename else ""
    reason = error.strerror or (str(error).splitlines() or [type(error).__name__])[0]
    advice = OS_ERROR_ADVICE.get(error.errno, "check the path and the free space, then run the command again")
    return f"{where}{reason}; {advice}"


#: Path arguments: the commands' own readers name an unreadable file and say what to do.
PATH = click.Path(readable=False)


def build_config(config_class: type, **options):
    """Validate options into a config model; a bad value is a one-line error."""
    try:
        return config_class(**options)
    except ValidationError as error:
        first = error.errors()[0]
        name = "--" + "-".join(str(part) for part in first["loc"]).replace("_", "-")
        raise ConfigError(f"option {name}: {first['msg']}") from None


def emit(summary: dict, as_json: bool = False) -> None:
    """Print a command's summary for people, or as JSON."""
    if as_json:
        click.echo(json.dumps(summary, indent=2, default=str))
        return
    for key, value in summary.items():
        click.echo(f"{key}: {value}")


def scheduler_option(function: Callable) -> Callable:
    return click.option(
        "--scheduler",
        envvar="DASK_SCHEDULER_ADDRESS",
        default=None,
        metavar="ADDRESS",
        help="Dask scheduler address (else $DASK_SCHEDULER_ADDRESS, else a LocalCluster).",
    )(function)


def overwrite_option(function: Callable) -> Callable:
    return click.option("--overwrite", is_flag=True, help="Replace an existing output.")(function)


@contextlib.contextmanager
def cluster_client(scheduler: str | None, workers: int | None = None):
    """Connect to ``scheduler`` or start a LocalCluster; print the dashboard link."""
    from pipeline.cluster import ClusterSpec, connect

    with connect(ClusterSpec(address=scheduler, n_workers=workers)) as client:
        click.echo(f"dask: {client.scheduler.address} dashboard {client.dashboard_link}", err=True)
        yield client


@click.group(cls=SeisFaciesGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="seisfacies")
def cli() -> None:
    """Seismic facies classification on Dask: SEG-Y -> Zarr -> patches -> PyTorch -> facies."""


@cli.command()
@click.argument("out_dir", type=click.Path(file_okay=False))
@click.option("--shape", nargs=3, type=int, default=(96, 96, 128), show_default=True, metavar="IL XL NS")
@click.option("--seed", type=int, default=0, show_default=True)
@overwrite_option
def synth(out_dir: str, shape: tuple[int, int, int], seed: int, overwrite: bool) -> None:
    """Write a synthetic labelled survey: OUT_DIR/seismic.sgy and OUT_DIR/labels.sgy."""
    from workflows.config import SynthConfig
    from workflows.synth import write_synthetic_survey

    if min(shape) < 8:
        raise ConfigError(f"option --shape: {shape} is too small; each size must be at least 8")
    emit(
        write_synthetic_survey(
            out_dir, build_config(SynthConfig, shape=shape, seed=seed, overwrite=overwrite)
        )
    )


@cli.command()
@click.argument("segy", type=PATH)
@click.argument("store", type=PATH)
@click.option("--chunks", default=None, help="Chunk sizes: '64,64,256' or 'inline=64,crossline=64,time=256'.")
@click.option(
    "--iline-byte", type=int, default=189, show_default=True, help="Trace header byte of the inline number."
)
@click.option(
    "--xline-byte",
    type=int,
    default=193,
    show_default=True,
    help="Trace header byte of the crossline number.",
)
@click.option("--endian", type=click.Choice(["auto", "big", "little"]), default="auto", show_default=True)
@click.option("--domain", type=click.Choice(["time", "depth"]), default="time", show_default=True)
@click.option(
    "--sample-interval",
    type=float,
    default=None,
    metavar="MS",
    help="Sample interval in ms (m in depth) instead of the headers' one; needed when they give 0.",
)
@click.option(
    "--nonfinite",
    type=click.Choice(["keep", "refuse"]),
    default="keep",
    show_default=True,
    help="What to do with NaN/infinite samples: keep them (and report the count) or refuse the file.",
)
@overwrite_option
@scheduler_option
@click.option("--json", "as_json", is_flag=True, help="Print the summary as JSON.")
def ingest(segy: str, store: str, scheduler: str | None, as_json: bool, **options) -> None:
    """Ingest a post-stack SEG-Y file into a chunked Zarr v3 store."""
    from workflows.config import IngestConfig
    from workflows.ingest import segy_to_zarr

    config = build_config(IngestConfig, **options)
    with cluster_client(scheduler) as client:
        emit(segy_to_zarr(segy, store, config, client), as_json)


@cli.command()
@click.argument("store", type=PATH)
@click.argument("out", type=PATH)
@click.option(
    "--variable", default="amplitude", show_default=True, help="Store variable to write as samples."
)
@overwrite_option
@scheduler_option
def export(store: str, out: str, scheduler: str | None, **options) -> None:
    """Write a store variable as SEG-Y with the source file's headers."""
    from workflows.config import ExportConfig
    from workflows.export import zarr_to_segy

    config = build_config(ExportConfig, **options)
    with cluster_client(scheduler) as client:
        emit(zarr_to_segy(store, out, config, client))


@cli.command()
@click.argument("store", type=PATH)
@click.argument("source", type=PATH)
@click.option("--classes", default=None, metavar="NAME,NAME,...", help="Class names, in class-number order.")
@click.option(
    "--unlabelled",
    type=float,
    default=None,
    metavar="VALUE",
    help="Source value that means 'not labelled' (default -1).",
)
@click.option(
    "--inlines", default=None, metavar="N,N,...", help="Keep the labels of these inline numbers only."
)
@overwrite_option
@scheduler_option
@click.option("--json", "as_json", is_flag=True, help="Print the summary as JSON.")
def labels(
    store: str, source: str, scheduler: str | None, as_json: bool, inlines: str | None, **options
) -> None:
    """Attach labels (SEG-Y volume, .npy, Zarr or CSV points) to a store."""
    from workflows.config import LabelsConfig
    from workflows.labels import attach_labels

    numbers = None
    if inlines:
        try:
            numbers = tuple(int(part) for part in inlines.split(",") if part.strip())
        except ValueError:
            raise ConfigError(f"option --inlines {inlines!r}: give inline numbers like 108,130,152") from None
    config = build_config(LabelsConfig, inlines=numbers, **options)
    with cluster_client(scheduler) as client:
        emit(attach_labels(store, source, config, client), as_json)


@cli.command()
@click.argument("store", type=PATH)
@click.argument("patches", type=PATH)
@click.option("--kind", type=click.Choice(["trace", "section", "cube"]), required=True)
@click.option(
    "--size", type=int, default=None, help="Window size in samples (trace 64, section 64, cube 32)."
)
@click.option(
    "--stride", type=int, default=None, help="Spacing of candidate centres (trace 2, section 4, cube 4)."
)
@click.option("--per-class", type=int, default=500, show_default=True, help="Training patches per class.")
@click.option(
    "--orientation",
    type=click.Choice(["inline", "crossline", "both"]),
    default="inline",
    show_default=True,
    help="Sections to crop (section kind).",
)
@click.option(
    "--dense/--centre", "dense", default=None, help="Cube labels: the dense cube or the centre label."
)
@click.option("--val-fraction", type=float, default=0.2, show_default=True)
@click.option(
    "--split-block",
    type=int,
    default=16,
    show_default=True,
    help="Size of the spatial blocks that go wholly to train or validation.",
)
@click.option("--augment", default="", metavar="flip,scale", help="Extra training copies: flip, scale.")
@click.option("--seed", type=int, default=0, show_default=True)
@overwrite_option
@scheduler_option
@click.option("--json", "as_json", is_flag=True, help="Print the summary as JSON.")
def patches(store: str, patches: str, scheduler: str | None, as_json: bool, augment: str, **options) -> None:
    """Cut class-balanced training patches from a labelled store."""
    from workflows.config import PatchesConfig
    from workflows.patches import extract_patches

    augments = tuple(part.strip() for part in augment.split(",") if part.strip())
    config = build_config(PatchesConfig, augment=augments, **options)
    with cluster_client(scheduler) as client:
        emit(extract_patches(store, patches, config, client), as_json)


@cli.command()
@click.argument("source", type=PATH)
@click.argument("model_path", metavar="MODEL.pt", type=PATH)
@click.option("--model", default="cnn2d", show_default=True, help="mlp, cnn2d, cnn2d_patch or cnn3d.")
@click.option("--optimizer", default="adam", show_default=True, help="gd, sgd, momentum, rmsprop or adam.")
@click.option(
    "--activation", default=None, help="sigmoid, tanh, relu, leaky_relu or elu (default: the model's)."
)
@click.option("--epochs", type=int, default=12, show_default=True)
@click.option("--batch-size", type=int, default=32, show_default=True, help="Global mini-batch size.")
@click.option("--lr", type=float, default=2e-3, show_default=True, help="Learning rate (alpha).")
@click.option("--weight-decay", type=float, default=0.0, show_default=True)
@click.option("--beta", type=float, default=0.9, show_default=True, help="Momentum / RMSprop / Adam beta.")
@click.option("--schedule", default="cosine", show_default=True, help="constant, step or cosine.")
@click.option(
    "--workers", type=int, default=1, show_default=True, help="Data-parallel ranks, one per Dask worker."
)
@click.option(
    "--shards",
    type=int,
    default=None,
    help="Shards of the training split (default: one per rank; a multiple of --workers).",
)
@click.option("--device", default="auto", show_default=True, help="auto, cpu or cuda.")
@click.option("--precision", default="fp32", show_default=True, help="fp32 or bf16 (mixed precision).")
@click.option("--class-weights", default="balanced", show_default=True, help="balanced or none.")
@click.option(
    "--time-budget", type=float, default=None, help="Stop after the epoch that passes this many seconds."
)
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--model-options", default="{}", help='JSON model config, e.g. \'{"base": 8, "depth": 2}\'.')
@click.option("--resume", is_flag=True, help="Continue from MODEL.pt's last epoch.")
@click.option(
    "--max-restarts",
    type=int,
    default=0,
    show_default=True,
    help="Restarts from the last checkpoint after a lost rank.",
)
@overwrite_option
@scheduler_option
@click.option("--json", "as_json", is_flag=True, help="Print the summary as JSON.")
def train(
    source: str, model_path: str, scheduler: str | None, as_json: bool, model_options: str, **options
) -> None:
    """Train a model on a patch store (or a labelled store: patches are cut first)."""
    from workflows.config import TrainConfig
    from workflows.train import train_model

    try:
        parsed = json.loads(model_options)
    except json.JSONDecodeError as error:
        raise ConfigError(f"option --model-options: not JSON ({error.msg})") from None
    config = build_config(TrainConfig, model_options=parsed, **options)
    with cluster_client(scheduler, workers=config.workers if not scheduler else None) as client:
        emit(train_model(source, model_path, config, client), as_json)


@cli.command()
@click.argument("store", type=PATH)
@click.argument("model_path", metavar="MODEL.pt", type=PATH)
@click.option("--probabilities", is_flag=True, help="Also write class probabilities (float16).")
@click.option("--batch-size", type=int, default=16, show_default=True)
@click.option("--device", default="auto", show_default=True, help="auto, cpu or cuda.")
@click.option("--precision", default="fp32", show_default=True, help="fp32 or bf16.")
@overwrite_option
@scheduler_option
@click.option("--json", "as_json", is_flag=True, help="Print the summary as JSON.")
def predict(store: str, model_path: str, scheduler: str | None, as_json: bool, **options) -> None:
    """Classify every voxel of a store with a trained model (writes `facies`)."""
    from workflows.config import PredictConfig
    from workflows.predict import predict_volume

    config = build_config(PredictConfig, **options)
    with cluster_client(scheduler) as client:
        emit(predict_volume(store, model_path, config, client), as_json)


@cli.command()
@click.argument("store", type=PATH)
@click.option(
    "--truth",
    default=None,
    metavar="SOURCE",
    help="Label source to score against (default: the store's labels).",
)
@click.option(
    "--where",
    default="all",
    show_default=True,
    help="unlabelled, labelled or all (relative to the store's labels).",
)
@click.option(
    "--unlabelled", type=float, default=None, metavar="VALUE", help="Truth value meaning 'not labelled'."
)
@scheduler_option
@click.option("--json", "as_json", is_flag=True, help="Print the metrics as JSON.")
def evaluate(store: str, scheduler: str | None, as_json: bool, **options) -> None:
    """Pixel accuracy, mean class accuracy, mean IoU, FWIoU and the confusion matrix."""
    from workflows.config import EvaluateConfig
    from workflows.evaluate import evaluate_store

    config = build_config(EvaluateConfig, **options)
    with cluster_client(scheduler) as client:
        emit(evaluate_store(store, config, client), as_json)


@cli.command()
@click.argument("store", type=PATH)
@click.argument("out", type=PATH)
@click.option("--inline", type=int, default=None, help="Inline number of the section.")
@click.option("--crossline", type=int, default=None, help="Crossline number of the section.")
@click.option("--time", type=float, default=None, help="Time (or depth) of a horizontal slice.")
@overwrite_option
def plot(store: str, out: str, **options) -> None:
    """Draw a section with the predicted facies (and the labels beside it)."""
    from workflows.config import PlotConfig
    from workflows.plot import plot_section

    emit(plot_section(store, out, build_config(PlotConfig, **options)))


@cli.command("run")
@click.argument("workflow", type=PATH)
@click.option("--force", is_flag=True, help="Run every step, even those whose outputs are up to date.")
@scheduler_option
@click.option("--workers", type=int, default=None, help="LocalCluster size when no scheduler is given.")
def run_command(workflow: str, force: bool, scheduler: str | None, workers: int | None) -> None:
    """Run a workflow file (YAML): every step in order on one Dask client."""
    from workflows.run import load_workflow, run_workflow

    load_workflow(workflow)  # validate the whole file before anything starts
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
@click.option("--epochs", type=int, default=None, help="Training epochs (default 12).")
@click.option("--force", is_flag=True, help="Redo every step even if its outputs are up to date.")
@scheduler_option
def demo(out: str, shape, epochs: int | None, force: bool, scheduler: str | None) -> None:
    """The whole chain on a synthetic survey labelled on five inlines: a few minutes on a laptop."""
    from workflows.demo import run_demo

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
    click.echo("open it in xarray:")
    click.echo("  import xarray as xr")
    click.echo(f"  ds = xr.open_zarr({outputs['store']!r})")
    click.echo(
        "  ds.facies.isel(inline=ds.sizes['inline'] // 2).plot(x='crossline', y='time', yincrease=False)"
    )


def main(argv: list[str] | None = None) -> None:
    """Console entry point."""
    cli.main(args=argv, prog_name="seisfacies")


if __name__ == "__main__":
    main(sys.argv[1:])
