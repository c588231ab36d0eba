"""``send create --track`` and what ``send status`` says of a tracked send: a message actually sent
through the engine, its pixel and link fetched through the web server, the counts in the status."""

from __future__ import annotations

import email
import email.policy
import html
import json
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from click.testing import CliRunner, Result

from distributor.cli import main
from distributor.config import Settings
from distributor.db import transaction
from distributor.devservers.ports import free_port
from distributor.sending.models import Send
from distributor.web.app import create_app
from distributor.web.security import MemoryRateLimiter
from tests.support.audience import make_audience
from tests.support.polling import wait_until
from tests.support.sending import SECRET, import_sample
from tests.support.smtp import Received, SmtpServer
from tests.support.web import send_through_engine, serving, web_settings

PIXEL = re.compile(r'<img src="([^"]*/t/o/[^"]+)"')
CLICK = re.compile(r'href="([^"]*/t/c/[^"]+)"')
ONE_CLICK = re.compile(r"<(https?://[^>]*/u/[^>]+)>")


@dataclass
class Site:
    base: str
    settings: Settings
    smtp: SmtpServer


@pytest.fixture
def site(database_url: str) -> Iterator[Site]:
    port = free_port()
    with SmtpServer() as smtp:
        settings = web_settings(
            database_url, PUBLIC_BASE_URL=f"http://127.0.0.1:{port}", **smtp.env()
        )
        app = create_app(settings, enqueue_confirmation=lambda _: None, limiter=MemoryRateLimiter())
        with serving(app, port) as base:
            yield Site(base, settings, smtp)


def cli(settings: Settings, *args: str, code: int = 0) -> Result:
    env = {
        "DATABASE_URL": settings.database_url,
        "DISTRIBUTOR_SECRET_KEY": SECRET,
        "PUBLIC_BASE_URL": settings.public_base_url,
    }
    result = CliRunner().invoke(main, list(args), env=env)
    assert result.exit_code == code, result.output
    return result


def html_of(received: Received) -> str:
    message = email.message_from_bytes(received.data, policy=email.policy.default)
    part = message.get_body(("html",))  # type: ignore[attr-defined]
    assert part is not None
    return str(part.get_content())


def one_click_url(received: Received) -> str:
    match = ONE_CLICK.search(str(received.message["List-Unsubscribe"]))
    assert match, received.message["List-Unsubscribe"]
    return match.group(1)


def test_opens_clicks_and_unsubscribes_of_a_sent_message_show_in_send_status(
    site: Site, sample_issue_path: Path
) -> None:
    url = site.settings.database_url
    make_audience(url, "members", 3)
    issue_id = import_sample(url, sample_issue_path)
    send_id = send_through_engine(site.settings, issue_id, "members", tracking=True)
    messages = sorted(site.smtp.handler.received, key=lambda r: r.recipient)
    assert [m.recipient for m in messages] == [f"reader0000{n}@example.org" for n in (1, 2, 3)]
    pages = [html_of(m) for m in messages]
    with httpx.Client(timeout=10) as web:
        # Reader 1 opens it twice and follows a link; reader 2 opens it and leaves; 3 does nothing.
        for page in (pages[0], pages[0], pages[1]):
            pixel = web.get(html.unescape(PIXEL.findall(page)[0]))
            assert pixel.status_code == 200 and pixel.headers["content-type"] == "image/gif"
        link = html.unescape(CLICK.findall(pages[0])[0])
        assert link.startswith(site.base)
        followed = web.get(link)
        assert followed.status_code == 302
        assert followed.headers["location"] == f"{site.base}/archive/471"  # "read it online"
        assert web.get(followed.headers["location"]).status_code == 200
        left = web.post(one_click_url(messages[1]), data={"List-Unsubscribe": "One-Click"})
        assert left.status_code == 200

    def status() -> dict[str, object]:
        found: dict[str, object] = json.loads(
            cli(site.settings, "send", "status", str(send_id), "--json").output
        )
        return found

    shown = wait_until(  # the web server writes opens and clicks in batches
        status,
        lambda s: s.get("engagement") == {"opened": 2, "clicked": 1, "clicks": 1},
        timeout=15,
        what="the opens and the click counted",
    )
    assert shown["tracking"] is True and shown["unsubscribes"] == 1
    lines = cli(site.settings, "send", "status", str(send_id)).output.splitlines()
    assert "Opened:    2 readers (66.7% of 3 sent), as far as an image can tell" in lines
    assert "Clicked:   1 reader (33.3% of 3 sent), 1 click" in lines
    assert "Left:      1 reader (33.3% of 3 sent) unsubscribed through its links" in lines


def test_send_create_track_and_an_untracked_status(
    database_url: str, sample_issue_path: Path
) -> None:
    make_audience(database_url, "members", 2)
    issue_id = str(import_sample(database_url, sample_issue_path))
    settings = web_settings(database_url)
    create = ["send", "create", "--issue", issue_id, "--list", "members"]
    tracked = cli(settings, *create, "--track").output.splitlines()
    plain = cli(settings, *create).output.splitlines()
    assert tracked[-1] == (
        "Opens and clicks are tracked through https://news.example.org: "
        "distributor web must answer there while readers read it."
    )
    refused = cli(settings, *create, "--track", "--variant", "text", code=2)
    assert refused.output.startswith("Error: plain text has no images or wrapped links")
    ids = [int(lines[0].removeprefix("Created send ID: ")) for lines in (tracked, plain)]
    with transaction(database_url) as session:
        assert [session.get(Send, i).tracking for i in ids] == [True, False]  # type: ignore[union-attr]
    untracked = json.loads(cli(settings, "send", "status", str(ids[1]), "--json").output)
    assert untracked["tracking"] is False and "engagement" not in untracked
    assert untracked["unsubscribes"] == 0
    lines = cli(settings, "send", "status", str(ids[1])).output.splitlines()
    assert "Tracking:  off (opens and clicks are not counted)" in lines
    assert "Left:      0 readers unsubscribed through its links" in lines
    assert not any(line.startswith(("Opened:", "Clicked:")) for line in lines)
