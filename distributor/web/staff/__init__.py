"""The staff dashboard under ``/staff/``: sign in, then issues, sends, subscribers, schedules."""

from __future__ import annotations

from fastapi import APIRouter


def staff_routers() -> list[APIRouter]:
    from distributor.web.staff import issues, login, sends, subscribers

    return [login.router, sends.router, issues.router, subscribers.router]
