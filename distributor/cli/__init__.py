"""The ``distributor`` command, a face. Commands parse input, call a room's service (the same the
web calls) and show the result. Nothing but ``__main__`` imports it."""

from __future__ import annotations

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


@click.group(cls=DistributorGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="distributor")
@click.pass_context
def main(ctx: click.Context) -> None:
    """Import newsletter issues, keep subscribers, and send each issue to every one exactly once.

    Configuration comes from the environment (see .env.example); with none, everything runs on
    SQLite in the current directory.
    """
    ctx.obj = AppContext.from_env()


def _register() -> None:
    from distributor.cli import (
        bounce_commands,
        db_commands,
        demo_command,
        issue_commands,
        render_commands,
        schedule_commands,
        send_commands,
        subscriber_commands,
        suppression_commands,
        user_commands,
        web_commands,
        wechat_commands,
        worker_commands,
    )

    main.add_command(db_commands.db)
    issue_commands.issue.add_command(render_commands.render)
    issue_commands.issue.add_command(render_commands.preview)
    main.add_command(issue_commands.issue)
    main.add_command(send_commands.send)
    main.add_command(worker_commands.worker)
    main.add_command(worker_commands.beat)
    main.add_command(schedule_commands.schedule)
    main.add_command(demo_command.demo)
    main.add_command(subscriber_commands.subscribers)
    main.add_command(subscriber_commands.lists)
    main.add_command(web_commands.web)
    main.add_command(wechat_commands.wechat)
    main.add_command(user_commands.users)
    main.add_command(bounce_commands.bounces)
    subscriber_commands.subscribers.add_command(suppression_commands.unsuppress_command)
    subscriber_commands.subscribers.add_command(suppression_commands.suppressions_command)


_register()
