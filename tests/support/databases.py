"""PostgreSQL databases for the tests, made one test ahead: each test process keeps one copy of
the migrated template ready, and makes and drops copies on a thread of its own while its tests
run, so that no test waits for CREATE DATABASE or DROP DATABASE (up to a second each on a busy
machine, for some two hundred PostgreSQL tests)."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import contextmanager

from sqlalchemy.engine import make_url

from distributor.db import dispose_engines
from distributor.devservers.postgres import admin_execute, database_url, drop_database


class DatabaseSupply:
    """Copies of ``template_url``'s database, one always ready (:meth:`database`)."""

    def __init__(self, admin_url: str, template_url: str, prefix: str = "distributor_test"):
        self._admin_url = admin_url
        self._template = make_url(template_url).database
        self._prefix = prefix
        self._worker = ThreadPoolExecutor(max_workers=1, thread_name_prefix="database-supply")
        self._ready: Future[str] = self._worker.submit(self._copy)

    def _copy(self) -> str:
        name = f"{self._prefix}_{uuid.uuid4().hex[:12]}"
        admin_execute(self._admin_url, f'create database "{name}" template "{self._template}"')
        return name

    @contextmanager
    def database(self) -> Iterator[str]:
        """A fresh copy's URL for the block; dropped (behind the next tests) when it ends."""
        name = self._ready.result()
        self._ready = self._worker.submit(self._copy)
        try:
            yield database_url(self._admin_url, name)
        finally:
            dispose_engines()  # this process's connections; drop_database ends any others
            self._worker.submit(drop_database, self._admin_url, name)

    def close(self) -> None:
        """Drop the spare copy and wait for every drop asked for."""
        spare = self._ready.result()
        self._worker.submit(drop_database, self._admin_url, spare)
        self._worker.shutdown(wait=True)
