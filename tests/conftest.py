"""Real parts for the tests: SQLite and PostgreSQL databases, a Redis server.

PostgreSQL tests run wherever a server is reachable (``TEST_POSTGRES_URL``, default the local
server with trust auth) and are skipped elsewhere, unless ``REQUIRE_POSTGRES=1`` (CI) turns the
skip into a failure. Each test gets a database of its own, copied from one migrated template
(one test ahead, tests/support/databases.py).
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from distributor.db import dispose_engines, upgrade
from distributor.devservers.postgres import (
    DEFAULT_ADMIN_URL,
    throwaway_database,
    unreachable_reason,
)
from distributor.devservers.redis_server import RedisServer
from tests.support.databases import DatabaseSupply

ROOT = Path(__file__).resolve().parent.parent
# The sample issue ships with the package (the demo imports it).
SAMPLE_ISSUE = ROOT / "distributor" / "samples" / "hzgy-471.txt"
POSTGRES_ADMIN_URL = os.environ.get("TEST_POSTGRES_URL", DEFAULT_ADMIN_URL)


def _require_postgres() -> None:
    reason = unreachable_reason(POSTGRES_ADMIN_URL)
    if reason is None:
        return
    message = (
        f"PostgreSQL is not reachable at {POSTGRES_ADMIN_URL} ({reason}). Start one (README, "
        "'PostgreSQL for the tests') or set TEST_POSTGRES_URL."
    )
    if os.environ.get("REQUIRE_POSTGRES") == "1":
        pytest.fail(message)
    pytest.skip(message)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """The slow end-to-end tests first, so that the xdist workers share them out while the quick
    ones fill the gaps, instead of the longest starting last and running alone."""
    items.sort(key=lambda item: item.get_closest_marker("slow") is None)


@pytest.fixture(scope="session")
def postgres_template() -> Iterator[str]:
    """The URL of a migrated database that each PostgreSQL test's database is copied from."""
    _require_postgres()
    with throwaway_database(POSTGRES_ADMIN_URL, "distributor_test_template") as url:
        upgrade(url)
        dispose_engines()  # a template must have no connections when it is copied
        yield url


@pytest.fixture(scope="session")
def sqlite_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("template") / "template.db"
    upgrade(f"sqlite:///{path}")
    dispose_engines()
    return path


@pytest.fixture(scope="session")
def postgres_supply(postgres_template: str) -> Iterator[DatabaseSupply]:
    supply = DatabaseSupply(POSTGRES_ADMIN_URL, postgres_template)
    yield supply
    supply.close()


def _fresh_postgres(request: pytest.FixtureRequest) -> Iterator[str]:
    supply: DatabaseSupply = request.getfixturevalue("postgres_supply")
    with supply.database() as url:
        yield url


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


@pytest.fixture(params=["sqlite", "postgresql"])
def empty_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A database of each kind with nothing in it (no schema): for migrations and restores."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'empty.db'}"
        dispose_engines()
        return
    _require_postgres()
    with throwaway_database(POSTGRES_ADMIN_URL, "distributor_empty") as url:
        yield url


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
    with RedisServer(tmp_path) as server:
        yield server


@pytest.fixture
def sample_issue_path() -> Path:
    if not SAMPLE_ISSUE.exists():
        pytest.fail(f"the sample issue is missing: {SAMPLE_ISSUE} (it ships with the package)")
    return SAMPLE_ISSUE
