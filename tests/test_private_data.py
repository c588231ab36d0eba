"""Personal data stays with its owner: the files that hold it are created 0600 whatever the
umask, the logs of a failed statement never carry its values, and the bounce mailbox's password
never goes in clear to another machine."""

from __future__ import annotations

import logging
import os
import stat
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import pytest
from click.testing import CliRunner
from sqlalchemy import insert
from sqlalchemy.exc import IntegrityError

from distributor.celery import make_app
from distributor.cli import main
from distributor.config import Settings
from distributor.db import dispose_engines, get_engine, transaction, upgrade
from distributor.errors import ConfigurationError
from distributor.startup import check_settings
from subscribers.models import Subscriber, SubscriberStatus
from tests.support.audience import make_audience
from tests.support.sending import SECRET

PRIVATE = 0o600
GOOD = Settings(secret_key=SECRET, mail_from="杭州工运 <newsletter@hzgh.org.cn>")
IMAP = replace(GOOD, bounce_imap_user="bounces", bounce_imap_password="mailbox secret")


@pytest.fixture
def open_umask() -> Iterator[None]:
    """The usual umask (022): without care, new files are readable by every user."""
    before = os.umask(0o022)
    try:
        yield
    finally:
        os.umask(before)


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_a_new_sqlite_database_is_readable_by_its_owner_only(
    tmp_path: Path, open_umask: None
) -> None:
    path = tmp_path / "distributor.db"
    upgrade(f"sqlite:///{path}")
    dispose_engines()
    assert mode(path) == PRIVATE
    assert {p.name for p in tmp_path.iterdir()} == {"distributor.db"}


def test_the_embedded_broker_is_readable_by_its_owner_only(
    tmp_path: Path, open_umask: None
) -> None:
    broker = tmp_path / "distributor-broker.db"
    make_app(replace(GOOD, broker_url=f"sqla+sqlite:///{broker}"))
    assert mode(broker) == PRIVATE


def test_an_export_file_is_readable_by_its_owner_only(
    sqlite_url: str, tmp_path: Path, open_umask: None
) -> None:
    make_audience(sqlite_url, "members", 3)
    out = tmp_path / "readers.csv"
    out.write_text("an older file, readable by all\n")
    out.chmod(0o644)
    result = CliRunner().invoke(
        main, ["subscribers", "export", "--out", str(out)], env={"DATABASE_URL": sqlite_url}
    )
    assert result.exit_code == 0, result.output
    assert mode(out) == PRIVATE
    assert out.read_text(encoding="utf-8-sig").count("@") == 3


def test_a_failed_statement_is_logged_without_its_values(
    database_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    address = "wang.private@qq.com"
    row = {"email": address, "email_key": address, "status": SubscriberStatus.ACTIVE}
    with transaction(database_url) as session:
        session.execute(insert(Subscriber).values(**row))
    with (
        caplog.at_level(logging.DEBUG),
        pytest.raises(IntegrityError) as failure,
        get_engine(database_url).begin() as connection,
    ):
        connection.execute(insert(Subscriber).values(**row))
    assert address not in str(failure.value)
    assert "parameters hidden" in str(failure.value)
    assert address not in caplog.text


@pytest.mark.parametrize("host", ["imap.hzgh.org.cn", "10.0.0.5", "2001:db8::1"])
def test_imap_without_tls_to_another_machine_is_refused(host: str) -> None:
    settings = replace(IMAP, bounce_imap_host=host, bounce_imap_security="none")
    with pytest.raises(ConfigurationError, match=f"password in clear to {host}"):
        check_settings(settings)
    allowed = replace(settings, bounce_imap_allow_plaintext=True)
    check_settings(allowed)  # a network the operator trusts, said explicitly


@pytest.mark.parametrize("host", ["127.0.0.1", "localhost", "::1"])
def test_imap_without_tls_on_loopback_is_fine(host: str) -> None:
    check_settings(replace(IMAP, bounce_imap_host=host, bounce_imap_security="none"))
    check_settings(replace(IMAP, bounce_imap_host="imap.hzgh.org.cn", bounce_imap_security="ssl"))
