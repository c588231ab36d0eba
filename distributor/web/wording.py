"""Service values as sentences in the page's language: a send's audience, an audit entry.

Pure functions of the value and the language; the pages call them through their templates.
"""

from __future__ import annotations

from datetime import datetime
from zoneinfo import ZoneInfo

from distributor.locale import MissingText, text
from distributor.staff.models import AuditEntry
from distributor.web.formats import moment, number
from subscribers.query import Audience

AUDIT_PREFIX = "audit."
# Audit details worded through a catalog prefix (their values are service words).
WORDED_DETAILS = {"variant": "variant.", "state": "state.", "role": "role.", "every": "every."}


def audience_words(audience: Audience, lang: str) -> str:
    """"列表 会员全体；标签 工会 或 青年" — what ``Audience.describe`` says in English."""
    if audience.addresses:
        return text(lang, "audience.test", addresses=", ".join(audience.addresses))
    separator = text(lang, "audience.separator")
    parts = [text(lang, "audience.lists", lists=separator.join(audience.lists))]
    if audience.tags:
        tags = text(lang, "audience.or").join(audience.tags)
        parts.append(text(lang, "audience.tags", tags=tags))
    parts.extend(f"{key} = {value}" for key, value in audience.attributes)
    if audience.format:
        parts.append(text(lang, "audience.format", format=text(lang, "variant." + audience.format)))
    return text(lang, "audience.parts_separator").join(parts)


def audit_sentence(entry: AuditEntry, lang: str, zone: ZoneInfo) -> str:
    """What the staff member did, as a sentence (``send.create`` with its details: "新建发送：
    期刊 #4，列表 会员全体，…"); an action this version has no words for is named as it is."""
    values = {
        key: _detail(key, value, lang, zone) for key, value in (entry.detail or {}).items()
    }
    try:
        return text(lang, AUDIT_PREFIX + entry.action).format_map(_Detail(values))
    except MissingText:
        return text(lang, "audit.other", action=entry.action)


class _Detail(dict[str, object]):
    """An entry's details; one an older entry does not have reads as a dash."""

    def __missing__(self, key: str) -> str:
        return "—"


def _detail(key: str, value: object, lang: str, zone: ZoneInfo) -> object:
    separator = text(lang, "audience.separator")
    if isinstance(value, list | tuple):
        return separator.join(str(item) for item in value) or "—"
    if key in WORDED_DETAILS and isinstance(value, str):
        try:
            return text(lang, WORDED_DETAILS[key] + value)
        except MissingText:
            return value
    if key == "at" and isinstance(value, str):
        try:
            return moment(datetime.fromisoformat(value), zone, lang)
        except ValueError:
            return value
    if isinstance(value, bool) or value is None:
        return "—" if value is None else value
    if isinstance(value, int | float):
        return number(value, lang)
    return value
