"""``/p/<token>``: how, what and in which language a subscriber receives, and which public lists
they are on. Saved by a POST carrying a CSRF token bound to the link."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Form, Request
from fastapi.responses import HTMLResponse, RedirectResponse

from distributor.automations.joins import record_joins
from distributor.db import utcnow
from distributor.errors import DistributorError
from distributor.vocabulary import EMAIL_VARIANTS, Variant
from distributor.web.i18n import LANGUAGES, supported
from distributor.web.pages import WebDep, here, local_path, page_language, render
from distributor.web.security import limit
from subscribers.links import PREFERENCES_PATH
from subscribers.models import ChannelPreference, SubscriberStatus
from subscribers.public import preferences_by_token, update_preferences_by_token

router = APIRouter(include_in_schema=False)


def offered_channels(web: WebDep) -> list[str]:
    """WeChat is offered only where it is set up: a reader choosing it elsewhere would get
    nothing by it (their email goes on instead)."""
    if web.settings.wechat_app_id is None:
        return [ChannelPreference.EMAIL.value]
    return [value.value for value in ChannelPreference]


@router.get(PREFERENCES_PATH + "{token}")
def preferences_form(
    request: Request, token: str, web: WebDep, saved: bool = False
) -> HTMLResponse:
    with web.transaction() as session:
        prefs = preferences_by_token(session, web.signer, token)
    return render(
        request,
        "preferences.html",
        lang=page_language(request, prefs.locale),
        prefs=prefs,
        prefs_language=supported(prefs.locale) or "",
        active=prefs.status is SubscriberStatus.ACTIVE,
        formats=[value.value for value in EMAIL_VARIANTS],
        channels=offered_channels(web),
        saved=saved,
        action=here(request),
        csrf=web.csrf.for_link(token),
        unsubscribe_url=web.links.unsubscribe(prefs.subscriber_id),
    )


@router.post(PREFERENCES_PATH + "{token}")
def save_preferences(
    request: Request,
    token: str,
    web: WebDep,
    format: Annotated[Variant, Form()],
    channel: Annotated[ChannelPreference, Form()],
    language: Annotated[str, Form(pattern=f"^({'|'.join(LANGUAGES)})$")],
    csrf: Annotated[str | None, Form()] = None,
    lists: Annotated[list[int] | None, Form()] = None,
) -> RedirectResponse:
    """Saved, then back to the page in the language chosen (post, redirect, get)."""
    limit(web.limiter, request, "form", web.settings.web_form_rate_limit, 60)
    web.csrf.check_link(token, csrf)
    if channel.value not in offered_channels(web):
        raise DistributorError(
            "WeChat is not set up on this site: messages come by email", code="prefs.no_wechat"
        )
    since = utcnow()
    with web.transaction() as session:
        subscriber = update_preferences_by_token(
            session,
            web.signer,
            token,
            channel=channel,
            format=format,
            locale=language,
            public_lists=lists or [],
        )
        record_joins(session, since, utcnow(), subscriber_id=subscriber.id)  # a list joined here
    return RedirectResponse(f"{local_path(request)}?lang={language}&saved=true", status_code=303)
