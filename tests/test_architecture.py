"""The shape of the code: who may import whom, one source for each option, docs on every public name."""

from __future__ import annotations

import ast
import importlib
import inspect
import pkgutil
import re
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import click
import pytest

import seisfacies.models
import seisfacies.pipeline
import seisfacies.workflows
from seisfacies.workflows import config as cfg
from seisfacies.workflows.cli import cli

ROOT = Path(__file__).resolve().parents[1]
ARCHITECTURE = (ROOT / "docs" / "architecture.md").read_text()

#: What each folder may import from the project (besides itself and the shared exceptions).
ALLOWED = {
    "pipeline": {"seisfacies.pipeline"},
    "models": {"seisfacies.models"},
    "workflows": {"seisfacies.pipeline", "seisfacies.models", "seisfacies.workflows"},
}
#: Third-party packages a folder must never import.
FORBIDDEN = {
    "pipeline": {"torch"},
    "models": {"dask", "distributed", "xarray", "zarr"},
    "workflows": set(),
}


def _package(path: Path) -> str:
    """The installed package of a file in the repository: ``pipeline/x.py`` is in ``seisfacies.pipeline``."""
    folder = path.resolve().parent.relative_to(ROOT).parts
    return "seisfacies" if folder == ("workflows", "toplevel") else ".".join(["seisfacies", *folder])


def _imports(path: Path) -> set[str]:
    """Every module a file imports, at any depth (lazy imports inside functions included), relative ones resolved."""
    names = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.level:
            base = _package(path).split(".")[: len(_package(path).split(".")) - node.level + 1]
            if node.module:
                names.add(".".join([*base, node.module]))
            else:
                names |= {".".join([*base, alias.name]) for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module)
    return names


def _static_target(path: Path, node: ast.ImportFrom, name: str) -> Path | None:
    """Where a static resolver (an editor, pyright) finds a relative import in a plain clone: a file path."""
    folder = path.parent
    for _ in range(node.level - 1):
        folder = folder.parent
    target = folder.joinpath(*(node.module or name).split("."))
    for candidate in (target.with_suffix(".py"), target / "__init__.py"):
        if candidate.is_file():
            return candidate
    init = folder / "__init__.py"
    if node.module is None and init.is_file():  # `from . import __version__`: a name the package defines
        defined = {
            target.id
            for statement in ast.walk(ast.parse(init.read_text()))
            if isinstance(statement, ast.Assign)
            for target in statement.targets
            if isinstance(target, ast.Name)
        }
        return init if name in defined else None
    return None


@pytest.mark.parametrize("folder", sorted(ALLOWED))
def test_import_direction(folder):
    problems = []
    for path in sorted((ROOT / folder).rglob("*.py")):
        for name in _imports(path):
            top = name.split(".")[0]
            project = ".".join(name.split(".")[:2]) if top == "seisfacies" else None
            if project and project != "seisfacies" and project not in ALLOWED[folder]:
                problems.append(f"{path.relative_to(ROOT)} imports {name}")
            if top in ("pipeline", "models", "workflows"):
                problems.append(f"{path.relative_to(ROOT)} imports {name} (not under seisfacies.)")
            if top in FORBIDDEN[folder]:
                problems.append(f"{path.relative_to(ROOT)} imports {name}")
    assert not problems, "\n".join(problems)


@pytest.mark.parametrize("folder", sorted(ALLOWED))
def test_every_import_between_the_folders_resolves_from_the_files_without_an_install(folder):
    """Relative imports only: ``from ..pipeline.store import x`` finds ``pipeline/store.py`` in a plain clone.

    An absolute ``seisfacies.pipeline`` resolves only through the installed
    package-dir mapping, so an editor's go-to-definition and a dependency
    grapher see three unconnected folders.
    """
    problems = []
    for path in sorted((ROOT / folder).glob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and node.level:
                for alias in node.names if node.module is None else [None]:
                    name = alias.name if alias else ""
                    if _static_target(path, node, name) is None:
                        problems.append(
                            f"{path.relative_to(ROOT)}:{node.lineno} from {'.' * node.level}{node.module or name}"
                        )
            elif isinstance(node, (ast.Import, ast.ImportFrom)):
                modules = (
                    [alias.name for alias in node.names] if isinstance(node, ast.Import) else [node.module]
                )
                problems += [
                    f"{path.relative_to(ROOT)}:{node.lineno} imports {module} by its installed name"
                    for module in modules
                    if module and module.split(".")[:2][-1] in ALLOWED and module.startswith("seisfacies.")
                ]
    assert not problems, "\n".join(problems)


def test_the_static_import_check_catches_an_unresolved_import(tmp_path):
    bad = ROOT / "pipeline" / "store.py"
    node = ast.parse("from ..modles.training import fit").body[0]
    assert _static_target(bad, node, "") is None
    node = ast.parse("from ..models.training import fit").body[0]
    assert _static_target(bad, node, "") == ROOT / "models" / "training.py"


def test_the_contract_checker_catches_a_violation(tmp_path):
    bad = tmp_path / "bad.py"
    bad.write_text("def f():\n    from seisfacies.workflows.train import train_model\n    import torch\n")
    assert {"seisfacies.workflows.train", "torch"} <= _imports(bad)


def test_importing_the_data_layer_loads_no_torch_and_no_workflows():
    # what xarray's backend discovery and every worker reading SEG-Y pay for
    code = (
        "import sys, seisfacies, seisfacies.pipeline.segy, seisfacies.pipeline.store;"
        "import xarray; xarray.backends.list_engines();"
        "bad = [m for m in ('torch', 'seisfacies.workflows', 'seisfacies.models') if m in sys.modules];"
        "assert not bad, bad"
    )
    subprocess.run([sys.executable, "-c", code], check=True)
    code = (
        "import sys, pkgutil, importlib, seisfacies.models as m;"
        "[importlib.import_module('seisfacies.models.' + i.name) for i in pkgutil.iter_modules(m.__path__)];"
        "bad = [n for n in ('dask', 'xarray', 'zarr', 'distributed', 'seisfacies.pipeline') if n in sys.modules];"
        "assert not bad, bad"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


# ---------------------------------------------------------------- one source for every option

#: Command -> the config model its options come from.
COMMANDS = {
    "synth": cfg.SynthConfig,
    "ingest": cfg.IngestConfig,
    "horizons": cfg.HorizonsConfig,
    "attributes": cfg.AttributesConfig,
    "labels": cfg.LabelsConfig,
    "map": cfg.MapConfig,
    "patches": cfg.PatchesConfig,
    "train": cfg.TrainConfig,
    "predict": cfg.PredictConfig,
    "evaluate": cfg.EvaluateConfig,
    "plot": cfg.PlotConfig,
    "suggest": cfg.SuggestConfig,
    "export": cfg.ExportConfig,
}
#: Values for the fields a command requires (they have no default).
REQUIRED_EXAMPLES = {"attributes": {"add": ("envelope",)}, "map": {"horizon": "top"}}
#: Options that are about the run, not the step: where the cluster is, how to print.
RUN_OPTIONS = {"scheduler", "as_json", "help"}


@pytest.mark.parametrize("command", sorted(COMMANDS))
def test_cli_options_and_config_fields_are_the_same_set(command):
    config_class = COMMANDS[command]
    options = {
        param.name: param
        for param in cli.commands[command].params
        if isinstance(param, click.Option) and param.name not in RUN_OPTIONS
    }
    assert set(options) == set(config_class.model_fields), command
    for name, info in config_class.model_fields.items():
        assert options[name].help == info.description, (
            f"{command} --{name}: help is not the field's description"
        )


@pytest.mark.parametrize("command", sorted(COMMANDS))
def test_cli_defaults_are_the_config_defaults(command):
    # parse a command line that gives only what is required: the config must equal the model's defaults
    from seisfacies.workflows.cli import build_config

    params = cli.commands[command].params
    arguments = ["PATH" for param in params if isinstance(param, click.Argument)]
    required = [param for param in params if isinstance(param, click.Option) and param.required]
    defaults = COMMANDS[command](**REQUIRED_EXAMPLES.get(command, {}))
    for param in required:
        value = getattr(defaults, param.name)
        arguments += [param.opts[0], ",".join(value) if isinstance(value, tuple) else str(value)]
    context = cli.commands[command].make_context(command, arguments)
    options = {key: value for key, value in context.params.items() if key in COMMANDS[command].model_fields}
    assert build_config(COMMANDS[command], **options) == defaults


def test_every_command_with_options_has_a_config():
    # a new command must declare its options in a config model (or be listed here as run-only)
    run_only = {"run", "demo"}
    assert set(cli.commands) == set(COMMANDS) | run_only


def test_every_step_is_a_command_and_a_python_function_made_from_its_row():
    import seisfacies as sf
    from seisfacies.workflows.steps import STEPS

    assert {step.api_name for step in STEPS.values()} <= set(sf.__all__)  # a new step's sf. name is listed
    for name, step in STEPS.items():
        command = cli.commands[name]
        assert command.help == step.summary
        arguments = [param.name for param in command.params if isinstance(param, click.Argument)]
        assert arguments == list(step.arguments)
        function = getattr(sf, step.api_name)
        parameters = list(inspect.signature(function).parameters)
        assert parameters[: len(arguments)] == list(step.python_names or step.arguments), name
        assert ("client" in parameters) == step.client and function.__doc__.startswith(step.summary)


def test_workflow_steps_take_the_same_models():
    from seisfacies.workflows.run import STEPS

    for name, step in STEPS.items():
        assert step.config is COMMANDS.get(name, step.config)
        assert set(step.config.model_fields) <= set(step.model.model_fields)


# ---------------------------------------------------------------- numpydoc on public functions


def _public_functions():
    for package in (seisfacies.pipeline, seisfacies.models, seisfacies.workflows):
        for info in pkgutil.walk_packages(package.__path__, package.__name__ + "."):
            if info.name.startswith("seisfacies.workflows.toplevel"):
                continue
            module = importlib.import_module(info.name)
            for name, function in vars(module).items():
                if (
                    not name.startswith("_")
                    and inspect.isfunction(function)
                    and function.__module__ == module.__name__
                ):
                    yield f"{module.__name__}.{name}", function


PUBLIC = dict(_public_functions())


def test_every_public_function_has_a_numpydoc_docstring():
    missing = []
    for name, function in PUBLIC.items():
        doc = inspect.getdoc(function) or ""
        takes = [
            p
            for p in inspect.signature(function).parameters.values()
            if p.name not in ("self", "cls", "ctx", "param")
        ]
        if not doc:
            missing.append(f"{name}: no docstring")
        elif (
            takes and "Parameters\n----------" not in doc and "click" not in inspect.getsource(function)[:200]
        ):
            missing.append(f"{name}: no Parameters section")
    assert not missing, "\n".join(missing)


# ---------------------------------------------------------------- a new model touches only models/


def _readme_block(marker: str) -> str:
    match = re.search(
        rf"<!-- {marker}:begin -->\n```python\n(.*?)```\n<!-- {marker}:end -->", ARCHITECTURE, re.S
    )
    assert match, f"docs/architecture.md has no {marker} block"
    return match.group(1)


@pytest.fixture(scope="module")
def trace_patches(synthetic_survey, tmp_path_factory):
    """Trace patches of the synthetic survey, labelled everywhere."""
    from seisfacies.workflows.ingest import segy_to_zarr
    from seisfacies.workflows.labels import attach_labels
    from seisfacies.workflows.patches import extract_patches

    folder = tmp_path_factory.mktemp("example")
    segy_to_zarr(synthetic_survey["seismic"], folder / "s.zarr", cfg.IngestConfig())
    attach_labels(folder / "s.zarr", synthetic_survey["labels"], cfg.LabelsConfig())
    patches = cfg.PatchesConfig(kind="trace", size=24, per_class=120, split_block=8)
    extract_patches(folder / "s.zarr", folder / "p.zarr", patches)
    return folder / "p.zarr"


def test_the_documented_example_model_registers_and_trains(trace_patches, tmp_path, monkeypatch):
    from seisfacies.models import list_models
    from seisfacies.workflows.train import load_model, train_model

    source = _readme_block("example-model")
    assert len([line for line in source.splitlines() if line.strip()]) <= 20
    # as models/trace_conv.py would be: a module of its own, imported once
    (tmp_path / "readme_trace_conv.py").write_text(source)
    monkeypatch.syspath_prepend(str(tmp_path))
    importlib.import_module("readme_trace_conv")
    assert "trace_conv" in list_models()
    summary = train_model(
        trace_patches,
        tmp_path / "m.pt",
        cfg.TrainConfig(model="trace_conv", epochs=8, lr=0.01, schedule="constant"),
    )
    model, payload = load_model(tmp_path / "m.pt")
    assert payload["model_name"] == "trace_conv" and type(model).__name__ == "TraceConv"
    n_classes = len(payload["class_names"])
    assert summary["train_accuracy"] > 2.0 / n_classes, summary  # it learned: well above chance


# ---------------------------------------------------------------- one top-level name on install


@pytest.mark.slow
def test_the_wheel_installs_only_the_seisfacies_package(tmp_path):
    source = tmp_path / "source"  # a copy: building in place would leave build/ in the repository
    for name in ("pipeline", "models", "workflows"):
        shutil.copytree(ROOT / name, source / name, ignore=shutil.ignore_patterns("__pycache__"))
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(ROOT / name, source / name)
    pip_wheel = [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q"]
    subprocess.run([*pip_wheel, "-w", tmp_path, source], check=True)
    (wheel,) = tmp_path.glob("seisfacies-*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    tops = {name.split("/")[0] for name in names}
    assert {top for top in tops if not top.endswith(".dist-info")} == {"seisfacies"}
    assert {"seisfacies/__init__.py", "seisfacies/pipeline/segy.py", "seisfacies/models/training.py"} <= set(
        names
    )
    assert "seisfacies/workflows/demo.yaml" in names
    entry_points = (
        zipfile.ZipFile(wheel).read(next(n for n in names if n.endswith("entry_points.txt"))).decode()
    )
    assert "seisfacies.workflows.cli:main" in entry_points
    assert "seisfacies.pipeline.segy:SegyBackendEntrypoint" in entry_points


def test_every_message_names_a_real_command_and_its_real_options():
    """Advice in a message is something a user can type: no placeholder, no command or option that is not there.

    On 93c14ff, ``suggest`` on a store without ``uncertainty`` said "run `the step that makes it` first".
    """
    from seisfacies.pipeline.store import PRODUCERS

    advice = [f"`{producer}`" for producer in PRODUCERS.values()]
    for folder in ALLOWED:
        advice += [source.read_text() for source in (ROOT / folder).glob("*.py")]
    named = re.findall(r"`seisfacies ([a-z_-]+)((?: [A-Z.]+)*(?: --[a-z-]+)*)", "\n".join(advice))
    assert len(named) > 20
    for command, rest in named:
        if command.startswith("-"):
            continue
        assert command in cli.commands, command
        params = cli.commands[command].params
        options = {"--help", *(opt for param in params for opt in param.opts + param.secondary_opts)}
        assert set(re.findall(r"--[a-z-]+", rest)) <= options, (command, rest)
    for variable in ("amplitude", "labels", "facies", "probability", "uncertainty"):
        assert variable in PRODUCERS, f"no message can say which command writes {variable!r}"
