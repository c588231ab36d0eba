"""The languages of the public pages (zh-CN and English) and every text they show.

A page's language is, in order: the reader's explicit choice (``?lang=``, remembered in a
cookie), the subscriber's own (``Subscriber.locale``) on their pages, ``Accept-Language``, and
Chinese. The texts are in the gettext catalogs of :mod:`distributor.locale`; a service's error
carries a code and parameters, and is worded here in the page's language.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from enum import StrEnum

from distributor.errors import DistributorError, Notice
from distributor.locale import ERROR_PREFIX, text
from distributor.staff.models import Role
from distributor.vocabulary import DeliveryState, SendState, Variant
from subscribers.models import SubscriberStatus, SubscriptionStatus

DEFAULT = "zh-CN"
LANGUAGES = {"zh-CN": "中文", "en": "English"}

Translate = Callable[..., str]


def supported(tag: str | None) -> str | None:
    """The page language for a BCP 47 tag (``en-GB`` → ``en``, ``zh-Hans-CN`` → ``zh-CN``)."""
    if not tag:
        return None
    primary = tag.strip().split("-")[0].split("_")[0].lower()
    return {"zh": "zh-CN", "en": "en"}.get(primary)


def from_accept_language(header: str | None) -> str | None:
    """The supported language the browser prefers most (highest q, then first named)."""
    choices: list[tuple[float, int, str]] = []
    for position, item in enumerate((header or "").split(",")):
        tag, _, params = item.partition(";")
        quality = 1.0
        if params.strip().startswith("q="):
            try:
                quality = float(params.strip()[2:])
            except ValueError:
                continue
        lang = supported(tag)
        if lang is not None and quality > 0:
            choices.append((-quality, position, lang))
    return min(choices)[2] if choices else None


def choose(
    *, asked: str | None, remembered: str | None, own: str | None, accept: str | None
) -> str:
    return (
        supported(asked)
        or supported(remembered)
        or supported(own)
        or from_accept_language(accept)
        or DEFAULT
    )


def translator(lang: str) -> Translate:
    def translate(key: str, **values: object) -> str:
        return text(lang, key, **values)

    return translate


def worded(error: DistributorError | ValueError, lang: str) -> str:
    """A service's error in ``lang``: the text of its code, or, for an error no code names yet,
    its English message after a sentence in ``lang`` that says what happened."""
    if isinstance(error, ValueError):
        return text(lang, "err.form.value")
    return words(lang, error.code, error.params, error.message)


def words(lang: str, code: str | None, params: Mapping[str, object], english: str) -> str:
    """A service's coded message (an error, a reason in a report) in ``lang``. A value that is
    itself a state or a role is worded too, and so is a nested error."""
    if code is None:
        return english if lang == "en" else text(lang, "err.uncoded", message=english)
    values = {key: _value(lang, value) for key, value in params.items()}
    return text(lang, ERROR_PREFIX + code, **values)


def noticed(notice: str, lang: str) -> str:
    """A report's warning in ``lang``; one without a code (a report read back) as it is."""
    if isinstance(notice, Notice):
        return words(lang, notice.code, notice.params, notice)
    return notice


def _value(lang: str, value: object) -> object:
    if isinstance(value, DistributorError):
        return worded(value, lang)
    if isinstance(value, Notice):
        return noticed(value, lang)
    if isinstance(value, StrEnum) and type(value) in VALUE_PREFIXES:
        return text(lang, VALUE_PREFIXES[type(value)] + value.value)
    return value


# The service values a page shows by name, and the catalog prefix of their words.
VALUE_PREFIXES: dict[type[StrEnum], str] = {
    SendState: "state.",
    DeliveryState: "delivery.",
    Variant: "variant.",
    Role: "role.",
    SubscriberStatus: "subscriber.",
    SubscriptionStatus: "subscription.",
}
