"""``distributor db upgrade`` in production: it says what it will do, many at once migrate once,
and a database of an earlier release (CHANGELOG.md), with its data, comes to the head intact."""

from __future__ import annotations

import ast
import json
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner
from sqlalchemy import text

from distributor.cli import main
from distributor.db import (
    MIGRATIONS_DIR,
    UPGRADE_LOCK_KEY,
    current_revision,
    get_engine,
    head_revision,
    is_sqlite,
    pending_migrations,
    upgrade,
    upgrade_lock,
)
from distributor.private_files import sqlite_file
from tests.support.polling import wait_until

HEAD = head_revision()
# The head migration's title, as the upgrade lists it (whichever migration is newest).
HEAD_TITLE = (
    ast.get_docstring(ast.parse((MIGRATIONS_DIR / "versions" / f"{HEAD}.py").read_text())) or ""
).splitlines()[0]
# Each release's newest migration (CHANGELOG.md).
RELEASES = {"0.4.0": "0015_issue_images", "0.3.0": "0011_api_indexes"}


def waiting_upgraders(url: str) -> int:
    """How many processes wait for the upgrade lock (PostgreSQL's lock table, or the kernel's
    list of file locks for the SQLite database's folder)."""
    if not is_sqlite(url):
        with get_engine(url).connect() as connection:
            query = (
                "select count(*) from pg_locks where locktype = 'advisory' and not granted"
                " and objid = :key"
            )
            return int(connection.execute(text(query), {"key": UPGRADE_LOCK_KEY}).scalar_one())
    database = sqlite_file(url)
    assert database is not None
    inode = database.parent.stat().st_ino
    locks = Path("/proc/locks").read_text().splitlines()
    return sum(1 for line in locks if "->" in line and "FLOCK" in line and f":{inode} " in line)


def test_many_upgraders_started_at_once_migrate_once(empty_url: str, tmp_path: Path) -> None:
    env = {"DATABASE_URL": empty_url, "PATH": "/usr/bin:/bin"}
    with upgrade_lock(empty_url):  # held while all four start, so that they meet at the lock
        processes = [
            subprocess.Popen(
                [sys.executable, "-m", "distributor", "db", "upgrade"],
                env=env,
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
                text=True,
            )
            for _ in range(4)
        ]
        wait_until(
            lambda: waiting_upgraders(empty_url),
            lambda n: n == 4,
            timeout=60,
            what="four upgraders waiting for the lock",
        )
    outputs = [process.communicate(timeout=120)[0] for process in processes]
    assert [process.returncode for process in processes] == [0] * 4, outputs
    migrated = [out for out in outputs if "Upgrading from empty to " in out]
    assert len(migrated) == 1, outputs
    assert f"  {HEAD}: {HEAD_TITLE}" in migrated[0]
    assert "  0001_issues: " in migrated[0]
    assert sum(f"Database is at {HEAD}: nothing to do" in out for out in outputs) == 3
    assert current_revision(empty_url) == HEAD


PREVIOUS_RELEASE_DATA = (
    "insert into newsletters (id, title, created_at) values (1, '杭州工运', '2026-11-28')",
    "insert into issues (id, newsletter_id, number, issue_date, masthead, source_format,"
    " imported_at) values (1, 1, 470, '2026-11-27', '{}', 'text', '2026-11-28')",
    "insert into lists (id, name, description, created_at, public)"
    " values (1, 'members', '会员', '2026-11-28', false)",
    *(
        "insert into subscribers (id, email, email_key, name, locale, attributes, status,"
        " channel, format, created_at, updated_at) values"
        f" ({i}, 'reader{i}@example.org', 'reader{i}@example.org', '读者{i}', 'zh-CN', '{{}}',"
        " 'active', 'email', 'full', '2026-11-28', '2026-11-28')"
        for i in (1, 2, 3)
    ),
    *(
        "insert into subscriptions (subscriber_id, list_id, status, created_at, updated_at)"
        f" values ({i}, 1, 'active', '2026-11-28', '2026-11-28')"
        for i in (1, 2, 3)
    ),
    "insert into sends (id, issue_id, audience, variant, channel, state, is_test,"
    " planned_through, created_at, updated_at, tracking)"
    """ values (1, 1, '{"lists": ["members"]}', 'full', 'email', 'running', false, 3,"""
    " '2026-11-28', '2026-11-28', false)",
    *(
        "insert into deliveries (id, send_id, subscriber_id, channel, address, variant, state,"
        " attempts, reclaims, possible_duplicate, smtp_code, last_error, created_at,"
        f" updated_at) values ({i}, 1, {i}, 'email', 'reader{i}@example.org', 'full', '{state}',"
        f" {attempts}, 0, false, {code}, {error}, '2026-11-28', '2026-11-28')"
        for i, state, attempts, code, error in (
            (1, "sent", 1, 250, "null"),
            (2, "failed", 1, 550, "'550 5.1.1 no such user'"),
            (3, "pending", 0, "null", "null"),
        )
    ),
    "insert into delivery_attempts (delivery_id, attempt, outcome, smtp_code, detail, at)"
    " values (2, 1, 'failed', 550, '550 5.1.1 no such user', '2026-11-28')",
)


@pytest.mark.parametrize("release", RELEASES)
def test_a_database_of_an_earlier_release_with_data_upgrades_to_head(
    empty_url: str, release: str
) -> None:
    upgrade(empty_url, RELEASES[release])
    with get_engine(empty_url).begin() as connection:
        for statement in PREVIOUS_RELEASE_DATA:
            connection.execute(text(statement))
    expected = [step for step, _ in pending_migrations(empty_url)]
    assert expected[0] != RELEASES[release] and expected[-1] == HEAD
    env = {"DATABASE_URL": empty_url}
    result = CliRunner().invoke(main, ["db", "upgrade"], env=env)
    assert result.exit_code == 0, result.output
    assert f"Upgrading from {RELEASES[release]} to {HEAD}, {len(expected)} migrations:" in (
        result.output
    )
    assert [line.split(":")[0].strip() for line in result.output.splitlines()[1:-1]] == expected
    assert current_revision(empty_url) == HEAD
    # The data, read through this release's code.
    status = CliRunner().invoke(main, ["send", "status", "1", "--json"], env=env)
    assert status.exit_code == 0, status.output
    shown = json.loads(status.output)
    assert shown["state"] == "running"
    assert shown["counts"] == {"sent": 1, "failed": 1, "pending": 1}
    deliveries = CliRunner().invoke(main, ["send", "deliveries", "1", "--json"], env=env)
    rows = {row["address"]: row for row in json.loads(deliveries.output)}
    assert rows["reader2@example.org"]["smtp_code"] == 550
    assert "no such user" in rows["reader2@example.org"]["detail"]
    readers = CliRunner().invoke(main, ["subscribers", "show", "reader3@example.org"], env=env)
    assert readers.exit_code == 0 and "读者3" in readers.output
