"""The subscriber's side of the web, over HTTP against the real app on SQLite and PostgreSQL:
every link in a message works, a GET never changes anything, and nothing unsafe gets through."""

from __future__ import annotations

import html
import re
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select, update

from distributor.config import Settings
from distributor.db import transaction
from distributor.devservers.ports import free_port
from distributor.devservers.redis_server import RedisServer
from distributor.issues.models import Article
from distributor.readers.archive import archive_page
from distributor.readers.models import UnsubscribeEvent
from distributor.readers.unsubscribes import unsubscribes_by_send
from distributor.web.app import create_app
from distributor.web.page_cache import PageCache
from distributor.web.security import MemoryRateLimiter
from subscribers.links import PublicLinks
from subscribers.models import List, Subscriber, SubscriberStatus, Subscription, SubscriptionStatus
from subscribers.signup import set_list_public
from subscribers.store import add_subscriber, create_list, find_subscriber
from subscribers.tokens import TokenPurpose, TokenSigner
from tests.support.audience import make_audience
from tests.support.sending import SECRET, import_sample
from tests.support.web import csrf_of, started_send, web_settings

LINKS = PublicLinks("", TokenSigner(SECRET))
XSS = '<script>alert("x")</script><img src=x onerror=alert(1)>'
FIXTURES = Path(__file__).parent / "fixtures" / "issues"


@dataclass
class Site:
    url: str
    settings: Settings
    client: TestClient
    confirmations: list[int]


@pytest.fixture
def site(database_url: str) -> Iterator[Site]:
    settings = web_settings(database_url)
    confirmations: list[int] = []
    app = create_app(
        settings, enqueue_confirmation=confirmations.append, limiter=MemoryRateLimiter()
    )
    with TestClient(app, base_url="http://testserver") as client:
        yield Site(database_url, settings, client, confirmations)


def reader(url: str, email: str = "reader00001@example.org") -> Subscriber:
    with transaction(url) as session:
        return find_subscriber(session, email)


def snapshot(url: str) -> tuple[object, ...]:
    """Everything a link could change."""
    with transaction(url) as session:
        people = session.execute(
            select(
                Subscriber.id,
                Subscriber.status,
                Subscriber.format,
                Subscriber.channel,
                Subscriber.locale,
            ).order_by(Subscriber.id)
        ).all()
        subscriptions = session.execute(
            select(Subscription.subscriber_id, Subscription.list_id, Subscription.status).order_by(
                Subscription.subscriber_id, Subscription.list_id
            )
        ).all()
        events = session.scalars(select(UnsubscribeEvent.id)).all()
    return tuple(people), tuple(subscriptions), tuple(events)


# --- unsubscribe ----------------------------------------------------------------------------


@pytest.mark.parametrize("encoding", ["urlencoded", "multipart"])
def test_one_click_post_as_a_mail_provider_sends_it_unsubscribes(
    site: Site, sample_issue_path: Path, encoding: str
) -> None:
    make_audience(site.url, "members", 2)
    send_id = started_send(site.url, import_sample(site.url, sample_issue_path), "members")
    subscriber = reader(site.url)
    path = LINKS.unsubscribe(subscriber.id, send_id=send_id)
    body = {"List-Unsubscribe": "One-Click"}
    for _ in range(2):  # following it twice is harmless
        site.client.cookies.clear()
        if encoding == "urlencoded":
            response = site.client.post(path, data=body)
        else:
            response = site.client.post(path, files={"List-Unsubscribe": (None, "One-Click")})
        assert 200 <= response.status_code < 300, response.text
        assert "set-cookie" not in response.headers
        # A line of text in the reader's language, not a page: nobody sees it.
        assert response.headers["content-type"].startswith("text/plain")
        assert response.text == "您已退订，我们不会再给您发送邮件。\n"
    assert reader(site.url).status is SubscriberStatus.UNSUBSCRIBED
    with transaction(site.url) as session:
        assert unsubscribes_by_send(session, send_id) == 1
        events = session.scalars(select(UnsubscribeEvent)).all()
        statuses = session.scalars(
            select(Subscription.status).where(Subscription.subscriber_id == subscriber.id)
        ).all()
    assert [(e.subscriber_id, e.send_id, e.list_id) for e in events] == [
        (subscriber.id, send_id, None)
    ]
    assert statuses == [SubscriptionStatus.UNSUBSCRIBED]
    assert reader(site.url, "reader00002@example.org").status is SubscriberStatus.ACTIVE


def test_an_old_link_without_a_send_still_unsubscribes(site: Site) -> None:
    make_audience(site.url, "members", 1)
    subscriber = reader(site.url)
    response = site.client.post(
        LINKS.unsubscribe(subscriber.id), data={"List-Unsubscribe": "One-Click"}
    )
    assert response.status_code == 200
    assert reader(site.url).status is SubscriberStatus.UNSUBSCRIBED


def test_the_page_offers_the_sends_lists_and_leaves_only_the_one_chosen(
    site: Site, sample_issue_path: Path
) -> None:
    make_audience(site.url, "members", 1)
    with transaction(site.url) as session:
        create_list(session, "青年")
        add_subscriber(session, "reader00001@example.org", lists=["青年"])
        youth = session.scalar(
            select(Subscription.list_id)
            .join(Subscriber)
            .where(Subscriber.email_key == "reader00001@example.org")
            .order_by(Subscription.list_id.desc())
        )
    send_id = started_send(site.url, import_sample(site.url, sample_issue_path), "青年")
    subscriber = reader(site.url)
    path = LINKS.unsubscribe(subscriber.id, send_id=send_id)
    page = site.client.get(path)
    assert page.status_code == 200
    assert f'value="{youth}"' in page.text and "仅退订《青年》" in page.text
    assert "members" not in page.text  # the send did not go to that list
    # The page links to the reader's preferences (signed at render time: compare the subject).
    [token] = re.findall(r'href="/p/([^"]+)"', page.text)
    assert LINKS.signer.verify(token, TokenPurpose.PREFERENCES) == str(subscriber.id)
    response = site.client.post(path, data={"scope": str(youth), "csrf": csrf_of(page.text)})
    assert response.status_code == 200 and "您已退订《青年》" in response.text
    with transaction(site.url) as session:
        statuses = dict(
            session.execute(
                select(Subscription.list_id, Subscription.status).where(
                    Subscription.subscriber_id == subscriber.id
                )
            ).all()
        )
        assert unsubscribes_by_send(session, send_id) == 1
    assert statuses[youth] is SubscriptionStatus.UNSUBSCRIBED
    assert set(statuses.values()) == {SubscriptionStatus.ACTIVE, SubscriptionStatus.UNSUBSCRIBED}
    assert reader(site.url).status is SubscriberStatus.ACTIVE


def test_a_form_post_without_its_csrf_token_changes_nothing(site: Site) -> None:
    make_audience(site.url, "members", 1)
    subscriber = reader(site.url)
    before = snapshot(site.url)
    forms = [
        (LINKS.unsubscribe(subscriber.id), {"scope": "all"}),
        (LINKS.unsubscribe(subscriber.id), {"scope": "all", "csrf": "0" * 32}),
        # a token of another link's page
        (
            LINKS.unsubscribe(subscriber.id),
            {
                "scope": "all",
                "csrf": csrf_of(site.client.get(LINKS.preferences(subscriber.id)).text),
            },
        ),
        (
            LINKS.preferences(subscriber.id),
            {"format": "digest", "channel": "email", "language": "en"},
        ),
        (LINKS.confirm(subscriber.id), {}),
    ]
    for path, data in forms:
        response = site.client.post(path, data=data)
        assert response.status_code == 403, (path, response.text)
        assert "表单已过期：请刷新页面后重试。" in response.text
    assert snapshot(site.url) == before


def test_a_get_of_any_link_changes_nothing(site: Site, sample_issue_path: Path) -> None:
    make_audience(site.url, "members", 1)
    list_id = open_list(site.url)
    send_id = started_send(site.url, import_sample(site.url, sample_issue_path), "members")
    subscriber = reader(site.url)
    before = snapshot(site.url)
    for path in (
        LINKS.unsubscribe(subscriber.id, send_id=send_id),
        LINKS.unsubscribe(subscriber.id),
        LINKS.preferences(subscriber.id),
        LINKS.confirm(subscriber.id),
        f"/subscribe/{list_id}",
        "/archive",
        "/archive/471",
    ):
        for _ in range(2):
            response = site.client.get(path)
            assert response.status_code == 200, (path, response.text)
            assert response.request.method == "GET"
    assert snapshot(site.url) == before


# --- bad links ------------------------------------------------------------------------------


def test_forged_altered_and_other_purpose_tokens_get_a_friendly_4xx(site: Site) -> None:
    make_audience(site.url, "members", 2)
    subscriber = reader(site.url)
    token = LINKS.unsubscribe(subscriber.id).rpartition("/")[2]
    payload, mac = token.split(".")
    someone_else = LINKS.unsubscribe(subscriber.id + 1).rpartition("/")[2].split(".")[0]
    forged = PublicLinks("", TokenSigner("not-our-secret"))
    bad = {
        "altered id": f"/u/{someone_else}.{mac}",
        "altered mac": f"/u/{payload}.{mac[:-2]}AA",
        "forged": forged.unsubscribe(subscriber.id),
        "cut short": f"/u/{payload}",
        "garbage": "/u/%25%25%25.%3F%3F",
        "preferences token to unsubscribe": "/u/" + LINKS.preferences(subscriber.id).split("/")[-1],
        "unsubscribe token to confirm": "/c/" + token,
        "unsubscribe token to preferences": "/p/" + token,
        "confirm token to preferences": "/p/" + LINKS.confirm(subscriber.id).split("/")[-1],
        "no such subscriber": LINKS.unsubscribe(999_999),
    }
    before = snapshot(site.url)
    for name, path in bad.items():
        for method in ("GET", "POST"):
            response = site.client.request(
                method, path, data={"List-Unsubscribe": "One-Click"} if method == "POST" else None
            )
            assert 400 <= response.status_code < 500, (name, method, response.status_code)
            assert "Traceback" not in response.text and '<html lang="zh-CN">' in response.text
            assert '<p class="message">' in response.text, (name, response.text)
    english = site.client.get(bad["altered mac"], headers={"Accept-Language": "en-GB,en;q=0.8"})
    assert english.status_code == 400 and '<html lang="en">' in english.text
    assert "altered" in english.text
    assert snapshot(site.url) == before


# --- preferences ----------------------------------------------------------------------------


def test_preferences_are_saved_with_their_csrf_token(site: Site) -> None:
    make_audience(site.url, "members", 1)
    with transaction(site.url) as session:
        for name in ("open", "news"):
            create_list(session, name, description=f"the {name} list")
            set_list_public(session, name)
        add_subscriber(session, "reader00001@example.org", lists=["open"])
        ids = dict(session.execute(select(List.name, List.id)).all())
    subscriber = reader(site.url)
    path = LINKS.preferences(subscriber.id)
    page = site.client.get(path)
    assert page.status_code == 200 and "订阅设置" in page.text
    assert "the open list" in page.text and "members" not in page.text  # public lists only
    # WeChat is not set up here: not offered, and refused if posted anyway.
    assert 'value="wechat"' not in page.text and 'value="both"' not in page.text
    refused = site.client.post(
        path,
        data={
            "format": "digest",
            "channel": "wechat",
            "language": "en",
            "csrf": csrf_of(page.text),
        },
        follow_redirects=False,
    )
    assert refused.status_code == 400
    with transaction(site.url) as session:
        assert session.get(Subscriber, subscriber.id).channel == "email"  # type: ignore[union-attr]
    response = site.client.post(
        path,
        data={
            "format": "digest",
            "channel": "email",
            "language": "en",
            "lists": [str(ids["news"])],
            "csrf": csrf_of(page.text),
        },
        follow_redirects=False,
    )
    assert response.status_code == 303
    after = site.client.get(response.headers["location"])
    assert '<html lang="en">' in after.text and "Your preferences are saved." in after.text
    with transaction(site.url) as session:
        saved = session.get(Subscriber, subscriber.id)
        assert saved is not None
        assert (saved.format, saved.channel, saved.locale) == ("digest", "email", "en")
        lists = dict(
            session.execute(
                select(List.name, Subscription.status)
                .join(Subscription)
                .where(Subscription.subscriber_id == subscriber.id)
            ).all()
        )
    assert lists == {"members": "active", "open": "unsubscribed", "news": "active"}
    bad = site.client.post(
        path,
        data={"format": "poster", "channel": "email", "language": "en", "csrf": csrf_of(page.text)},
    )
    assert bad.status_code == 400


# --- sign-up --------------------------------------------------------------------------------


def open_list(url: str, name: str = "会员快讯", description: str = "每周一期") -> int:
    with transaction(url) as session:
        created = create_list(session, name, description=description)
        set_list_public(session, name)
        return created.id


def sign_up(site: Site, list_id: int, **fields: str) -> str:
    page = site.client.get(f"/subscribe/{list_id}")
    assert page.status_code == 200
    response = site.client.post(
        f"/subscribe/{list_id}", data={**fields, "csrf": csrf_of(page.text)}
    )
    assert response.status_code == 200, response.text
    return response.text.replace(html.escape(fields.get("email", "")), "EMAIL")


def test_sign_up_answers_the_same_for_known_and_new_addresses(site: Site) -> None:
    list_id = open_list(site.url)
    with transaction(site.url) as session:
        known = add_subscriber(session, "known@example.org", name="老王").subscriber.id
    new_answer = sign_up(site, list_id, email="new@example.org", name="小李")
    known_answer = sign_up(site, list_id, email="known@example.org", name="Mallory")
    assert new_answer == known_answer and "请查收确认邮件" in new_answer
    new = reader(site.url, "new@example.org")
    assert (new.status, new.name, new.locale) == (SubscriberStatus.PENDING, "小李", "zh-CN")
    kept = reader(site.url, "known@example.org")
    assert (kept.status, kept.name) == (
        SubscriberStatus.ACTIVE,
        "老王",
    )  # not renamed by a stranger
    assert site.confirmations == [new.id, known]
    # A bot fills the hidden field: the same answer, and nothing happens.
    before = snapshot(site.url)
    assert sign_up(site, list_id, email="bot@example.org", website="http://spam") == new_answer
    assert snapshot(site.url) == before and site.confirmations == [new.id, known]


def test_sign_up_refuses_a_bad_address_and_private_lists(site: Site) -> None:
    list_id = open_list(site.url)
    page = site.client.get(f"/subscribe/{list_id}")
    response = site.client.post(
        f"/subscribe/{list_id}", data={"email": "not an address", "csrf": csrf_of(page.text)}
    )
    assert response.status_code == 400 and "请检查邮箱地址" in response.text
    with transaction(site.url) as session:
        create_list(session, "staff only")
    assert site.client.get(f"/subscribe/{list_id + 1}").status_code == 404
    assert site.client.get("/subscribe/999").status_code == 404
    assert site.confirmations == []


def test_sign_ups_are_rate_limited_per_address(site: Site) -> None:
    list_id = open_list(site.url)
    page = site.client.get(f"/subscribe/{list_id}")
    token = csrf_of(page.text)
    codes = [
        site.client.post(
            f"/subscribe/{list_id}",
            data={"email": f"p{n}@example.org", "csrf": token},
            headers={"X-Forwarded-For": "203.0.113.9"},
        ).status_code
        for n in range(site.settings.signup_rate_limit + 2)
    ]
    assert codes == [200] * site.settings.signup_rate_limit + [429, 429]


def test_rate_limits_are_shared_through_redis(database_url: str, redis_server: RedisServer) -> None:
    settings = web_settings(database_url, REDIS_URL=redis_server.url, SIGNUP_RATE_LIMIT="2")
    list_id = open_list(database_url)
    codes = []
    for _ in range(2):  # two web processes, one Redis
        with TestClient(create_app(settings, enqueue_confirmation=lambda _: None)) as client:
            token = csrf_of(client.get(f"/subscribe/{list_id}").text)
            for n in range(2):
                codes.append(
                    client.post(
                        f"/subscribe/{list_id}", data={"email": f"r{n}@example.org", "csrf": token}
                    ).status_code
                )
    assert codes == [200, 200, 429, 429]


# --- archive --------------------------------------------------------------------------------


def test_the_archive_shows_sent_issues_newest_first_and_hides_the_rest(
    site: Site, sample_issue_path: Path
) -> None:
    make_audience(site.url, "members", 1)
    first = import_sample(site.url, sample_issue_path)
    second = import_sample(site.url, FIXTURES / "hzgy-485.txt")
    import_sample(site.url, FIXTURES / "hzgy-491.txt")  # never sent
    started_send(site.url, first, "members")
    started_send(site.url, second, "members")
    index = site.client.get("/archive")
    assert index.status_code == 200
    assert index.text.index("第485期") < index.text.index("第471期")
    assert "第491期" not in index.text
    assert site.client.get("/archive/491").status_code == 404
    assert site.client.get("/archive/abc").status_code == 404
    assert site.client.get("/archive?page=2").status_code == 404
    with transaction(site.url) as session:
        pages = [archive_page(session, n, page_size=1) for n in (1, 2)]
    assert [[e.number for e in page.entries] for page in pages] == [[485], [471]]
    issue = site.client.get("/archive/471")
    assert issue.status_code == 200
    assert 'id="article-1"' in issue.text and 'href="#article-2"' in issue.text
    assert issue.headers["cache-control"].startswith("public")


def test_archive_pages_are_kept_a_while_and_a_new_send_shows_once_they_expire(
    database_url: str, sample_issue_path: Path
) -> None:
    """Every reader gets the same page, kept in the process; a send shows within the time it is
    kept, and a client holding the page's version gets a 304."""
    now = [1000.0]
    pages = PageCache(clock=lambda: now[0])
    app = create_app(
        web_settings(database_url),
        enqueue_confirmation=lambda _: None,
        limiter=MemoryRateLimiter(),
        pages=pages,
    )
    make_audience(database_url, "members", 1)
    with TestClient(app) as client:
        empty = client.get("/archive")
        assert "第471期" not in empty.text
        started_send(database_url, import_sample(database_url, sample_issue_path), "members")
        kept = client.get("/archive")
        assert kept.text == empty.text and kept.headers["etag"] == empty.headers["etag"]
        now[0] += pages.seconds
        fresh = client.get("/archive")
        assert "第471期" in fresh.text and fresh.headers["etag"] != empty.headers["etag"]
        assert fresh.headers["cache-control"] == f"public, max-age={pages.seconds:g}"

        issue = client.get("/archive/471")
        again = client.get("/archive/471", headers={"If-None-Match": issue.headers["etag"]})
        assert again.status_code == 304 and again.content == b""
        assert again.headers["etag"] == issue.headers["etag"]
        assert "frame-ancestors 'none'" in again.headers["content-security-policy"]
        # Each language is a page of its own; the choice is still remembered per reader.
        english = client.get("/archive/471?lang=en")
        assert '<html lang="en">' in english.text and english.cookies.get("lang") == "en"
        assert '<html lang="zh-CN">' in client.get("/archive/471", cookies={"lang": "zh-CN"}).text
        assert client.get("/archive/472").status_code == 404


# --- languages, headers, escaping -----------------------------------------------------------


def test_pages_speak_the_readers_language(site: Site) -> None:
    make_audience(site.url, "members", 2)
    with transaction(site.url) as session:
        session.execute(
            update(Subscriber)
            .where(Subscriber.email_key == "reader00002@example.org")
            .values(locale="en")
        )
    english_reader = reader(site.url, "reader00002@example.org")
    assert '<html lang="zh-CN">' in site.client.get("/archive").text
    en = site.client.get("/archive", headers={"Accept-Language": "en-US,en;q=0.9,zh;q=0.5"})
    assert '<html lang="en">' in en.text and "Archive" in en.text
    zh = site.client.get("/archive", headers={"Accept-Language": "zh-TW,en;q=0.5"})
    assert '<html lang="zh-CN">' in zh.text
    # Their own page in their own language, whatever the browser says.
    own = site.client.get(LINKS.unsubscribe(english_reader.id), headers={"Accept-Language": "zh"})
    assert '<html lang="en">' in own.text and "Unsubscribe" in own.text
    # The switch on every page; the choice is remembered.
    assert 'href="/archive?lang=en"' in site.client.get("/archive").text
    switched = site.client.get("/archive?lang=en")
    assert '<html lang="en">' in switched.text and switched.cookies.get("lang") == "en"
    assert '<html lang="en">' in site.client.get(LINKS.preferences(reader(site.url).id)).text


def test_every_page_carries_the_security_headers(site: Site) -> None:
    make_audience(site.url, "members", 1)
    subscriber = reader(site.url)
    for path in (
        "/archive",
        LINKS.unsubscribe(subscriber.id),
        "/u/bad",
        "/nowhere",
        "/static/site.css",
        LINKS.preferences(subscriber.id),
    ):
        headers = site.client.get(path).headers
        csp = headers["content-security-policy"]
        assert "frame-ancestors 'none'" in csp and "'unsafe-inline'" not in csp
        assert "script-src 'self'" in csp
        assert headers["x-content-type-options"] == "nosniff"
        assert headers["referrer-policy"] == "no-referrer"
        assert "strict-transport-security" not in headers  # plain http
    token_page = site.client.get(LINKS.unsubscribe(subscriber.id))
    assert token_page.headers["cache-control"] == "no-store"


def test_forwarded_headers_count_only_from_configured_proxies(database_url: str) -> None:
    settings = web_settings(database_url, FORWARDED_ALLOW_IPS="10.0.0.1")
    app = create_app(settings, enqueue_confirmation=lambda _: None, limiter=MemoryRateLimiter())
    forwarded = {"X-Forwarded-Proto": "https", "X-Forwarded-For": "198.51.100.7"}
    with TestClient(app, client=("10.0.0.1", 5000)) as proxy:
        assert (
            "max-age"
            in proxy.get("/archive", headers=forwarded).headers["strict-transport-security"]
        )
    with TestClient(app, client=("192.0.2.1", 5000)) as stranger:
        assert (
            "strict-transport-security" not in stranger.get("/archive", headers=forwarded).headers
        )


def test_hostile_text_is_escaped_on_every_page(site: Site, sample_issue_path: Path) -> None:
    make_audience(site.url, "members", 1)
    list_id = open_list(site.url, name=XSS[:90], description=XSS)
    issue_id = import_sample(site.url, sample_issue_path)
    with transaction(site.url) as session:
        session.execute(update(Subscriber).values(name=XSS))
        session.execute(update(Article).where(Article.issue_id == issue_id).values(headline=XSS))
        session.execute(update(List).values(public=True))
    started_send(site.url, issue_id, "members")
    subscriber = reader(site.url)
    pages = [
        site.client.get(LINKS.unsubscribe(subscriber.id)),
        site.client.get(LINKS.preferences(subscriber.id)),
        site.client.get(f"/subscribe/{list_id}"),
        site.client.get("/archive"),
        site.client.get("/archive/471"),
    ]
    page = pages[2]
    pages.append(  # an address that is a payload comes back in the form, escaped
        site.client.post(f"/subscribe/{list_id}", data={"email": XSS, "csrf": csrf_of(page.text)})
    )
    for response in pages:
        assert "<script>" not in response.text and "<img src=x" not in response.text, response.url
        assert "&lt;script&gt;" in response.text, response.url
    named = site.client.post(
        f"/subscribe/{list_id}",
        data={"email": "x@example.org", "name": XSS, "csrf": csrf_of(page.text)},
    )
    assert named.status_code == 200 and "<script>" not in named.text
    assert XSS in {s.name for s in session_subscribers(site.url)}  # stored as given, shown escaped


def session_subscribers(url: str) -> list[Subscriber]:
    with transaction(url) as session:
        return list(session.scalars(select(Subscriber)))


def port_open(port: int) -> bool:
    with socket.socket() as sock:
        return sock.connect_ex(("127.0.0.1", port)) == 0


def test_the_web_command_serves_the_pages(database_url: str, tmp_path: Path) -> None:
    port = free_port()
    env = {
        "PATH": "/usr/bin:/bin",
        "DATABASE_URL": database_url,
        "DISTRIBUTOR_SECRET_KEY": SECRET,
        "HOME": str(tmp_path),
    }
    process = subprocess.Popen(
        [sys.executable, "-m", "distributor", "web", "--port", str(port)], env=env, cwd=tmp_path
    )
    try:
        deadline = time.monotonic() + 30
        while not port_open(port):
            assert process.poll() is None, "distributor web exited"
            assert time.monotonic() < deadline, "distributor web did not listen within 30 s"
            time.sleep(0.1)
        response = httpx.get(f"http://127.0.0.1:{port}/archive?lang=en")
        assert response.status_code == 200 and "No issue has been sent yet." in response.text
    finally:
        process.terminate()
        process.wait(timeout=15)
