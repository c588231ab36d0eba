"""`distributor issue …` as a person uses it, on SQLite and PostgreSQL."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

from click.testing import CliRunner, Result
from sqlalchemy import func, select

from distributor.cli import main
from distributor.db import transaction
from distributor.issues.models import Article, ArticleBlock, Issue
from distributor.issues.plaintext import parse_plaintext

FIXTURES = Path(__file__).parent / "fixtures" / "issues"


def run(database_url: str, *args: str) -> Result:
    return CliRunner().invoke(main, list(args), env={"DATABASE_URL": database_url})


def table_counts(url: str) -> tuple[int, int, int]:
    with transaction(url) as session:
        return (
            session.scalar(select(func.count()).select_from(Issue)) or 0,
            session.scalar(select(func.count()).select_from(Article)) or 0,
            session.scalar(select(func.count()).select_from(ArticleBlock)) or 0,
        )


def test_import_reports_what_it_recognised_and_repaired(
    database_url: str, sample_issue_path: Path
) -> None:
    result = run(database_url, "issue", "import", str(sample_issue_path))
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert lines[0] == "Imported issue ID: 1"
    assert "4 articles, 21 paragraphs, 3 section headings" in result.output
    assert "Repaired 8 page-break splits" in result.output
    assert "kicker: 在基层构建和谐稳定的劳动关系" in result.output
    assert table_counts(database_url) == (1, 4, 24)


def test_show_json_then_import_gives_the_same_issue(
    database_url: str, sample_issue_path: Path, tmp_path: Path
) -> None:
    run(database_url, "issue", "import", str(sample_issue_path))
    shown = run(database_url, "issue", "show", "1", "--json")
    exported = tmp_path / "issue.json"
    exported.write_text(shown.output, encoding="utf-8")
    other_db = f"sqlite:///{tmp_path / 'other.db'}"
    again = run(other_db, "issue", "import", str(exported))
    assert again.exit_code == 0, again.output
    reshown = run(other_db, "issue", "show", "1", "--json").output
    assert json.loads(reshown) == json.loads(shown.output)
    # importing the very same issue into the same database changes nothing
    same = run(database_url, "issue", "import", str(exported))
    assert same.output.splitlines()[0] == "Imported issue ID: 1 (already imported; nothing changed)"
    assert table_counts(database_url)[0] == 1


def test_list_json_is_oldest_first(database_url: str, sample_issue_path: Path) -> None:
    for path in (FIXTURES / "hzgy-491.txt", sample_issue_path, FIXTURES / "hzgy-485.txt"):
        assert run(database_url, "issue", "import", str(path)).exit_code == 0
    listed = json.loads(run(database_url, "issue", "list", "--json").output)
    assert [set(item) for item in listed] == [{"id", "title", "number", "date"}] * 3
    dates = [item["date"] for item in listed]
    assert dates == sorted(dates)
    assert [item["number"] for item in listed] == sorted(item["number"] for item in listed)
    table = run(database_url, "issue", "list").output
    assert "杭州工运" in table and "471" in table


def test_a_gb18030_export_imports_and_says_which_encoding_it_read(
    database_url: str, sample_issue_path: Path, tmp_path: Path
) -> None:
    gb = tmp_path / "hzgy-471-gbk.txt"
    gb.write_bytes(sample_issue_path.read_text(encoding="utf-8").encode("gb18030"))
    result = run(database_url, "issue", "import", str(gb))
    assert result.exit_code == 0, result.output
    assert result.output.splitlines()[:2] == [
        "Imported issue ID: 1",
        "Read hzgy-471-gbk.txt as GB18030.",
    ]
    assert "kicker: 在基层构建和谐稳定的劳动关系" in result.output
    assert table_counts(database_url) == (1, 4, 24)
    utf8 = run(database_url, "issue", "import", str(sample_issue_path))
    assert utf8.output.splitlines()[:2] == [
        "Imported issue ID: 1 (already imported; nothing changed)",
        f"Read {sample_issue_path.name} as UTF-8.",
    ]


def test_dry_run_writes_nothing(database_url: str, sample_issue_path: Path) -> None:
    result = run(database_url, "issue", "import", "--dry-run", str(sample_issue_path))
    assert result.exit_code == 0
    assert result.output.splitlines()[0] == "Dry run: nothing was written."
    assert table_counts(database_url) == (0, 0, 0)


def test_malformed_input_gets_one_line_exit_2_and_nothing_written(
    database_url: str, sample_issue_path: Path, tmp_path: Path
) -> None:
    mixed = tmp_path / "mixed.txt"
    lines = sample_issue_path.read_bytes().split(b"\n")
    lines[40] = lines[40].decode().encode("gb18030")
    mixed.write_bytes(b"\n".join(lines))
    empty = tmp_path / "empty.txt"
    empty.write_bytes(b"")
    binary = tmp_path / "binary.txt"
    binary.write_bytes(bytes(range(256)) * 10)
    masthead_only = tmp_path / "masthead.txt"
    masthead_only.write_text("\n".join(sample_issue_path.read_text().splitlines()[:17]))
    huge = tmp_path / "huge.txt"
    with huge.open("wb") as handle:
        handle.seek(50 * 1024 * 1024)
        handle.write(b"\n")
    expectations = {
        mixed: "line 41: the file mixes encodings",
        empty: "empty",
        binary: "binary",
        masthead_only: "headline",
        huge: "MiB",
    }
    for path, words in expectations.items():
        result = run(database_url, "issue", "import", str(path))
        assert result.exit_code == 2, (path, result.output)
        message = result.output.strip()
        assert message.startswith(f"Error: {path.name}"), message
        assert "\n" not in message and words in message, message
    assert table_counts(database_url) == (0, 0, 0)


def test_show_of_a_missing_issue_says_so(database_url: str) -> None:
    result = run(database_url, "issue", "show", "99")
    assert result.exit_code == 2
    assert (
        result.output.strip() == "Error: there is no issue with ID 99 (see: distributor issue list)"
    )


def test_the_installed_command_has_help_everywhere(tmp_path: Path) -> None:
    for args in ([], ["issue"], ["issue", "import"], ["db", "upgrade"], ["send", "create"]):
        done = subprocess.run(
            [sys.executable, "-m", "distributor", *args, "--help"],
            capture_output=True,
            text=True,
            cwd=tmp_path,
            check=False,
        )
        assert done.returncode == 0, done.stderr
        assert "Usage:" in done.stdout


# --- text that would fail every delivery, or reach a terminal as escape sequences ---------------

MARKDOWN = (FIXTURES / "hzgy-492.md").read_text(encoding="utf-8")
LIMIT = "an issue number is at most 2,147,483,647"


def _json_issue(sample_issue_path: Path, **changes: object) -> str:
    """The sample issue as JSON with ``changes``: ``articles__0__headline`` sets that field."""
    data = parse_plaintext(sample_issue_path.read_text(encoding="utf-8")).document.to_json()
    for path, value in changes.items():
        *parents, last = path.split("__")
        target: Any = data
        for key in parents:
            target = target[int(key)] if key.isdigit() else target[key]
        target[int(last) if last.isdigit() else last] = value
    return json.dumps(data)  # ASCII: "\ud800" stays an escape, as an editor would write it


def _unsafe_issues(sample_issue_path: Path) -> list[tuple[str, str, str]]:
    """(file name, content, the message a person sees): plain text, Markdown, JSON."""
    text = sample_issue_path.read_text(encoding="utf-8")
    rule = "杭州工运" * 60

    def issue_json(**changes: object) -> str:
        return _json_issue(sample_issue_path, **changes)

    return [
        (
            "esc-title.txt",
            text.replace("杭州工运", "杭州\x1b[2J工运", 1),
            "esc-title.txt, line 3: the title contains the control character ESC (U+001B) "
            "at character 3; remove it",
        ),
        (
            "osc8-headline.txt",
            text.replace("市总工会召开深入", "市总工会\x1b]8;;https://evil.example\x07召开深入", 1),
            "osc8-headline.txt, line 19: the headline contains the control character ESC "
            "(U+001B) at character 5; remove it",
        ),
        (
            "bell-kicker.txt",
            text.replace(
                "在基层构建和谐稳定的劳动关系 中建", "在基层构建\x07和谐稳定的劳动关系 中建"
            ),
            "bell-kicker.txt, line 39: the kicker contains the control character U+0007 "
            "at character 6; remove it",
        ),
        (
            "c1-paragraph.txt",
            text.replace("12月21日,", "12月21日\x9b31m,"),
            "c1-paragraph.txt, line 23: the paragraph contains the control character CSI "
            "(U+009B) at character 7; remove it",
        ),
        (
            "nul.txt",
            text.replace("12月21日,", "12月21日\x00,"),
            "nul.txt, line 23: the file is binary (it contains NUL bytes), not a text export",
        ),
        (
            "number.txt",
            text.replace("第471期", f"第{10**30}期"),
            f"number.txt, line 10: the issue number is too large (a 31-digit number); {LIMIT}",
        ),
        (
            "digits.txt",
            text.replace("第471期", f"第{'9' * 5000}期"),
            f"digits.txt, line 10: the issue number is too large (a 5,000-digit number); {LIMIT}",
        ),
        (
            "long-title.txt",
            text.replace("杭州工运", rule, 1),
            "long-title.txt, line 3: the title is 240 characters long; it may be at most 200",
        ),
        (
            "esc-title.md",
            MARKDOWN.replace("title: 杭州工运", "title: 杭州\x1b[31m工运"),
            "esc-title.md, line 2: 'title' contains the control character ESC (U+001B) "
            "at character 3; remove it",
        ),
        (
            "escaped-lf-title.md",
            MARKDOWN.replace("title: 杭州工运", 'title: "杭州\\nBcc: all@example.org"'),
            "escaped-lf-title.md, line 2: 'title' contains a line break (U+000A) at character 3; "
            "remove it",
        ),
        (
            "yaml-escape.md",
            MARKDOWN.replace("editor: 侯英帅", 'editor: "侯英帅\\e[2J"'),
            "yaml-escape.md, line 7: 'editor' contains the control character ESC (U+001B) "
            "at character 4; remove it",
        ),
        (
            "esc-headline.md",
            MARKDOWN.replace("## 职工书屋", "## 职工\x1b书屋"),
            "esc-headline.md, line 11: the headline contains the control character ESC (U+001B) "
            "at character 3; remove it",
        ),
        (
            "esc-kicker.md",
            MARKDOWN.replace("Kicker: 书香润心", "Kicker: 书香\x1b润心"),
            "esc-kicker.md, line 13: 'Kicker' contains the control character ESC (U+001B) "
            "at character 3; remove it",
        ),
        (
            "number.md",
            MARKDOWN.replace("number: 492", f"number: {10**30}"),
            f"number.md, line 1: 'number' is too large (a 31-digit number); {LIMIT}",
        ),
        (
            "nested.md",
            MARKDOWN.replace("editor: 侯英帅", "editor: " + "[" * 5000 + "]" * 5000),
            "nested.md, line 1: front matter is nested too deeply: use 'key: value' lines",
        ),
        (
            "lf-title.json",
            issue_json(title="杭州\nBcc: all@example.org"),
            "lf-title.json: field 'title' contains a line break (U+000A) at character 3; remove it",
        ),
        (
            "esc-headline.json",
            issue_json(articles__1__headline="喜报\x1b[31m"),
            "esc-headline.json: field 'articles[2].headline' contains the control character ESC "
            "(U+001B) at character 3; remove it",
        ),
        (
            "crlf-byline.json",
            issue_json(articles__0__byline="王钰哲\r\nBcc: all@example.org"),
            "crlf-byline.json: field 'articles[1].byline' contains a carriage return (U+000D) "
            "at character 4; remove it",
        ),
        (
            "tab-subtitle.json",
            issue_json(articles__0__subtitle="副\t标题"),
            "tab-subtitle.json: field 'articles[1].subtitle' contains the control character TAB "
            "(U+0009) at character 2; remove it",
        ),
        (
            "esc-masthead.json",
            issue_json(masthead={"hotline": "\x1b]52;c;cm0gLXJmIH4=\x07"}),
            "esc-masthead.json: field 'masthead.hotline' contains the control character ESC "
            "(U+001B) at character 1; remove it",
        ),
        (
            "nul-paragraph.json",
            issue_json(articles__0__blocks__0__text="12月21日\x00"),
            "nul-paragraph.json: field 'articles[1].blocks[1].text' contains the control "
            "character NUL (U+0000) at character 7; remove it",
        ),
        (
            "surrogate.json",
            issue_json(articles__0__blocks__0__text="12月\ud800"),
            "surrogate.json: field 'articles[1].blocks[1].text' contains an unpaired surrogate "
            "(U+D800) at character 4; remove it",
        ),
        (
            "number.json",
            issue_json(number=10**30),
            f"number.json: field 'number' is too large (a 31-digit number); {LIMIT}",
        ),
        (
            "int4.json",
            issue_json(number=2**31),
            f"int4.json: field 'number' is too large (2147483648); {LIMIT}",
        ),
        (
            "digits.json",
            issue_json(number=0).replace('"number": 0', '"number": ' + "9" * 5000),
            "digits.json: not valid JSON: a number is far too long",
        ),
        (
            "nested.json",
            "[" * 100_000 + "]" * 100_000,
            "nested.json: not valid JSON for an issue: lists or objects are nested too deeply",
        ),
        (
            "blocks.json",
            issue_json(articles__0__blocks=5),
            "blocks.json: field 'articles[1].blocks' must be a list",
        ),
        (
            "masthead-key.json",
            issue_json(masthead={"\x1b[2J": "x"}),
            "masthead-key.json: masthead has unknown field(s) \\x1b[2J",
        ),
    ]


def test_unsafe_text_is_refused_at_import_naming_the_field(
    sqlite_url: str, sample_issue_path: Path, tmp_path: Path
) -> None:
    """Each was imported (and failed every delivery later) or ended in a traceback. On SQLite
    only: the text is refused before anything reaches the database."""
    database_url = sqlite_url
    cases = _unsafe_issues(sample_issue_path)
    seen, expected = {}, {}
    for name, content, message in cases:
        path = tmp_path / name
        path.write_bytes(content.encode("utf-8"))
        result = run(database_url, "issue", "import", str(path))
        seen[name] = (result.exit_code, result.output)
        expected[name] = (2, f"Error: {message}\n")
    assert seen == expected
    assert table_counts(database_url) == (0, 0, 0)
