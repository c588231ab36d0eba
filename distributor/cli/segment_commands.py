"""``distributor segments``: saved audiences by their facts, to count and to send to."""

from __future__ import annotations

import json

import click
from rich.table import Table

from distributor.cli.context import AppContext, pass_app
from distributor.cli.terminal import plain, rich_text
from distributor.segments.store import (
    count_segment,
    create_segment,
    delete_segment,
    edit_segment,
    list_segments,
    show_segment,
)

WHERE_HELP = (
    'Who is in it, e.g. "list = members and (tag = 青年 or attr.department = 工会办) and not '
    'opened any of last 5 sends" (README, Segments, gives the whole language).'
)


@click.group()
def segments() -> None:
    """Saved segments: audiences by list, tag, attribute, channel, format, sign-up date and
    engagement, combined with and/or/not; `send create --segment NAME` sends to one."""


@segments.command("create")
@click.argument("name")
@click.option("--where", "expression", required=True, help=WHERE_HELP)
@click.option("--description", default="", help="What it is for, in a few words.")
@pass_app
def create_command(app: AppContext, name: str, expression: str, description: str) -> None:
    """Save segment NAME; prints how many readers it holds now."""
    zone = app.settings.zone
    with app.session() as session:
        created = create_segment(session, name, expression, zone, description)
        readers = count_segment(session, created.name, zone)
    click.echo(f"Segment {plain(created.name)!r} saved: {_readers(readers)} now.")


@segments.command("edit")
@click.argument("name")
@click.option("--where", "expression", help=WHERE_HELP)
@click.option("--description", help="What it is for, in a few words.")
@pass_app
def edit_command(
    app: AppContext, name: str, expression: str | None, description: str | None
) -> None:
    """Change a segment's expression or description (sends already made keep theirs)."""
    zone = app.settings.zone
    with app.session() as session:
        edit_segment(session, name, zone, expression=expression, description=description)
        readers = count_segment(session, name, zone)
    click.echo(f"Segment {plain(name)!r} saved: {_readers(readers)} now.")


@segments.command("count")
@click.argument("name")
@pass_app
def count_command(app: AppContext, name: str) -> None:
    """How many active readers the segment holds now."""
    with app.session() as session:
        click.echo(count_segment(session, name, app.settings.zone))


@segments.command("list")
@click.option("--json", "as_json", is_flag=True, help="As JSON.")
@pass_app
def list_command(app: AppContext, as_json: bool) -> None:
    """Every segment, by name, with its expression."""
    with app.session() as session:
        found = list_segments(session)
    if as_json:
        click.echo(
            json.dumps(
                [
                    {"name": s.name, "where": s.expression, "description": s.description}
                    for s in found
                ],
                ensure_ascii=False,
            )
        )
        return
    if not found:
        click.echo('No segments. Save one: distributor segments create NAME --where "…"')
        return
    table = Table("Name", "Where", "Description")
    for segment in found:
        table.add_row(
            rich_text(segment.name), rich_text(segment.expression), rich_text(segment.description)
        )
    app.console.print(table)


@segments.command("show")
@click.argument("name")
@pass_app
def show_command(app: AppContext, name: str) -> None:
    """A segment's expression and how many readers it holds now."""
    zone = app.settings.zone
    with app.session() as session:
        segment = show_segment(session, name)
        readers = count_segment(session, name, zone)
    click.echo(f"{plain(segment.name)}: {plain(segment.expression)}")
    if segment.description:
        click.echo(plain(segment.description))
    click.echo(f"{_readers(readers)} now.")


@segments.command("delete")
@click.argument("name")
@pass_app
def delete_command(app: AppContext, name: str) -> None:
    """Delete a segment (sends made to it keep its expression)."""
    with app.session() as session:
        delete_segment(session, name)
    click.echo(f"Segment {plain(name)!r} deleted.")


def _readers(n: int) -> str:
    return f"{n:,} reader{'s' if n != 1 else ''}"
