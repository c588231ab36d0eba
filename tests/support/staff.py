"""Staff accounts and a signed-in test client for the dashboard's tests."""

from __future__ import annotations

from fastapi.testclient import TestClient

from distributor.db import transaction
from distributor.staff.accounts import add_user
from distributor.staff.models import Role
from tests.support.web import csrf_of

PASSWORD = "correct horse battery"


def add_staff(url: str, name: str, role: Role) -> None:
    with transaction(url) as session:
        add_user(session, name, role, PASSWORD)


def sign_in(client: TestClient, name: str, next_path: str = "/staff/") -> None:
    form = client.get("/staff/login")
    answer = client.post(
        "/staff/login",
        data={"name": name, "password": PASSWORD, "next": next_path, "csrf": csrf_of(form.text)},
    )
    assert answer.status_code == 303, answer.text
