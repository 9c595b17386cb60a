"""Every command's `--help` at 80 columns: option names whole (rich shortened them alike with
the help text, e.g. `--oversample-uncerta…`), nothing cut with an ellipsis, no line wider than
the terminal."""

from collections.abc import Iterator
from typing import Any

import pytest
import typer
from typer.testing import CliRunner

from flows.cli import app


def commands(group: Any, path: tuple[str, ...] = ()) -> Iterator[tuple[tuple[str, ...], Any]]:
    """Every command and group of the app (typer vendors click, so groups are known by their
    `commands`)."""
    yield path, group
    for name, command in sorted(getattr(group, "commands", {}).items()):
        yield from commands(command, (*path, name))


ALL = list(commands(typer.main.get_command(app)))


@pytest.mark.parametrize(("path", "command"), ALL, ids=[" ".join(p) or "assay" for p, _ in ALL])
def test_help_shows_every_option_name_whole_at_80_columns(
    path: tuple[str, ...], command: Any
) -> None:
    shown = CliRunner().invoke(app, [*path, "--help"], env={"COLUMNS": "80"}, terminal_width=80)
    assert shown.exit_code == 0, shown.output
    lines = shown.output.splitlines()
    assert all(len(line) <= 80 for line in lines), max(lines, key=len)
    assert "…" not in shown.output, [line for line in lines if "…" in line]
    names = [o for p in command.params for o in p.opts if o.startswith("--")]
    for name in names:
        assert name in shown.output, name
