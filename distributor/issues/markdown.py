"""Read and write an issue as Markdown with YAML front matter: the format staff write by hand.

The layout::

    ---
    title: 杭州工运
    number: 471
    date: 2022-12-27
    weekday: 星期二
    lunar_date: 壬寅年十二月初五
    hotline: (0571)87160990
    slogan: 联结企业和职工 联系发展与稳定
    ---

    ## 中建安装苏杭公司把工会组织建在项目部上
    Kicker: 在基层构建和谐稳定的劳动关系
    Subtitle: …
    Byline: 臧业扬

    夕阳下的工地,放了班的小李……

    ### 聚焦主责主业

    ……

- Front matter: ``title``, ``number``, ``date`` (ISO, YYYY-MM-DD) are required; the masthead
  fields (``hotline``, ``submission``, ``weekday``, ``lunar_date``, ``publisher``, ``permit``,
  ``address``, ``postcode``, ``editor``, ``slogan``) are optional. Every value is read as text,
  so ``postcode: 010017`` keeps its leading zero; other keys are refused.
- ``## Headline`` starts an article. The lines directly below it (no blank line between) may be
  ``Kicker: …``, ``Subtitle: …`` and ``Byline: …``, in any order.
- ``### Heading`` is a section heading inside the article.
- Any other blank-line separated block is a paragraph. Its lines are joined with nothing
  between Chinese characters and a space between Latin ones, so hard-wrapped text is fine.
  Inline Markdown (``**bold**``, links) is kept as literal text.
- A paragraph line starting with ``\\`` loses that backslash: ``\\### 1`` is a paragraph that
  starts with "### 1", ``\\Byline: x`` is a paragraph, not a byline.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass, field
from datetime import date
from typing import Any

import yaml

from distributor.errors import IssueFormatError, Notice
from distributor.issues.document import (
    MASTHEAD_FIELDS,
    MAX_NEWSLETTER_TITLE_CHARS,
    Article,
    Block,
    ImportReport,
    IssueDocument,
    Masthead,
    checked_text,
    issue_number,
)
from distributor.issues.lunar import check_printed_dates

_REQUIRED = ("title", "number", "date")
_KEYS = (*_REQUIRED, *MASTHEAD_FIELDS)
_META = re.compile(r"^(?P<key>kicker|subtitle|byline)\s*[:：]\s*(?P<value>.*)$", re.IGNORECASE)
_HASHES = re.compile(r"^(?P<hashes>#+)\s*(?P<text>.*)$")
_FENCE = "---"
_KEY = re.compile(r"^\s*(?P<key>[^:\s]+)\s*:")


@dataclass
class _Draft:
    """An article while its lines are read; ``meta_open`` while Kicker/Subtitle/Byline may come."""

    article: Article
    meta_open: bool = True
    paragraph: list[str] = field(default_factory=list)


def parse_markdown(text: str, *, source: str = "") -> ImportReport:
    """Front matter → title, number, date, masthead; ``##``/``###``/blocks → articles."""
    lines = text.removeprefix("\ufeff").replace("\r\n", "\n").replace("\r", "\n").split("\n")
    end = _front_matter_end(lines, source)
    values = _front_matter(lines[1:end], source)
    document = IssueDocument(
        title=values["title"],
        number=_number(values["number"], source),
        date=_iso_date(values["date"], source),
        masthead=Masthead(**{key: values.get(key) for key in MASTHEAD_FIELDS}),
        articles=_articles(lines, end + 1, source),
    )
    dates = check_printed_dates(document.date, document.masthead)
    where = Notice("front matter", code="place.front_matter")
    warnings: list[str] = [warning.at(where) for warning in dates]
    return ImportReport(document=document, format="markdown", warnings=warnings)


def to_markdown(doc: IssueDocument) -> str:
    """Write ``doc`` so that :func:`parse_markdown` reads the same document back."""
    front: dict[str, Any] = {"title": doc.title, "number": doc.number, "date": doc.date}
    for key in MASTHEAD_FIELDS:
        if getattr(doc.masthead, key) is not None:
            front[key] = getattr(doc.masthead, key)
    dumped = yaml.safe_dump(front, allow_unicode=True, sort_keys=False, width=1_000_000)
    parts = [f"{_FENCE}\n{dumped}{_FENCE}"]
    for article in doc.articles:
        head = [f"## {article.headline}"]
        for label, value in (
            ("Kicker", article.kicker),
            ("Subtitle", article.subtitle),
            ("Byline", article.byline),
        ):
            if value:
                head.append(f"{label}: {value}")
        parts.append("\n".join(head))
        for block in article.blocks:
            parts.append(f"### {block.text}" if block.type == "heading" else _escape(block.text))
    return "\n\n".join(parts) + "\n"


# --- front matter ---------------------------------------------------------------------------


def _front_matter_end(lines: list[str], source: str) -> int:
    """The index of the line closing the front matter."""
    if lines[0].rstrip() != _FENCE:
        raise IssueFormatError(
            "a Markdown issue starts with front matter: a '---' line, title, number, date, '---'",
            source=source,
            code="issue.md_no_front_matter",
            line=1,
        )
    for index in range(1, len(lines)):
        if lines[index].rstrip() in (_FENCE, "..."):
            return index
    raise IssueFormatError(
        "the front matter opened here is never closed with a '---' line",
        source=source,
        line=1,
        code="issue.md_front_matter_open",
    )


def _front_matter(lines: list[str], source: str) -> dict[str, str]:
    """The front matter's non-empty values, all as text; its first line is line 2 of the file."""
    for number, raw in enumerate(lines, start=2):  # YAML would refuse these with a traceback
        named = _KEY.match(raw)
        what, value = (f"'{named['key']}'", raw[named.end() :].lstrip()) if named else ("", raw)
        checked_text(value, what or "the front matter", source=source, line=number, one_line=False)
    try:
        node = yaml.compose("\n".join(lines), Loader=yaml.BaseLoader)
    except yaml.MarkedYAMLError as error:
        mark = error.problem_mark or error.context_mark
        line = mark.line + 2 if mark else 1
        raise IssueFormatError(
            f"front matter is not valid YAML: {error.problem}",
            source=source,
            line=line,
            code="issue.md_yaml",
            problem=error.problem,
        ) from None
    except yaml.YAMLError as error:  # the reader's: a character YAML does not allow
        raise IssueFormatError(
            f"front matter is not valid YAML: {error}",
            source=source,
            line=1,
            code="issue.md_yaml",
            problem=str(error),
        ) from None
    except RecursionError:
        raise IssueFormatError(
            "front matter is nested too deeply: use 'key: value' lines",
            source=source,
            line=1,
            code="issue.md_nested",
        ) from None
    if not isinstance(node, yaml.MappingNode):
        raise IssueFormatError(
            "front matter must be 'key: value' lines with title, number and date",
            source=source,
            code="issue.md_front_matter_shape",
            line=1,
        )
    values: dict[str, str] = {}
    seen: set[str] = set()
    for key_node, value_node in node.value:
        key, line = key_node.value, key_node.start_mark.line + 2
        if key not in _KEYS:
            raise IssueFormatError(
                f"unknown front matter key '{key}'; the keys are {', '.join(_KEYS)}",
                source=source,
                code="issue.md_unknown_key",
                field=key,
                keys=", ".join(_KEYS),
                line=line,
            )
        if key in seen:
            raise IssueFormatError(
                f"'{key}' is given twice",
                source=source,
                line=line,
                code="issue.md_twice",
                field=key,
            )
        if not isinstance(value_node, yaml.ScalarNode):
            raise IssueFormatError(
                f"'{key}' must be a single value",
                source=source,
                line=line,
                code="issue.md_single",
                field=key,
            )
        seen.add(key)
        value = value_node.value.strip()
        if value:
            limit = MAX_NEWSLETTER_TITLE_CHARS if key == "title" else None
            value_line = value_node.start_mark.line + 2
            values[key] = checked_text(
                value, f"'{key}'", source=source, line=value_line, limit=limit
            )
    for key in _REQUIRED:
        if key not in values:
            raise IssueFormatError(
                f"front matter has no '{key}'",
                source=source,
                line=1,
                code="issue.md_missing",
                field=key,
            )
    return values


def _number(value: str, source: str) -> int:
    if not value.isascii() or not value.isdigit():
        raise IssueFormatError(
            f"'number' must be a whole number, not '{value}'",
            source=source,
            line=1,
            code="issue.md_number",
            value=value,
        )
    return issue_number(value, "'number'", source=source, line=1)


def _iso_date(value: str, source: str) -> date:
    try:
        return date.fromisoformat(value)
    except ValueError:
        raise IssueFormatError(
            f"'date' must be an ISO date (YYYY-MM-DD), not '{value}'",
            source=source,
            line=1,
            code="issue.md_date",
            value=value,
        ) from None


# --- articles -------------------------------------------------------------------------------


def _articles(lines: list[str], start: int, source: str) -> list[Article]:
    drafts: list[_Draft] = []
    for index in range(start, len(lines)):
        line, number = lines[index].strip(), index + 1
        hashes = _HASHES.match(line)
        if hashes and hashes["hashes"] == "##":
            if drafts:
                _end_paragraph(drafts[-1])
            drafts.append(_Draft(Article(headline=_title(hashes, "headline", number, source))))
            continue
        if not drafts:
            if line:
                raise IssueFormatError(
                    "text before the first '## ' headline",
                    source=source,
                    line=number,
                    code="issue.md_text_first",
                )
            continue
        draft = drafts[-1]
        meta = _META.match(line)
        if draft.meta_open and meta:
            _set_meta(draft.article, meta, number, source)
            continue
        draft.meta_open = False
        if hashes:
            _add_heading(draft, hashes, number, source)
        elif line:
            checked_text(line, "the paragraph", source=source, line=number, one_line=False)
            draft.paragraph.append(line.removeprefix("\\"))
        else:
            _end_paragraph(draft)
    if not drafts:
        raise IssueFormatError(
            "no article: each one starts with a '## ' headline",
            source=source,
            line=len(lines),
            code="issue.md_no_article",
        )
    for draft in drafts:
        _end_paragraph(draft)
    return [draft.article for draft in drafts]


def _add_heading(draft: _Draft, match: re.Match[str], number: int, source: str) -> None:
    if match["hashes"] != "###":
        raise IssueFormatError(
            "use '## ' for a headline and '### ' for a section heading",
            source=source,
            line=number,
            code="issue.md_hashes",
        )
    _end_paragraph(draft)
    draft.article.blocks.append(Block("heading", _title(match, "heading", number, source)))


def _title(match: re.Match[str], what: str, number: int, source: str) -> str:
    text = match["text"].strip()
    if not text:
        raise IssueFormatError(
            f"the {what} is empty",
            source=source,
            line=number,
            code="issue.empty_headline" if what == "headline" else "issue.empty_heading",
        )
    return checked_text(text, f"the {what}", source=source, line=number)


def _set_meta(article: Article, match: re.Match[str], number: int, source: str) -> None:
    key = match["key"].lower()
    if getattr(article, key) is not None:
        raise IssueFormatError(
            f"'{match['key']}' is given twice for one article",
            source=source,
            line=number,
            code="issue.md_meta_twice",
            field=match["key"],
        )
    value = checked_text(match["value"].strip(), f"'{match['key']}'", source=source, line=number)
    setattr(article, key, value or None)


def _end_paragraph(draft: _Draft) -> None:
    if draft.paragraph:
        draft.article.blocks.append(Block("paragraph", _join(draft.paragraph)))
        draft.paragraph = []


def _join(lines: list[str]) -> str:
    """Hard-wrapped lines as one paragraph: Chinese needs no space where a line broke."""
    text = lines[0]
    for line in lines[1:]:
        gap = "" if _is_wide(text[-1]) or _is_wide(line[0]) else " "
        text += gap + line
    return text


def _is_wide(char: str) -> bool:
    return unicodedata.east_asian_width(char) in ("W", "F")


def _escape(text: str) -> str:
    """A backslash keeps a paragraph that looks like a heading or a Kicker line a paragraph."""
    return f"\\{text}" if text.startswith(("#", "\\")) or _META.match(text) else text
