"""``/u/<token>``: the unsubscribe page (GET: a choice and a button, never a change) and its POST,
which is also the RFC 8058 one-click unsubscribe that Gmail and Yahoo send."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, PlainTextResponse, Response
from starlette.concurrency import run_in_threadpool

from distributor.errors import RequestRefused
from distributor.readers.unsubscribes import unsubscribe_from_link, unsubscribe_page
from distributor.web.i18n import translator
from distributor.web.pages import WebDep, get_web, here, page_language, render
from distributor.web.security import limit
from subscribers.links import UNSUBSCRIBE_PATH

LIST_ID_DIGITS = 18  # a list id is a 64-bit integer: longer is no choice of the form
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


async def unsubscribe(request: Request) -> Response:
    """One-click (a mail provider, no cookie, no form): everything, at once, answered with a
    line of text (no page: nobody sees it, and providers send them by the thousand). From the
    page: the choice made there, with the page's CSRF token. Either way twice is harmless.

    A plain Starlette route reading the form itself: FastAPI's form parameters cost more than
    the unsubscribe."""
    async with request.form() as form:
        fields = {name: value for name, value in form.items() if isinstance(value, str)}
    return await run_in_threadpool(_unsubscribe, request, fields)


def _unsubscribe(request: Request, fields: dict[str, str]) -> Response:
    web = get_web(request)
    token: str = request.path_params["token"]
    one_click = fields.get("List-Unsubscribe") == ONE_CLICK
    list_id = None
    if not one_click:
        limit(web.limiter, request, "form", web.settings.web_form_rate_limit, 60)
        web.csrf.check_link(token, fields.get("csrf"))
        scope = fields.get("scope", EVERYTHING)
        if scope != EVERYTHING:
            if not (scope.isascii() and scope.isdigit() and len(scope) <= LIST_ID_DIGITS):
                raise RequestRefused(
                    f"{scope[:20]!r} is not a choice of this form",
                    status=400,
                    code="form.not_a_choice",
                    value=scope[:20],
                )
            list_id = int(scope)
    with web.transaction() as session:
        done = unsubscribe_from_link(session, web.signer, token, list_id=list_id)
    if one_click:
        text = translator(page_language(request, done.locale))("unsub.done.everything")
        return PlainTextResponse(text + "\n")
    return render(
        request,
        "unsubscribed.html",
        lang=page_language(request, done.locale),
        list_name=done.list_name,
    )


router.add_route(
    UNSUBSCRIBE_PATH + "{token}", unsubscribe, methods=["POST"], include_in_schema=False
)
