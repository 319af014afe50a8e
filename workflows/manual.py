"""The command manual, ``docs/manual.md``, written from the CLI itself so it cannot drift.

Every option is declared once in :mod:`seisfacies.workflows.config`; the
click commands are built from those models, and this module reads the click
commands. Regenerate with ``python -m seisfacies.workflows.manual > docs/manual.md``;
a test fails when the file and the commands disagree.
"""

from __future__ import annotations

import click

#: The order a user meets the commands in: the chain first, then the tools around it.
ORDER = ("demo", "run", "synth", "ingest", "labels", "patches", "train", "predict", "evaluate", "suggest")
ORDER += ("plot", "export")


def render_manual(group: click.Group | None = None) -> str:
    """The manual as Markdown: each command's usage, summary and option table.

    Parameters
    ----------
    group : click.Group, optional
        The command group; default the ``seisfacies`` command.

    Returns
    -------
    str
    """
    if group is None:
        from .cli import cli as group

    names = sorted(
        group.commands, key=lambda name: (ORDER.index(name) if name in ORDER else len(ORDER), name)
    )
    parts = [
        "# seisfacies commands\n",
        "Generated from the CLI by `python -m seisfacies.workflows.manual > docs/manual.md`; "
        "`seisfacies COMMAND --help` says the same. The same options are keyword arguments of the "
        "Python functions (`--per-class` is `per_class=`) and keys of workflow-file steps.\n",
    ]
    for name in names:
        parts.append(_command_section(group, name))
    return "\n".join(parts)


def _command_section(group: click.Group, name: str) -> str:
    command = group.commands[name]
    context = click.Context(command, info_name=f"seisfacies {name}", parent=None)
    lines = [f"## `seisfacies {name}`\n", "```text", " ".join(command.collect_usage_pieces(context)), "```\n"]
    lines[2] = f"seisfacies {name} {lines[2]}"
    lines.append(" ".join((command.help or "").split()) + "\n")
    # the help option itself, not its spelling: click keeps a command's help option with the spellings of
    # the first context that asked for it ("-h, --help" under the group), so a command run in this
    # process before the manual was drawn changed its row
    help_option = command.get_help_option(context)
    options = [param for param in command.get_params(context) if isinstance(param, click.Option)]
    records = [option.get_help_record(context) for option in options if option is not help_option]
    rows = [record for record in records if record]
    if rows:
        lines += ["| option | what |", "|---|---|"]
        lines += [f"| `{_cell(spelling)}` | {_cell(help_text)} |" for spelling, help_text in rows]
    return "\n".join(lines) + "\n"


def _cell(text: str) -> str:
    r"""Text safe inside a Markdown table cell: one line, pipes escaped.

    >>> print(_cell("a|b  c"))
    a\|b c
    """
    return " ".join(text.split()).replace("|", "\\|")


if __name__ == "__main__":
    print(render_manual(), end="")
