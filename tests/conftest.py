"""Real parts for the tests: SQLite and PostgreSQL databases, a Redis server.

PostgreSQL tests run wherever a server is reachable (``TEST_POSTGRES_URL``, default the local
server with trust auth) and are skipped elsewhere, unless ``REQUIRE_POSTGRES=1`` (CI) turns the
skip into a failure. Each test gets a database of its own, copied from one migrated template.
"""

from __future__ import annotations

import os
import shutil
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

from distributor.db import dispose_engines, upgrade
from tests.support.servers import RedisServer

ROOT = Path(__file__).resolve().parent.parent
# The sample issue ships with the package (the demo imports it).
SAMPLE_ISSUE = ROOT / "distributor" / "samples" / "hzgy-471.txt"
POSTGRES_ADMIN_URL = os.environ.get(
    "TEST_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/postgres"
)


def _postgres_reachable() -> str | None:
    """None when reachable, else the reason."""
    try:
        engine = create_engine(POSTGRES_ADMIN_URL, isolation_level="AUTOCOMMIT")
        with engine.connect() as connection:
            connection.execute(text("select 1"))
        engine.dispose()
        return None
    except Exception as error:  # any driver error means: not reachable here
        return f"{type(error).__name__}: {str(error).splitlines()[0]}"


def _require_postgres() -> None:
    reason = _postgres_reachable()
    if reason is None:
        return
    message = (
        f"PostgreSQL is not reachable at {POSTGRES_ADMIN_URL} ({reason}). Start one (README, "
        "'PostgreSQL for the tests') or set TEST_POSTGRES_URL."
    )
    if os.environ.get("REQUIRE_POSTGRES") == "1":
        pytest.fail(message)
    pytest.skip(message)


def _admin_execute(*statements: str) -> None:
    engine = create_engine(POSTGRES_ADMIN_URL, isolation_level="AUTOCOMMIT")
    with engine.connect() as connection:
        for statement in statements:
            connection.execute(text(statement))
    engine.dispose()


def _drop_postgres(name: str) -> None:
    _admin_execute(
        f"select pg_terminate_backend(pid) from pg_stat_activity where datname = '{name}'",
        f'drop database if exists "{name}"',
    )


def _postgres_url(name: str) -> str:
    return make_url(POSTGRES_ADMIN_URL).set(database=name).render_as_string(hide_password=False)


@pytest.fixture(scope="session")
def postgres_template() -> Iterator[str]:
    _require_postgres()
    name = f"distributor_test_template_{uuid.uuid4().hex[:8]}"
    _admin_execute(f'create database "{name}"')
    upgrade(_postgres_url(name))
    dispose_engines()
    yield name
    _drop_postgres(name)


@pytest.fixture(scope="session")
def sqlite_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("template") / "template.db"
    upgrade(f"sqlite:///{path}")
    dispose_engines()
    return path


def _fresh_postgres(request: pytest.FixtureRequest) -> Iterator[str]:
    template = request.getfixturevalue("postgres_template")
    name = f"distributor_test_{uuid.uuid4().hex[:12]}"
    _admin_execute(f'create database "{name}" template "{template}"')
    try:
        yield _postgres_url(name)
    finally:
        dispose_engines()
        _drop_postgres(name)


@pytest.fixture(params=["sqlite", "postgresql"])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A migrated, empty database of each kind, dropped after the test."""
    if request.param == "sqlite":
        path = tmp_path / "test.db"
        shutil.copy(request.getfixturevalue("sqlite_template"), path)
        yield f"sqlite:///{path}"
        dispose_engines()
        return
    yield from _fresh_postgres(request)


@pytest.fixture
def postgres_url(request: pytest.FixtureRequest) -> Iterator[str]:
    """Only PostgreSQL: for what is measured on the distributed set-up."""
    yield from _fresh_postgres(request)


@pytest.fixture
def sqlite_url(sqlite_template: Path, tmp_path: Path) -> Iterator[str]:
    """Only SQLite: for tests of logic that does not depend on the backend."""
    path = tmp_path / "test.db"
    shutil.copy(sqlite_template, path)
    yield f"sqlite:///{path}"
    dispose_engines()


@pytest.fixture
def redis_server(tmp_path: Path) -> Iterator[RedisServer]:
    server = RedisServer(tmp_path)
    server.start()
    yield server
    server.stop()


@pytest.fixture
def sample_issue_path() -> Path:
    if not SAMPLE_ISSUE.exists():
        pytest.fail(f"the sample issue is missing: {SAMPLE_ISSUE} (it ships with the package)")
    return SAMPLE_ISSUE
