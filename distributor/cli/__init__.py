"""The ``distributor`` command, a face. Commands parse input, call a room's service (the same the
web calls) and show the result. Nothing but the program (:func:`run`, ``__main__``) imports it."""

from __future__ import annotations

import gc
import importlib
from typing import Any, NamedTuple

import click

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
        except Exception as error:
            lost = _unreachable_database(ctx, error)
            if lost is None:
                raise
            hint = "; is the server running, and is DATABASE_URL right?"
            raise _UserError(lost, hint) from error


def _unreachable_database(ctx: click.Context, error: Exception) -> DistributorError | None:
    """SQLAlchemy is imported here, when a command failed, not by every start of the program."""
    from sqlalchemy.exc import OperationalError

    from distributor.cli.context import AppContext, unreachable

    app = ctx.find_object(AppContext)
    if not isinstance(error, OperationalError) or app is None:
        return None
    return unreachable(app.settings.database_url, error)


def _load(module: str, name: str) -> click.Command:
    command = getattr(importlib.import_module(f"distributor.cli.{module}"), name)
    assert isinstance(command, click.Command)
    return command


class LazyCommand(NamedTuple):
    module: str
    attribute: str
    summary: str  # what --help lists, without importing the command
    extras: tuple[tuple[str, str], ...] = ()  # subcommands other modules add to it


# Each command is imported when it is run, not when the program starts or lists its commands:
# a command, and each process of `distributor web`, imports what it needs and no more.
LAZY_COMMANDS: dict[str, LazyCommand] = {
    "db": LazyCommand("db_commands", "db", "Create or upgrade the database schema."),
    "backup": LazyCommand(
        "backup_commands", "backup", "Back the database up to a file, or restore it from one."
    ),
    "doctor": LazyCommand(
        "doctor_command", "doctor", "Check the sending domain's DNS, the relay and the web site."
    ),
    "issue": LazyCommand(
        "issue_commands",
        "issue",
        "Import, list, show, render and preview newsletter issues.",
        (("render_commands", "render"), ("render_commands", "preview")),
    ),
    "send": LazyCommand(
        "send_commands", "send", "Create, schedule, test, control and watch sends."
    ),
    "worker": LazyCommand(
        "worker_commands", "worker", "Run a Celery worker (with --beat, the scheduler too)."
    ),
    "beat": LazyCommand("worker_commands", "beat", "Run the scheduler on its own."),
    "schedule": LazyCommand(
        "schedule_commands", "schedule", "Recurring digests of each period's issues."
    ),
    "demo": LazyCommand(
        "demo_command", "demo", "Run the whole job on the embedded default, with local servers."
    ),
    "subscribers": LazyCommand(
        "subscriber_commands",
        "subscribers",
        "Import, export, add, list, show and unsubscribe subscribers.",
        (
            ("suppression_commands", "unsuppress_command"),
            ("suppression_commands", "suppressions_command"),
        ),
    ),
    "lists": LazyCommand(
        "subscriber_commands", "lists", "Create, list, show, make public and delete lists."
    ),
    "web": LazyCommand(
        "web_commands", "web", "Serve the readers' pages, the staff dashboard and the JSON API."
    ),
    "wechat": LazyCommand("wechat_commands", "wechat", "The WeChat Official Account channel."),
    "users": LazyCommand(
        "user_commands", "users", "Staff accounts, their passwords and API tokens."
    ),
    "bounces": LazyCommand(
        "bounce_commands", "bounces", "Process bounces and complaints, and list them."
    ),
    "segments": LazyCommand(
        "segment_commands", "segments", "Saved segments: audiences by their facts, to send to."
    ),
    "webhooks": LazyCommand(
        "webhook_commands", "webhooks", "Webhooks: URLs sent each event they listen for, signed."
    ),
    "automations": LazyCommand(
        "automation_commands",
        "automations",
        "Welcome mail and later steps, once to each reader who joins.",
    ),
}


class LazyGroup(DistributorGroup):
    """The top-level group, whose commands are imported on first use (``LAZY_COMMANDS``)."""

    collector_paused = False  # by run(), until a command is loaded: see there

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted(set(super().list_commands(ctx)) | LAZY_COMMANDS.keys())

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        if cmd_name not in self.commands and cmd_name in LAZY_COMMANDS:
            lazy = LAZY_COMMANDS[cmd_name]
            command = _load(lazy.module, lazy.attribute)
            command.short_help = lazy.summary  # listed the same, loaded or not
            if isinstance(command, click.Group):
                for extra_module, extra_name in lazy.extras:
                    command.add_command(_load(extra_module, extra_name))
            self.add_command(command, cmd_name)
            if self.collector_paused:
                self.collector_paused = False
                gc.freeze()
                gc.enable()
        return super().get_command(ctx, cmd_name)

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        """The list of commands from ``LAZY_COMMANDS``: ``--help`` imports none of them."""
        rows = [
            (name, LAZY_COMMANDS[name].summary if name in LAZY_COMMANDS
             else self.commands[name].get_short_help_str())
            for name in self.list_commands(ctx)
        ]
        with formatter.section("Commands"):
            formatter.write_dl(rows)


@click.group(cls=LazyGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="distributor")
@click.pass_context
def main(ctx: click.Context) -> None:
    """Import newsletter issues, keep subscribers, and send each issue to every one exactly once.

    Configuration comes from the environment (see .env.example); with none, everything runs on
    SQLite in the current directory.
    """
    from distributor.cli.context import AppContext

    ctx.obj = AppContext.from_env()


def run() -> None:
    """The ``distributor`` program, with the cyclic garbage collector paused until its command
    is loaded. Importing SQLAlchemy and declaring the models build some 100,000 objects that live
    as long as the process; the collector's passes over them while they are built free nothing
    and cost about a third of ``send status``. Once loaded they are frozen out of its sight (as
    the web app freezes its own) and it runs as usual for the command."""
    main.collector_paused = True
    gc.disable()
    main(prog_name="distributor")
