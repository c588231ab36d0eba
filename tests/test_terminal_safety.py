"""Text from outside (an issue, a mail server's answer) reaches a staff terminal as plain text.

Rich reads ``[/bold]`` as a closing style tag (and crashed on it); a terminal obeys ESC and
OSC 8 sequences. Both must arrive as the characters they are, or as U+FFFD.
"""

from __future__ import annotations

import re
from dataclasses import replace
from pathlib import Path

from click.testing import CliRunner, Result

from distributor.cli import main
from distributor.db import transaction
from distributor.issues.importer import read_issue_file
from distributor.issues.store import save_issue
from tests.support.sending import SECRET, import_sample
from tests.support.smtp import RecordingHandler, SmtpServer

HOSTILE_TITLE = "[/bold]杭州工运[red]\x1b]8;;https://evil.example\x07点我\x1b]8;;\x07\x1b[2J"
SHOWN_TITLE = (
    "[/bold]杭州工运[red]\ufffd]8;;https://evil.example\ufffd点我\ufffd]8;;\ufffd\ufffd[2J"
)
SMTP_ANSWER = "550 5.1.1 [/bold] mailbox unavailable"


def run(env: dict[str, str], *args: str) -> Result:
    return CliRunner().invoke(main, list(args), env=env)


def assert_no_control_characters(output: str) -> None:
    assert re.search(r"[\x00-\x08\x0b-\x1f\x7f-\x9f]", output) is None, repr(output)


def stored_before_import_checks(url: str, sample_issue_path: Path) -> int:
    """An issue with a hostile title and headline, as imports before the text checks kept it."""
    doc = read_issue_file(sample_issue_path).document
    doc.articles[0] = replace(doc.articles[0], headline="[/bold]喜报\x1b[31m红")
    doc = replace(doc, title=HOSTILE_TITLE)
    with transaction(url) as session:
        return save_issue(session, doc, source_format="text").id


def test_issue_list_and_show_print_a_hostile_title_as_text(
    sqlite_url: str, sample_issue_path: Path
) -> None:
    issue_id = stored_before_import_checks(sqlite_url, sample_issue_path)
    env = {"DATABASE_URL": sqlite_url}
    listed = run(env, "issue", "list")
    assert listed.exit_code == 0, listed.output
    assert_no_control_characters(listed.output)
    assert SHOWN_TITLE in listed.output
    shown = run(env, "issue", "show", str(issue_id))
    assert shown.exit_code == 0, shown.output
    assert_no_control_characters(shown.output)
    assert shown.output.startswith(
        f"{SHOWN_TITLE}  第471期  2022-12-27 星期二 农历壬寅年十二月初五"
    )
    assert "1. [/bold]喜报\ufffd[31m红" in shown.output


def test_import_report_shows_markup_in_a_title_as_text(
    sqlite_url: str, sample_issue_path: Path, tmp_path: Path
) -> None:
    path = tmp_path / "bold.txt"
    path.write_text(
        sample_issue_path.read_text(encoding="utf-8").replace("杭州工运", "[/bold]杭州工运", 1),
        encoding="utf-8",
    )
    result = run({"DATABASE_URL": sqlite_url}, "issue", "import", str(path))
    assert result.exit_code == 0, result.output
    assert "[/bold]杭州工运 第471期 2022-12-27" in result.output
    listed = run({"DATABASE_URL": sqlite_url}, "issue", "list")
    assert listed.exit_code == 0, listed.output
    assert "[/bold]杭州工运" in listed.output


def test_an_smtp_answer_with_markup_is_shown_as_text(
    sqlite_url: str, sample_issue_path: Path
) -> None:
    issue_id = import_sample(sqlite_url, sample_issue_path)
    refusal = RecordingHandler(fault=lambda recipient, attempt: SMTP_ANSWER)
    with SmtpServer(refusal) as smtp:
        env = {
            "DATABASE_URL": sqlite_url,
            "DISTRIBUTOR_SECRET_KEY": SECRET,
            "MAIL_FROM": "杭州工运 <newsletter@hzgh.example.org>",
            **smtp.env(),
        }
        tested = run(env, "send", "test", "--issue", str(issue_id), "--to", "staff@example.org")
    assert refusal.attempts["staff@example.org"] == 1
    assert tested.exit_code == 2, tested.output
    assert_no_control_characters(tested.output)
    assert "[/bold] mailbox unavailable" in tested.output
    assert "Error: test send 1: not every address accepted the message" in tested.output
    listed = run(env, "send", "deliveries", "1")
    assert listed.exit_code == 0, listed.output
    assert_no_control_characters(listed.output)
    row = next(line for line in listed.output.splitlines() if "staff@example.org" in line)
    assert re.search(r"staff@example\.org\s*│\s*failed\s*│\s*1\s*│\s*550\s*│", row), row
    assert "[/bold] mailbox unavailable" in row
