"""A small WeChat Official Account client on httpx: the dozen calls the channel makes.

Every call carries the shared access token (:mod:`tokens`). WeChat answers HTTP 200 with an
errcode; the client turns each errcode into one of three things: a refreshed token and one more
try (40001, 40014, 42001), a wait (45009, 45011, 45066; :class:`WechatRateLimited` when the wait
is the caller's to make), or a :class:`WechatError` that says in plain words what to do.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, Literal
from zoneinfo import ZoneInfo

import httpx
import redis

from distributor.channels.wechat.errcodes import (
    BACKOFF_ERRCODES,
    CLIENTMSGID_EXISTS,
    TOKEN_ERRCODES,
    describe,
)
from distributor.channels.wechat.protocol import (
    Audience,
    DraftArticle,
    FollowersPage,
    MassJob,
    MassStatus,
    MsgId,
    Tag,
    ToOpenids,
    draft_body,
    mass_body,
    read_followers_page,
    read_mass_job,
    read_tags,
)
from distributor.channels.wechat.tokens import (
    REFRESH_MARGIN_SECONDS,
    AccessTokens,
    Clock,
    DatabaseTokenStore,
    FetchedToken,
    RedisTokenStore,
    TokenStore,
)
from distributor.config import Settings
from distributor.db import session_factory
from distributor.errors import (
    ConfigurationError,
    WechatError,
    WechatRateLimited,
    WechatUnavailable,
)

DEFAULT_TIMEOUT = 30.0
BEIJING = ZoneInfo("Asia/Shanghai")  # WeChat's daily quotas reset at midnight there


@dataclass(frozen=True)
class WechatAccount:
    app_id: str
    app_secret: str = field(repr=False)
    api_base: str = "https://api.weixin.qq.com"
    account_type: Literal["subscription", "service"] | str = "subscription"

    @classmethod
    def from_settings(cls, settings: Settings) -> WechatAccount:
        if not settings.wechat_app_id or not settings.wechat_app_secret:
            raise ConfigurationError(
                "WECHAT_APP_ID and WECHAT_APP_SECRET must be set for the WeChat channel: copy "
                "them from the WeChat console (设置与开发 → 基本配置)",
                code="wechat.no_credentials",
            )
        return cls(
            app_id=settings.wechat_app_id,
            app_secret=settings.wechat_app_secret,
            api_base=settings.wechat_api_base,
            account_type=settings.wechat_account_type,
        )


def token_store_for(settings: Settings, app_id: str) -> TokenStore:
    """Redis when the set-up has one (all machines see it), else the database."""
    if settings.shared_redis_url:
        return RedisTokenStore(redis.Redis.from_url(settings.shared_redis_url), app_id)
    return DatabaseTokenStore(session_factory(settings.database_url), app_id)


def seconds_to_beijing_midnight(now: float) -> float:
    moment = datetime.fromtimestamp(now, BEIJING)
    midnight = (moment + timedelta(days=1)).replace(hour=0, minute=0, second=0, microsecond=0)
    return (midnight - moment).total_seconds()


@dataclass(frozen=True)
class Backoff:
    """How long the client itself waits when WeChat asks it to slow down.

    A wait longer than ``max_wait`` is left to the caller (a task retried later), through
    :class:`WechatRateLimited` and its ``retry_after``.
    """

    max_wait: float = 0.0
    attempts: int = 1
    minute_seconds: float = 60.0  # 45011 "retry next minute", 45066 "retry too fast"

    def retry_after(self, errcode: int, now: float) -> float:
        if errcode == 45009:  # the daily quota: until it resets
            return seconds_to_beijing_midnight(now)
        return self.minute_seconds


@dataclass(frozen=True)
class Material:
    """A permanent material (``add_material``); ``url`` works only inside WeChat's pages."""

    media_id: str
    url: str


def _pages(read_page: Callable[[str], FollowersPage]) -> Iterator[str]:
    """Every OpenID over ``next_openid`` paging, until an empty page (WeChat's last one)."""
    after = ""
    while True:
        page = read_page(after)
        yield from page.openids
        if not page.openids or not page.next_openid or page.next_openid == after:
            return
        after = page.next_openid


class WechatClient:
    def __init__(
        self,
        account: WechatAccount,
        store: TokenStore,
        *,
        timeout: float = DEFAULT_TIMEOUT,
        backoff: Backoff | None = None,
        token_margin: float = REFRESH_MARGIN_SECONDS,
        clock: Clock = time.time,
    ) -> None:
        self.account = account
        self.timeout = timeout
        self.backoff = backoff or Backoff()
        self.clock = clock
        self.http = httpx.Client(base_url=f"{account.api_base}/cgi-bin/", timeout=timeout)
        self.tokens = AccessTokens(store, self.fetch_token, margin=token_margin, clock=clock)
        self._stable_token = True  # until WeChat shows it does not offer it to this account

    @classmethod
    def from_settings(cls, settings: Settings, **options: Any) -> WechatClient:
        account = WechatAccount.from_settings(settings)
        return cls(account, token_store_for(settings, account.app_id), **options)

    def close(self) -> None:
        self.http.close()

    def __enter__(self) -> WechatClient:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()

    # The wire.

    def _send(
        self,
        method: str,
        api: str,
        *,
        params: Mapping[str, str] | None = None,
        body: Mapping[str, Any] | None = None,
        files: Mapping[str, tuple[str, bytes, str]] | None = None,
    ) -> tuple[int, dict[str, Any]]:
        """One HTTP exchange: the status and the JSON object answered (empty unless 2xx)."""
        # Raw UTF-8: WeChat refuses \\uXXXX escapes (40033) and mangles escaped titles.
        content = None if body is None else json.dumps(body, ensure_ascii=False).encode()
        headers = {} if body is None else {"Content-Type": "application/json; charset=utf-8"}
        try:
            response = self.http.request(
                method, api, params=params, content=content, files=files, headers=headers
            )
        except httpx.TimeoutException:
            raise WechatUnavailable(
                f"WeChat did not answer {api} within {self.timeout:g} s; it may have been "
                "carried out all the same",
                api=api,
                code="wechat.timeout",
                seconds=f"{self.timeout:g}",
            ) from None
        except httpx.TransportError as error:
            raise WechatUnavailable(
                f"cannot reach WeChat at {self.account.api_base} for {api}: {error}",
                api=api,
                code="wechat.unreachable",
                base=self.account.api_base,
            ) from None
        if not response.is_success:
            return response.status_code, {}
        try:
            answer = response.json()
        except ValueError:
            answer = None
        if not isinstance(answer, dict):
            raise WechatUnavailable(
                f"WeChat answered {api} with something that is not a JSON object: "
                f"{response.text[:200]!r}",
                api=api,
                code="wechat.bad_answer",
            )
        return response.status_code, answer

    def _refuse(
        self, answer: Mapping[str, Any], api: str, wait: float | None = None
    ) -> WechatError:
        """The error for an answer with an errcode (``wait`` for one that asks to slow down)."""
        errcode = int(answer["errcode"])
        described = describe(errcode, str(answer.get("errmsg", "")), api)
        message = str(described)  # the English, for the CLI and the logs
        if errcode in BACKOFF_ERRCODES:
            if wait is None:
                wait = self.backoff.retry_after(errcode, self.clock())
            return WechatRateLimited(
                message, errcode=errcode, api=api, retry_after=wait, code="wechat.slow_down"
            )
        if errcode == -1:
            return WechatUnavailable(message, errcode=errcode, api=api, code="wechat.busy")
        return WechatError(
            message, errcode=errcode, api=api, code="wechat.refused", detail=described
        )

    def _call(
        self,
        method: str,
        api: str,
        *,
        params: Mapping[str, str] | None = None,
        body: Mapping[str, Any] | None = None,
        files: Mapping[str, tuple[str, bytes, str]] | None = None,
        accept: frozenset[int] = frozenset(),
    ) -> dict[str, Any]:
        """A call with the access token: refreshed once if refused, waits where WeChat asks."""
        token = self.tokens.current()
        token_replaced = False
        waits = 0
        while True:
            status, answer = self._send(
                method,
                api,
                params={**(params or {}), "access_token": token},
                body=body,
                files=files,
            )
            if not 200 <= status < 300:
                raise WechatUnavailable(
                    f"WeChat answered {api} with HTTP {status}",
                    api=api,
                    code="wechat.http_status",
                    status=status,
                )
            errcode = int(answer.get("errcode") or 0)
            if errcode == 0 or errcode in accept:
                return answer
            if errcode in TOKEN_ERRCODES and not token_replaced:
                token_replaced = True
                token = self.tokens.replace(token)
                continue
            if errcode in BACKOFF_ERRCODES:
                wait = self.backoff.retry_after(errcode, self.clock())
                if waits < self.backoff.attempts and wait <= self.backoff.max_wait:
                    waits += 1
                    time.sleep(wait)
                    continue
                raise self._refuse(answer, api, wait)
            raise self._refuse(answer, api)

    # The access token.

    def fetch_token(self, force: bool = False) -> FetchedToken:
        """A token from WeChat: ``stable_token``, or the classic ``token`` where it is missing.

        The stable token stays the same until its last minutes, so workers and other systems
        of the account do not cut each other off; ``force`` asks for a new one.
        """
        if self._stable_token:
            status, answer = self._send(
                "POST",
                "stable_token",
                body={
                    "grant_type": "client_credential",
                    "appid": self.account.app_id,
                    "secret": self.account.app_secret,
                    "force_refresh": force,
                },
            )
            if status == 404 or answer.get("errcode") == 48001:
                self._stable_token = False  # an older gateway, or an account without it
            else:
                return self._read_token(status, answer, "stable_token")
        status, answer = self._send(
            "GET",
            "token",
            params={
                "grant_type": "client_credential",
                "appid": self.account.app_id,
                "secret": self.account.app_secret,
            },
        )
        return self._read_token(status, answer, "token")

    def _read_token(self, status: int, answer: Mapping[str, Any], api: str) -> FetchedToken:
        if not 200 <= status < 300:
            raise WechatUnavailable(
                f"WeChat answered {api} with HTTP {status}",
                api=api,
                code="wechat.http_status",
                status=status,
            )
        if answer.get("errcode"):
            raise self._refuse(answer, api)
        token, expires_in = answer.get("access_token"), answer.get("expires_in")
        if not isinstance(token, str) or not token or not isinstance(expires_in, int):
            raise WechatUnavailable(
                f"WeChat answered {api} without a token: {answer!r}",
                api=api,
                code="wechat.no_token",
            )
        return FetchedToken(token, float(expires_in))

    # Material.

    def upload_image(self, data: bytes, filename: str, content_type: str) -> str:
        """An image for inside an article (JPG/PNG < 1 MB): the mmbiz.qpic.cn URL to use."""
        answer = self._call(
            "POST", "media/uploadimg", files={"media": (filename, data, content_type)}
        )
        url = answer.get("url")
        if not isinstance(url, str) or not url:
            raise WechatUnavailable(
                f"WeChat gave no URL for {filename}: {answer!r}",
                code="wechat.no_url",
                file=filename,
            )
        return url

    def add_material(
        self,
        data: bytes,
        filename: str,
        content_type: str,
        kind: Literal["image", "thumb"] = "image",
    ) -> Material:
        """A permanent image: an article cover (``thumb_media_id``) must be one."""
        answer = self._call(
            "POST",
            "material/add_material",
            params={"type": kind},
            files={"media": (filename, data, content_type)},
        )
        media_id = answer.get("media_id")
        if not isinstance(media_id, str) or not media_id:
            raise WechatUnavailable(
                f"WeChat gave no media_id for {filename}: {answer!r}",
                code="wechat.no_media_id",
                file=filename,
            )
        return Material(media_id=media_id, url=str(answer.get("url") or ""))

    def add_draft(self, articles: Sequence[DraftArticle]) -> str:
        """Put 1–8 articles in the draft box; the media_id is what a mass send sends.

        Not idempotent: a call that timed out may have made a draft (an unused one is harmless).
        """
        answer = self._call("POST", "draft/add", body=draft_body(articles))
        media_id = answer.get("media_id")
        if not isinstance(media_id, str) or not media_id:
            raise WechatUnavailable(
                f"WeChat made a draft but gave no media_id: {answer!r}", code="wechat.no_draft_id"
            )
        return media_id

    # Mass sends.

    def mass_send(
        self,
        media_id: str,
        audience: Audience,
        clientmsgid: str,
        *,
        send_ignore_reprint: bool = False,
    ) -> MassJob:
        """Send a draft to all followers, a tag, or 2–10,000 OpenIDs.

        ``clientmsgid`` (≤ 64 bytes) makes it safe to repeat: WeChat keeps it 24 hours and
        answers a repeat with 45065 and the job it made, which is returned (``existing``).
        Each job of a send split into several needs its own.
        """
        if isinstance(audience, ToOpenids) and self.account.account_type != "service":
            raise WechatError(
                "a WeChat send to a list of followers needs a certified service account; this "
                "one is set up as a subscription account (WECHAT_ACCOUNT_TYPE): send to all "
                "followers or to a tag",
                api="message/mass/send",
                code="wechat.needs_service_account",
            )
        api, body = mass_body(
            media_id, audience, clientmsgid, send_ignore_reprint=send_ignore_reprint
        )
        answer = self._call("POST", api, body=body, accept=frozenset({CLIENTMSGID_EXISTS}))
        return read_mass_job(answer, existing=answer.get("errcode") == CLIENTMSGID_EXISTS)

    def preview(self, media_id: str, *, openid: str = "", wxname: str = "") -> MsgId:
        """Show a draft to one reader (a staff member) before the mass send; no quota used."""
        if bool(openid) == bool(wxname):
            raise WechatError(
                "a WeChat preview goes to one OpenID or one WeChat ID",
                api="preview",
                code="wechat.preview_target",
            )
        target = {"touser": openid} if openid else {"towxname": wxname}
        answer = self._call(
            "POST",
            "message/mass/preview",
            body={**target, "mpnews": {"media_id": media_id}, "msgtype": "mpnews"},
        )
        return read_mass_job(answer).msg_id

    def mass_status(self, msg_id: MsgId) -> MassStatus:
        answer = self._call("POST", "message/mass/get", body={"msg_id": msg_id})
        try:
            return MassStatus(str(answer.get("msg_status")))
        except ValueError:
            raise WechatUnavailable(
                f"WeChat answered message/mass/get with an unknown status: {answer!r}",
                code="wechat.unknown_status",
            ) from None

    def mass_speed(self) -> dict[str, Any]:
        """The account's mass-send speed; asking is harmless, so it probes the permission."""
        return self._call("POST", "message/mass/speed/get", body={})

    # Followers and tags.

    def followers_page(self, next_openid: str = "") -> FollowersPage:
        """Up to 10,000 followers after ``next_openid`` (empty: from the start)."""
        answer = self._call("GET", "user/get", params={"next_openid": next_openid})
        return read_followers_page(answer)

    def followers(self) -> Iterator[str]:
        return _pages(self.followers_page)

    def tags(self) -> list[Tag]:
        return read_tags(self._call("GET", "tags/get"))

    def tag_followers_page(self, tag_id: int, next_openid: str = "") -> FollowersPage:
        answer = self._call(
            "POST", "user/tag/get", body={"tagid": tag_id, "next_openid": next_openid}
        )
        return read_followers_page(answer)

    def tag_followers(self, tag_id: int) -> Iterator[str]:
        return _pages(lambda after: self.tag_followers_page(tag_id, after))
