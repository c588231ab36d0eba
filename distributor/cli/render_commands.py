"""``distributor issue render`` and ``distributor issue preview``: exactly what a reader gets.

Both go through the same compile → personalise path as a real send (send id 0). ``render --to``
a subscriber's address gets that subscriber's message (name, greeting, signed links); any
other address, and the preview, go to an anonymous preview reader
(:data:`PREVIEW_SUBSCRIBER_ID`), whose links unsubscribe nobody.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import click
from sqlalchemy.orm import Session

from distributor.cli.context import AppContext, pass_app
from distributor.cli.hints import ISSUE_HINT, hinted
from distributor.cli.terminal import plain
from distributor.errors import NotFound
from distributor.issues.store import load_issue
from distributor.render.personalise import Recipient
from distributor.render.preview import (
    PREVIEW_ADDRESS,
    PREVIEW_SUBSCRIBER_ID,
    PREVIEW_WIDTHS,
    html_body,
    message_bytes,
    render_preview,
)
from distributor.vocabulary import Variant
from subscribers.store import find_subscriber

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]


@click.command("render")
@click.argument("issue_id", type=int)
@click.option("--variant", type=click.Choice([v.value for v in Variant]), default="full",
              show_default=True, help="full, digest and text are emails; wechat is a JSON article.")
@click.option(
    "--to",
    help="Render what the subscriber with this address gets [default: an anonymous preview "
    "reader].",
)
@click.option("--out", type=click.Path(dir_okay=False, path_type=Path),
              help="Write to this file instead of standard output.")
@pass_app
def render(
    app: AppContext, issue_id: int, variant: str, to: str | None, out: Path | None
) -> None:
    """Write the exact message (or WeChat article) of issue ISSUE_ID that a reader gets."""
    with hinted(NotFound, ISSUE_HINT), app.session() as session:
        doc = load_issue(session, issue_id)
        recipient = _recipient(session, to)
    if to is not None and recipient.subscriber_id == PREVIEW_SUBSCRIBER_ID:
        click.echo(
            f"{plain(to)} is not a subscriber: rendered for an anonymous preview reader "
            "(no name, links that unsubscribe nobody).",
            err=True,
        )
    data = message_bytes(doc, Variant(variant), app.settings, recipient)
    if out is None:
        click.echo(data, nl=False)
    else:
        out.write_bytes(data)
        click.echo(f"Wrote {plain(out)} ({len(data):,} bytes)", err=True)


def _recipient(session: Session, to: str | None) -> Recipient:
    """The subscriber with address ``to``, as a send addresses them, or the preview reader."""
    if to is None:
        return Recipient(PREVIEW_SUBSCRIBER_ID, PREVIEW_ADDRESS)
    try:
        subscriber = find_subscriber(session, to)
    except NotFound:
        return Recipient(PREVIEW_SUBSCRIBER_ID, to)
    return Recipient(subscriber.id, subscriber.email, subscriber.name or None)


@click.command("preview")
@click.argument("issue_id", type=int)
@click.option("--out", type=click.Path(dir_okay=False, path_type=Path),
              help="The preview page to write [default: preview-<number>.html].")
@pass_app
def preview(app: AppContext, issue_id: int, out: Path | None) -> None:
    """Write an HTML page showing the full email of ISSUE_ID at phone and desktop widths,
    and a screenshot of each when Chromium is installed."""
    with hinted(NotFound, ISSUE_HINT), app.session() as session:
        doc = load_issue(session, issue_id)
    preview_reader = Recipient(PREVIEW_SUBSCRIBER_ID, PREVIEW_ADDRESS)
    html = html_body(message_bytes(doc, Variant.FULL, app.settings, preview_reader))
    page = out or Path(f"preview-{doc.number}.html")
    page.write_text(render_preview(html, f"{doc.title} 第{doc.number}期"), encoding="utf-8")
    click.echo(f"Wrote {plain(page)}")
    for shot in screenshots(html, page):
        click.echo(f"Wrote {plain(shot)}")


def screenshots(html: str, page: Path) -> list[Path]:
    """PNG screenshots beside ``page``, one per preview width; none without Chromium."""
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        return []
    if shutil.which(CHROMIUM) is None:
        return []
    written = []
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            for width, _ in PREVIEW_WIDTHS:
                tab = browser.new_page(viewport={"width": width, "height": 800})
                tab.set_content(html)
                path = page.with_name(f"{page.stem}-{width}.png")
                tab.screenshot(path=str(path), full_page=True)
                written.append(path)
        finally:
            browser.close()
    return written
