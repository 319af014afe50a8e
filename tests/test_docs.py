"""The README and docs/ as a newcomer meets them: short, generated where they list options, and every block runs."""

from __future__ import annotations

import re
import subprocess
import sys

import click
import pytest

from seisfacies.workflows.cli import cli
from seisfacies.workflows.manual import render_manual
from tests.conftest import DOCUMENTS, ROOT, code_blocks

README = ROOT / "README.md"


def test_the_readme_is_a_front_door():
    lines = README.read_text().splitlines()
    assert len(lines) < 250
    assert "![" in README.read_text() and (ROOT / "docs" / "demo-section.png").is_file()
    for link in re.findall(r"\]\(((?:docs/)?[\w./-]+\.(?:md|png))\)", README.read_text()):
        assert (ROOT / link).is_file(), link


def test_the_manual_is_generated_and_names_every_command_and_option():
    manual = (ROOT / "docs" / "manual.md").read_text()
    assert manual == render_manual(), (
        "docs/manual.md is stale: python -m seisfacies.workflows.manual > docs/manual.md"
    )
    for name, command in cli.commands.items():
        assert f"## `seisfacies {name}`" in manual, name
        section = manual.split(f"## `seisfacies {name}`")[1].split("\n## ")[0]
        for option in command.params:
            if isinstance(option, click.Option):
                assert any(spelling in section for spelling in option.opts), (name, option.opts)


def test_every_block_says_its_language():
    """A block without one would be skipped by the run below without anyone noticing."""
    for document in DOCUMENTS:
        for language, code in code_blocks(document):
            assert language, f"{document.name}: a ``` block without a language: {code[:60]!r}"


@pytest.mark.cluster
@pytest.mark.slow
def test_every_python_and_bash_block_of_the_readme_and_docs_runs(documented_run):
    runs = documented_run["runs"]
    assert {run["document"] for run in runs} >= {"README.md", "python.md", "architecture.md"}
    for run in runs:
        assert run["rc"] == 0, f"{run['document']}:\n{run['code']}\n{run['err'][-3000:]}"
        assert "Traceback" not in run["err"], f"{run['document']}:\n{run['code']}\n{run['err'][-3000:]}"


@pytest.mark.cluster
@pytest.mark.slow
def test_the_readme_example_runs_as_a_script_with_quiet_progress(documented_run):
    (example,) = [run for run in documented_run["runs"] if "sf.local_cluster" in run["code"]]
    found = re.search(
        r"mean IoU (\d\.\d+) on unlabelled inlines; label next: \[(\d+), (\d+)\]", example["out"]
    )
    assert found, example["out"]
    assert float(found[1]) > 0.75  # 0.80 measured; chance is about 0.1
    epoch_lines = [
        line for line in (example["out"] + example["err"]).splitlines() if line.startswith("epoch=")
    ]
    assert len(epoch_lines) <= 11, epoch_lines  # 40 epochs: the first, the last, every tenth; before, all 40
    assert "heartbeat" not in example["err"] and "Nanny" not in example["err"]


@pytest.mark.cluster
@pytest.mark.slow
def test_the_tour_keeps_the_users_labels_and_scores_again(documented_run):
    tour = [run for run in documented_run["runs"] if "seisfacies labels" in run["code"]]
    assert tour and "[labels] outputs changed since this workflow wrote them: kept" in tour[0]["err"]
    assert "[train] running" in tour[0]["err"]


def test_the_manual_is_the_same_after_a_command_ran_in_the_process_first(tmp_path):
    """Click keeps a command's help option as the first context spelled it ("-h, --help" under the group).

    In a new process, so that the command runs before any manual was drawn there.
    """
    script = (
        "import sys\n"
        "from click.testing import CliRunner\n"
        "from seisfacies.workflows.cli import cli\n"
        "from seisfacies.workflows.manual import render_manual\n"
        "CliRunner().invoke(cli, ['ingest', sys.argv[1], sys.argv[2]])\n"
        "print(render_manual(), end='')\n"
    )
    drawn = subprocess.run(
        [sys.executable, "-c", script, str(tmp_path / "missing.sgy"), str(tmp_path / "s.zarr")],
        capture_output=True,
        text=True,
        check=True,
    )
    assert drawn.stdout == (ROOT / "docs" / "manual.md").read_text()
