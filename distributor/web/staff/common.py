"""What every staff page shares: rendering with the signed-in user and a CSRF token bound to
their session, the check of a posted form, and times in the staff's time zone."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, cast
from zoneinfo import ZoneInfo

from fastapi import Depends, Form, Request
from fastapi.responses import HTMLResponse, RedirectResponse

from distributor.errors import DistributorError
from distributor.staff.models import StaffUser
from distributor.staff.secrets import secret_hash
from distributor.web.formats import moment
from distributor.web.i18n import noticed, worded, words
from distributor.web.pages import WebDep, get_web, page_language, render
from distributor.web.security import CSP, set_csrf_cookie
from distributor.web.staff_auth import SESSION_COOKIE, AdminDep, EditorDep, StaffDep
from distributor.web.wording import audience_words, audit_sentence
from subscribers.query import Audience

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
        when=lambda value: moment(value, web.settings.zone, lang),
        said=lambda entry: audit_sentence(entry, lang, web.settings.zone),
        reason=lambda problem: words(lang, problem.code, problem.params, problem.reason),
        noticed=lambda notice: noticed(notice, lang),
        audience=lambda chosen: audience_words(Audience.from_json(chosen), lang),
        **cast(dict[str, Any], context),
    )
    if fresh_cookie is not None:
        set_csrf_cookie(response, request, fresh_cookie)
    response.headers["Content-Security-Policy"] = STAFF_CSP
    return response


def when(value: datetime | None, zone: ZoneInfo) -> str:
    """A time in the live parts' JSON: in the staff's zone, to the minute, in digits any page
    language reads (pages word times with :func:`distributor.web.formats.moment`)."""
    return value.astimezone(zone).strftime("%Y-%m-%d %H:%M") if value else "—"


def shown_error(request: Request, error: DistributorError | ValueError) -> str:
    """A service's error in the page's language."""
    return worded(error, page_language(request))


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
