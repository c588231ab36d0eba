"""The database-free half of subscriber files: addresses, encodings, columns, rows, cells."""

from __future__ import annotations

from pathlib import Path

import pytest

from distributor.errors import ImportFailed, InvalidAddress, RowError
from distributor.vocabulary import Variant
from subscribers.address import normalise_address
from subscribers.csvfile import (
    EXPORT_COLUMNS,
    LineSplitter,
    SubscriberRow,
    detect_encoding,
    escape_cell,
    format_memberships,
    join_name,
    map_columns,
    parse_memberships,
    parse_row,
    split_line,
    unescape_cell,
)
from subscribers.models import ChannelPreference, SubscriberStatus, SubscriptionStatus


@pytest.mark.parametrize(
    ("raw", "email", "key"),
    [
        ("Wang.Yu@QQ.COM", "Wang.Yu@qq.com", "wang.yu@qq.com"),
        ("  li@163.com ", "li@163.com", "li@163.com"),
        ("ｗａｎｇ＠ｑｑ．ｃｏｍ", "wang@qq.com", "wang@qq.com"),  # typed with a Chinese IME
        ("zhang@例子.中国", "zhang@xn--fsqu00a.xn--fiqs8s", "zhang@xn--fsqu00a.xn--fiqs8s"),
        ("a+tag@Sub.Example.org", "a+tag@sub.example.org", "a+tag@sub.example.org"),
    ],
)
def test_addresses_are_normalised(raw: str, email: str, key: str) -> None:
    address = normalise_address(raw)
    assert (address.email, address.key) == (email, key)


@pytest.mark.parametrize(
    ("raw", "reason"),
    [
        ("", "empty"),
        ("wang.qq.com", "has no @"),
        ("@qq.com", "nothing before the @"),
        ("wang@", "no domain after the @"),
        ("wang@localhost", "has no dot"),
        ("wa ng@qq.com", "not allowed before the @"),
        ("wang@qq..com", "not a valid domain name"),
        ("x" * 65 + "@qq.com", "over 64 characters"),
        ("x" * 64 + "@" + ".".join(["a" * 63] * 3) + ".com", "longer than 254"),
    ],
)
def test_invalid_addresses_say_why(raw: str, reason: str) -> None:
    with pytest.raises(InvalidAddress, match=reason):
        normalise_address(raw)


def test_encoding_is_detected(tmp_path: Path) -> None:
    text = "email,name\nwang@qq.com,王钰哲\n"
    cases = {"utf-8": "utf-8", "utf-8-sig": "utf-8-sig", "gb18030": "gb18030"}
    for written, detected in cases.items():
        path = tmp_path / f"{written}.csv"
        path.write_bytes(text.encode(written))
        assert detect_encoding(path) == detected
    utf16 = tmp_path / "utf16.csv"
    utf16.write_bytes(text.encode("utf-16"))
    with pytest.raises(ImportFailed, match="UTF-16"):
        detect_encoding(utf16)


def test_columns_of_our_listmonk_and_mailchimp_exports_are_recognised() -> None:
    assert map_columns(EXPORT_COLUMNS).columns == set(EXPORT_COLUMNS)
    listmonk = map_columns(
        ["uuid", "email", "name", "attributes", "status", "created_at", "updated_at"]
    )
    assert listmonk.attribute_keys == ("uuid", "updated_at")
    mailchimp = map_columns(
        ["Email Address", "First Name", "Last Name", "MEMBER_RATING", "TAGS", "UNSUB_TIME"]
    )
    assert mailchimp.fields[:3] == ("email", "first_name", "last_name")
    assert mailchimp.attribute_keys == ("MEMBER_RATING",)
    assert mailchimp.columns == {"email", "name", "tags", "status", "attributes"}


def test_a_file_without_an_email_column_or_with_two_cannot_be_read() -> None:
    with pytest.raises(ImportFailed, match="no email column"):
        map_columns(["name", "phone"])
    with pytest.raises(ImportFailed, match="both give email"):
        map_columns(["email", "Email Address"])


def row(header: str, line: str) -> SubscriberRow:
    return parse_row(split_line(line), map_columns(split_line(header)), 2)


def test_a_row_becomes_a_subscriber() -> None:
    parsed = parse_row(
        split_line(
            "Wang@QQ.com,王钰哲,active,会员快讯|青年:unsubscribed,both,digest,o123,"
            '"{""城市"": ""杭州""}",2024-01-02T03:04:05+08:00'
        ),
        map_columns(EXPORT_COLUMNS),
        7,
    )
    assert parsed.line == 7
    assert (parsed.email, parsed.email_key, parsed.name) == ("Wang@qq.com", "wang@qq.com", "王钰哲")
    assert parsed.lists == (
        ("会员快讯", SubscriptionStatus.ACTIVE),
        ("青年", SubscriptionStatus.UNSUBSCRIBED),
    )
    assert (parsed.channel, parsed.format, parsed.openid) == (
        ChannelPreference.BOTH,
        Variant.DIGEST,
        "o123",
    )
    assert parsed.attributes == {"城市": "杭州"}
    assert parsed.created_at is not None and parsed.created_at.utcoffset() is not None


def test_foreign_statuses_and_mailchimp_columns_are_understood() -> None:
    assert row("email,status", "a@b.cn,blocklisted").status is SubscriberStatus.UNSUBSCRIBED
    assert row("email,status", "a@b.cn,enabled").status is SubscriberStatus.ACTIVE
    assert row("email,status", "a@b.cn,cleaned").status is SubscriberStatus.BOUNCED
    assert row("Email Address,UNSUB_TIME", "a@b.cn,2023-05-01 10:00:00").status is (
        SubscriberStatus.UNSUBSCRIBED
    )
    assert row("Email Address,First Name,Last Name", "a@b.cn,钰哲,王").name == "王钰哲"
    assert row("Email Address,TAGS", 'a@b.cn,"""青年"",""女工"""').tags == ("青年", "女工")


@pytest.mark.parametrize(
    ("header", "line", "reason"),
    [
        ("email,name", "bad@,x", "no domain after the @"),
        ("email,name", "a@b.cn,x,surplus", "a value beyond the last column"),
        ("email,name", "a@b.cn," + "名" * 201, "name is longer than 200 characters"),
        ("email,openid", "a@b.cn," + "o" * 65, "openid is longer than 64"),
        ("email,status", "a@b.cn,sleeping", "status 'sleeping' is not one of"),
        ("email,channel", "a@b.cn,fax", "channel 'fax' is not one of"),
        ("email,attributes", "a@b.cn,{oops", "attributes are not JSON"),
        ("email,attributes", "a@b.cn,[1]", "must be a JSON object"),
        ("email,created_at", "a@b.cn,yesterday", "not an ISO 8601"),
        ("email,lists", "a@b.cn,会员快讯:sleeping", "'sleeping' is not one of"),
    ],
)
def test_bad_rows_say_why(header: str, line: str, reason: str) -> None:
    with pytest.raises(RowError, match=reason):
        row(header, line)


def test_broken_quoting_is_caught_on_its_own_line() -> None:
    with pytest.raises(RowError, match="broken quoting"):
        split_line('a@b.cn,"unclosed\n')
    assert split_line('a@b.cn,"Wang, Yu"\r\n') == ["a@b.cn", "Wang, Yu"]


def test_one_splitter_reads_each_line_alone_whatever_the_line_before() -> None:
    split = LineSplitter()
    for broken in ('a@b.cn,"unclosed\n', 'a@b.cn,"Wang" Yu\n'):
        with pytest.raises(RowError, match="broken quoting"):
            split(broken)
        assert split('c@d.cn,"Li, Na",x\n') == ["c@d.cn", "Li, Na", "x"]
    assert split("\n") == []
    assert split('e@f.cn,""""\n') == ["e@f.cn", '"']


def test_trailing_empty_cells_are_harmless() -> None:
    assert row("email,name", "a@b.cn,王,,").name == "王"


@pytest.mark.parametrize(
    "value", ["=1+1", "+86 571", "-5", "@SUM(A1)", "'quoted", "'=x", "plain", "\tx", ""]
)
def test_cells_are_escaped_for_spreadsheets_and_back_exactly(value: str) -> None:
    escaped = escape_cell(value)
    assert not escaped.startswith(("=", "+", "-", "@", "\t"))
    assert unescape_cell(escaped) == value


def test_memberships_round_trip() -> None:
    memberships = (("会员快讯", SubscriptionStatus.ACTIVE), ("青年", SubscriptionStatus.PENDING))
    cell = format_memberships(memberships)
    assert cell == "会员快讯|青年:pending"
    assert parse_memberships(cell) == memberships


def test_names_join_in_the_order_of_their_script() -> None:
    assert join_name("钰哲", "王") == "王钰哲"
    assert join_name("Ada", "Lovelace") == "Ada Lovelace"
    assert join_name("", "王") == "王"
