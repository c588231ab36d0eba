"""Issue 10: a communications officer's first use, with an office export in GB18030 whose
headers are Chinese, whose columns we do not all know, and some of whose rows are bad."""

from __future__ import annotations

import csv
import shutil
from pathlib import Path

import pytest
from click.testing import CliRunner, Result
from sqlalchemy import MetaData, select, update

from distributor.cli import main
from distributor.db import get_engine, transaction, upgrade
from distributor.errors import AddressTaken, UnknownList
from subscribers.csvfile import Problem
from subscribers.importer import import_subscribers
from subscribers.models import List, Subscriber, SubscriberStatus
from subscribers.store import (
    add_subscriber,
    change_address,
    create_list,
    find_subscriber,
    memberships,
    unsubscribe,
)
from tests.test_subscribers_import import export_text, import_text

OFFICE = """\
邮箱,姓名,单位,手机,备注,lists
wang@qq.com,王钰哲,市总工会,13800000000,,会员快讯
li@163.com,李,,13900000000,青年骨干,会员快讯
"""


def run(url: str, *args: str) -> Result:
    return CliRunner().invoke(main, list(args), env={"DATABASE_URL": url})


def snapshot(url: str) -> dict[str, list[tuple[object, ...]]]:
    """Every row of every table, in a stable order."""
    metadata = MetaData()
    with get_engine(url).connect() as connection:
        metadata.reflect(connection)
        return {
            name: sorted(connection.execute(table.select()).all(), key=repr)
            for name, table in metadata.tables.items()
        }


def test_unknown_columns_are_kept_as_attributes_and_a_later_file_adds_to_them(
    database_url: str, tmp_path: Path
) -> None:
    with transaction(database_url) as session:
        create_list(session, "会员快讯")
    report, problems = import_text(database_url, tmp_path, OFFICE, encoding="gb18030",
                                   create_lists=False)
    assert (report.imported, report.errors, problems) == (2, 0, [])
    assert report.attribute_columns == ("单位", "手机", "备注")
    later = "邮箱,单位\nwang@qq.com,省总工会\nli@163.com,\n"
    report, _ = import_text(database_url, tmp_path, later, create_lists=False)
    assert report.updated == 1  # li's empty cell gives nothing
    with transaction(database_url) as session:
        assert find_subscriber(session, "wang@qq.com").attributes == {
            "单位": "省总工会", "手机": "13800000000"
        }
        assert find_subscriber(session, "li@163.com").attributes == {
            "手机": "13900000000", "备注": "青年骨干"
        }
    assert '""单位"": ""省总工会""' in export_text(database_url)


def test_reimporting_an_unchanged_file_updates_nothing(database_url: str, tmp_path: Path) -> None:
    text = OFFICE + "zhao@126.com,赵,,,,会员快讯:unsubscribed\n"
    import_text(database_url, tmp_path, text, encoding="gb18030")
    with transaction(database_url) as session:
        before = {s.email: s.updated_at for s in session.scalars(select(Subscriber))}
    report, _ = import_text(database_url, tmp_path, text, encoding="gb18030")
    assert (report.imported, report.updated) == (0, 0)
    with transaction(database_url) as session:
        assert {s.email: s.updated_at for s in session.scalars(select(Subscriber))} == before
    report, _ = import_text(
        database_url, tmp_path, "email,name,lists\nwang@qq.com,王钰哲,会员快讯|青年\n"
        "li@163.com,李四,\nzhao@126.com,赵,\n"
    )
    assert report.updated == 2  # wang joins a list, li's name changes; zhao as before


def test_a_dry_run_leaves_the_database_exactly_as_it_was(
    database_url: str, tmp_path: Path
) -> None:
    import_text(database_url, tmp_path, OFFICE, encoding="gb18030")
    before = snapshot(database_url)
    database_file = database_url.removeprefix("sqlite:///")
    if database_url.startswith("sqlite"):
        shutil.copy(database_file, tmp_path / "before.db")
    text = OFFICE.replace("13800000000", "1") + "new@qq.com,新,,,,周刊|会员快讯\n"
    report, _ = import_text(
        database_url, tmp_path, text, list_name="新列表", create_lists=True, dry_run=True
    )
    # wang's phone changes, li joins 新列表 (so does wang): both would be updated.
    assert (report.imported, report.updated, report.new_lists) == (1, 2, ["周刊", "新列表"])
    assert snapshot(database_url) == before
    if database_url.startswith("sqlite"):
        assert Path(database_file).read_bytes() == (tmp_path / "before.db").read_bytes()


def test_a_list_is_created_only_when_asked(database_url: str, tmp_path: Path) -> None:
    with transaction(database_url) as session:
        create_list(session, "会员快讯")
    with pytest.raises(UnknownList, match="no list is named '会员块讯'"):
        import_text(database_url, tmp_path, OFFICE, list_name="会员块讯", create_lists=False)
    report, problems = import_text(
        database_url, tmp_path, "email,lists\nwang@qq.com,会员快讯\nli@163.com,会员块讯\n",
        create_lists=False,
    )
    assert (report.imported, report.errors, report.new_lists) == (1, 1, [])
    assert [(p.line, p.reason.split(":")[0]) for p in problems] == [
        (3, "no list is named '会员块讯'")
    ]
    with transaction(database_url) as session:
        assert session.scalars(select(List.name)).all() == ["会员快讯"]

    result = run(database_url, "subscribers", "import", str(tmp_path / "subscribers.csv"),
                 "--list", "周干")
    assert result.exit_code == 2
    assert result.output == (
        "Error: no list is named '周干' (create it with: distributor lists create NAME, or "
        "import with --create-list)\n"
    )


def test_a_name_with_a_line_break_exports_and_imports_back(
    database_url: str, tmp_path: Path
) -> None:
    with transaction(database_url) as session:
        added = add_subscriber(session, "wang@qq.com", name="王\n钰哲")
        assert added.subscriber.name == "王 钰哲"
        add_subscriber(session, "li@163.com", name="李")
        add_subscriber(session, "zhao@126.com", name="赵")
        # Stored before names were kept to one line.
        session.execute(update(Subscriber).where(Subscriber.email == "li@163.com")
                        .values(name="李\n\"四\"\r\n=1+1", openid="o\n1"))
    exported = export_text(database_url)
    assert len(exported.splitlines()) == 4
    fresh = f"sqlite:///{tmp_path / 'fresh.db'}"
    upgrade(fresh)
    report, problems = import_text(fresh, tmp_path, exported)
    assert (report.imported, problems) == (3, [])
    with transaction(fresh) as session:
        li = find_subscriber(session, "li@163.com")
        assert (li.name, li.openid) == ('李 "四" =1+1', "o 1")


def test_a_file_mixing_utf8_and_gb18030_lines_is_reported_line_by_line(
    database_url: str, tmp_path: Path
) -> None:
    path = tmp_path / "subscribers.csv"
    lines = [("邮箱,姓名\n", "gb18030"), ("wang@qq.com,王钰哲\n", "gb18030"),
             ("li@163.com,李四\n", "utf-8"), ("zhao@126.com,钱\n", "gb18030"),
             ("sun@qq.com,孙\n", "gb18030")]
    path.write_bytes(b"".join(text.encode(encoding) for text, encoding in lines))
    problems: list[Problem] = []
    with get_engine(database_url).connect() as connection:
        report = import_subscribers(connection, path, on_problem=problems.append)
    assert (report.encoding_label, report.imported, report.errors) == ("GB18030", 3, 1)
    (problem,) = problems
    assert problem.line == 3
    assert problem.reason.startswith("this line is UTF-8 but the file is GB18030")
    assert problem.text == "li@163.com,李四"  # shown as written, not as GB18030 mojibake
    with transaction(database_url) as session:
        assert find_subscriber(session, "zhao@126.com").name == "钱"  # valid UTF-8 too: Ǯ
        assert find_subscriber(session, "wang@qq.com").name == "王钰哲"


def test_a_long_rejected_row_is_echoed_short_in_the_errors_file_and_on_screen(
    database_url: str, tmp_path: Path
) -> None:
    path = tmp_path / "members.csv"
    path.write_text("email,name\nbad-address," + "长" * 50_000 + "\n", encoding="utf-8")
    result = run(database_url, "subscribers", "import", str(path))
    assert result.exit_code == 0, result.output
    (echo,) = [line for line in result.output.splitlines() if "bad-address,长" in line]
    assert echo == "    bad-address," + "长" * 57 + "…"
    with (tmp_path / "members.errors.csv").open(encoding="utf-8-sig", newline="") as file:
        rows = list(csv.reader(file))
    assert len(rows[1][2]) == 300 and rows[1][2].endswith("…")


def test_set_email_corrects_an_address_and_keeps_the_person(
    database_url: str, tmp_path: Path
) -> None:
    with transaction(database_url) as session:
        create_list(session, "会员快讯")
        wang = add_subscriber(session, "wang@qq.com", lists=["会员快讯"]).subscriber
        unsubscribe(session, add_subscriber(session, "li@163.com").subscriber)
        # Stored under the old rule, which kept the trailing dot every send then failed on.
        session.execute(update(Subscriber).where(Subscriber.id == wang.id)
                        .values(email="hugang@qq.com.", email_key="hugang@qq.com."))
    result = run(database_url, "subscribers", "set-email", "hugang@qq.com.", "HuGang@qq.com")
    assert result.exit_code == 0, result.output
    assert result.output == (
        "Changed the address of subscriber ID 1 from hugang@qq.com. to HuGang@qq.com; "
        "status active, lists and history kept.\n"
    )
    with transaction(database_url) as session:
        moved = find_subscriber(session, "hugang@qq.com")
        assert (moved.id, moved.status, memberships(moved)) == (
            wang.id, SubscriberStatus.ACTIVE, [("会员快讯", "active")]
        )
        with pytest.raises(AddressTaken, match="another subscriber"):
            change_address(session, "hugang@qq.com", "LI@163.com")
        change_address(session, "li@163.com", "Li@163.com")  # the same person's spelling
        assert find_subscriber(session, "li@163.com").status is SubscriberStatus.UNSUBSCRIBED
    taken = run(database_url, "subscribers", "set-email", "hugang@qq.com", "li@163.com")
    assert (taken.exit_code, taken.output) == (
        2, "Error: another subscriber (ID 2) has the address li@163.com\n"
    )


def test_outside_text_reaches_the_terminal_inert(database_url: str) -> None:
    with transaction(database_url) as session:
        create_list(session, "会员[bold]快讯[/bold]")
        add_subscriber(session, "wang@qq.com", lists=["会员[bold]快讯[/bold]"])
        session.execute(update(Subscriber).values(name="王\x1b]8;;http://evil\x07钰哲"))
    shown = run(database_url, "subscribers", "show", "wang@qq.com").output
    listed = "".join(run(database_url, *command, "list").output
                     for command in (["subscribers"], ["lists"]))
    for output in (shown, listed):
        assert "\x1b" not in output and "\x07" not in output
    assert "会员[bold]快讯[/bold]" in shown and "会员[bold]快讯[/bold]" in listed.replace("\n", "")
