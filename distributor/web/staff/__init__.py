"""The staff dashboard under ``/staff/``: sign in, then issues, sends, subscribers, schedules;
saved segments and webhooks; admins also staff accounts."""

from __future__ import annotations

from fastapi import APIRouter


def staff_routers() -> list[APIRouter]:
    from distributor.web.staff import (
        automations,
        issues,
        login,
        segments,
        sends,
        subscribers,
        users,
        webhooks,
    )

    return [
        login.router,
        sends.router,
        issues.router,
        subscribers.router,
        users.router,
        automations.router,
        segments.router,
        webhooks.router,
    ]
