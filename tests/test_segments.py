"""Saved segments on both databases: counts equal a plain SQL check of the same words, a send to
a segment plans exactly its readers, and the CLI saves, counts and refuses as staff meet it."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from click.testing import CliRunner, Result
from sqlalchemy import bindparam, insert, select, text
from sqlalchemy.orm import Session

from distributor.campaigns.schedule import create_send
from distributor.cli import main
from distributor.db import UTCDateTime, session_factory, transaction, utcnow
from distributor.errors import AlreadyExists, NotFound
from distributor.readers.models import EngagementEvent
from distributor.segments.language import SegmentSyntaxError
from distributor.segments.store import count_segment, create_segment, segment_audience
from distributor.sending.lifecycle import start_due_sends
from distributor.sending.models import Delivery, Send
from distributor.sending.planner import plan_send
from distributor.vocabulary import FailureCause, SendState, Variant
from subscribers.models import (
    List,
    Subscriber,
    SubscriberStatus,
    Subscription,
    SubscriptionStatus,
    Tag,
    subscriber_tags,
)
from subscribers.query import Audience, audience_conditions
from tests.support.sending import import_sample

ZONE = ZoneInfo("Asia/Shanghai")
READERS = 400


def _population(url: str, sample_issue_path: Path) -> None:
    """Readers with every fact a segment reads, drawn at random (seeded): lists, tags,
    attributes, channels, formats, statuses, sign-up dates, opens, clicks, soft bounces."""
    chance = random.Random(26)
    issue_id = import_sample(url, sample_issue_path)
    with transaction(url) as session:
        lists = [List(name=name) for name in ("members", "youth", "empty")]
        tags = [Tag(name=name) for name in ("青年", "基层工会")]
        session.add_all([*lists, *tags])
        sends = [
            Send(
                issue_id=issue_id,
                audience=Audience(lists=("members",)),
                variant=Variant.FULL,
                state=SendState.DONE,
                tracking=tracking,
                is_test=test,
                started_at=utcnow() if started else None,
            )
            for tracking, test, started in (
                (True, False, True),
                (True, False, True),
                (False, False, True),
                (True, True, True),
                (True, False, True),
            )
        ]
        session.add_all(sends)
        session.flush()
        start = datetime(2026, 1, 1, tzinfo=UTC)
        for i in range(READERS):
            reader = Subscriber(
                email=f"r{i}@example.org",
                email_key=f"r{i}@example.org",
                name=f"读者{i}",
                status=chance.choice([SubscriberStatus.ACTIVE] * 5 + [SubscriberStatus.BOUNCED]),
                channel=chance.choice(["email", "email", "wechat", "both"]),
                openid=chance.choice([None, f"o{i}"]),
                format=chance.choice(["full", "digest", "text"]),
                attributes=chance.choice(
                    [{}, {"department": "工会办"}, {"department": "宣传部"}, {"age": 30}]
                ),
                created_at=start + timedelta(days=chance.randrange(340)),
            )
            session.add(reader)
            session.flush()
            for mailing_list in lists[:2]:
                if chance.random() < 0.6:
                    session.add(
                        Subscription(
                            subscriber_id=reader.id,
                            list_id=mailing_list.id,
                            status=chance.choice(
                                [SubscriptionStatus.ACTIVE] * 3 + [SubscriptionStatus.UNSUBSCRIBED]
                            ),
                        )
                    )
            for tag in tags:
                if chance.random() < 0.3:
                    session.execute(
                        insert(subscriber_tags).values(subscriber_id=reader.id, tag_id=tag.id)
                    )
            for send in sends:
                for kind in ("open", "click"):
                    if chance.random() < 0.2:
                        session.add(
                            EngagementEvent(
                                send_id=send.id,
                                subscriber_id=reader.id,
                                kind=kind,
                                machine=kind == "click" and chance.random() < 0.3,
                                at=start + timedelta(days=chance.randrange(340)),
                            )
                        )
            if chance.random() < 0.1:
                session.add(
                    Delivery(
                        send_id=sends[0].id,
                        subscriber_id=reader.id,
                        channel="email",
                        address=reader.email,
                        variant=Variant.FULL,
                        state="failed",
                        failure_cause=chance.choice(
                            [FailureCause.MAILBOX_FULL, FailureCause.BLOCKED]
                        ),
                        updated_at=start + timedelta(days=chance.randrange(340)),
                    )
                )


# The same words, in plain SQL: the check the compiler must agree with.
ON_A_LIST = (
    "s.status = 'active' and exists (select 1 from subscriptions u where "
    "u.subscriber_id = s.id and u.status = 'active')"
)
IN_LIST = (
    "exists (select 1 from subscriptions u join lists l on l.id = u.list_id where "
    "u.subscriber_id = s.id and u.status = 'active' and l.name = '{}')"
)
HAS_TAG = (
    "exists (select 1 from subscriber_tags t join tags g on g.id = t.tag_id where "
    "t.subscriber_id = s.id and g.name = '{}')"
)
LAST_SENDS = (
    "select id from sends where tracking and not is_test and started_at is not null "
    "order by id desc limit {}"
)
EVENT = "exists (select 1 from engagement_events e where e.subscriber_id = s.id and {})"


def _department(dialect: str) -> str:
    return (
        "json_extract(s.attributes, '$.department')"
        if dialect == "sqlite"
        else "(s.attributes ->> 'department')"
    )


def cases(dialect: str) -> list[tuple[str, str]]:
    department = _department(dialect)
    return [
        ("list = members", IN_LIST.format("members")),
        ("list = empty", "false"),
        (
            "list = members and tag = 青年",
            f"{IN_LIST.format('members')} and {HAS_TAG.format('青年')}",
        ),
        (
            "attr.department = 工会办 or channel = wechat",
            f"{department} = '工会办' or (s.channel in ('wechat', 'both') "
            "and s.openid is not null)",
        ),
        ("attr.department != 工会办", f"coalesce({department}, '') != '工会办'"),
        (
            "format in (digest, text) and not tag = 青年",
            f"s.format in ('digest', 'text') and not {HAS_TAG.format('青年')}",
        ),
        ("joined >= 2026-06-01", "s.created_at >= :june"),
        (
            "opened any of last 2 sends",
            EVENT.format(f"e.kind = 'open' and e.send_id in ({LAST_SENDS.format(2)})"),
        ),
        (
            "never opened since 2026-10-01",
            "not " + EVENT.format("e.kind = 'open' and e.at >= :oct"),
        ),
        (
            "clicked since 2026-01-01",
            EVENT.format("e.kind = 'click' and not e.machine and e.at >= :jan"),
        ),
        (
            "tag = 青年 or opened any of last 2 sends or clicked since 2026-06-01",
            f"{HAS_TAG.format('青年')} or "
            + EVENT.format(f"e.kind = 'open' and e.send_id in ({LAST_SENDS.format(2)})")
            + " or "
            + EVENT.format("e.kind = 'click' and not e.machine and e.at >= :june"),
        ),
        (
            "bounced softly",
            "exists (select 1 from deliveries d where d.subscriber_id = s.id and "
            "d.failure_cause in ('mailbox_full', 'mailbox_disabled'))",
        ),
        (
            "(list = youth or tag in (基层工会, 青年)) and not (format = text or "
            "clicked any of last 3 sends) and channel != wechat",
            f"({IN_LIST.format('youth')} or {HAS_TAG.format('基层工会')} or "
            f"{HAS_TAG.format('青年')}) and not (s.format = 'text' or "
            + EVENT.format(
                f"e.kind = 'click' and not e.machine and e.send_id in ({LAST_SENDS.format(3)})"
            )
            + ") and not (s.channel in ('wechat', 'both') and s.openid is not null)",
        ),
    ]


def plain_count(session: Session, condition: str) -> int:
    query = text(f"select count(*) from subscribers s where {ON_A_LIST} and ({condition})")
    moments = {
        "june": datetime(2026, 6, 1, tzinfo=ZONE),
        "oct": datetime(2026, 10, 1, tzinfo=ZONE),
        "jan": datetime(2026, 1, 1, tzinfo=ZONE),
    }
    used = {name: value for name, value in moments.items() if f":{name}" in condition}
    query = query.bindparams(*(bindparam(name, type_=UTCDateTime) for name in used))
    return int(session.execute(query, used).scalar_one())


def test_counts_equal_a_plain_sql_check(database_url: str, sample_issue_path: Path) -> None:
    _population(database_url, sample_issue_path)
    with transaction(database_url) as session:
        dialect = session.get_bind().dialect.name
        results = []
        for number, (expression, condition) in enumerate(cases(dialect)):
            create_segment(session, f"s{number}", expression, ZONE)
            results.append(
                (
                    expression,
                    count_segment(session, f"s{number}", ZONE),
                    plain_count(session, condition),
                )
            )
    assert [(e, ours) for e, ours, _ in results] == [(e, plain) for e, _, plain in results]
    # The check is not vacuous: the cases select different, non-trivial parts of the store.
    counts = [ours for _, ours, _ in results]
    assert counts[1] == 0 and len(set(counts)) >= 8 and max(counts) < READERS


def test_a_send_to_a_segment_plans_exactly_its_readers(
    database_url: str, sample_issue_path: Path
) -> None:
    _population(database_url, sample_issue_path)
    expression = "tag = 青年 and not bounced softly and channel = email"
    with transaction(database_url) as session:
        create_segment(session, "young", expression, ZONE)
        members = set(
            session.scalars(
                select(Subscriber.email).where(
                    *_conditions(session, "young"), Subscriber.channel.in_(["email", "both"])
                )
            )
        )
        created = create_send(
            session,
            issue_id=session.scalar(select(Send.issue_id).limit(1)) or 0,
            audience=segment_audience(session, "young", ZONE, lists=("members",)),
            variant=Variant.FULL,
            at=None,
            now=utcnow(),
            zone=ZONE,
        )
        in_members = set(
            session.scalars(
                select(Subscriber.email).where(
                    Subscriber.id.in_(
                        select(Subscription.subscriber_id).where(
                            Subscription.status == SubscriptionStatus.ACTIVE,
                            Subscription.list_id
                            == select(List.id).where(List.name == "members").scalar_subquery(),
                        )
                    )
                )
            )
        )
        start_due_sends(session, utcnow())
    expected = members & in_members
    assert created.readers == len(expected) > 10
    plan_send(session_factory(database_url), created.id, batch_size=7, lease=timedelta(minutes=1))
    with transaction(database_url) as session:
        planned = set(
            session.scalars(select(Delivery.address).where(Delivery.send_id == created.id))
        )
        # The send keeps the expression it was made with, whatever the segment becomes.
        assert session.get_one(Send, created.id).audience.where == expression
    assert planned == expected


def _conditions(session: Session, name: str) -> list[object]:
    return audience_conditions(segment_audience(session, name, ZONE))


def test_names_it_cannot_find_are_refused_when_saved(sqlite_url: str) -> None:
    with transaction(sqlite_url) as session:
        session.add(List(name="members"))
        session.flush()
        with pytest.raises(NotFound, match="there is no list named 'memebrs'"):
            create_segment(session, "x", "list = memebrs", ZONE)
        with pytest.raises(NotFound, match="there is no tag named '青年'"):
            create_segment(session, "x", "list = members and tag = 青年", ZONE)
        with pytest.raises(SegmentSyntaxError, match="at position 7"):
            create_segment(session, "x", "list = ", ZONE)
        create_segment(session, "x", "list = members", ZONE)
        with pytest.raises(AlreadyExists, match="a segment named 'x' exists already"):
            create_segment(session, "x", "list = members", ZONE)


# The CLI, as staff meet it.


def run(env: dict[str, str], *args: str, code: int = 0) -> Result:
    result = CliRunner().invoke(main, list(args), env=env)
    assert result.exit_code == code, result.output
    return result


@pytest.fixture
def env(sqlite_url: str) -> dict[str, str]:
    return {
        "DATABASE_URL": sqlite_url,
        "DISTRIBUTOR_SECRET_KEY": "segment-cli-test-secret-0123456789abcdef",
        "MAIL_FROM": "杭州工运 <newsletter@hzgh.example.org>",
    }


def test_the_cli_saves_counts_lists_and_sends_to_a_segment(
    env: dict[str, str], sqlite_url: str, sample_issue_path: Path
) -> None:
    issue_id = import_sample(sqlite_url, sample_issue_path)
    with transaction(sqlite_url) as session:
        members = List(name="members")
        session.add(members)
        session.flush()
        for i, department in enumerate(["工会办", "工会办", "宣传部"]):
            reader = Subscriber(
                email=f"r{i}@example.org",
                email_key=f"r{i}@example.org",
                status=SubscriberStatus.ACTIVE,
                attributes={"department": department},
            )
            session.add(reader)
            session.flush()
            session.add(
                Subscription(
                    subscriber_id=reader.id, list_id=members.id, status=SubscriptionStatus.ACTIVE
                )
            )
    saved = run(env, "segments", "create", "office", "--where", "attr.department = 工会办")
    assert saved.output == "Segment 'office' saved: 2 readers now.\n"
    assert run(env, "segments", "count", "office").output == "2\n"
    assert "attr.department = 工会办" in run(env, "segments", "list").output
    refused = run(env, "segments", "create", "bad", "--where", "attr.department == x", code=2)
    assert refused.output == (
        "Error: at position 18: expected a value, found '='\n"
        "  attr.department == x\n"
        "                   ^\n"
    )
    created = run(env, "send", "create", "--issue", str(issue_id), "--segment", "office")
    assert "It goes to 2 readers (segment office) now" in created.output
    missing = run(env, "send", "create", "--issue", str(issue_id), "--segment", "nobody", code=2)
    assert "there is no segment named 'nobody'" in missing.output
    neither = run(env, "send", "create", "--issue", str(issue_id), code=2)
    assert "--list NAME (repeatable) or --segment NAME" in neither.output
    run(env, "segments", "edit", "office", "--where", "attr.department = 宣传部")
    assert run(env, "segments", "count", "office").output == "1\n"
    run(env, "segments", "delete", "office")
    assert "No segments" in run(env, "segments", "list").output
