"""``distributor backup``: a backup made while a real worker sends, restored into a fresh
database, holds every row as it was and the send goes on from there exactly once; a restore
refuses a newer schema, a running worker, a database that is not empty and a file that is not a
backup."""

from __future__ import annotations

import re
import sqlite3
import stat
from collections.abc import Iterator
from contextlib import closing, contextmanager
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner, Result
from sqlalchemy import func, select

from distributor.cli import main
from distributor.db import (
    dispose_engines,
    get_engine,
    head_revision,
    is_sqlite,
    transaction,
    upgrade,
    utcnow,
)
from distributor.devservers.celery_worker import running_worker
from distributor.devservers.postgres import throwaway_database
from distributor.devservers.redis_server import RedisServer
from distributor.ops.heartbeats import fresh_processes
from distributor.sending.models import AttemptOutcome, Delivery, DeliveryAttempt
from distributor.vocabulary import DeliveryState
from subscribers.models import Subscriber
from tests.conftest import POSTGRES_ADMIN_URL
from tests.support.audience import make_audience
from tests.support.polling import wait_until
from tests.support.sending import (
    created_by_cli,
    engine_env,
    import_sample,
    status_of,
    wait_until_done,
)
from tests.support.smtp import RecordingHandler, SmtpServer


def run(env: dict[str, str], *argv: str) -> Result:
    return CliRunner().invoke(main, list(argv), env=env)


@contextmanager
def fresh_database(like: str, tmp_path: Path) -> Iterator[str]:
    """A new, empty database of the same kind as ``like``."""
    if is_sqlite(like):
        yield f"sqlite:///{tmp_path / 'restored.db'}"
        dispose_engines()
        return
    with throwaway_database(POSTGRES_ADMIN_URL, "distributor_restored") as url:
        yield url


def rows(url: str, table: Any) -> dict[int, tuple[Any, ...]]:
    with get_engine(url).connect() as connection:
        return {row.id: tuple(row) for row in connection.execute(select(table))}


@pytest.mark.slow
def test_a_backup_made_during_a_send_restores_every_row_and_the_send_resumes_exactly_once(
    database_url: str,
    redis_server: RedisServer,
    sample_issue_path: Path,
    tmp_path: Path,
) -> None:
    emails = make_audience(database_url, "members", 300)
    issue_id = import_sample(database_url, sample_issue_path)
    file = tmp_path / "site.backup"
    with SmtpServer(RecordingHandler(delay=0.01)) as first:
        env = engine_env(database_url, redis_server.url, first)
        send_id = created_by_cli(env, issue_id)
        with running_worker(env, tmp_path):
            first.handler.wait_for(40, timeout=60)
            made = run(env, "backup", "create", str(file))
            still_sending = status_of(database_url, send_id).state
            wait_until_done(database_url, send_id, timeout=90)
        received_first = set(first.handler.counts())
    assert made.exit_code == 0, made.output
    assert f"at revision {head_revision()}" in made.output
    assert still_sending == "running"
    assert stat.S_IMODE(file.stat().st_mode) == 0o600
    with fresh_database(database_url, tmp_path) as restored_url:
        restored = run({**env, "DATABASE_URL": restored_url}, "backup", "restore", str(file))
        assert restored.exit_code == 0, restored.output
        assert "Restored" in restored.output and head_revision() in restored.output
        # Subscribers did not change during the send: every row as in the source.
        assert rows(restored_url, Subscriber.__table__) == rows(database_url, Subscriber.__table__)
        # Every delivery is there; each one final in the backup is the source's row to the byte,
        # the others are where the send was when the backup was made.
        before = rows(restored_url, Delivery.__table__)
        after = rows(database_url, Delivery.__table__)
        assert before.keys() == after.keys() and len(before) == 300
        with transaction(restored_url) as session:
            states = dict(
                session.execute(select(Delivery.state, func.count()).group_by(Delivery.state)).all()
            )
            sent = select(Delivery.address).where(Delivery.state == DeliveryState.SENT)
            # What the server had taken by then: rows set sent, and claimed rows whose answer
            # is journalled in the log (their batch not yet settled; the sweep after the
            # restore settles them and never sends them again).
            journalled = (
                select(Delivery.address)
                .join(DeliveryAttempt, DeliveryAttempt.delivery_id == Delivery.id)
                .where(
                    Delivery.state == DeliveryState.CLAIMED,
                    DeliveryAttempt.outcome == AttemptOutcome.SENT,
                    DeliveryAttempt.attempt == Delivery.attempts + 1,
                )
            )
            sent_in_backup = set(session.scalars(sent)) | set(session.scalars(journalled))
            for delivery in session.scalars(select(Delivery)):
                if delivery.state == DeliveryState.SENT:
                    assert before[delivery.id] == after[delivery.id]
                else:
                    assert delivery.state in (DeliveryState.PENDING, DeliveryState.CLAIMED)
        # One snapshot: the counters the triggers keep agree with the rows they count.
        assert status_of(restored_url, send_id).counts == {
            state.value: n for state, n in states.items()
        }
        assert 40 <= len(sent_in_backup) < 300
        assert sent_in_backup <= received_first
        with SmtpServer() as second:
            resumed_env = engine_env(restored_url, redis_server.url, second)
            (tmp_path / "resumed").mkdir()
            with running_worker(resumed_env, tmp_path / "resumed"):
                status = wait_until_done(restored_url, send_id, timeout=90)
            received_second = second.handler.counts()
    assert status.counts == {"sent": 300}
    assert set(received_second.values()) == {1}  # no one twice after the restore
    assert not set(received_second) & sent_in_backup  # nor again what the backup had sent
    assert sorted(set(received_second) | sent_in_backup) == emails  # and no one lost


def test_a_restore_refuses_while_a_worker_runs_on_the_database(
    sqlite_url: str, redis_server: RedisServer, tmp_path: Path
) -> None:
    make_audience(sqlite_url, "members", 3)
    file = tmp_path / "site.backup"
    with SmtpServer() as smtp:
        env = engine_env(sqlite_url, redis_server.url, smtp)
        assert run(env, "backup", "create", str(file)).exit_code == 0
        with running_worker(env, tmp_path) as worker:
            worker.wait_until_ready()
            # The worker's own: an embedded beat's, written and removed as it starts, may come
            # first (the worker's heartbeat speaks for it).
            wait_until(
                lambda: [
                    name
                    for name, _ in fresh_processes(sqlite_url, utcnow())
                    if name.startswith("worker@")
                ],
                bool,
                timeout=30,
                what="the worker's heartbeat",
            )
            refused = run(env, "backup", "restore", "--replace", str(file))
        assert refused.exit_code == 2
        assert "worker or beat processes run on this database: " in refused.output
        assert re.search(r"worker@\S+ \(seen \d+ s ago\)", refused.output), refused.output
        assert fresh_processes(sqlite_url, utcnow()) == []  # a stopped worker says so
        restored = run(env, "backup", "restore", "--replace", str(file))
    assert restored.exit_code == 0, restored.output
    with transaction(sqlite_url) as session:
        assert session.scalar(select(func.count()).select_from(Subscriber)) == 3


def test_a_restore_refuses_a_newer_schema_a_full_database_and_a_file_that_is_no_backup(
    database_url: str, tmp_path: Path
) -> None:
    make_audience(database_url, "members", 2)
    env = {"DATABASE_URL": database_url}
    file = tmp_path / "site.backup"
    assert run(env, "backup", "create", str(file)).exit_code == 0
    full = run(env, "backup", "restore", str(file))
    assert full.exit_code == 2
    assert "is not empty" in full.output and "--replace" in full.output
    not_a_backup = tmp_path / "notes.txt"
    not_a_backup.write_text("hello")
    wrong = run(env, "backup", "restore", "--replace", str(not_a_backup))
    assert wrong.exit_code == 2 and "is not a backup" in wrong.output
    if is_sqlite(database_url):
        future = tmp_path / "future.backup"
        future.write_bytes(file.read_bytes())
        with closing(sqlite3.connect(future)) as copy:
            copy.execute("update alembic_version set version_num = '0099_future'")
            copy.commit()
        newer = run(env, "backup", "restore", "--replace", str(future))
        assert newer.exit_code == 2
        assert "revision 0099_future" in newer.output and "newer release" in newer.output
    else:
        sqlite_backup = tmp_path / "other.backup"
        with closing(sqlite3.connect(sqlite_backup)) as other:
            other.execute("create table alembic_version (version_num text)")
            other.commit()
        kind = run(env, "backup", "restore", "--replace", str(sqlite_backup))
        assert kind.exit_code == 2 and "a backup of an sqlite database" in kind.output
    # Nothing refused touched the data; --replace puts the backup back over it.
    make_audience(database_url, "members", 1, prefix="later")
    replaced = run(env, "backup", "restore", "--replace", str(file))
    assert replaced.exit_code == 0, replaced.output
    with transaction(database_url) as session:
        assert session.scalar(select(func.count()).select_from(Subscriber)) == 2


def test_an_older_backup_restores_and_asks_for_the_upgrade(tmp_path: Path) -> None:
    old = f"sqlite:///{tmp_path / 'old.db'}"
    upgrade(old, "0015_issue_images")
    file = tmp_path / "old.backup"
    assert run({"DATABASE_URL": old}, "backup", "create", str(file)).exit_code == 0
    new = {"DATABASE_URL": f"sqlite:///{tmp_path / 'new.db'}"}
    restored = run(new, "backup", "restore", str(file))
    assert restored.exit_code == 0, restored.output
    assert "run `distributor db upgrade` (from 0015_issue_images)" in restored.output
