"""Files the importer must refuse: each with one line that names the problem and the place."""

from __future__ import annotations

import codecs
import json
from pathlib import Path
from typing import Any

import pytest

from distributor.errors import ImportFailed, IssueFormatError
from distributor.issues.importer import MAX_ISSUE_BYTES, read_issue, read_issue_file
from distributor.issues.plaintext import parse_plaintext


@pytest.fixture
def sample_text(sample_issue_path: Path) -> str:
    return sample_issue_path.read_text(encoding="utf-8")


def refused(data: bytes, source: str = "issue.txt", fmt: str = "auto") -> str:
    """The message of the error read_issue raises; it must be a single line."""
    with pytest.raises(ImportFailed) as caught:
        read_issue(data, source=source, format=fmt)
    message = str(caught.value)
    assert "\n" not in message
    assert message == caught.value.message
    return message


# --- bytes and encoding ---------------------------------------------------------------------


@pytest.mark.parametrize("data", [b"", b"\n\r\n  \n", codecs.BOM_UTF8, codecs.BOM_UTF8 + b"\n"])
def test_empty_file(data: bytes) -> None:
    assert refused(data) == "issue.txt: the file is empty"


def test_binary_file_with_nul_bytes() -> None:
    png = b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR\x00\x00\x01\x00"
    message = refused(png, source="photo.txt")
    assert message == (
        "photo.txt, line 3: the file is binary (it contains NUL bytes), not a text export"
    )


def test_binary_file_of_control_characters() -> None:
    data = bytes(range(1, 9)) * 200 + "杭州工运".encode()
    assert (
        refused(data)
        == "issue.txt: the file is binary (mostly control characters), not a text export"
    )


def test_gb18030_file_is_read_and_says_so(sample_text: str) -> None:
    """What a Windows office exports: the same issue as the UTF-8 file, named GB18030."""
    report = read_issue(sample_text.encode("gb18030"), source="hzgy-471.txt")
    assert report.encoding == "GB18030"
    assert report.document == read_issue(sample_text.encode(), source="x.txt").document
    assert read_issue(sample_text.encode(), source="x.txt").encoding == "UTF-8"


def test_a_file_mixing_utf8_and_gb18030_is_refused(sample_text: str) -> None:
    """Read either way some lines would be mojibake: never accepted silently."""
    lines = sample_text.encode().split(b"\n")
    lines[40] = lines[40].decode().encode("gb18030")
    assert refused(b"\n".join(lines)) == (
        "issue.txt, line 41: the file mixes encodings (line 3 is UTF-8, line 41 is GB18030/GBK); "
        "save the whole file as UTF-8"
    )
    gb_first = sample_text.encode("gb18030").split(b"\n")
    gb_first[40] = sample_text.split("\n")[40].encode()
    assert refused(b"\n".join(gb_first)) == (
        "issue.txt, line 3: the file mixes encodings (line 41 is UTF-8, line 3 is GB18030/GBK); "
        "save the whole file as UTF-8"
    )


def test_a_bad_byte_later_in_the_file(sample_text: str) -> None:
    lines = sample_text.split("\n")
    lines[40] = lines[40][:10] + "\udcff" + lines[40][10:]
    data = "\n".join(lines).encode("utf-8", errors="surrogateescape")
    assert refused(data) == (
        "issue.txt, line 41: neither UTF-8 nor GB18030/GBK text; save the file as UTF-8"
    )


@pytest.mark.parametrize("encoding", ["cp1252", "shift_jis", "big5"])
def test_other_encodings_are_refused(encoding: str) -> None:
    text = {
        "cp1252": "Zeitung\n\nÜber die Straße geht’s zum Café — à bientôt\n",
        "shift_jis": "新聞\n\nこんにちは、ありがとうございます。よろしくお願いします。\n",
        "big5": "杭州工運\n\n職工們歡迎這個消息。\n",
    }[encoding]
    assert refused(text.encode(encoding)).startswith("issue.txt, line ")


def test_utf8_bom_with_gb18030_after_it(sample_text: str) -> None:
    data = codecs.BOM_UTF8 + sample_text.encode("gb18030")
    assert refused(data) == (
        "issue.txt, line 3: not valid UTF-8, though the file starts with a UTF-8 byte order "
        "mark; save the file as UTF-8"
    )


def test_utf16_file() -> None:
    data = codecs.BOM_UTF16_LE + "杭州工运\n".encode("utf-16-le")
    assert refused(data) == "issue.txt: the file is UTF-16; save it as UTF-8"


def test_50_mb_file_is_refused_before_it_is_read(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "huge.txt"
    with path.open("wb") as file:
        file.seek(50 * 1024 * 1024 - 1)
        file.write(b"\0")

    def no_reading(*args: Any, **kwargs: Any) -> None:
        raise AssertionError("the file was opened")

    monkeypatch.setattr(Path, "open", no_reading)
    with pytest.raises(ImportFailed) as caught:
        read_issue_file(path)
    assert str(caught.value) == (
        "huge.txt: the file is 50.0 MiB; an issue file may be at most 5 MiB (is it the right file?)"
    )


def test_too_many_bytes_in_memory() -> None:
    message = refused(b"x" * (MAX_ISSUE_BYTES + 1))
    assert message.startswith("issue.txt: the file is 5.0 MiB; an issue file may be at most 5 MiB")


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(ImportFailed, match=r"missing\.txt: no such file$"):
        read_issue_file(tmp_path / "missing.txt")


def test_directory(tmp_path: Path) -> None:
    with pytest.raises(ImportFailed, match=r": is not a file$"):
        read_issue_file(tmp_path)


def test_unknown_format() -> None:
    assert refused(b"x", fmt="doc") == (
        "unknown issue format 'doc'; use one of auto, text, markdown, json, docx, pdf"
    )


# --- plain text -----------------------------------------------------------------------------


def format_error(text: str) -> IssueFormatError:
    with pytest.raises(IssueFormatError) as caught:
        read_issue(text.encode(), source="hzgy-471.txt")
    assert "\n" not in str(caught.value)
    return caught.value


def test_masthead_only(sample_text: str) -> None:
    masthead = "\n".join(sample_text.split("\n")[:17])
    error = format_error(masthead)
    assert str(error) == (
        "hzgy-471.txt, line 17: the masthead is not followed by any article "
        "(a headline was expected after it)"
    )
    assert error.line == 17


def test_byline_without_closing_parenthesis(sample_text: str) -> None:
    error = format_error(sample_text.replace("(王钰哲)", "(王钰哲"))
    assert str(error) == "hzgy-471.txt, line 37: byline '(王钰哲' has no closing parenthesis"


def test_byline_alone_without_closing_parenthesis(sample_text: str) -> None:
    error = format_error(sample_text.replace("(上城区总工会)", "（上城区总工会"))
    assert str(error) == "hzgy-471.txt, line 95: byline '（上城区总工会' has no closing parenthesis"


def test_no_date_line(sample_text: str) -> None:
    lines = sample_text.split("\n")
    del lines[9]
    error = format_error("\n".join(lines))
    assert str(error) == (
        "hzgy-471.txt, line 16: the masthead has no date line like "
        "'2022年12月27日 星期二 农历壬寅年十二月初五 第471期'"
    )


def test_date_line_without_number(sample_text: str) -> None:
    error = format_error(sample_text.replace(" 第471期", ""))
    assert str(error).startswith("hzgy-471.txt, line 10: the date line '2022年12月27日 星期二")
    assert str(error).endswith("has no issue number ('第…期')")


def test_impossible_date(sample_text: str) -> None:
    error = format_error(sample_text.replace("2022年12月27日", "2022年2月30日"))
    assert str(error) == "hzgy-471.txt, line 10: 2022年2月30日 is not a date in the calendar"


def test_title_missing(sample_text: str) -> None:
    error = format_error(sample_text.replace("杭州工运", ""))
    assert str(error) == (
        "hzgy-471.txt, line 7: the first line should be the newsletter's title, "
        "not '新闻热线:(0571)87160990'"
    )


def test_paragraph_where_a_headline_belongs(sample_text: str) -> None:
    lines = sample_text.split("\n")
    del lines[18]  # the first headline
    error = format_error("\n".join(lines))
    assert str(error).startswith(
        "hzgy-471.txt, line 22: a headline was expected here, not the paragraph '12月21日"
    )


def test_headline_without_text(sample_text: str) -> None:
    error = format_error(sample_text + "\n\n下期预告")
    assert (
        str(error) == "hzgy-471.txt, line 97: the headline '下期预告' is not followed by any text"
    )


def test_paragraph_left_unfinished_before_a_heading_is_a_warning() -> None:
    """Never glued onto the heading: kept, and staff are told to look."""
    path = Path(__file__).parent / "fixtures" / "issues" / "hzgy-485.txt"
    text = path.read_text(encoding="utf-8").replace("创新的重要平台。", "创新的重要平台")
    report = parse_plaintext(text)
    assert report.document.articles[1].headings == ["搭建协作平台", "培育技能人才"]
    assert report.warnings == [
        "line 34: paragraph ends without final punctuation (“…市职工技术创新的重要平台”); "
        "check it against the print layout"
    ]


# --- JSON and Markdown ----------------------------------------------------------------------


def test_json_missing_a_field(sample_text: str) -> None:
    data = parse_plaintext(sample_text).document.to_json()
    del data["date"]
    assert refused(json.dumps(data).encode(), source="issue.json") == (
        "issue.json: field 'date' is missing"
    )


def test_json_article_missing_its_headline(sample_text: str) -> None:
    data = parse_plaintext(sample_text).document.to_json()
    del data["articles"][1]["headline"]
    assert refused(json.dumps(data).encode(), source="issue.json") == (
        "issue.json: field 'articles[2].headline' is missing or empty"
    )


def test_json_syntax_error() -> None:
    data = (
        b'{\n  "title": "\xe6\x9d\xad\xe5\xb7\x9e\xe5\xb7\xa5\xe8\xbf\x90",\n  "number": 471,,\n}'
    )
    assert refused(data, source="issue.json") == (
        "issue.json, line 3: not valid JSON: Expecting property name enclosed in double quotes "
        "(column 17)"
    )


FRONT = "---\ntitle: 杭州工运\nnumber: 471\ndate: 2022-12-27\n---\n"


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (
            "## 标题\n",
            "issue.md, line 1: a Markdown issue starts with front matter: "
            "a '---' line, title, number, date, '---'",
        ),
        (
            "---\ntitle: 杭州工运\n",
            "issue.md, line 1: the front matter opened here is never closed with a '---' line",
        ),
        (
            "---\ntitle: 杭州工运\nnumber: 471\ncolour: red\n---\n",
            "issue.md, line 4: unknown front matter key 'colour'; the keys are title, number, "
            "date, hotline, submission, weekday, lunar_date, publisher, permit, address, postcode, "
            "editor, slogan",
        ),
        (
            "---\ntitle: 杭州工运\nnumber: [471\n---\n",
            "issue.md, line 3: front matter is not valid YAML: "
            "expected ',' or ']', but got '<stream end>'",
        ),
        (
            "---\ntitle: 杭州工运\nnumber: 471\n---\n",
            "issue.md, line 1: front matter has no 'date'",
        ),
        (
            FRONT.replace("471", "第471期"),
            "issue.md, line 1: 'number' must be a whole number, not '第471期'",
        ),
        (
            FRONT.replace("2022-12-27", "2022年12月27日"),
            "issue.md, line 1: 'date' must be an ISO date (YYYY-MM-DD), not '2022年12月27日'",
        ),
        (FRONT + "\n前言\n", "issue.md, line 7: text before the first '## ' headline"),
        (
            FRONT + "\n## 标题\n\n#### 小标题\n",
            "issue.md, line 9: use '## ' for a headline and '### ' for a section heading",
        ),
        (FRONT + "\n## \n", "issue.md, line 7: the headline is empty"),
        (
            FRONT + "## 标题\nByline: 甲\nByline: 乙\n",
            "issue.md, line 8: 'Byline' is given twice for one article",
        ),
        (FRONT, "issue.md, line 6: no article: each one starts with a '## ' headline"),
    ],
)
def test_markdown_errors(text: str, expected: str) -> None:
    assert refused(text.encode(), source="issue.md") == expected
