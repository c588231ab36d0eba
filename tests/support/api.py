"""The staff API for tests: the app, and staff members with API tokens of each role."""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

from fastapi import FastAPI
from fastapi.testclient import TestClient

from distributor.config import Settings
from distributor.db import transaction
from distributor.staff.accounts import add_user
from distributor.staff.models import Role
from distributor.staff.tokens import issue_token
from distributor.web.app import create_app
from distributor.web.security import MemoryRateLimiter


def api_token(url: str, name: str, role: Role) -> str:
    with transaction(url) as session:
        add_user(session, name, role, None)
        _, token = issue_token(session, name)
    return token


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


@dataclass
class Api:
    app: FastAPI
    client: TestClient
    settings: Settings
    viewer: dict[str, str]  # headers
    editor: dict[str, str]


@contextmanager
def api_client(settings: Settings) -> Iterator[Api]:
    url = settings.database_url
    viewer, editor = (
        bearer(api_token(url, f"viewer-{secrets.token_hex(3)}", Role.VIEWER)),
        bearer(api_token(url, f"editor-{secrets.token_hex(3)}", Role.EDITOR)),
    )
    app = create_app(settings, enqueue_confirmation=lambda _id: None, limiter=MemoryRateLimiter())
    with TestClient(app, base_url="http://testserver") as client:
        yield Api(app, client, settings, viewer, editor)
