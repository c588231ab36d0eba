"""`distributor subscribers …` and `distributor lists …` as a person uses them."""

from __future__ import annotations

import csv
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from distributor.cli import main


def run(database_url: str, *args: str, input: str | None = None) -> Result:
    return CliRunner().invoke(main, list(args), env={"DATABASE_URL": database_url}, input=input)


MEMBERS = """\
邮箱,姓名,状态,lists
wang@qq.com,王钰哲,,会员快讯
li@163.com,李,,会员快讯|青年
bad@,坏,,
WANG@QQ.COM,重复,,
zhao@126.com,赵,,,多余
"qian@sina.com,钱,,
sun@foxmail.com,孙,sleeping,
"""


def test_import_shows_a_summary_and_lists_the_bad_rows_in_a_file(
    database_url: str, tmp_path: Path
) -> None:
    members = tmp_path / "members.csv"
    members.write_bytes(MEMBERS.encode("gb18030"))  # as Excel saves it on a Chinese Windows
    result = run(
        database_url, "subscribers", "import", str(members), "--list", "周刊", "--create-list"
    )
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert lines[0] == "Read members.csv as GB18030."
    assert "│ imported (new)             │ 2     │" in lines
    assert "│ skipped (repeated address) │ 1     │" in lines
    assert "│ errors                     │ 4     │" in lines
    assert "Created lists: 会员快讯, 周刊, 青年" in lines
    errors = tmp_path / "members.errors.csv"
    assert f"5 problems are listed in {errors} (line, reason):" in lines
    assert "  line 4: address 'bad@' has no domain after the @" in lines
    assert "  line 5: WANG@qq.com repeats line 2: the first row of an address wins" in lines
    assert "  … and 0 more in the file" not in lines
    with errors.open(encoding="utf-8-sig", newline="") as file:
        rows = list(csv.reader(file))
    assert rows[0] == ["line", "reason", "content"]
    assert [row[0] for row in rows[1:]] == ["4", "5", "6", "7", "8"]
    assert rows[3] == [
        "6",
        "5 cells but the header names 4 columns (a value beyond the last column)",
        "zhao@126.com,赵,,,多余",
    ]
    assert rows[4][1] == "broken quoting (unexpected end of data)"

    shown = run(database_url, "subscribers", "show", "Li@163.com")
    assert "Lists:         会员快讯, 周刊, 青年" in shown.output
    assert "Consent:       import members.csv" in shown.output


def test_a_dry_run_says_so_and_an_unreadable_file_is_an_error(
    database_url: str, tmp_path: Path
) -> None:
    members = tmp_path / "members.csv"
    members.write_text("email\nwang@qq.com\n", encoding="utf-8")
    result = run(database_url, "subscribers", "import", str(members), "--dry-run")
    assert result.output.splitlines()[0] == (
        "Dry run: nothing was written; the numbers say what an import would do."
    )
    assert "No subscribers yet" in run(database_url, "subscribers", "list").output

    phones = tmp_path / "phones.csv"
    phones.write_text("name,phone\n王,123\n", encoding="utf-8")
    result = run(database_url, "subscribers", "import", str(phones))
    assert result.exit_code == 2
    assert "Error: no email column among 'name', 'phone'" in result.output


def test_export_writes_csv_that_spreadsheets_cannot_run(database_url: str, tmp_path: Path) -> None:
    no_list = run(database_url, "subscribers", "add", "wang@qq.com", "--list", "会员快讯")
    assert no_list.output == "Error: no list is named '会员快讯' (see: distributor lists list)\n"
    assert run(database_url, "lists", "create", "会员快讯").exit_code == 0
    added = run(
        database_url,
        "subscribers",
        "add",
        "wang@qq.com",
        "--name",
        '=HYPERLINK("x")',
        "--list",
        "会员快讯",
        "--channel",
        "both",
        "--openid",
        "oWang",
    )
    assert added.output.splitlines() == ["Added wang@qq.com (ID 1, active), lists: 会员快讯"]

    result = run(database_url, "subscribers", "export", "--no-bom")
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    assert lines[0] == "email,name,status,lists,channel,format,openid,attributes,created_at"
    assert lines[1].startswith(
        'wang@qq.com,"\'=HYPERLINK(""x"")",active,会员快讯,both,full,oWang,,'
    )
    assert len(lines) == 2
    assert result.stderr == "Exported 1 subscribers.\n"

    out = tmp_path / "export.csv"
    run(database_url, "subscribers", "export", "--list", "会员快讯", "--out", str(out))
    assert out.read_bytes().startswith(b"\xef\xbb\xbfemail,name,")  # Excel reads it as UTF-8


def test_add_list_show_and_unsubscribe(database_url: str) -> None:
    run(database_url, "lists", "create", "会员快讯", "--description", "每周一期")
    run(database_url, "subscribers", "add", "Wang@QQ.com", "--name", "王钰哲", "--list", "会员快讯")
    run(database_url, "subscribers", "add", "li@163.com", "--format", "text")

    listed = run(database_url, "subscribers", "list", "--limit", "1")
    assert "Wang@qq.com" in listed.output and "li@163.com" not in listed.output
    assert "1 shown of 2." in listed.output
    assert "Next page: --after 1" in listed.output
    assert "li@163.com" in run(database_url, "subscribers", "list", "--after", "1").output
    assert "li@163.com" not in run(database_url, "subscribers", "list", "--list", "会员快讯").output

    result = run(database_url, "subscribers", "unsubscribe", "WANG@qq.com")
    assert result.output.startswith("Unsubscribed Wang@qq.com: nothing more is sent to them")
    again = run(database_url, "subscribers", "add", "wang@qq.com", "--list", "会员快讯")
    assert again.output.splitlines() == [
        "Updated wang@qq.com (ID 1, unsubscribed), lists: 会员快讯 (unsubscribed)",
        "Status unsubscribed is kept: only the person can change it, by subscribing again and "
        "confirming.",
    ]
    assert (
        "No subscribers match."
        in run(database_url, "subscribers", "list", "--status", "bounced").output
    )
    shown = run(database_url, "subscribers", "show", "wang@qq.com")
    assert "Status:        unsubscribed" in shown.output

    missing = run(database_url, "subscribers", "show", "nobody@qq.com")
    assert (missing.exit_code, missing.output) == (
        2,
        "Error: no subscriber has the address nobody@qq.com\n",
    )
    invalid = run(database_url, "subscribers", "add", "not-an-address")
    assert invalid.output == "Error: address 'not-an-address' has no @\n"


def test_lists_create_list_show_and_delete(database_url: str) -> None:
    assert "No lists yet" in run(database_url, "lists", "list").output
    assert run(database_url, "lists", "create", "会员快讯").output == (
        "Created list 会员快讯 (ID 1).\n"
    )
    duplicate = run(database_url, "lists", "create", "会员快讯")
    assert duplicate.output == "Error: a list named '会员快讯' exists already\n"
    bad = run(database_url, "lists", "create", "a|b")
    assert bad.output == "Error: list name 'a|b' cannot contain |\n"
    run(database_url, "subscribers", "add", "wang@qq.com", "--list", "会员快讯")
    assert "│ 会员快讯 │" in run(database_url, "lists", "list").output
    assert "Active:       1" in run(database_url, "lists", "show", "会员快讯").output

    refused = run(database_url, "lists", "delete", "会员快讯", input="n\n")
    assert refused.exit_code == 1
    deleted = run(database_url, "lists", "delete", "会员快讯", input="y\n")
    assert deleted.output.endswith("Deleted list 会员快讯 and 1 subscriptions.\n")
    assert "Lists:         —" in run(database_url, "subscribers", "show", "wang@qq.com").output
    assert run(database_url, "lists", "show", "会员快讯").output == (
        "Error: no list is named '会员快讯' (see: distributor lists list)\n"
    )


@pytest.mark.parametrize(
    "command",
    [
        ["subscribers"],
        ["subscribers", "import"],
        ["subscribers", "export"],
        ["subscribers", "add"],
        ["subscribers", "list"],
        ["subscribers", "show"],
        ["subscribers", "unsubscribe"],
        ["lists"],
        ["lists", "create"],
        ["lists", "list"],
        ["lists", "show"],
        ["lists", "delete"],
    ],
)
def test_every_command_explains_itself(sqlite_url: str, command: list[str]) -> None:
    result = run(sqlite_url, *command, "--help")
    assert result.exit_code == 0
    assert result.output.startswith("Usage: main " + " ".join(command))
