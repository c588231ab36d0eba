"""A stranger's sign-up never undoes a reader's own choice or a suppression, over HTTP against the
real app (SQLite and PostgreSQL) with confirmations sent through a real SMTP server.

An address that bounced or complained: nothing stored, nothing sent, the same answer. An address
that unsubscribed: one confirmation a day, and the person comes back (to that one list, with an
event row) only by following it.
"""

from __future__ import annotations

import email
import email.policy
import html
import re
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import timedelta

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select, update

from distributor.db import transaction, utcnow
from distributor.readers.confirmation import send_confirmation
from distributor.web.app import create_app
from distributor.web.security import MemoryRateLimiter
from subscribers.links import PublicLinks
from subscribers.models import (
    List,
    Resubscription,
    Subscriber,
    SubscriberEvent,
    SubscriberStatus,
    Subscription,
)
from subscribers.public import unsubscribe_by_token
from subscribers.signup import set_list_public
from subscribers.store import add_subscriber, create_list, find_subscriber
from subscribers.tokens import TokenSigner
from tests.support.sending import SECRET
from tests.support.smtp import SmtpServer
from tests.support.web import csrf_of, web_settings

LINKS = PublicLinks("", TokenSigner(SECRET))


@dataclass
class Site:
    url: str
    client: TestClient
    smtp: SmtpServer


@pytest.fixture
def site(database_url: str) -> Iterator[Site]:
    with SmtpServer() as smtp:
        settings = web_settings(database_url, SIGNUP_RATE_LIMIT="100", **smtp.env())

        def confirm_now(subscriber_id: int) -> None:  # what the Celery task does, in process
            send_confirmation(settings, subscriber_id)

        app = create_app(settings, enqueue_confirmation=confirm_now, limiter=MemoryRateLimiter())
        with TestClient(app, base_url="http://testserver") as client:
            yield Site(database_url, client, smtp)


def open_lists(url: str, *names: str) -> list[int]:
    with transaction(url) as session:
        ids = [create_list(session, name).id for name in names]
        for name in names:
            set_list_public(session, name)
        return ids


def sign_up(site: Site, list_id: int, address: str) -> str:
    """The page's answer, with the address taken out (it is echoed back to the person)."""
    page = site.client.get(f"/subscribe/{list_id}")
    response = site.client.post(
        f"/subscribe/{list_id}",
        data={"email": address, "name": "Mallory", "csrf": csrf_of(page.text)},
    )
    assert response.status_code == 200, response.text
    return response.text.replace(html.escape(address), "EMAIL")


def everything_about(url: str, address: str) -> tuple[object, ...]:
    """What a sign-up could change about the person at ``address``."""
    with transaction(url) as session:
        person = find_subscriber(session, address)
        lists = session.execute(
            select(List.name, Subscription.status)
            .join(Subscription)
            .where(Subscription.subscriber_id == person.id)
            .order_by(List.name)
        ).all()
        events = session.scalars(
            select(SubscriberEvent.id).where(SubscriberEvent.subscriber_id == person.id)
        ).all()
        requests = session.scalars(
            select(Resubscription.code).where(Resubscription.subscriber_id == person.id)
        ).all()
        return (
            person.status,
            person.name,
            person.consent_source,
            person.updated_at,
            tuple(lists),
            tuple(events),
            tuple(requests),
        )


def mails_to(site: Site, address: str) -> list[email.message.EmailMessage]:
    return [
        email.message_from_bytes(each.data, policy=email.policy.default)  # type: ignore[misc]
        for each in site.smtp.handler.received
        if each.recipient == address
    ]


def confirm_path(message: email.message.EmailMessage) -> str:
    body = message.get_body(("plain",))
    assert body is not None
    match = re.search(r"https?://\S+(/c/\S+)", str(body.get_content()))
    assert match, "no confirm link in the message"
    return match.group(1)


def press_confirm(site: Site, path: str) -> tuple[int, str]:
    page = site.client.get(path)
    if page.status_code != 200:
        return page.status_code, page.text
    response = site.client.post(path, data={"csrf": csrf_of(page.text)})
    return response.status_code, response.text


def test_a_sign_up_for_a_bounced_or_complained_address_changes_nothing_and_sends_nothing(
    site: Site,
) -> None:
    [list_id] = open_lists(site.url, "会员快讯")
    with transaction(site.url) as session:
        for address, status in (
            ("gone@example.org", SubscriberStatus.BOUNCED),
            ("angry@example.org", SubscriberStatus.COMPLAINED),
        ):
            add_subscriber(session, address, name="原名").subscriber.status = status
    before = {
        each: everything_about(site.url, each) for each in ("gone@example.org", "angry@example.org")
    }
    answer_for_a_new_address = sign_up(site, list_id, "new@example.org")
    for _ in range(3):
        for address in before:
            assert sign_up(site, list_id, address) == answer_for_a_new_address
    assert "请查收确认邮件" in answer_for_a_new_address  # "check your mail": the same for everyone
    assert {each: everything_about(site.url, each) for each in before} == before
    assert [each.recipient for each in site.smtp.handler.received] == ["new@example.org"]


def test_an_unsubscribed_reader_gets_one_confirmation_a_day_and_comes_back_only_by_confirming(
    site: Site,
) -> None:
    news, youth = open_lists(site.url, "会员快讯", "青年")
    with transaction(site.url) as session:
        wang = add_subscriber(session, "wang@qq.com", name="老王", lists=["会员快讯", "青年"])
        wang_id = wang.subscriber.id
        unsubscribe_by_token(session, TokenSigner(SECRET), LINKS.unsubscribe(wang_id)[3:])
    before = everything_about(site.url, "wang@qq.com")
    answer_for_a_new_address = sign_up(site, news, "li@163.com")

    # Six sign-ups by a stranger within the day: one message, nothing else changes.
    for _ in range(6):
        assert sign_up(site, news, "wang@qq.com") == answer_for_a_new_address
    [first] = mails_to(site, "wang@qq.com")
    assert "会员快讯" in str(first["Subject"])
    after = everything_about(site.url, "wang@qq.com")
    assert after[:6] == before[:6]  # status, name, consent, lists, no event: only the request
    assert after[0] is SubscriberStatus.UNSUBSCRIBED and len(after[6]) == 1

    # A day later one more; it replaces the first, whose link no longer works.
    with transaction(site.url) as session:
        session.execute(update(Resubscription).values(requested_at=utcnow() - timedelta(hours=25)))
    assert sign_up(site, news, "wang@qq.com") == answer_for_a_new_address
    same_day = sign_up(site, youth, "wang@qq.com")  # for another list, the same day: nothing
    assert same_day == sign_up(site, youth, "zhao@126.com")
    first_link, second = confirm_path(first), mails_to(site, "wang@qq.com")[1]
    assert len(mails_to(site, "wang@qq.com")) == 2
    status, text = press_confirm(site, first_link)
    assert status == 400 and "这个确认链接已失效：请重新订阅。" in text, text
    assert everything_about(site.url, "wang@qq.com")[0] is SubscriberStatus.UNSUBSCRIBED

    # Wang follows the new link: back on 会员快讯 only, and the event says why.
    status, text = press_confirm(site, confirm_path(second))
    assert status == 200 and "感谢订阅" in text, text
    with transaction(site.url) as session:
        person = session.get(Subscriber, wang_id)
        assert person is not None and person.status is SubscriberStatus.ACTIVE
        assert person.name == "老王" and person.consent_source == "web sign-up"
        lists = dict(
            session.execute(
                select(List.name, Subscription.status)
                .join(Subscription)
                .where(Subscription.subscriber_id == wang_id)
            ).all()
        )
        [event] = session.scalars(
            select(SubscriberEvent).where(SubscriberEvent.subscriber_id == wang_id)
        ).all()
        requests = session.scalars(select(Resubscription)).all()
    assert lists == {"会员快讯": "active", "青年": "unsubscribed"}
    assert (event.old_status, event.new_status, event.source) == (
        SubscriberStatus.UNSUBSCRIBED,
        SubscriberStatus.ACTIVE,
        "web sign-up",
    )
    assert "会员快讯" in event.reason and requests == []
    assert press_confirm(site, confirm_path(second))[0] == 200  # following it twice is harmless

    # Wang leaves again: the used link does not bring him back.
    with transaction(site.url) as session:
        unsubscribe_by_token(session, TokenSigner(SECRET), LINKS.unsubscribe(wang_id)[3:])
    status, text = press_confirm(site, confirm_path(second))
    assert status == 400 and "这个确认链接已失效" in text
    assert everything_about(site.url, "wang@qq.com")[0] is SubscriberStatus.UNSUBSCRIBED
