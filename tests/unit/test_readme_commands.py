"""The README's command list names every command and subcommand `sharebus --help` offers."""

from __future__ import annotations

import re
from typing import Any

import typer

from sharebus.main import app
from streams.settings import ROOT


def _command_block() -> dict[str, str]:
    """Command -> the README lines that describe it (a line and its indented continuations)."""
    text = (ROOT / "README.md").read_text()
    block = text.split("## Command line", 1)[1].split("```", 2)[1]
    described: dict[str, str] = {}
    current = ""
    for line in block.splitlines():
        found = re.match(r"sharebus ([a-z-]+)", line)
        if found:
            current = found.group(1)
        if current:
            described[current] = described.get(current, "") + line + "\n"
    return described


def test_every_command_and_subcommand_is_in_the_readme() -> None:
    root: Any = typer.main.get_command(app)  # a click group (typer may bring its own click)
    described = _command_block()
    missing: list[str] = []
    for name, command in root.commands.items():
        if name not in described:
            missing.append(name)
            continue
        if hasattr(command, "commands"):
            missing += [
                f"{name} {sub}"
                for sub in command.commands
                if not re.search(rf"(?<![-\w]){re.escape(sub)}(?![-\w])", described[name])
            ]
    assert not missing, f"README.md's command list lacks {missing}"
    assert set(described) <= set(root.commands), "the README lists a command sharebus does not have"
