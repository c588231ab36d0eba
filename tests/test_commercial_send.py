"""Commercial mail: `send create --commercial` marks every message as advertising, as the PRC
rules and the providers' filters expect: 【广告】 before the subject, and the sender's name and
contact address in the footer of both parts. A send that is not commercial carries neither."""

from __future__ import annotations

from email import message_from_bytes
from email.message import EmailMessage
from email.policy import default
from pathlib import Path

import pytest
from click.testing import CliRunner

from distributor.cli import main
from distributor.db import transaction, utcnow
from distributor.sending.lifecycle import start_due_sends
from tests.support.audience import make_audience
from tests.support.sending import (
    created_by_cli,
    engine_env,
    import_sample,
    send_in_this_process,
    status_of,
)
from tests.support.smtp import SmtpServer

NOTICE = "本邮件为商业广告。发送方：杭州工运"


def sent_messages(url: str, issue_id: int, *extra: str) -> tuple[int, list[EmailMessage]]:
    with SmtpServer() as smtp:
        env = engine_env(url, "memory://", smtp)
        send_id = created_by_cli(env, issue_id, *extra)
        with transaction(url) as session:
            start_due_sends(session, utcnow())
        send_in_this_process(env, send_id)
        messages = [
            message_from_bytes(r.data, policy=default)
            for r in smtp.handler.received
        ]
    return send_id, messages


def parts_of(message: EmailMessage) -> dict[str, str]:
    return {
        part.get_content_subtype(): part.get_content()
        for part in message.walk()
        if part.get_content_maintype() == "text"
    }


@pytest.mark.parametrize("commercial", [True, False])
def test_a_commercial_send_says_so_in_subject_and_footer(
    sqlite_url: str, sample_issue_path: Path, commercial: bool
) -> None:
    make_audience(sqlite_url, "members", 3)
    issue_id = import_sample(sqlite_url, sample_issue_path)
    extra = ("--commercial",) if commercial else ()
    send_id, messages = sent_messages(sqlite_url, issue_id, *extra)
    assert len(messages) == 3
    for message in messages:
        parts = parts_of(message)
        assert set(parts) == {"plain", "html"}
        assert str(message["Subject"]).startswith("【广告】") is commercial
        for text in parts.values():
            assert (NOTICE in text) is commercial
            assert ("newsletter@hzgh.example.org" in text) is commercial
    assert status_of(sqlite_url, send_id).commercial is commercial


def test_send_status_says_a_send_is_commercial(sqlite_url: str, sample_issue_path: Path) -> None:
    make_audience(sqlite_url, "members", 1)
    issue_id = import_sample(sqlite_url, sample_issue_path)
    with SmtpServer() as smtp:
        env = engine_env(sqlite_url, "memory://", smtp)
        send_id = created_by_cli(env, issue_id, "--commercial")
        shown = CliRunner().invoke(main, ["send", "status", str(send_id)], env=env).output
    assert "Commercial: marked as advertising (【广告】 in the subject)" in shown
