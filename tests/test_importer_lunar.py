"""The checks of the printed lunar date and weekday against the issue's date."""

from __future__ import annotations

from datetime import date

import pytest

from distributor.issues.document import Masthead
from distributor.issues.lunar import check_lunar_date, check_printed_dates, check_weekday


@pytest.mark.parametrize(
    ("gregorian", "printed"),
    [
        (date(2022, 12, 27), "壬寅年十二月初五"),
        (date(2022, 12, 27), "农历壬寅年十二月初五"),
        (date(2022, 12, 27), "壬寅年腊月初五"),
        (date(2022, 12, 27), "十二月初五"),
        (date(2023, 1, 21), "壬寅年腊月三十"),  # the year changes at the lunar new year
        (date(2023, 1, 22), "癸卯年正月初一"),
        (date(2023, 1, 22), "癸卯年一月初一"),
        (date(2023, 2, 10), "癸卯年正月二十"),
        (date(2023, 12, 20), "癸卯年冬月初八"),
        (date(2023, 12, 20), "癸卯年十一月初八"),
        (date(2023, 4, 4), "癸卯年闰二月十四"),
        (date(2023, 5, 16), "癸卯年三月廿七"),
        (date(2023, 5, 16), "癸卯年三月二十七"),
        (date(2023, 5, 16), " 农历 癸卯年三月廿七 "),
    ],
)
def test_matching_lunar_dates(gregorian: date, printed: str) -> None:
    assert check_lunar_date(gregorian, printed) is None


@pytest.mark.parametrize(
    ("gregorian", "printed", "actual"),
    [
        (date(2022, 12, 27), "壬寅年十二月初六", "壬寅年腊月初五"),
        (date(2022, 12, 27), "癸卯年十二月初五", "壬寅年腊月初五"),
        (date(2022, 12, 27), "壬寅年十一月初五", "壬寅年腊月初五"),
        (date(2023, 4, 4), "癸卯年二月十四", "癸卯年闰二月十四"),  # the leap month is another
        (date(2023, 3, 7), "癸卯年闰二月十六", "癸卯年二月十六"),
    ],
)
def test_mismatching_lunar_dates(gregorian: date, printed: str, actual: str) -> None:
    assert check_lunar_date(gregorian, printed) == (
        f"lunar date '{printed}' does not match {gregorian.isoformat()}, which is {actual}"
    )


@pytest.mark.parametrize(
    "printed", ["壬寅年十三月初五", "壬寅年十二月初十一", "腊八", "2022-12-27"]
)
def test_unreadable_lunar_date(printed: str) -> None:
    assert check_lunar_date(date(2022, 12, 27), printed) == (
        f"lunar date '{printed}' is not written like 壬寅年十二月初五; it was not checked"
    )


def test_weekday() -> None:
    assert check_weekday(date(2022, 12, 27), "星期二") is None
    assert check_weekday(date(2023, 1, 22), "星期日") is None
    assert check_weekday(date(2023, 1, 22), "星期天") is None
    assert check_weekday(date(2023, 1, 22), "周日") is None
    assert check_weekday(date(2022, 12, 27), "星期五") == (
        "weekday '星期五' does not match 2022-12-27, which is 星期二"
    )
    assert check_weekday(date(2022, 12, 27), "Tuesday") == (
        "weekday 'Tuesday' is not written like 星期二; it was not checked"
    )


def test_printed_dates_checks_only_what_is_printed() -> None:
    assert check_printed_dates(date(2022, 12, 27), Masthead()) == []
    wrong = Masthead(weekday="星期一", lunar_date="壬寅年十二月初五")
    assert check_printed_dates(date(2022, 12, 27), wrong) == [
        "weekday '星期一' does not match 2022-12-27, which is 星期二"
    ]
