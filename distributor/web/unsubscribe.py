"""``/u/<token>``: the unsubscribe page (GET: a choice and a button, never a change) and its POST,
which is also the RFC 8058 one-click unsubscribe that Gmail and Yahoo send."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Form, Request
from fastapi.responses import HTMLResponse

from distributor.errors import RequestRefused
from distributor.sending.unsubscribes import unsubscribe_from_link, unsubscribe_page
from distributor.web.pages import WebDep, here, page_language, render
from distributor.web.security import limit
from subscribers.links import UNSUBSCRIBE_PATH

ONE_CLICK = "One-Click"  # RFC 8058: the body is List-Unsubscribe=One-Click
EVERYTHING = "all"

router = APIRouter(include_in_schema=False)


@router.get(UNSUBSCRIBE_PATH + "{token}")
def unsubscribe_form(request: Request, token: str, web: WebDep) -> HTMLResponse:
    with web.transaction() as session:
        page = unsubscribe_page(session, web.signer, token)
    return render(
        request,
        "unsubscribe.html",
        lang=page_language(request, page.locale),
        page=page,
        action=here(request),
        csrf=web.csrf.for_link(token),
        preferences_url=web.links.preferences(page.subscriber_id),
    )


@router.post(UNSUBSCRIBE_PATH + "{token}")
def unsubscribe(
    request: Request,
    token: str,
    web: WebDep,
    list_unsubscribe: Annotated[str | None, Form(alias="List-Unsubscribe")] = None,
    scope: Annotated[str, Form()] = EVERYTHING,
    csrf: Annotated[str | None, Form()] = None,
) -> HTMLResponse:
    """One-click (a mail provider, no cookie, no form): everything, at once. From the page: the
    choice made there, with the page's CSRF token. Either way twice is harmless."""
    list_id = None
    if list_unsubscribe != ONE_CLICK:
        limit(web.limiter, request, "form", web.settings.web_form_rate_limit, 60)
        web.csrf.check_link(token, csrf)
        if scope != EVERYTHING:
            if not scope.isdigit():
                raise RequestRefused(f"{scope[:20]!r} is not a choice of this form", status=400)
            list_id = int(scope)
    with web.transaction() as session:
        done = unsubscribe_from_link(session, web.signer, token, list_id=list_id)
    return render(
        request,
        "unsubscribed.html",
        lang=page_language(request, done.locale),
        list_name=done.list_name,
    )
