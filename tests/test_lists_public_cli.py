"""``distributor lists create --public`` and ``lists set-public``: a list opened to sign-ups
prints the page where people sign up, and that page answers; closed, it is gone."""

from __future__ import annotations

import pytest
from click.testing import CliRunner, Result
from fastapi.testclient import TestClient

from distributor.cli import main
from distributor.web.app import create_app
from distributor.web.security import MemoryRateLimiter
from tests.support.web import BASE_URL, web_settings


def run(database_url: str, *args: str, code: int = 0) -> Result:
    env = {"DATABASE_URL": database_url, "PUBLIC_BASE_URL": BASE_URL}
    result = CliRunner().invoke(main, list(args), env=env)
    assert result.exit_code == code, result.output
    return result


def signup_page(output: str) -> str:
    """The sign-up URL printed, as a path on the web app."""
    (line,) = [line for line in output.splitlines() if line.startswith("Sign-up page: ")]
    url = line.removeprefix("Sign-up page: ")
    assert url.startswith(f"{BASE_URL}/subscribe/")
    return url.removeprefix(BASE_URL)


@pytest.fixture
def web(database_url: str) -> TestClient:
    app = create_app(
        web_settings(database_url), enqueue_confirmation=lambda _: None, limiter=MemoryRateLimiter()
    )
    return TestClient(app)


def test_a_list_created_public_has_a_sign_up_page(database_url: str, web: TestClient) -> None:
    run(database_url, "lists", "create", "内部")  # private: no page
    created = run(database_url, "lists", "create", "会员快讯", "--public").output
    assert created.startswith("Created list 会员快讯 (ID 2).\nSign-up page: ")
    path = signup_page(created)
    assert path == "/subscribe/2"
    page = web.get(path)
    assert page.status_code == 200 and "会员快讯" in page.text
    assert web.get("/subscribe/1").status_code == 404
    shown = run(database_url, "lists", "show", "会员快讯").output
    assert f"Public:       yes, sign-up page {BASE_URL}/subscribe/2" in shown
    assert "Public:       no" in run(database_url, "lists", "show", "内部").output


def test_set_public_opens_and_closes_the_sign_up_page(database_url: str, web: TestClient) -> None:
    run(database_url, "lists", "create", "青年")
    opened = run(database_url, "lists", "set-public", "青年").output
    assert opened.startswith("List 青年 is public.\n")
    path = signup_page(opened)
    assert web.get(path).status_code == 200
    closed = run(database_url, "lists", "set-public", "青年", "--no").output
    assert closed == "List 青年 is not public: its sign-up page is gone; its members stay.\n"
    assert web.get(path).status_code == 404
    assert "Sign-up page" not in closed
    unknown = run(database_url, "lists", "set-public", "青", code=2)
    assert unknown.output == "Error: no list is named '青' (see: distributor lists list)\n"
