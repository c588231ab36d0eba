"""`distributor issue …` as a person uses it, on SQLite and PostgreSQL."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from click.testing import CliRunner, Result
from sqlalchemy import func, select

from distributor.cli import main
from distributor.db import transaction
from distributor.issues.models import Article, ArticleBlock, Issue

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
