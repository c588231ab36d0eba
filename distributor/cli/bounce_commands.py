"""``distributor bounces``: feed bounce messages in by hand and see what came back."""

from __future__ import annotations

import json
from pathlib import Path

import click
from rich.table import Table

from distributor.bounces import MAX_MESSAGE_BYTES
from distributor.bounces.apply import PausePolicy, list_feedback, process_feedback
from distributor.bounces.models import FeedbackOutcome
from distributor.cli.context import AppContext, pass_app
from distributor.cli.send_status_output import when_text
from distributor.cli.terminal import rich_text
from distributor.db import utcnow
from distributor.errors import ConfigurationError, DistributorError
from distributor.readers.mailto import MailtoOutcome, mailto_unsubscriber
from distributor.render.verp import Verp


@click.group()
def bounces() -> None:
    """Process bounce and complaint messages by hand, and list what was processed."""


def _message_files(path: Path) -> list[Path]:
    if path.is_dir():
        files = sorted(p for p in path.iterdir() if p.is_file() and p.suffix.lower() == ".eml")
        if not files:
            raise DistributorError(f"{path} holds no .eml files")
        return files
    return [path]


def _taken_row(file: Path, taken: MailtoOutcome) -> dict[str, object]:
    """A message to the unsubscribe address, in the shape of a processed report's row."""
    return {
        "file": str(file),
        "id": None,
        "kind": "unsubscribe",
        "outcome": "applied" if taken.handled else "refused",
        "repeat": False,
        "reason": taken.reason,
    }


def _read_bounded(path: Path) -> bytes:
    with path.open("rb") as file:
        return file.read(MAX_MESSAGE_BYTES)


@bounces.command("process")
@click.argument("path", metavar="FILE.eml|DIR", type=click.Path(exists=True, path_type=Path))
@click.option("--json", "as_json", is_flag=True, help="One JSON object per message.")
@pass_app
def process_command(app: AppContext, path: Path, as_json: bool) -> None:
    """Process one saved message, or every .eml file in DIR, as if it came to the bounce
    mailbox: classified, matched to its delivery, its effects applied once; a message to the
    List-Unsubscribe address (unsubscribe@ the From domain) unsubscribes by its token."""
    verp = Verp.from_settings(app.settings)
    if verp is None:
        raise ConfigurationError(
            "BOUNCE_DOMAIN is not set: messages carry no return path of ours to match"
        )
    policy = PausePolicy.from_settings(app.settings)
    take_mailto = mailto_unsubscriber(app.settings)
    table = Table("File", "Kind", "Outcome", "What it did or why not")
    for file in _message_files(path):
        raw = _read_bounded(file)
        taken = take_mailto(raw)  # mail to the List-Unsubscribe address
        if taken is not None:
            row = _taken_row(file, taken)
        else:
            with app.session() as session:
                result = process_feedback(session, raw, verp=verp, policy=policy, now=utcnow())
            row = {
                "file": str(file),
                "id": result.id,
                "kind": result.kind.value,
                "outcome": result.outcome.value,
                "repeat": result.repeat,
                "reason": result.reason,
            }
        if as_json:
            click.echo(json.dumps(row, ensure_ascii=False))
        outcome = "already processed" if row["repeat"] else str(row["outcome"])
        table.add_row(
            rich_text(file.name), str(row["kind"]), outcome, rich_text(str(row["reason"]))
        )
    if not as_json:
        app.console.print(table)


@bounces.command("list")
@click.option("--send", "send_id", type=int, metavar="ID", help="Only those about this send.")
@click.option("--unmatched", is_flag=True, help="Only those nobody could act on.")
@click.option("--limit", default=50, show_default=True, type=click.IntRange(1, 10_000))
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of a table.")
@pass_app
def list_command(
    app: AppContext, send_id: int | None, unmatched: bool, limit: int, as_json: bool
) -> None:
    """The processed bounce and complaint messages, newest first."""
    outcome = FeedbackOutcome.UNMATCHED if unmatched else None
    with app.session() as session:
        rows = list_feedback(session, send_id=send_id, outcome=outcome, limit=limit)
    if as_json:
        click.echo(json.dumps([row.to_json() for row in rows], ensure_ascii=False, indent=2))
        return
    table = Table(
        "ID", "Received", "Kind", "Cause", "Outcome", "Send", "Delivery", "Address", "Reason"
    )
    for row in rows:
        table.add_row(
            str(row.id),
            when_text(app, row.received_at),
            row.kind,
            row.cause or "",
            row.outcome,
            str(row.send_id or ""),
            str(row.delivery_id or ""),
            rich_text(row.address or ""),
            rich_text(row.reason, 100),
        )
    app.console.print(table)
