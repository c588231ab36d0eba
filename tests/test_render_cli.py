"""``issue render`` and ``issue preview`` against a real (SQLite) database with the sample issue."""

from __future__ import annotations

import email
import email.policy
import json
import re
from dataclasses import replace
from pathlib import Path

import click
import pytest
from click.testing import CliRunner

from distributor.cli.context import AppContext
from distributor.cli.render_commands import message_bytes, preview, render
from distributor.config import Settings
from distributor.db import transaction
from distributor.errors import RenderError
from distributor.issues.plaintext import parse_plaintext
from distributor.issues.store import load_issue, save_issue
from distributor.render.personalise import Recipient
from distributor.vocabulary import Variant
from subscribers.links import PREFERENCES_PATH, UNSUBSCRIBE_PATH
from subscribers.store import add_subscriber
from subscribers.tokens import TokenPurpose, TokenSigner

SETTINGS = Settings(
    secret_key="test-secret-key-for-the-cli-0123456789",
    mail_from="杭州工运 <newsletter@news.example-union.org>",
    public_base_url="https://news.example-union.org",
)


@click.group()
def issue() -> None:
    """Stands in for the ``distributor issue`` group the commands are attached to."""


issue.add_command(render)
issue.add_command(preview)


@pytest.fixture
def app(sqlite_url: str, sample_issue_path: Path) -> AppContext:
    doc = parse_plaintext(sample_issue_path.read_text(encoding="utf-8"), source="s").document
    with transaction(sqlite_url) as session:
        assert save_issue(session, doc, source_format="text").id == 1
    return AppContext(replace(SETTINGS, database_url=sqlite_url))


def invoke(app: AppContext, *args: str) -> bytes:
    result = CliRunner().invoke(issue, list(args), obj=app, catch_exceptions=False)
    assert result.exit_code == 0, result.output
    return result.stdout_bytes


def link_subject(text: str, path: str, purpose: TokenPurpose) -> str:
    """Whom the signed link at ``path`` in ``text`` is for: the subscriber ID it was signed with."""
    match = re.search(re.escape(SETTINGS.public_base_url + path) + r"([A-Za-z0-9_.-]+)", text)
    assert match, f"no {path} link"
    signer = TokenSigner(SETTINGS.require_secret_key())
    return signer.verify(match[1], purpose)


@pytest.mark.parametrize("variant", ["full", "digest", "text"])
def test_render_writes_the_message_a_reader_gets(
    app: AppContext, tmp_path: Path, variant: str
) -> None:
    out = tmp_path / f"{variant}.eml"
    invoke(
        app, "render", "1", "--variant", variant, "--to", "reader@example.com", "--out", str(out)
    )
    message = email.message_from_bytes(out.read_bytes(), policy=email.policy.default)
    assert message["To"] == "reader@example.com"
    assert message["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    text = message.get_body(("plain",))
    assert (
        text is not None
        and "市总工会召开深入构建新时代和谐劳动关系工作交流会" in text.get_content()
    )


def test_render_to_a_subscriber_is_what_that_subscriber_gets(
    app: AppContext, tmp_path: Path
) -> None:
    with app.session() as session:
        added = add_subscriber(session, "li.ming@example.com", name="李明")
        subscriber_id = added.subscriber.id
    result = CliRunner().invoke(
        issue, ["render", "1", "--variant", "text", "--to", "Li.Ming@Example.com"], obj=app
    )
    assert result.exit_code == 0, result.output
    assert result.stderr == ""
    message = email.message_from_bytes(result.stdout_bytes, policy=email.policy.default)
    assert message["To"] == "李明 <li.ming@example.com>"
    body = message.get_body(("plain",))
    assert body is not None
    text = body.get_content()
    assert "李明，您好！" in text
    assert link_subject(text, UNSUBSCRIBE_PATH, TokenPurpose.UNSUBSCRIBE) == str(subscriber_id)
    assert link_subject(text, PREFERENCES_PATH, TokenPurpose.PREFERENCES) == str(subscriber_id)


def test_render_to_an_address_that_is_no_subscriber_says_so(app: AppContext) -> None:
    result = CliRunner().invoke(
        issue, ["render", "1", "--variant", "text", "--to", "guest@example.com"], obj=app
    )
    assert result.exit_code == 0, result.output
    assert result.stderr == (
        "guest@example.com is not a subscriber: rendered for an anonymous preview reader "
        "(no name, links that unsubscribe nobody).\n"
    )
    message = email.message_from_bytes(result.stdout_bytes, policy=email.policy.default)
    assert message["To"] == "guest@example.com"
    body = message.get_body(("plain",))
    assert body is not None and "读者朋友，您好！" in body.get_content()
    assert link_subject(body.get_content(), UNSUBSCRIBE_PATH, TokenPurpose.UNSUBSCRIBE) == "0"


def test_a_bad_address_is_named_without_internal_ids(app: AppContext) -> None:
    """A person sees this in a delivery's detail: no "subscriber 17" they cannot look up."""
    with app.session() as session:
        doc = load_issue(session, 1)
    with pytest.raises(RenderError) as caught:
        message_bytes(doc, Variant.TEXT, SETTINGS, Recipient(17, "guest@exa mple.com"))
    assert str(caught.value) == (
        "the recipient address 'guest@exa mple.com' is not a plain ASCII email address like "
        "name@example.org"
    )


def test_render_to_stdout_and_wechat_json(app: AppContext) -> None:
    assert invoke(app, "render", "1").startswith(b"To: preview@example.org\r\n")
    article = json.loads(invoke(app, "render", "1", "--variant", "wechat"))
    assert set(article) == {"title", "digest", "content_html", "author", "content_source_url"}
    assert article["content_source_url"] == "https://news.example-union.org/archive/471"


def test_preview_shows_phone_and_desktop_side_by_side(app: AppContext, tmp_path: Path) -> None:
    page = tmp_path / "preview.html"
    output = invoke(app, "preview", "1", "--out", str(page)).decode()
    html = page.read_text(encoding="utf-8")
    assert re.findall(r'<iframe [^>]*width="(\d+)"', html) == ["375", "1024"]
    assert html.count("srcdoc=") == 2 and "&lt;!DOCTYPE html&gt;" in html
    for width in (375, 1024):
        shot = tmp_path / f"preview-{width}.png"
        assert f"Wrote {shot}" in output
        assert shot.read_bytes().startswith(b"\x89PNG")


def test_render_of_a_missing_issue_names_it(app: AppContext) -> None:
    result = CliRunner().invoke(issue, ["render", "99"], obj=app)
    assert result.exit_code != 0
    assert "no issue with ID 99" in str(result.exception)
