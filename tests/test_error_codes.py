"""Every service error a page or the API may show carries a code, and its catalog entries name
only values the error gives: read from the source (no import of the modules, no database), so a
new ``raise DistributorError("…")`` without a code, or a text naming a value the raise lacks,
fails here rather than as English (or a KeyError) in a Chinese page."""

from __future__ import annotations

import ast
import inspect
import pickle
import string
from collections.abc import Iterator
from dataclasses import dataclass
from functools import cache
from zoneinfo import ZoneInfo

import pytest

import distributor.errors
from distributor.channels.wechat.errcodes import ERRCODE_TEXTS, ERRCODES, describe
from distributor.errors import (
    DistributorError,
    IssueFormatError,
    Notice,
    WechatError,
    WechatUnavailable,
)
from distributor.issues.importer import read_issue
from distributor.locale import CATALOGS, ERROR_PREFIX, text
from distributor.locale.__main__ import read_catalog
from distributor.segments.language import SegmentSyntaxError, parse
from distributor.web.i18n import noticed, worded
from tests.conftest import ROOT

SOURCES = ("distributor", "subscribers")

# Errors no page and no API answer shows; each says why, and their English is read in a terminal
# or a log. A new kind of error is not added here without the same reason.
EXEMPT_CLASSES = {
    # Settings are read when a process starts: the CLI prints the problem, and the worker or the
    # web server refuses to start with it in its log, before any page exists.
    "ConfigurationError": "config at start",
    # Answered in plain text to WeChat's servers (the callback URL): no person reads it.
    "InvalidWechatCallback": "WeChat's servers only",
    # `distributor backup` / `restore` and the development servers are CLI commands.
    "BackupRefused": "CLI only",
    "MissingProgram": "CLI only",
}
EXEMPT_FOLDERS = {
    "distributor/cli/": "CLI only: the CLI prints the English message and exits",
}
# Keywords of an error's constructor that are not values of its text (and the classes that
# take them: their subclasses do too).
NOT_PARAMS = {
    "IssueFormatError": {"source", "line", "place"},
    "RequestRefused": {"status"},
    "WechatRateLimited": {"retry_after"},
}

RESERVED = {"lang", "key"}  # text(lang, key, **values) takes these names itself


@dataclass(frozen=True)
class Made:
    """One construction of an error (or a Notice) in the source."""

    where: str
    kind: str
    codes: tuple[str, ...]  # empty: no code given
    params: frozenset[str] | None  # None: some are given as **values, unknown here


def _name(node: ast.expr) -> str | None:
    if isinstance(node, ast.Name):
        return node.id
    return node.attr if isinstance(node, ast.Attribute) else None


@cache
def _trees() -> tuple[tuple[str, ast.Module], ...]:
    files = sorted(path for folder in SOURCES for path in (ROOT / folder).rglob("*.py"))
    texts = ((path, path.read_text()) for path in files)
    return tuple(
        (str(path.relative_to(ROOT)), ast.parse(text, str(path)))
        for path, text in texts
        if "errors" in text or "SyntaxError" in text  # a module that makes errors imports them
    )


@cache
def _error_classes() -> frozenset[str]:
    """The classes of distributor.errors and those that derive from them anywhere in the
    source (SegmentSyntaxError…)."""
    found = {
        name
        for name, kind in inspect.getmembers(distributor.errors, inspect.isclass)
        if issubclass(kind, DistributorError)
    }
    grew = True
    while grew:
        grew = False
        for _path, tree in _trees():
            for node in ast.walk(tree):
                if (
                    isinstance(node, ast.ClassDef)
                    and node.name not in found
                    and any(_name(base) in found for base in node.bases)
                ):
                    found.add(node.name)
                    grew = True
    return frozenset(found)


def _not_params(kind: str) -> set[str]:
    known = getattr(distributor.errors, kind, None)
    return {
        name
        for base, names in NOT_PARAMS.items()
        if inspect.isclass(known) and issubclass(known, getattr(distributor.errors, base))
        for name in names
    }


@cache
def _made() -> tuple[Made, ...]:
    return tuple(_each_made())


def _each_made() -> Iterator[Made]:
    kinds = _error_classes() | {"Notice"}
    for path, tree in _trees():
        for node in ast.walk(tree):
            if not isinstance(node, ast.Call):
                continue
            kind = _name(node.func)
            if kind not in kinds:
                continue
            code = next((k.value for k in node.keywords if k.arg == "code"), None)
            spread = any(k.arg is None for k in node.keywords)
            constants = () if code is None else ast.walk(code)
            codes = tuple(
                each.value
                for each in constants
                if isinstance(each, ast.Constant) and isinstance(each.value, str)
            )
            if code is not None and not codes:  # a code passed on (code=code): checked where made
                continue
            if spread and not codes:
                continue  # an error built from another's code and values
            given = {k.arg for k in node.keywords if k.arg is not None} - {"code"}
            names = frozenset(given - _not_params(kind))
            yield Made(f"{path}:{node.lineno}", kind, codes, None if spread else names)


def _exempt(made: Made) -> bool:
    path = made.where.split(":")[0]
    return made.kind in EXEMPT_CLASSES or any(path.startswith(f) for f in EXEMPT_FOLDERS)


def test_every_error_a_page_may_show_carries_a_code() -> None:
    uncoded = [
        f"{made.where}: {made.kind}"
        for made in _made()
        if not made.codes and made.kind != "Notice" and not _exempt(made)
    ]
    assert uncoded == [], "give each a code= and an err.<code> entry in both catalogs"


def test_each_code_s_texts_name_only_values_its_error_gives() -> None:
    """A text's ``{placeholder}`` the raise does not give would fail as the page is made."""
    placeholders = {
        lang: {
            str(message.id): {
                field for _, field, _, _ in string.Formatter().parse(str(message.string)) if field
            }
            for message in read_catalog(lang)
            if message.id
        }
        for lang in CATALOGS
    }
    missing = []
    for made in _made():
        if made.params is None:
            continue
        if made.params & RESERVED:
            missing.append(f"{made.where}: {sorted(made.params & RESERVED)} is taken by text()")
        for code in made.codes:
            for lang, texts in placeholders.items():
                wanted = texts.get(ERROR_PREFIX + code, set())
                if wanted - made.params:
                    missing.append(f"{made.where} {code} ({lang}): {sorted(wanted - made.params)}")
    assert missing == []


def test_errors_once_uncoded_read_wholly_in_chinese() -> None:
    """A Markdown issue's front matter, a JSON issue's field, a segment's syntax and a WeChat
    refusal: each worded in zh-CN without the English message behind it."""
    with pytest.raises(IssueFormatError) as markdown:
        read_issue(
            "---\ntitle: 会员快讯\nnumber: 四\ndate: 2026-12-01\n---\n".encode(), source="4.md"
        )
    with pytest.raises(IssueFormatError) as json_issue:
        read_issue(b'{"title": "T", "number": 4, "date": "2026-12-01"}', source="4.json")
    with pytest.raises(SegmentSyntaxError) as segment:
        parse("list = (", ZoneInfo("Asia/Shanghai"))
    refused = WechatUnavailable("x", api="draft/add", code="wechat.http_status", status=502)
    shown = [worded(error, "zh-CN") for error in (markdown.value, json_issue.value, segment.value)]
    assert shown == [
        "4.md，第 1 行：期号（number）应是整数，而不是“四”",
        "4.json：缺少字段 articles",
        "条件表达式第 8 个字符处有误：这里应是一个值，而不是 '('",
    ]
    assert worded(refused, "zh-CN") == "微信对 draft/add 返回了 HTTP 502：稍后会自动重试"


def test_every_wechat_errcode_is_worded_in_both_languages() -> None:
    for errcode in ERRCODES:
        for lang in CATALOGS:
            assert text(lang, f"{ERRCODE_TEXTS}{errcode}"), (errcode, lang)
    refused = WechatError(
        "x", errcode=45028, api="message/mass/sendall", code="wechat.refused",
        detail=describe(45028, "quota", "message/mass/sendall"),
    )  # fmt: skip
    assert worded(refused, "zh-CN").startswith(
        "微信拒绝了请求 message/mass/sendall（错误码 45028）：公众号的群发次数已用完"
    )
    unknown = describe(99999, "odd", "draft/add")
    assert "odd" in noticed(unknown, "zh-CN") and "不认识" in noticed(unknown, "zh-CN")


def test_a_notice_keeps_its_code_and_values_across_processes() -> None:
    notice = Notice("line 3: x", code="issue.at", where="line 3", notice=Notice("x", code="a"))
    copy = pickle.loads(pickle.dumps(notice))
    assert (copy, copy.code, copy.params["notice"].code) == ("line 3: x", "issue.at", "a")
