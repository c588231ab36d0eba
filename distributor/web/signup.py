"""``/subscribe/<list>``: sign up for a public list (double opt-in), and ``/c/<token>``: the
confirmation link (GET shows a button, POST confirms).

The answer to a sign-up is the same whether the address was known or not; a honeypot field and a
per-address rate limit keep bots out; the confirmation message goes out from a worker.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Form, Request
from fastapi.responses import HTMLResponse

from distributor.automations.joins import confirm_and_join
from distributor.errors import InvalidAddress
from distributor.web.i18n import translator
from distributor.web.pages import WebDep, here, page_language, render
from distributor.web.security import limit, set_csrf_cookie
from subscribers.links import CONFIRM_PATH, SIGNUP_PATH
from subscribers.public import read_confirm_link
from subscribers.signup import PublicList, public_list, sign_up

HOUR = 3600

router = APIRouter(include_in_schema=False)


def _form(
    request: Request,
    web: WebDep,
    mailing_list: PublicList,
    *,
    status: int = 200,
    error: str | None = None,
    name: str = "",
    email: str = "",
) -> HTMLResponse:
    csrf, fresh_cookie = web.csrf.for_browser(request, f"signup:{mailing_list.id}")
    response = render(
        request,
        "signup.html",
        lang=page_language(request),
        status=status,
        mailing_list=mailing_list,
        error=error,
        name=name,
        email=email,
        action=here(request),
        csrf=csrf,
    )
    if fresh_cookie is not None:
        set_csrf_cookie(response, request, fresh_cookie)
    return response


@router.get(SIGNUP_PATH + "{list_id}")
def signup_form(request: Request, list_id: int, web: WebDep) -> HTMLResponse:
    with web.transaction() as session:
        mailing_list = public_list(session, list_id)
    return _form(request, web, mailing_list)


@router.post(SIGNUP_PATH + "{list_id}")
def signup(
    request: Request,
    list_id: int,
    web: WebDep,
    email: Annotated[str, Form(max_length=400)] = "",
    name: Annotated[str, Form(max_length=400)] = "",
    website: Annotated[str, Form(max_length=400)] = "",
    csrf: Annotated[str | None, Form()] = None,
) -> HTMLResponse:
    limit(web.limiter, request, "signup", web.settings.signup_rate_limit, HOUR)
    web.csrf.check_browser(request, f"signup:{list_id}", csrf)
    lang = page_language(request)
    bad_address = False
    with web.transaction() as session:
        mailing_list = public_list(session, list_id)
        subscriber_id = None
        if not website:  # a person leaves the hidden field empty; a bot fills it in
            try:
                subscriber_id = sign_up(session, list_id, email, name=name, locale=lang)
            except InvalidAddress:
                bad_address = True
    if bad_address:
        error = translator(lang)("signup.bad_email")
        return _form(request, web, mailing_list, status=400, error=error, name=name, email=email)
    if subscriber_id is not None:
        web.enqueue_confirmation(subscriber_id)
    return render(request, "signup_sent.html", lang=lang, email=email)


@router.get(CONFIRM_PATH + "{token}")
def confirm_form(request: Request, token: str, web: WebDep) -> HTMLResponse:
    with web.transaction() as session:
        subscriber = read_confirm_link(session, web.signer, token)
        locale = subscriber.locale
    return render(
        request,
        "confirm.html",
        lang=page_language(request, locale),
        action=here(request),
        csrf=web.csrf.for_link(token),
    )


@router.post(CONFIRM_PATH + "{token}")
def confirm(
    request: Request, token: str, web: WebDep, csrf: Annotated[str | None, Form()] = None
) -> HTMLResponse:
    limit(web.limiter, request, "form", web.settings.web_form_rate_limit, 60)
    web.csrf.check_link(token, csrf)
    with web.transaction() as session:
        locale = confirm_and_join(session, web.signer, token).locale
    return render(request, "confirmed.html", lang=page_language(request, locale))
