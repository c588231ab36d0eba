"""Dates and numbers as each page language writes them (Babel's CLDR data): 2026年12月6日 15:05
and 1,234 in Chinese, Dec 6, 2026 15:05 in English.

Babel is imported on the first use (it takes some 60 ms to load, and its locale data as much
again), so the CLI never waits for it; ``distributor web``'s workers load it with the rest of the
application, behind their listening socket (:func:`preload`, :mod:`distributor.web.warmup`).
"""

from __future__ import annotations

from datetime import date, datetime
from zoneinfo import ZoneInfo

# Page language → Babel's locale.
LOCALES = {"zh-CN": "zh_Hans_CN", "en": "en"}


def moment(value: datetime | None, zone: ZoneInfo, lang: str) -> str:
    """A time to the minute in ``zone``: the date as ``lang`` writes it, then 24-hour time."""
    if value is None:
        return "—"
    from babel.dates import format_skeleton

    locale = LOCALES[lang]
    return (
        f"{format_skeleton('yMMMd', value, tzinfo=zone, locale=locale)} "
        f"{format_skeleton('Hm', value, tzinfo=zone, locale=locale)}"
    )


def day(value: date, lang: str) -> str:
    from babel.dates import format_skeleton

    return format_skeleton("yMMMd", value, locale=LOCALES[lang])


def number(value: float | None, lang: str) -> str:
    """A count or a share with ``lang``'s grouping and decimal signs; None: a dash."""
    if value is None:
        return "—"
    from babel.numbers import format_decimal

    return format_decimal(value, locale=LOCALES[lang])


def preload() -> None:
    """Babel, each language's locale data and catalog, loaded now rather than by a first page."""
    from distributor.locale import translations

    for lang in LOCALES:
        translations(lang)
        moment(datetime(2000, 1, 1), ZoneInfo("UTC"), lang)
        number(1.5, lang)
