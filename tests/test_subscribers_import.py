"""Importing and exporting subscribers through the services, on SQLite and PostgreSQL."""

from __future__ import annotations

import io
from pathlib import Path

import pytest
from sqlalchemy import delete, func, select, text

from distributor.db import get_engine, transaction, upgrade
from subscribers import importer
from subscribers.bulk import BULK_CACHE_KB
from subscribers.csvfile import Problem
from subscribers.export import export_subscribers
from subscribers.importer import CHUNK_ROWS, ImportReport, import_subscribers
from subscribers.models import (
    List,
    Subscriber,
    SubscriberStatus,
    Subscription,
    SubscriptionStatus,
    Tag,
    subscriber_tags,
)
from subscribers.store import (
    add_subscriber,
    create_list,
    find_subscriber,
    memberships,
    request_subscription,
    unsubscribe,
)


def import_text(
    url: str,
    tmp_path: Path,
    text: str,
    *,
    encoding: str = "utf-8",
    list_name: str | None = None,
    create_lists: bool = True,
    dry_run: bool = False,
) -> tuple[ImportReport, list[Problem]]:
    """Write ``text`` to a CSV file and import it; the report and the problems, in order."""
    path = tmp_path / "subscribers.csv"
    path.write_bytes(text.encode(encoding))
    problems: list[Problem] = []
    with get_engine(url).connect() as connection:
        report = import_subscribers(
            connection,
            path,
            list_name=list_name,
            create_lists=create_lists,
            dry_run=dry_run,
            on_problem=problems.append,
        )
    return report, problems


def state(url: str, email: str) -> tuple[SubscriberStatus, list[tuple[str, SubscriptionStatus]]]:
    with transaction(url) as session:
        subscriber = find_subscriber(session, email)
        return subscriber.status, memberships(subscriber)


def export_text(url: str) -> str:
    out = io.StringIO()
    with transaction(url) as session:
        export_subscribers(session, out)
    return out.getvalue()


GOOD_AND_BAD = """\
email,name,status,lists
wang@qq.com,王钰哲,,会员快讯
bad@,坏,,
li@163.com,李,,会员快讯|青年
WANG@QQ.com,重复,,
zhao@126.com,赵,,,surplus
"broken,quote,,
qian@sina.com,{long},,
sun@foxmail.com,孙,sleeping,
zhou@hz.gov.cn,周,unsubscribed,会员快讯
"""


GOOD_AND_BAD_PROBLEMS = [  # each bad row of GOOD_AND_BAD: its line, and why (to the colon)
        (3, "address 'bad@' has no domain after the @"),
        (5, "WANG@qq.com repeats line 2"),
        (6, "5 cells but the header names 4 columns (a value beyond the last column)"),
        (7, "broken quoting (unexpected end of data)"),
        (8, "name is longer than 200 characters (201)"),
        (9, "status 'sleeping' is not one of pending, active, unsubscribed, bounced, complained"),
]


def test_good_rows_import_and_bad_ones_are_reported_with_their_line(
    database_url: str, tmp_path: Path
) -> None:
    report, problems = import_text(database_url, tmp_path, GOOD_AND_BAD.format(long="名" * 201))
    assert (report.imported, report.updated, report.skipped, report.errors) == (3, 0, 1, 5)
    assert report.new_lists == ["会员快讯", "青年"]
    assert [(p.line, p.reason.split(":")[0]) for p in problems] == GOOD_AND_BAD_PROBLEMS
    assert state(database_url, "wang@qq.com") == (
        SubscriberStatus.ACTIVE,
        [("会员快讯", SubscriptionStatus.ACTIVE)],
    )
    assert state(database_url, "li@163.com")[1] == [
        ("会员快讯", SubscriptionStatus.ACTIVE),
        ("青年", SubscriptionStatus.ACTIVE),
    ]
    # A person who said stop is on no list, even when the file names one.
    assert state(database_url, "zhou@hz.gov.cn") == (
        SubscriberStatus.UNSUBSCRIBED,
        [("会员快讯", SubscriptionStatus.UNSUBSCRIBED)],
    )


def test_the_first_row_of_an_address_wins_across_chunks(database_url: str, tmp_path: Path) -> None:
    lines = ["email,name", "first@qq.com,第一"]
    lines += [f"reader{i}@qq.com,读者" for i in range(CHUNK_ROWS + 10)]
    lines += ["FIRST@qq.com,后来", "reader3@qq.com,又来"]
    report, problems = import_text(database_url, tmp_path, "\n".join(lines) + "\n")
    assert report.imported == CHUNK_ROWS + 11
    assert report.skipped == 2
    assert [(p.line, p.reason) for p in problems] == [
        (CHUNK_ROWS + 13, "FIRST@qq.com repeats line 2: the first row of an address wins"),
        (CHUNK_ROWS + 14, "reader3@qq.com repeats line 6: the first row of an address wins"),
    ]
    with transaction(database_url) as session:
        assert find_subscriber(session, "first@qq.com").name == "第一"


def test_a_big_file_is_parsed_in_processes_with_the_same_outcome(
    database_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Processes parse a file of PARALLEL_FROM bytes or more, a piece each, and on PostgreSQL
    as many connections write it, each its share of the addresses: rows, repeats across pieces
    and bad lines come out as from the thread, in line order."""
    monkeypatch.setattr(importer, "PARALLEL_FROM", 0)
    monkeypatch.setattr(importer, "PARSERS", 2)
    monkeypatch.setattr(importer, "PIECE_BYTES", 20_000)  # some 800 lines a chunk
    monkeypatch.setattr(importer, "read_ahead", None)  # the thread's path would fail
    lines = GOOD_AND_BAD.format(long="名" * 201).splitlines()
    lines += [f"reader{i}@qq.com,读者,,青年" for i in range(2 * CHUNK_ROWS)]
    lines += ["WANG@qq.com,后来,,", "zhou@hz.gov.cn,周,active,会员快讯"]
    lines += ["reader3@qq.com,又,,", "x@,坏,,"]
    report, problems = import_text(database_url, tmp_path, "\n".join(lines) + "\n")
    assert (report.imported, report.skipped, report.errors) == (3 + 2 * CHUNK_ROWS, 4, 6)
    end = 2 * CHUNK_ROWS + 10
    assert [(p.line, p.reason.split(":")[0]) for p in problems] == [
        *GOOD_AND_BAD_PROBLEMS,
        (end + 1, "WANG@qq.com repeats line 2"),
        (end + 2, "zhou@hz.gov.cn repeats line 10"),
        (end + 3, "reader3@qq.com repeats line 14"),
        (end + 4, "address 'x@' has no domain after the @"),
    ]
    assert state(database_url, "zhou@hz.gov.cn")[0] is SubscriberStatus.UNSUBSCRIBED
    assert state(database_url, f"reader{2 * CHUNK_ROWS - 1}@qq.com") == (
        SubscriberStatus.ACTIVE,
        [("青年", SubscriptionStatus.ACTIVE)],
    )
    if database_url.startswith("postgresql"):
        # The count triggers keep a shard per backend: two wrote, and nothing went uncounted.
        with get_engine(database_url).connect() as connection:
            shards, counted = connection.execute(
                text("SELECT count(DISTINCT shard), sum(n) FROM list_readers")
            ).one()
            stored = connection.scalar(select(func.count()).select_from(Subscription))
        assert (shards, counted) == (2, stored)


def test_values_with_what_copy_escapes_arrive_as_written(
    database_url: str, tmp_path: Path
) -> None:
    """Backslashes, and a tab inside an attribute, reach the database as the file gives them:
    on PostgreSQL the rows travel as COPY text, where these are escapes and separators."""
    text = (
        "email,name,openid,locale,attributes\n"
        'wang@qq.com,C:\\王,o\\1,zh\\CN,"{""k"": ""a\\tb\\\\""}"\n'
    )
    report, problems = import_text(database_url, tmp_path, text)
    assert (report.imported, problems) == (1, [])
    with transaction(database_url) as session:
        wang = find_subscriber(session, "wang@qq.com")
        assert (wang.name, wang.openid, wang.locale) == ("C:\\王", "o\\1", "zh\\CN")
        assert wang.attributes == {"k": "a\tb\\"}


def test_sqlite_has_its_page_cache_back_after_an_import(sqlite_url: str, tmp_path: Path) -> None:
    """An import widens the cache for its writes only: the connection goes back to the pool as
    it came."""
    path = tmp_path / "subscribers.csv"
    path.write_text("email\nwang@qq.com\n", encoding="utf-8")
    with get_engine(sqlite_url).connect() as connection:
        before = connection.exec_driver_sql("PRAGMA cache_size").scalar_one()
        seen: list[int] = []
        import_subscribers(
            connection,
            path,
            on_problem=lambda problem: None,
            on_progress=lambda done: seen.append(
                connection.exec_driver_sql("PRAGMA cache_size").scalar_one()
            ),
        )
        assert seen == [-BULK_CACHE_KB]
        assert connection.exec_driver_sql("PRAGMA cache_size").scalar_one() == before != seen[0]


def test_a_reimport_never_reactivates_a_suppressed_person(
    database_url: str, tmp_path: Path
) -> None:
    original = (
        "email,name,lists\nwang@qq.com,王,会员快讯\nli@163.com,李,会员快讯\nzhao@126.com,赵,\n"
    )
    import_text(database_url, tmp_path, original)
    with transaction(database_url) as session:
        unsubscribe(session, find_subscriber(session, "wang@qq.com"))
        find_subscriber(session, "li@163.com").status = SubscriberStatus.BOUNCED
        create_list(session, "青年")

    again = (
        "email,name,status,lists\nwang@qq.com,王钰哲,active,会员快讯|青年\nli@163.com,李,active,\n"
    )
    report, problems = import_text(database_url, tmp_path, again, list_name="周刊")
    assert not problems
    assert (report.updated, report.kept_suppressed) == (2, 2)
    assert state(database_url, "wang@qq.com") == (
        SubscriberStatus.UNSUBSCRIBED,
        [
            ("会员快讯", SubscriptionStatus.UNSUBSCRIBED),
            ("周刊", SubscriptionStatus.UNSUBSCRIBED),
            ("青年", SubscriptionStatus.UNSUBSCRIBED),
        ],
    )
    assert state(database_url, "li@163.com")[0] is SubscriberStatus.BOUNCED
    with transaction(database_url) as session:
        assert find_subscriber(session, "wang@qq.com").name == "王钰哲"  # details do update

    # Nor does the staff's `subscribers add`.
    with transaction(database_url) as session:
        added = add_subscriber(session, "Wang@QQ.com", lists=["青年"])
        assert not added.created
        assert added.subscriber.status is SubscriberStatus.UNSUBSCRIBED


def test_a_file_can_suppress_and_changes_only_the_columns_it_has(
    database_url: str, tmp_path: Path
) -> None:
    import_text(database_url, tmp_path, "email,name,openid\nwang@qq.com,王,o1\nli@163.com,李,o2\n")
    report, _ = import_text(database_url, tmp_path, "email,status\nwang@qq.com,complained\n")
    assert report.updated == 1
    with transaction(database_url) as session:
        wang = find_subscriber(session, "wang@qq.com")
        assert (wang.status, wang.name, wang.openid) == (SubscriberStatus.COMPLAINED, "王", "o1")


def test_a_pending_person_stays_pending_until_they_confirm(
    database_url: str, tmp_path: Path
) -> None:
    with transaction(database_url) as session:
        create_list(session, "会员快讯")
        request_subscription(session, "wang@qq.com", lists=["会员快讯"], source="web form")
    import_text(database_url, tmp_path, "email,status,lists\nwang@qq.com,active,会员快讯\n")
    assert state(database_url, "wang@qq.com") == (
        SubscriberStatus.PENDING,
        [("会员快讯", SubscriptionStatus.PENDING)],
    )


def test_excel_files_from_china_and_mailchimp_exports_import(
    database_url: str, tmp_path: Path
) -> None:
    report, _ = import_text(
        database_url, tmp_path, "邮箱,姓名\nwang@qq.com,王钰哲\n", encoding="gb18030"
    )
    assert (report.encoding_label, report.imported) == ("GB18030", 1)
    report, _ = import_text(
        database_url, tmp_path, "email,name\nli@163.com,李\n", encoding="utf-8-sig"
    )
    assert (report.encoding_label, report.imported) == ("UTF-8 (with BOM)", 1)
    mailchimp = (
        '"Email Address","First Name","Last Name",MEMBER_RATING,TAGS,UNSUB_TIME\n'
        'zhao@126.com,Lei,Zhao,2,"""青年""",2024-03-01 08:00:00\n'
        "qian@sina.com,芳,钱,3,,\n"
    )
    report, problems = import_text(database_url, tmp_path, mailchimp)
    assert report.imported == 2
    assert (problems, report.attribute_columns) == ([], ("MEMBER_RATING",))
    with transaction(database_url) as session:
        zhao = find_subscriber(session, "zhao@126.com")
        assert zhao.attributes == {"MEMBER_RATING": "2"}
        assert (zhao.name, zhao.status, [t.name for t in zhao.tags]) == (
            "Lei Zhao",
            SubscriberStatus.UNSUBSCRIBED,
            ["青年"],
        )
        assert find_subscriber(session, "qian@sina.com").name == "钱芳"


def test_a_dry_run_counts_everything_and_writes_nothing(database_url: str, tmp_path: Path) -> None:
    report, problems = import_text(
        database_url, tmp_path, GOOD_AND_BAD.format(long="x"), list_name="周刊", dry_run=True
    )
    assert (report.imported, report.skipped, report.errors) == (4, 1, 4)
    assert report.new_lists == ["会员快讯", "周刊", "青年"]
    assert len(problems) == 5
    with transaction(database_url) as session:
        assert session.scalars(select(Subscriber)).all() == []
        assert session.scalars(select(List)).all() == []


def populate(url: str, tmp_path: Path) -> None:
    """Subscribers of every kind a round trip must keep."""
    import_text(
        url,
        tmp_path,
        "email,name,status,lists,tags,channel,format,openid,attributes\n"
        'wang@qq.com,王钰哲,active,会员快讯|青年,基层,both,digest,oABC,"{""城市"": ""杭州""}"\n'
        "'=cmd@evil.com,'=HYPERLINK(\"x\"),active,会员快讯,,email,text,,\n"
        "li@163.com,'+86 571 1234,bounced,青年,,,,,\n"
        "zhao@例子.中国,'-赵-,pending,,,wechat,full,oXYZ,\n",
    )
    with transaction(url) as session:
        unsubscribe(session, add_subscriber(session, "qian@sina.com", name="钱").subscriber)
        create_list(session, "空的")
        request_subscription(session, "sun@foxmail.com", lists=["会员快讯"], source="web form")


def empty(url: str) -> None:
    with transaction(url) as session:
        for table in (subscriber_tags, Subscription, Tag, Subscriber, List):
            session.execute(delete(table))


def test_export_then_import_gives_the_same_subscribers_lists_and_statuses(
    database_url: str, tmp_path: Path
) -> None:
    populate(database_url, tmp_path)
    exported = export_text(database_url)
    lines = exported.splitlines()
    assert lines[0] == "email,name,status,lists,channel,format,openid,attributes,created_at"
    assert len(lines) == 7
    assert lines[2].startswith('\'=cmd@evil.com,"\'=HYPERLINK(""x"")",active,会员快讯,')
    assert ",'+86 571 1234,bounced," in exported

    fresh = f"sqlite:///{tmp_path / 'fresh.db'}"
    upgrade(fresh)
    empty(database_url)
    for target in (database_url, fresh):
        report, problems = import_text(target, tmp_path, exported)
        assert (report.imported, report.errors, problems) == (6, 0, [])
        assert export_text(target) == exported
