"""``distributor issue``: import, list and show newsletter issues."""

from __future__ import annotations

import json
from pathlib import Path

import click
from rich.table import Table

from distributor.cli.context import AppContext, pass_app
from distributor.cli.hints import ISSUE_HINT, hinted
from distributor.cli.terminal import plain, rich_text
from distributor.errors import NotFound
from distributor.issues.document import ImportReport, IssueDocument
from distributor.issues.importer import FORMATS, read_issue_file
from distributor.issues.store import list_issues, load_issue, save_issue


@click.group()
def issue() -> None:
    """Import, list, show, render and preview newsletter issues."""


@issue.command("import")
@click.argument("path", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option(
    "--format",
    "fmt",
    type=click.Choice(FORMATS),
    default="auto",
    show_default=True,
    help="Input format; auto decides by file extension, then by content.",
)
@click.option("--dry-run", is_flag=True, help="Parse and report, but write nothing.")
@pass_app
def import_issue(app: AppContext, path: Path, fmt: str, dry_run: bool) -> None:
    """Import an issue from PATH: a Word/WPS document (.docx), a text PDF, the plain-text
    export, Markdown with front matter, or JSON. Pictures in a .docx are kept with the issue."""
    report = read_issue_file(path, format=fmt)
    if dry_run:
        click.echo("Dry run: nothing was written.")
    else:
        with app.session() as session:
            saved = save_issue(session, report.document, source_format=report.format)
        suffix = "" if saved.created else " (already imported; nothing changed)"
        click.echo(f"Imported issue ID: {saved.id}{suffix}")
    if report.format in ("docx", "pdf"):
        pictures = len(report.document.images)
        click.echo(f"Read {plain(path.name)} as {report.format.upper()}, {pictures} pictures.")
    else:
        click.echo(f"Read {plain(path.name)} as {report.encoding}.")
    _print_report(report)


def _print_report(report: ImportReport) -> None:
    """What was read; every value from the file goes through :func:`plain`."""
    doc = report.document
    m = doc.masthead
    paragraphs = sum(len(a.paragraphs) for a in doc.articles)
    headings = sum(len(a.headings) for a in doc.articles)
    click.echo(
        plain(
            f"{doc.title} 第{doc.number}期 {doc.date.isoformat()}"
            + (f" {m.weekday}" if m.weekday else "")
            + (f" 农历{m.lunar_date}" if m.lunar_date else "")
        )
    )
    filled = sum(1 for value in vars(m).values() if value)
    pictures = sum(1 for a in doc.articles for b in a.blocks if b.type == "image")
    click.echo(
        f"Recognised ({report.format}): masthead {filled} fields, {len(doc.articles)} articles, "
        f"{paragraphs} paragraphs, {headings} section headings"
        + (f", {pictures} pictures" if pictures else "")
    )
    for number, article in enumerate(doc.articles, start=1):
        parts = [f"  {number}. {article.headline}"]
        if article.kicker:
            parts.append(f"kicker: {article.kicker}")
        if article.subtitle:
            parts.append(f"subtitle: {article.subtitle}")
        if article.byline:
            parts.append(f"byline: {article.byline}")
        click.echo(plain(" | ".join(parts)))
    if report.repairs:
        click.echo(f"Repaired {len(report.repairs)} page-break splits (please check):")
        for repair in report.repairs:
            click.echo(f"  {plain(repair.describe())}")
    for warning in report.warnings:
        click.echo(f"Warning: {plain(warning)}")


@issue.command("list")
@click.option("--json", "as_json", is_flag=True, help="Print a JSON list, oldest first.")
@pass_app
def list_command(app: AppContext, as_json: bool) -> None:
    """List imported issues, oldest first."""
    with app.session() as session:
        issues = list_issues(session)
    if as_json:
        click.echo(json.dumps([s.to_json() for s in issues], ensure_ascii=False, indent=2))
        return
    if not issues:
        click.echo("No issues yet. Import one: distributor issue import FILE")
        return
    table = Table("ID", "Title", "No.", "Date", "Articles")
    for s in issues:
        table.add_row(
            str(s.id), rich_text(s.title), str(s.number), s.date.isoformat(), str(s.articles)
        )
    app.console.print(table)


@issue.command("show")
@click.argument("issue_id", type=int)
@click.option("--json", "as_json", is_flag=True, help="Print the issue's JSON form.")
@pass_app
def show_command(app: AppContext, issue_id: int, as_json: bool) -> None:
    """Show issue ISSUE_ID (its database ID, see `distributor issue list`)."""
    with hinted(NotFound, ISSUE_HINT), app.session() as session:
        doc = load_issue(session, issue_id)
    if as_json:
        click.echo(json.dumps(doc.to_json(), ensure_ascii=False, indent=2))
        return
    _print_document(app, doc)


def _print_document(app: AppContext, doc: IssueDocument) -> None:
    m = doc.masthead
    lunar = f"农历{m.lunar_date}" if m.lunar_date else ""
    app.console.print(
        f"[bold]{rich_text(doc.title)}[/bold]  第{doc.number}期  {doc.date.isoformat()} "
        f"{rich_text(m.weekday or '')} {rich_text(lunar)}",
        highlight=False,
    )
    for name, value in vars(m).items():
        if value and name not in ("weekday", "lunar_date"):
            click.echo(f"  {name}: {plain(value)}")
    for number, article in enumerate(doc.articles, start=1):
        click.echo("")
        if article.kicker:
            click.echo(f"  {plain(article.kicker)}")
        click.echo(f"{number}. {plain(article.headline)}")
        if article.subtitle:
            click.echo(f"  — {plain(article.subtitle)}")
        for block in article.blocks:
            if block.type == "image":
                click.echo(f"  [图 {plain(block.image or '')}] {plain(block.text)}")
                continue
            prefix = "  ## " if block.type == "heading" else "  "
            click.echo(prefix + plain(block.text, 61))
        if article.byline:
            click.echo(f"  ({plain(article.byline)})")
