"""Check the calendar words printed beside an issue's date: the weekday and the lunar date.

The date line is typed by hand, so a lunar date copied from last week's issue is a real risk.
These checks only warn: the printed text is kept as it is, staff decide.
"""

from __future__ import annotations

import re
from datetime import date

from lunar_python import Solar

from distributor.errors import Notice
from distributor.issues.document import Masthead

_DIGITS = {"一": 1, "二": 2, "三": 3, "四": 4, "五": 5, "六": 6, "七": 7, "八": 8, "九": 9}
# Lunar months have names of their own besides their numbers.
_MONTH_NAMES = {"正": 1, "冬": 11, "腊": 12}
_WEEKDAYS = "一二三四五六日"
_PRINTED_LUNAR = re.compile(
    r"^(?:农历)?\s*(?:(?P<year>[甲乙丙丁戊己庚辛壬癸][子丑寅卯辰巳午未申酉戌亥])年)?\s*"
    r"(?P<leap>闰)?(?P<month>[正冬腊一二三四五六七八九十]{1,3})月\s*(?P<day>[初十廿卅二三一四五六七八九]{2,3})$"
)
_PRINTED_WEEKDAY = re.compile(r"^(?:星期|周|礼拜)(?P<day>[一二三四五六日天])$")


def check_lunar_date(gregorian: date, printed: str) -> Notice | None:
    """A warning when ``printed`` ("农历壬寅年十二月初五") is not ``gregorian``'s lunar date."""
    match = _PRINTED_LUNAR.match(printed.strip())
    month = _month_number(match["month"]) if match else None
    day = _day_number(match["day"]) if match else None
    if match is None or month is None or day is None:
        return Notice(
            f"lunar date '{printed}' is not written like 壬寅年十二月初五; it was not checked",
            code="issue.lunar_unreadable",
            printed=printed,
        )
    lunar = Solar.fromYmd(gregorian.year, gregorian.month, gregorian.day).getLunar()
    actual = f"{lunar.getYearInGanZhi()}年{lunar.getMonthInChinese()}月{lunar.getDayInChinese()}"
    # lunar_python marks a leap month with a negative number.
    same = (
        (match["year"] is None or match["year"] == lunar.getYearInGanZhi())
        and (-month if match["leap"] else month) == lunar.getMonth()
        and day == lunar.getDay()
    )
    if same:
        return None
    return Notice(
        f"lunar date '{printed}' does not match {gregorian.isoformat()}, which is {actual}",
        code="issue.lunar_mismatch",
        printed=printed,
        date=gregorian.isoformat(),
        actual=actual,
    )


def check_weekday(gregorian: date, printed: str) -> Notice | None:
    """A warning when ``printed`` (e.g. "星期二") is not the weekday of ``gregorian``."""
    match = _PRINTED_WEEKDAY.match(printed.strip())
    if match is None:
        return Notice(
            f"weekday '{printed}' is not written like 星期二; it was not checked",
            code="issue.weekday_unreadable",
            printed=printed,
        )
    day = "日" if match["day"] == "天" else match["day"]
    actual = _WEEKDAYS[gregorian.weekday()]
    if day == actual:
        return None
    return Notice(
        f"weekday '{printed}' does not match {gregorian.isoformat()}, which is 星期{actual}",
        code="issue.weekday_mismatch",
        printed=printed,
        date=gregorian.isoformat(),
        actual=f"星期{actual}",
    )


def check_printed_dates(issue_date: date, masthead: Masthead) -> list[Notice]:
    """The warnings for a masthead's weekday and lunar date, whichever are printed."""
    warnings = []
    if masthead.weekday is not None:
        warnings.append(check_weekday(issue_date, masthead.weekday))
    if masthead.lunar_date is not None:
        warnings.append(check_lunar_date(issue_date, masthead.lunar_date))
    return [warning for warning in warnings if warning is not None]


def _month_number(text: str) -> int | None:
    if text in _MONTH_NAMES:
        return _MONTH_NAMES[text]
    number = _chinese_number(text)
    return number if number is not None and 1 <= number <= 12 else None


def _day_number(text: str) -> int | None:
    """初一…初十, 十一…二十 (廿), 廿一/二十一…三十 (卅)."""
    if text.startswith("初"):
        number = _chinese_number(text[1:])
        return number if number is not None and number <= 10 else None
    number = _chinese_number(text.replace("廿", "二十").replace("卅", "三十"))
    return number if number is not None and 11 <= number <= 30 else None


def _chinese_number(text: str) -> int | None:
    """一 … 九十九 written with 十; None for anything else."""
    if text in _DIGITS:
        return _DIGITS[text]
    tens, ten, units = text.partition("十")
    if not ten or (tens and tens not in _DIGITS) or (units and units not in _DIGITS):
        return None
    return _DIGITS.get(tens, 1) * 10 + _DIGITS.get(units, 0)
