"""The catalogs: every text the code and templates use exists in both languages, translated, and
compiled; services' errors, audit entries and audiences read as sentences in the page language."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from click.testing import CliRunner

from distributor.errors import DistributorError, IssueFormatError, NotFound
from distributor.locale import CATALOGS, MissingText, text
from distributor.locale.__main__ import absorb, main, po_path, problems, read_catalog
from distributor.staff.models import AuditEntry, Role
from distributor.vocabulary import DeliveryState, SendState, Variant
from distributor.web.formats import moment, number
from distributor.web.i18n import worded, words
from distributor.web.wording import audience_words, audit_sentence
from subscribers.models import SubscriberStatus, SubscriptionStatus
from subscribers.query import Audience
from tests.conftest import ROOT

ZONE = ZoneInfo("Asia/Shanghai")


def test_every_used_text_is_in_every_catalog_translated_compiled_and_none_is_unused() -> None:
    assert problems(ROOT) == []


@pytest.mark.parametrize("lang", list(CATALOGS))
@pytest.mark.parametrize(
    ("prefix", "values"),
    [
        ("state.", SendState),
        ("delivery.", DeliveryState),
        ("variant.", [*Variant, "preference"]),
        ("role.", Role),
        ("subscriber.", SubscriberStatus),
        ("subscription.", SubscriptionStatus),
    ],
)
def test_every_state_variant_role_and_status_has_words(
    lang: str, prefix: str, values: list[str]
) -> None:
    for value in values:
        assert text(lang, prefix + str(value))


def test_the_chinese_words_for_states_are_chinese() -> None:
    assert [text("zh-CN", f"state.{s}") for s in ("running", "paused", "scheduled")] == [
        "发送中",
        "已暂停",
        "已排期",
    ]
    assert text("zh-CN", "variant.preference") == "按读者选择"
    assert text("zh-CN", "subscriber.active") == "有效"


def test_a_text_no_catalog_has_is_an_error_not_its_id() -> None:
    with pytest.raises(MissingText):
        text("zh-CN", "staff.no_such_text")


def test_a_service_error_is_worded_in_the_page_language_and_keeps_its_english() -> None:
    error = NotFound("there is no send with ID 7", code="send.missing", send=7)
    assert error.message == "there is no send with ID 7"
    assert worded(error, "zh-CN") == "没有编号为 #7 的发送。"
    assert worded(error, "en") == "There is no send #7."


def test_states_and_nested_errors_inside_an_error_are_worded_too() -> None:
    state = DistributorError("…", code="send.not_now", send=3, state=SendState.RUNNING)
    assert worded(state, "zh-CN") == "发送 #3 当前为「发送中」：现在不能执行这个操作。"
    header = DistributorError(
        "…", code="csv.header", file="a.csv", problem=DistributorError("…", code="csv.quoting")
    )
    assert worded(header, "zh-CN") == "a.csv 第 1 行（表头）：引号不配对。"


def test_an_issue_files_problem_is_worded_after_its_file_and_place() -> None:
    error = IssueFormatError(
        "the headline '标题' is not followed by any text",
        source="a.txt",
        line=4,
        code="issue.headline_alone",
        headline="标题",
    )
    assert error.message == "a.txt, line 4: the headline '标题' is not followed by any text"
    assert worded(error, "zh-CN") == "a.txt，第 4 行：标题“标题”后面没有正文"
    assert worded(error, "en") == "a.txt, line 4: the headline “标题” is not followed by any text"


def test_an_error_without_a_code_says_so_in_chinese_and_gives_the_english() -> None:
    error = DistributorError("something odd")
    assert worded(error, "zh-CN") == "操作没有完成。系统的说明（英文）：something odd"
    assert worded(error, "en") == "something odd"
    assert worded(ValueError("could not convert"), "zh-CN").startswith("表单里有一个值无法识别")


def test_a_report_line_is_worded_from_its_code() -> None:
    assert (
        words("zh-CN", "csv.repeat", {"address": "a@qq.com", "first": 3}, "english")
        == "a@qq.com 与第 3 行重复：以第一次出现的为准。"
    )


def test_an_audit_entry_reads_as_a_sentence() -> None:
    entry = AuditEntry(
        actor="editor",
        action="send.create",
        detail={
            "issue": 4,
            "lists": ["会员全体", "职工"],
            "tags": "",
            "variant": "preference",
            "state": "scheduled",
            "readers": 3000,
        },
    )
    assert audit_sentence(entry, "zh-CN", ZONE) == (
        "新建发送：期刊 #4，会员全体、职工，版本「按读者选择」，3,000 位读者，状态「已排期」"
    )
    assert audit_sentence(entry, "en", ZONE) == (
        "created the send: issue #4, 会员全体, 职工, variant Each reader's choice, 3,000 readers, "
        "scheduled"
    )


def test_an_audit_entry_of_an_unknown_action_or_with_missing_details_still_reads() -> None:
    assert audit_sentence(AuditEntry(action="send.teleport", detail={}), "zh-CN", ZONE) == (
        "操作 send.teleport"
    )
    assert audit_sentence(AuditEntry(action="send.cancel", detail={}), "zh-CN", ZONE) == (
        "取消了发送（— 封邮件不再发送）"
    )
    at = datetime(2026, 12, 6, 1, 30, tzinfo=UTC).isoformat()
    assert audit_sentence(
        AuditEntry(action="send.schedule", detail={"at": at}), "zh-CN", ZONE
    ) == ("把发送排期到 2026年12月6日 09:30")


def test_an_audience_reads_in_the_page_language() -> None:
    audience = Audience(lists=("会员全体",), tags=("工会", "青年"))
    assert audience_words(audience, "zh-CN") == "列表 会员全体；标签 工会 或 青年"
    assert audience_words(audience, "en") == "list 会员全体; tagged 工会 or 青年"


def test_dates_and_numbers_are_written_as_each_language_writes_them() -> None:
    at = datetime(2026, 12, 6, 7, 5, tzinfo=UTC)
    assert moment(at, ZONE, "zh-CN") == "2026年12月6日 15:05"
    assert moment(at, ZONE, "en") == "Dec 6, 2026 15:05"
    assert moment(None, ZONE, "en") == "—"
    assert number(1234567, "zh-CN") == "1,234,567"
    assert number(98.5, "en") == "98.5"


def test_absorb_adds_a_branchs_new_dict_texts_and_keeps_the_catalogs_wording(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import shutil

    from distributor import locale

    copy = tmp_path / "locale"
    shutil.copytree(locale.LOCALE_DIR, copy)
    monkeypatch.setattr("distributor.locale.__main__.LOCALE_DIR", copy)
    table = tmp_path / "texts.py"
    table.write_text(
        "from distributor.web.not_there import X\n", encoding="utf-8"
    )  # a branch's file that no longer imports: nothing before it, nothing taken
    assert absorb([table], replace=False) == 0
    table.write_text(
        'STAFF_TEXTS = {"zh-CN": {"staff.new": "新的", "staff.save": "存"}, '
        '"en": {"staff.new": "New", "staff.save": "Save"}}\n'
        "from distributor.web.not_there import X\n",
        encoding="utf-8",
    )
    assert absorb([table], replace=False) == 2
    zh = read_catalog("zh-CN")
    assert zh.get("staff.new").string == "新的"
    assert zh.get("staff.save").string == "保存"  # the catalog's wording stays
    assert absorb([table], replace=True) == 1  # …unless asked (the English is the same)
    assert read_catalog("zh-CN").get("staff.save").string == "存"
    assert po_path("zh-CN").with_suffix(".mo").exists()


def test_the_check_finds_a_text_no_catalog_has_and_texts_nothing_uses(tmp_path: Path) -> None:
    (tmp_path / "distributor").mkdir()
    (tmp_path / "distributor" / "page.py").write_text(
        'title = t("staff.nope")\nerror = DistributorError("…", code="send.nowhere")\n',
        encoding="utf-8",
    )
    found = problems(tmp_path)
    assert "zh-CN: no text for staff.nope" in found
    assert "en: no text for err.send.nowhere" in found
    assert "zh-CN: staff.save is used nowhere" in found


def test_the_check_command_says_the_catalogs_are_complete() -> None:
    result = CliRunner().invoke(main, ["check"])
    assert result.exit_code == 0, result.output
    assert "catalogs complete: zh-CN, en" in result.output
