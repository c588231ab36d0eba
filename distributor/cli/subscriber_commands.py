"""``distributor subscribers`` and ``distributor lists``: the people we send to, and their lists."""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path

import click
from rich.progress import BarColumn, DownloadColumn, Progress, TextColumn, TimeRemainingColumn
from rich.table import Table

from distributor.automations.joins import record_joins
from distributor.cli.context import AppContext, pass_app
from distributor.cli.terminal import plain, rich_text
from distributor.db import get_engine, utcnow
from distributor.errors import UnknownList
from distributor.private_files import open_private
from distributor.vocabulary import EMAIL_VARIANTS, Variant
from subscribers.care import required_note
from subscribers.csvfile import ProblemLog
from subscribers.export import export_subscribers
from subscribers.importer import ImportReport, import_subscribers
from subscribers.links import signup_url
from subscribers.models import ChannelPreference, Subscriber, SubscriberStatus, SubscriptionStatus
from subscribers.signup import set_list_public
from subscribers.store import (
    add_subscriber,
    change_address,
    create_list,
    delete_list,
    find_subscriber,
    get_list,
    list_subscribers,
    list_summaries,
    memberships,
    unsubscribe,
)

STATUSES = [status.value for status in SubscriberStatus]
CHANNELS = [channel.value for channel in ChannelPreference]
FORMATS = [fmt.value for fmt in EMAIL_VARIANTS]
SEE_LISTS = "see: distributor lists list"
CREATE_LIST = "create it with: distributor lists create NAME, or import with --create-list"
ROW_SHOWN = 70  # characters of a rejected line shown on screen


@contextmanager
def list_hint(hint: str = SEE_LISTS) -> Iterator[None]:
    """Add to a missing list's error where to look: the service's message names no command."""
    try:
        yield
    except UnknownList as error:
        raise UnknownList(f"{error.message} ({hint})") from error


def _when(app: AppContext, moment: datetime | None) -> str:
    """A timestamp in the configured time zone, to the minute."""
    return moment.astimezone(app.settings.zone).strftime("%Y-%m-%d %H:%M") if moment else "—"


def _lists_cell(subscriber: Subscriber) -> str:
    return ", ".join(
        name if status is SubscriptionStatus.ACTIVE else f"{name} ({status})"
        for name, status in memberships(subscriber)
    )


# --- distributor subscribers ---------------------------------------------------------------------


@click.group()
def subscribers() -> None:
    """Import, export, add, list, show and unsubscribe subscribers."""


@subscribers.command("import")
@click.argument("path", metavar="FILE.csv", type=click.Path(exists=True, dir_okay=False,
                                                            path_type=Path))
@click.option("--list", "list_name", metavar="NAME",
              help="Also subscribe every row to this list.")
@click.option("--create-list", "create_lists", is_flag=True,
              help="Create the lists that do not exist yet (--list, or the lists column); "
                   "without it a missing list is an error, so a typo makes no new list.")
@click.option("--dry-run", is_flag=True, help="Read and check every row, but write nothing.")
@click.option("--welcome", is_flag=True,
              help="Give the lists' automation steps (the welcome first) to those this adds "
                   "to a list (distributor automations).")
@click.option("--errors", "errors_path", metavar="FILE", type=click.Path(dir_okay=False,
                                                                          path_type=Path),
              help="Where to list the rows not imported  [default: FILE.errors.csv beside the "
                   "input, written only when there are any].")
@pass_app
def import_command(
    app: AppContext,
    path: Path,
    list_name: str | None,
    create_lists: bool,
    dry_run: bool,
    errors_path: Path | None,
    welcome: bool,
) -> None:
    """Import subscribers from FILE.csv, adding new addresses and updating known ones.

    Reads our own export, listmonk and Mailchimp exports, in UTF-8 or GB18030 (Excel). A known
    address keeps its status: nobody unsubscribed is signed up again by an import. Columns we
    do not know (单位, 手机) are kept as attributes. Rows with problems are listed with their line
    numbers; the other rows are imported all the same.
    """
    url = app.ready_database()
    since = utcnow()
    progress = Progress(
        TextColumn("Importing"), BarColumn(), DownloadColumn(), TimeRemainingColumn(),
        console=app.console, transient=True, disable=not app.console.is_terminal,
    )
    with (
        ProblemLog(errors_path or path.with_name(f"{path.stem}.errors.csv")) as problems,
        progress,
        get_engine(url).connect() as connection,
        list_hint(CREATE_LIST),
    ):
        task = progress.add_task("import", total=path.stat().st_size)
        report = import_subscribers(
            connection,
            path,
            list_name=list_name,
            create_lists=create_lists,
            dry_run=dry_run,
            on_problem=problems.add,
            on_progress=lambda done: progress.update(task, completed=done),
        )
    if welcome and not dry_run:
        with app.session() as session:
            record_joins(session, since, utcnow())
    _print_import(app, path, report, problems, dry_run)


def _print_import(
    app: AppContext, path: Path, report: ImportReport, problems: ProblemLog, dry_run: bool
) -> None:
    if dry_run:
        click.echo("Dry run: nothing was written; the numbers say what an import would do.")
    click.echo(f"Read {plain(path.name)} as {report.encoding_label}.")
    if report.attribute_columns:
        keys = ", ".join(map(plain, report.attribute_columns))
        click.echo(f"Columns kept as attributes: {keys}")
    table = Table("Rows", "Count", title=f"Import of {rich_text(path.name)}")
    table.add_row("imported (new)", str(report.imported))
    table.add_row("updated (changed)", str(report.updated))
    table.add_row("skipped (repeated address)", str(report.skipped))
    table.add_row("errors", str(report.errors))
    app.console.print(table)
    if report.new_lists:
        verb = "Would create" if dry_run else "Created"
        click.echo(f"{verb} lists: {', '.join(map(plain, report.new_lists))}")
    if report.kept_suppressed:
        click.echo(
            f"{report.kept_suppressed} known addresses are unsubscribed, bounced or complained "
            "and stay so: only the person can subscribe again."
        )
    if problems.count:
        click.echo(
            f"{problems.count} problems are listed in {plain(problems.path)} (line, reason):"
        )
        for problem in problems.first:
            click.echo(f"  line {problem.line}: {plain(problem.reason)}")
            if problem.text:
                click.echo(f"    {plain(problem.text, ROW_SHOWN)}")
        if problems.count > len(problems.first):
            click.echo(f"  … and {problems.count - len(problems.first)} more in the file")


@subscribers.command("export")
@click.option("--list", "list_name", metavar="NAME", help="Only the people on this list.")
@click.option("--out", type=click.Path(dir_okay=False, path_type=Path), metavar="FILE",
              help="Write to FILE instead of standard output.")
@click.option("--bom/--no-bom", default=True, show_default=True,
              help="Start with a byte-order mark, so that Excel shows Chinese text correctly; "
                   "--no-bom writes plain UTF-8.")
@pass_app
def export_command(app: AppContext, list_name: str | None, out: Path | None, bom: bool) -> None:
    """Export subscribers as UTF-8 CSV (email,name,status,lists,channel,format,openid,…).

    The file imports back unchanged. Cells a spreadsheet would run as a formula (= + - @) get
    a leading apostrophe; the import takes it off again.
    """
    encoding = "utf-8-sig" if bom else "utf-8"
    with (
        list_hint(),
        app.session() as session,
        # Personal data: a file only its owner may read.
        open_private(out, encoding) if out else click.open_file("-", "w", encoding=encoding)
        as file,
    ):
        count = export_subscribers(session, file, list_name=list_name)
        file.flush()  # standard output stays open, so nothing else would flush it
    click.echo(f"Exported {count} subscribers{f' to {plain(out)}' if out else ''}.", err=True)


@subscribers.command("add")
@click.argument("email")
@click.option("--name", help="The person's name as it should appear in greetings.")
@click.option("--list", "lists", metavar="NAME", multiple=True,
              help="Subscribe to this list (repeat for several).")
@click.option("--openid", metavar="ID", help="Their WeChat openid, for the WeChat channel.")
@click.option("--channel", type=click.Choice(CHANNELS), help="How they receive issues.")
@click.option("--format", "fmt", type=click.Choice(FORMATS), help="What they receive.")
@click.option("--welcome", is_flag=True,
              help="Give the lists' automation steps (the welcome first) to those this adds "
                   "to a list (distributor automations).")
@pass_app
def add_command(
    app: AppContext,
    email: str,
    name: str | None,
    lists: tuple[str, ...],
    openid: str | None,
    channel: str | None,
    fmt: str | None,
    welcome: bool,
) -> None:
    """Add EMAIL as an active subscriber, or update the details of a known one.

    A known address keeps its status: someone who unsubscribed is not signed up again.
    """
    since = utcnow()
    with list_hint(), app.session() as session:
        added = add_subscriber(
            session,
            email,
            name=name,
            lists=lists,
            openid=openid,
            channel=ChannelPreference(channel) if channel else None,
            format=Variant(fmt) if fmt else None,
        )
        subscriber = added.subscriber
        if welcome:
            record_joins(session, since, utcnow(), subscriber_id=subscriber.id)
        lists_cell = _lists_cell(subscriber)
    verb = "Added" if added.created else "Updated"
    click.echo(f"{verb} {plain(subscriber.email)} (ID {subscriber.id}, {subscriber.status})"
               + (f", lists: {plain(lists_cell)}" if lists_cell else ""))
    if not added.created and subscriber.status is not SubscriberStatus.ACTIVE:
        click.echo(f"Status {subscriber.status} is kept: only the person can change it, "
                   "by subscribing again and confirming.")


@subscribers.command("list")
@click.option("--list", "list_name", metavar="NAME", help="Only the people on this list.")
@click.option("--status", type=click.Choice(STATUSES), help="Only subscribers in this status.")
@click.option("--limit", type=click.IntRange(1, 1000), default=50, show_default=True,
              help="Rows per page.")
@click.option("--after", "after_id", type=click.IntRange(0), default=0, metavar="ID",
              help="Start after this subscriber ID (the next page).")
@pass_app
def list_command(
    app: AppContext, list_name: str | None, status: str | None, limit: int, after_id: int
) -> None:
    """List subscribers in ID order, a page at a time."""
    with list_hint(), app.session() as session:
        page = list_subscribers(
            session,
            list_name=list_name,
            status=SubscriberStatus(status) if status else None,
            limit=limit,
            after_id=after_id,
        )
        table = Table("ID", "Email", "Name", "Status", "Channel", "Format", "Lists", "Added")
        for s in page.subscribers:
            table.add_row(str(s.id), rich_text(s.email), rich_text(s.name), s.status, s.channel,
                          s.format, rich_text(_lists_cell(s)), _when(app, s.created_at))
    if not page.subscribers:
        filtered = list_name or status or after_id
        click.echo("No subscribers match." if filtered else
                   "No subscribers yet. Import some: distributor subscribers import FILE.csv")
        return
    app.console.print(table)
    shown = len(page.subscribers)
    click.echo(f"{shown} shown of {page.total}.")
    if shown == limit:
        click.echo(f"Next page: --after {page.subscribers[-1].id}")


@subscribers.command("show")
@click.argument("email")
@pass_app
def show_command(app: AppContext, email: str) -> None:
    """Show everything stored about the subscriber with address EMAIL."""
    with app.session() as session:
        s = find_subscriber(session, email)
        fields = {
            "ID": str(s.id),
            "Email": s.email,
            "Name": s.name,
            "Status": s.status,
            "Channel": s.channel,
            "Format": s.format,
            "Locale": s.locale,
            "WeChat openid": s.openid or "—",
            "Lists": _lists_cell(s) or "—",
            "Tags": ", ".join(tag.name for tag in s.tags) or "—",
            "Attributes": json.dumps(s.attributes, ensure_ascii=False) if s.attributes else "—",
            "Consent": f"{s.consent_source or '—'}, {_when(app, s.consent_at)}",
            "Added": _when(app, s.created_at),
            "Updated": _when(app, s.updated_at),
        }
    width = max(map(len, fields))
    for label, value in fields.items():
        click.echo(f"{label + ':':<{width + 1}} {plain(value)}")


@subscribers.command("unsubscribe")
@click.argument("email")
@pass_app
def unsubscribe_command(app: AppContext, email: str) -> None:
    """Unsubscribe EMAIL from every list, as if they had clicked the link themselves."""
    with app.session() as session:
        subscriber = find_subscriber(session, email)
        unsubscribe(session, subscriber)
    click.echo(f"Unsubscribed {plain(subscriber.email)}: nothing more is sent to them, on any "
               "list, until they subscribe again themselves.")


@subscribers.command("erase")
@click.argument("email")
@click.option("--note", required=True, help="Who asked for it, and how (kept in the audit log).")
@click.option("--yes", is_flag=True, help="Do not ask for confirmation.")
@pass_app
def erase_command(app: AppContext, email: str, note: str, yes: bool) -> None:
    """Erase the person at EMAIL at their request (personal-data deletion).

    They, their lists, tags, attributes and status log go; their deliveries stay counted,
    anonymous. It cannot be undone."""
    from distributor.campaigns.erasure import erase_subscriber
    from distributor.staff.audit import record_audit

    required_note(note)
    if not yes:
        click.confirm(f"Erase {plain(email)} for good?", abort=True)
    with app.session() as session:
        subscriber_id = find_subscriber(session, email).id
        made_anonymous = erase_subscriber(session, subscriber_id)
        detail = {"note": note, "deliveries": made_anonymous}
        record_audit(session, None, "subscriber.erase", "subscriber", subscriber_id, detail,
                     actor="cli")
    click.echo(f"Erased subscriber ID {subscriber_id}: {made_anonymous} of their deliveries stay, "
               "counted, without their address or name.")


@subscribers.command("set-email")
@click.argument("email")
@click.argument("new_email", metavar="NEW_EMAIL")
@pass_app
def set_email_command(app: AppContext, email: str, new_email: str) -> None:
    """Correct the address of the subscriber at EMAIL to NEW_EMAIL.

    The same person: their ID, status, lists, tags and history stay. Refused when another
    subscriber has NEW_EMAIL already.
    """
    with app.session() as session:
        subscriber = find_subscriber(session, email)
        old = subscriber.email
        change_address(session, email, new_email)
        status = subscriber.status
    click.echo(f"Changed the address of subscriber ID {subscriber.id} from {plain(old)} to "
               f"{plain(subscriber.email)}; status {status}, lists and history kept.")


# --- distributor lists ---------------------------------------------------------------------------


@click.group()
def lists() -> None:
    """Create, list, show, make public and delete mailing lists."""


@lists.command("create")
@click.argument("name")
@click.option("--description", default="", help="What the list is for, for the staff.")
@click.option("--public", is_flag=True, help="Anyone may sign up for it on its web page.")
@pass_app
def create_list_command(app: AppContext, name: str, description: str, public: bool) -> None:
    """Create the list NAME."""
    with app.session() as session:
        created = create_list(session, name, description)
        if public:
            set_list_public(session, created.name)
    click.echo(f"Created list {plain(created.name)} (ID {created.id}).")
    if public:
        _echo_signup(app, created.id)


@lists.command("set-public")
@click.argument("name")
@click.option("--no", "closed", is_flag=True, help="Close its sign-up page instead.")
@pass_app
def set_public_command(app: AppContext, name: str, closed: bool) -> None:
    """Open the list NAME to sign-ups on its web page (double opt-in), or close it with --no.

    A public list is also offered on every subscriber's preferences page."""
    with list_hint(), app.session() as session:
        set_list_public(session, name, public=not closed)
        found = get_list(session, name)
        list_id, shown = found.id, plain(found.name)
    if closed:
        click.echo(f"List {shown} is not public: its sign-up page is gone; its members stay.")
    else:
        click.echo(f"List {shown} is public.")
        _echo_signup(app, list_id)


def _echo_signup(app: AppContext, list_id: int) -> None:
    click.echo(f"Sign-up page: {signup_url(app.settings.public_base_url, list_id)}")
    click.echo("Whoever signs up there gets a confirmation message, and is on the list once they")
    click.echo("follow it. The page is served by: distributor web (at PUBLIC_BASE_URL).")


@lists.command("list")
@pass_app
def list_lists_command(app: AppContext) -> None:
    """List every list with its number of active, pending and unsubscribed people."""
    with app.session() as session:
        summaries = list_summaries(session)
    if not summaries:
        click.echo("No lists yet. Create one: distributor lists create NAME")
        return
    table = Table("Name", "Description", "Active", "Pending", "Unsubscribed", "Created")
    for summary in summaries:
        table.add_row(rich_text(summary.name), rich_text(summary.description), str(summary.active),
                      str(summary.pending), str(summary.unsubscribed),
                      _when(app, summary.created_at))
    app.console.print(table)


@lists.command("show")
@click.argument("name")
@pass_app
def show_list_command(app: AppContext, name: str) -> None:
    """Show the list NAME and how many people are on it."""
    with list_hint(), app.session() as session:
        (summary,) = list_summaries(session, name)
        found = get_list(session, name)
        public, list_id = found.public, found.id
    click.echo(f"List:         {plain(summary.name)}")
    click.echo(f"Description:  {plain(summary.description) or '—'}")
    signup = signup_url(app.settings.public_base_url, list_id)
    click.echo(f"Public:       {f'yes, sign-up page {signup}' if public else 'no'}")
    click.echo(f"Created:      {_when(app, summary.created_at)}")
    click.echo(f"Active:       {summary.active}")
    click.echo(f"Pending:      {summary.pending}")
    click.echo(f"Unsubscribed: {summary.unsubscribed}")


@lists.command("delete")
@click.argument("name")
@click.option("--yes", is_flag=True, help="Do not ask for confirmation.")
@pass_app
def delete_list_command(app: AppContext, name: str, yes: bool) -> None:
    """Delete the list NAME and its subscriptions; the subscribers themselves stay."""
    if not yes:
        click.confirm(f"Delete list {plain(name)} and everyone's subscription to it?", abort=True)
    with list_hint(), app.session() as session:
        removed = delete_list(session, name)
    click.echo(f"Deleted list {plain(name)} and {removed} subscriptions.")
