"""The segment language: what reads, into which tree, and what is refused with its place."""

from __future__ import annotations

from datetime import datetime
from zoneinfo import ZoneInfo

import pytest

from distributor.segments.language import (
    All,
    Any_,
    Engaged,
    Facet,
    Joined,
    JoinedWithin,
    Not,
    SegmentSyntaxError,
    SoftBounced,
    parse,
)

ZONE = ZoneInfo("Asia/Shanghai")


@pytest.mark.parametrize(
    ("source", "tree"),
    [
        ("attr.department = 工会办", Facet("attr.department", ("工会办",))),
        ("list = members", Facet("list", ("members",))),
        ('tag = "青年 突击队"', Facet("tag", ("青年 突击队",))),
        ("tag = 'it''", None),  # (refused below; here only shapes that read)
        ("channel in (email, both)", Facet("channel", ("email", "both"))),
        ("format != text", Not(Facet("format", ("text",)))),
        (
            "list = a and tag = b or not format = full",
            Any_(
                (
                    All((Facet("list", ("a",)), Facet("tag", ("b",)))),
                    Not(Facet("format", ("full",))),
                )
            ),
        ),
        (
            "list = a AND (tag = b OR tag = c)",
            All((Facet("list", ("a",)), Any_((Facet("tag", ("b",)), Facet("tag", ("c",)))))),
        ),
        ("opened any of last 5 sends", Engaged("open", last_sends=5)),
        (
            "never opened since 2026-10-01",
            Not(Engaged("open", since=datetime(2026, 10, 1, tzinfo=ZONE))),
        ),
        (
            "clicked since 2026-10-01T09:30+00:00",
            Engaged("click", since=datetime.fromisoformat("2026-10-01T09:30+00:00")),
        ),
        ("bounced softly", SoftBounced()),
        ("joined >= 2026-01-01", Joined(">=", datetime(2026, 1, 1, tzinfo=ZONE))),
        ("joined within 30 days", JoinedWithin(30)),
        (r'attr.note = "say \"hi\" \\ bye"', Facet("attr.note", ('say "hi" \\ bye',))),
    ],
)
def test_expressions_read_into_their_tree(source: str, tree: object) -> None:
    if tree is None:
        with pytest.raises(SegmentSyntaxError):
            parse(source, ZONE)
        return
    assert parse(source, ZONE) == tree


@pytest.mark.parametrize(
    ("source", "position", "words"),
    [
        ("", 1, "the expression is empty"),
        ("list = ", 8, "expected a value, found the end"),
        ("list members", 6, "expected =, != or in after 'list'"),
        ("list = a and", 13, "expected a condition"),
        ("list = a tag = b", 10, "expected 'and', 'or' or the end, found 'tag'"),
        ("(list = a or tag = b", 21, "expected ')' to close the '(' at position 1"),
        ("channel = fax", 11, "channel is one of email, wechat, both, not 'fax'"),
        ("format = html", 10, "format is one of full, digest, text"),
        ("opened any of last 0 sends", 20, "the number must be from 1 to 1000"),
        ("opened lately", 8, "expected 'any' or 'since' after opened"),
        ("joined >= yesterday", 11, "expected a date like 2026-10-01"),
        ("joined = 2026-01-01", 8, "expected <, <=, >, >= and a date"),
        ("bounced hard", 9, "expected 'softly' after 'bounced'"),
        ("department = 工会办", 1, "'department' is not a condition"),
        ("attr. = x", 1, "an attribute is attr. followed by its name"),
        ('tag = "青年', 7, 'this " is never closed'),
        ("list = a; drop table subscribers", 11, "found 'drop'"),
        ("list = a = b", 10, "found '='"),
        ("tag in (a b)", 11, "expected ',' or ')' in the list, found 'b'"),
    ],
)
def test_a_mistake_is_refused_with_its_position(source: str, position: int, words: str) -> None:
    with pytest.raises(SegmentSyntaxError) as caught:
        parse(source, ZONE)
    assert caught.value.position + 1 == position
    message = caught.value.message
    assert message.startswith(f"at position {position}: ")
    assert words in message
    # The message shows the expression and a caret under the place.
    _, shown, caret = message.split("\n")
    assert shown == f"  {source}" and caret == "  " + " " * (position - 1) + "^"


def test_depth_and_length_are_bounded() -> None:
    with pytest.raises(SegmentSyntaxError, match="nested deeper than 32"):
        parse("not " * 40 + "list = a", ZONE)
    with pytest.raises(SegmentSyntaxError, match="longer than 2000 characters"):
        parse("list = " + "a" * 2000, ZONE)
