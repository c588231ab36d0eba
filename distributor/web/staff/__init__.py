"""The staff dashboard under ``/staff/``: sign in, then issues, sends, subscribers, schedules;
admins also staff accounts."""

from __future__ import annotations

from fastapi import APIRouter


def staff_routers() -> list[APIRouter]:
    from distributor.web.staff import automations, issues, login, sends, subscribers, users

    return [
        login.router,
        sends.router,
        issues.router,
        subscribers.router,
        users.router,
        automations.router,
    ]
