"""Request bodies are bounded before any route reads them, and an upload's body is read only for
an editor: a stranger's large body costs the server neither memory nor disk."""

from __future__ import annotations

import socket
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from distributor.devservers.web_server import serving
from distributor.staff.models import Role
from distributor.web.app import create_app
from distributor.web.security import MemoryRateLimiter
from tests.support.api import api_token, bearer
from tests.support.web import web_settings

LIMIT = 64 * 1024
UPLOAD_LIMIT = 256 * 1024


@pytest.fixture
def server(sqlite_url: str) -> Iterator[str]:
    settings = web_settings(
        sqlite_url, WEB_MAX_BODY_BYTES=str(LIMIT), WEB_MAX_UPLOAD_BYTES=str(UPLOAD_LIMIT)
    )
    app = create_app(settings, enqueue_confirmation=lambda _: None, limiter=MemoryRateLimiter())
    with serving(app) as url:
        yield url


def headers_only(url: str, request: str) -> tuple[str, float]:
    """Send a request's head and no body; the status line the server answers, and how long it
    took: an answer before the body means the body was never waited for."""
    port = int(url.rsplit(":", 1)[1])
    started = time.monotonic()
    with socket.create_connection(("127.0.0.1", port), timeout=10) as connection:
        connection.sendall(request.encode())
        answer = connection.recv(65536).decode(errors="replace")
    return answer.split("\r\n", 1)[0], time.monotonic() - started


def test_a_body_announced_over_the_limit_is_refused_at_once(server: str) -> None:
    status, seconds = headers_only(
        server,
        "POST /api/v1/sends HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
        "Content-Length: 400000000\r\n\r\n",
    )
    assert status == "HTTP/1.1 413 Request Entity Too Large" and seconds < 5
    answer = httpx.post(f"{server}/api/v1/sends", content=b"{" + b" " * (LIMIT + 1) + b"}")
    assert answer.status_code == 413
    assert answer.json()["error"] == {
        "code": "too_large", "message": f"the request body is larger than {LIMIT:,} bytes"
    }
    page = httpx.post(f"{server}/subscribe/1", content=b"email=" + b"x" * LIMIT)
    assert (page.status_code, page.text) == (
        413, f"the request body is larger than {LIMIT:,} bytes\n"
    )


def test_a_chunked_body_is_stopped_once_it_passes_the_limit(server: str) -> None:
    def endless() -> Iterator[bytes]:
        yield b'{"issue_id": 1, "lists": ["'
        for _ in range(4 * LIMIT // 1024):
            yield b"x" * 1024

    answer = httpx.post(f"{server}/api/v1/sends", content=endless(),
                        headers={"Content-Type": "application/json"})
    assert answer.status_code == 413
    form = httpx.post(f"{server}/subscribe/1", content=endless(),
                      headers={"Content-Type": "application/x-www-form-urlencoded"})
    assert form.status_code == 413


@pytest.mark.parametrize("path", ["/api/v1/issues", "/staff/issues", "/staff/subscribers/import"])
def test_an_upload_without_staff_credentials_is_answered_before_its_body(
    server: str, path: str
) -> None:
    status, seconds = headers_only(
        server,
        f"POST {path} HTTP/1.1\r\nHost: x\r\nContent-Type: multipart/form-data; boundary=b\r\n"
        f"Content-Length: {UPLOAD_LIMIT}\r\n\r\n",
    )
    expected = "401 Unauthorized" if path.startswith("/api/") else "303 See Other"
    assert status == f"HTTP/1.1 {expected}" and seconds < 5


def test_an_upload_by_a_viewer_is_refused_and_by_an_editor_read(
    sqlite_url: str, server: str, sample_issue_path: Path
) -> None:
    files = {"file": ("hzgy-471.txt", sample_issue_path.read_bytes(), "text/plain")}
    viewer = bearer(api_token(sqlite_url, "viewer", Role.VIEWER))
    refused = httpx.post(f"{server}/api/v1/issues", files=files, headers=viewer)
    assert refused.status_code == 403
    assert refused.json()["error"] == {
        "code": "forbidden",
        "message": "a viewer cannot upload: it needs the editor role",
        "reason": "staff.role_needed",
    }
    editor = bearer(api_token(sqlite_url, "editor", Role.EDITOR))
    imported = httpx.post(f"{server}/api/v1/issues", files=files, headers=editor)
    assert imported.status_code == 201, imported.text
    large = {"file": ("big.txt", b"x" * (UPLOAD_LIMIT + 1), "text/plain")}
    assert httpx.post(f"{server}/api/v1/issues", files=large, headers=editor).status_code == 413
