"""What every staff page shares: rendering with the signed-in user and a CSRF token bound to
their session, the check of a posted form, and times in the staff's time zone."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, cast
from zoneinfo import ZoneInfo

from fastapi import Depends, Form, Request
from fastapi.responses import HTMLResponse, RedirectResponse

from distributor.staff.models import StaffUser
from distributor.staff.secrets import secret_hash
from distributor.web.i18n import service_message
from distributor.web.pages import WebDep, get_web, page_language, render
from distributor.web.security import CSP, set_csrf_cookie
from distributor.web.staff_auth import SESSION_COOKIE, AdminDep, EditorDep, StaffDep

PAGE_SIZE = 50
# The public policy, and the live parts' requests to this site's JSON endpoints.
STAFF_CSP = CSP + "; connect-src 'self'"


def csrf_scope(request: Request) -> str:
    """Forms are bound to the session: a token from before a login is useless after it."""
    return "staff:" + secret_hash(request.cookies.get(SESSION_COOKIE, ""))[:16]


def staff_page(
    request: Request,
    template: str,
    user: StaffUser | None,
    *,
    status: int = 200,
    scope: str | None = None,
    **context: object,
) -> HTMLResponse:
    """A page of ``templates/web/staff/``; ``scope`` names the CSRF scope (default: the
    session's)."""
    web = get_web(request)
    lang = page_language(request)
    csrf, fresh_cookie = web.csrf.for_browser(request, scope or csrf_scope(request))
    response = render(
        request,
        f"staff/{template}",
        lang=lang,
        status=status,
        user=user,
        csrf=csrf,
        zone=web.settings.zone,
        when=lambda moment: when(moment, web.settings.zone),
        **cast(dict[str, Any], context),
    )
    if fresh_cookie is not None:
        set_csrf_cookie(response, request, fresh_cookie)
    response.headers["Content-Security-Policy"] = STAFF_CSP
    return response


def when(moment: datetime | None, zone: ZoneInfo) -> str:
    """A time as staff read it: in their zone, to the minute."""
    return moment.astimezone(zone).strftime("%Y-%m-%d %H:%M") if moment else "—"


def shown_error(request: Request, message: str) -> str:
    """A service's message in the page's language where a translation exists."""
    lang = page_language(request)
    return service_message(message, lang) or message


def checked_writer(
    request: Request,
    web: WebDep,
    user: EditorDep,
    csrf: Annotated[str | None, Form()] = None,
) -> StaffUser:
    """An editor or admin posting a form of this session (403 for a viewer or a stale form)."""
    web.csrf.check_browser(request, csrf_scope(request), csrf)
    return user


def checked_admin(
    request: Request,
    web: WebDep,
    user: AdminDep,
    csrf: Annotated[str | None, Form()] = None,
) -> StaffUser:
    """An admin posting a form of this session (403 for an editor, a viewer or a stale form)."""
    web.csrf.check_browser(request, csrf_scope(request), csrf)
    return user


def checked_staff(
    request: Request,
    web: WebDep,
    user: StaffDep,
    csrf: Annotated[str | None, Form()] = None,
) -> StaffUser:
    """Any signed-in staff member posting a form of this session (signing out)."""
    web.csrf.check_browser(request, csrf_scope(request), csrf)
    return user


WriterDep = Annotated[StaffUser, Depends(checked_writer)]
AdminFormDep = Annotated[StaffUser, Depends(checked_admin)]
PosterDep = Annotated[StaffUser, Depends(checked_staff)]


def see_other(path: str) -> RedirectResponse:
    return RedirectResponse(path, status_code=303)
