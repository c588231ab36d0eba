"""The CLI starts at once: ``distributor --help`` lists every command without importing any of
them (nor SQLAlchemy, the web app, Celery), and lists each as it reads once loaded."""

from __future__ import annotations

import subprocess
import sys

import click
from click.testing import CliRunner

from distributor.cli import LAZY_COMMANDS, main

# What a command's own import would bring; the list of commands needs none of it.
HEAVY = ("sqlalchemy", "fastapi", "celery", "premailer", "distributor.cli.send_commands")


def test_help_lists_every_command_without_importing_them() -> None:
    probe = (
        "import sys\nfrom click.testing import CliRunner\nfrom distributor.cli import main\n"
        "result = CliRunner().invoke(main, ['--help'])\nprint(result.output)\n"
        f"print(sorted(m for m in {HEAVY!r} if m in sys.modules))"
    )
    out = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, check=True
    ).stdout
    listing, _, imported = out.rstrip().rpartition("\n")
    assert imported == "[]", imported
    for name, lazy in LAZY_COMMANDS.items():
        assert f"  {name} " in listing and lazy.summary in listing, (name, listing)


def test_a_command_lists_the_same_loaded_or_not() -> None:
    before = CliRunner().invoke(main, ["--help"]).output
    context = click.Context(main)
    for name in LAZY_COMMANDS:
        command = main.get_command(context, name)
        assert command is not None and command.get_short_help_str(limit=200) == (
            LAZY_COMMANDS[name].summary
        )
    assert CliRunner().invoke(main, ["--help"]).output == before
    # and each still answers its own --help
    for name in LAZY_COMMANDS:
        result = CliRunner().invoke(main, [name, "--help"])
        assert result.exit_code == 0 and "Usage: " in result.output, (name, result.output)
