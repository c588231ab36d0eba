"""The ``distributor`` command, a face. Commands parse input, call a room's service (the same the
web calls) and show the result. Nothing but ``__main__`` imports it."""

from __future__ import annotations

import importlib
from typing import Any

import click
from sqlalchemy.exc import OperationalError

from distributor.cli.context import AppContext, unreachable
from distributor.cli.terminal import plain
from distributor.errors import DistributorError


class _UserError(click.ClickException):
    """A DistributorError shown as ``Error: …``, exit code 2 (like click's usage errors).

    Messages quote input (a file's text, a server's answer), so they are made terminal-safe.
    """

    exit_code = DistributorError.exit_code

    def __init__(self, error: DistributorError, hint: str = "") -> None:
        super().__init__(plain(error.format_message()) + hint)


class DistributorGroup(click.Group):
    """Turns every expected failure into one readable line instead of a traceback."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except DistributorError as error:
            raise _UserError(error) from error
        except OperationalError as error:
            app = ctx.find_object(AppContext)
            lost = unreachable(app.settings.database_url, error) if app else None
            if lost is None:
                raise
            hint = "; is the server running, and is DATABASE_URL right?"
            raise _UserError(lost, hint) from error


def _load(module: str, name: str) -> click.Command:
    command = getattr(importlib.import_module(f"distributor.cli.{module}"), name)
    assert isinstance(command, click.Command)
    return command


# Each command is imported when it is run (or listed by --help), not when the program starts: a
# command, and each process of `distributor web`, imports what it needs and no more. Name →
# (module, attribute, the subcommands other modules add to it).
LAZY_COMMANDS: dict[str, tuple[str, str, tuple[tuple[str, str], ...]]] = {
    "db": ("db_commands", "db", ()),
    "backup": ("backup_commands", "backup", ()),
    "doctor": ("doctor_command", "doctor", ()),
    "issue": ("issue_commands", "issue", (("render_commands", "render"),
                                          ("render_commands", "preview"))),
    "send": ("send_commands", "send", ()),
    "worker": ("worker_commands", "worker", ()),
    "beat": ("worker_commands", "beat", ()),
    "schedule": ("schedule_commands", "schedule", ()),
    "demo": ("demo_command", "demo", ()),
    "subscribers": ("subscriber_commands", "subscribers", (
        ("suppression_commands", "unsuppress_command"),
        ("suppression_commands", "suppressions_command"),
    )),
    "lists": ("subscriber_commands", "lists", ()),
    "web": ("web_commands", "web", ()),
    "wechat": ("wechat_commands", "wechat", ()),
    "users": ("user_commands", "users", ()),
    "bounces": ("bounce_commands", "bounces", ()),
}


class LazyGroup(DistributorGroup):
    """The top-level group, whose commands are imported on first use (``LAZY_COMMANDS``)."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted(set(super().list_commands(ctx)) | LAZY_COMMANDS.keys())

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        if cmd_name not in self.commands and cmd_name in LAZY_COMMANDS:
            module, name, extras = LAZY_COMMANDS[cmd_name]
            command = _load(module, name)
            if isinstance(command, click.Group):
                for extra_module, extra_name in extras:
                    command.add_command(_load(extra_module, extra_name))
            self.add_command(command, cmd_name)
        return super().get_command(ctx, cmd_name)


@click.group(cls=LazyGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="distributor")
@click.pass_context
def main(ctx: click.Context) -> None:
    """Import newsletter issues, keep subscribers, and send each issue to every one exactly once.

    Configuration comes from the environment (see .env.example); with none, everything runs on
    SQLite in the current directory.
    """
    ctx.obj = AppContext.from_env()
