"""A local stand-in for the WeChat Official Account API, for tests, the demo and development.

WeChat cannot be reached from development machines and has no test mode for mass sends, so this
server reproduces its behaviour from the protocol notes: tokens that expire and rotate (and the
old one's 5-minute grace), the media and draft stores with their limits, mass jobs with their
quotas, the clientmsgid table (45065/45066/45067), 60 mass calls a minute, SENDING then
SEND_SUCCESS and the signed MASSSENDJOBFINISH callback (in safe mode, with ``encoding_aes_key``,
encrypted and signed over the body as WeChat does), followers and tags with paging. Errors
carry a `` rid: …`` suffix as WeChat's do, so clients must match on errcode, never on errmsg.

It shares no code with the client on purpose (not even the signature): a fake that reuses the
client's code would agree with the client's mistakes. Tests steer it through :class:`Sandbox`
(in the same process) or the ``/sandbox/…`` routes (a sandbox run by ``distributor wechat
sandbox``): force an errcode or a slow answer on the next call to an API, expire the tokens,
add followers and tags, make one unfollow (its ``unsubscribe`` event posted), register the
callback URL.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import json
import re
import secrets
import struct
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

import httpx
import uvicorn
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, Response
from starlette.datastructures import UploadFile

from distributor.devservers.ports import free_port

BEIJING = ZoneInfo("Asia/Shanghai")
PAGE_SIZE = 10_000  # user/get and user/tag/get
MASS_APIS = frozenset(
    {
        "message/mass/sendall",
        "message/mass/send",
        "message/mass/preview",
        "message/mass/get",
        "message/mass/speed/get",
    }
)
TOKEN_APIS = frozenset({"token", "stable_token"})
MPHELPER_OPENID = "oV5CrjpxgaGXNHIQigzNlgLTnwic"  # FromUserName of job events
_UNICODE_ESCAPE = re.compile(rb"(?<!\\)\\u[0-9a-fA-F]{4}")
_SCRIPT = re.compile(r"<script\b.*?</script\s*>", re.IGNORECASE | re.DOTALL)
_IMG = re.compile(r"<img\b[^>]*>", re.IGNORECASE)
_IMG_SRC = re.compile(r"""\bsrc\s*=\s*["']?https?://mmbiz\.qpic\.cn/""", re.IGNORECASE)


@dataclass
class SandboxConfig:
    app_id: str = "wx5a4d3b2c1e0f9876"
    app_secret: str = "sandbox-app-secret-0123456789abcdef"
    account_type: str = "service"  # or "subscription": one mass send a day, no OpenID lists
    token_ttl: float = 7200.0
    old_token_grace: float = 300.0  # a replaced classic token works this long
    stable_rotate_window: float = 300.0  # a stable token is replaced in its last seconds
    force_refresh_interval: float = 30.0
    force_refresh_per_day: int = 20
    mass_per_minute: int = 60
    clientmsgid_ttl: float = 86_400.0
    clientmsgid_retry_window: float = 60.0  # 45066 within this of the first use
    service_user_monthly_cap: int = 4
    service_to_all_monthly: int = 4
    job_finish_delay: float = 1.0
    job_status: str = "send success"  # or "send fail", "err(30003)", …
    callback_url: str | None = None
    callback_token: str = ""
    encoding_aes_key: str = ""  # set: callbacks in safe mode (43 characters of base64)
    callback_timeout: float = 5.0
    callback_attempts: int = 3
    mass_permission: bool = True  # False: 48001 on the mass APIs (uncertified account)
    stable_token_enabled: bool = True  # False: 404, as an older gateway
    allowed_ips: frozenset[str] | None = None  # None: no IP whitelist
    clock: Callable[[], float] = time.time


class Refusal(Exception):
    def __init__(self, errcode: int, errmsg: str, **extra: Any) -> None:
        super().__init__(errcode, errmsg)
        self.errcode = errcode
        self.errmsg = errmsg
        self.extra = extra


@dataclass
class Fault:
    """What the next call(s) to an API get: an errcode instead of the work, or a late answer."""

    errcode: int | None = None
    errmsg: str = "forced by the sandbox"
    extra: dict[str, Any] = field(default_factory=dict)
    delay: float = 0.0  # seconds to wait after the work, before answering
    times: int = 1


@dataclass
class IssuedToken:
    kind: str  # "classic" | "stable"
    expires_at: float
    revoked: bool = False


@dataclass
class Draft:
    articles: list[dict[str, Any]]
    used: bool = False


@dataclass
class MassJob:
    msg_id: int
    msg_data_id: int
    media_id: str
    audience: list[str]
    received: list[str]  # after the filters (a service account's 4-a-month cap)
    created_at: float
    status: str = "SENDING"
    to_all: bool = False


@dataclass
class CallbackAttempt:
    msg_id: int
    status_code: int | None  # None: no answer (timeout, refused)
    body: str
    query: dict[str, str] = field(default_factory=dict)  # as a proxy's log keeps it


def _rid() -> str:
    return f"{secrets.token_hex(4)}-{secrets.token_hex(4)}-{secrets.token_hex(4)}"


def _openid(number: int) -> str:
    """A 28-character OpenID, as WeChat's look, the same for the same number."""
    digest = hashlib.sha256(f"follower-{number}".encode()).digest()
    return "o" + base64.urlsafe_b64encode(digest).decode()[:27]


def _image_kind(data: bytes) -> str | None:
    if data.startswith(b"\xff\xd8\xff"):
        return "jpg"
    if data.startswith(b"\x89PNG\r\n\x1a\n"):
        return "png"
    if data.startswith((b"GIF87a", b"GIF89a")):
        return "gif"
    if data.startswith(b"BM"):
        return "bmp"
    return None


class Sandbox:
    """The state of one fake Official Account and what each API does to it."""

    def __init__(self, config: SandboxConfig | None = None) -> None:
        self.config = config or SandboxConfig()
        self.lock = threading.RLock()
        self.tokens: dict[str, IssuedToken] = {}
        self.current: dict[str, str] = {}  # kind → the latest token of that kind
        self.tokens_issued = 0
        self.force_refreshes: list[float] = []
        self.faults: dict[str, deque[Fault]] = {}
        self.calls: dict[str, int] = {}
        self.token_uses: dict[str, int] = {}  # access token → calls it was accepted on
        self.images: set[str] = set()
        self.materials: dict[str, str] = {}  # media_id → type
        self.drafts: dict[str, Draft] = {}
        self.jobs: dict[int, MassJob] = {}
        self.clientmsgids: dict[str, tuple[int, float]] = {}  # key → (msg_id, first use)
        self.mass_calls: deque[float] = deque()
        self.monthly_received: dict[tuple[str, str], int] = {}  # (month, openid) → count
        self.followers: list[str] = []
        self.follower_index: dict[str, int] = {}
        self.tags: dict[int, tuple[str, list[str]]] = {0: ("黑名单", []), 1: ("星标组", [])}
        self.callback_attempts: list[CallbackAttempt] = []
        self._next_msg_id = 3_147_483_700  # past 2**31: clients must not assume 32-bit ids
        self._timers: list[threading.Timer] = []

    # Steering (tests, the /sandbox routes).

    def inject(self, api: str, fault: Fault) -> None:
        """The next ``fault.times`` calls to ``api`` (e.g. "message/mass/sendall") get ``fault``."""
        with self.lock:
            self.faults.setdefault(api, deque()).append(fault)

    def expire_tokens(self) -> None:
        with self.lock:
            now = self.config.clock()
            for token in self.tokens.values():
                token.expires_at = min(token.expires_at, now)

    def add_followers(self, count: int) -> list[str]:
        with self.lock:
            start = len(self.followers)
            added = [_openid(number) for number in range(start, start + count)]
            for openid in added:
                self.follower_index[openid] = len(self.followers)
                self.followers.append(openid)
            return added

    def unfollow(self, openid: str) -> None:
        """The follower stops following: gone from the followers and tags (a mass send naming
        them is refused, 40003), and the signed ``unsubscribe`` event posted, as WeChat does."""
        with self.lock:
            if openid not in self.follower_index:
                raise KeyError(f"{openid} does not follow the sandbox's account")
            self.followers.remove(openid)
            self.follower_index = {each: i for i, each in enumerate(self.followers)}
            for _, members in self.tags.values():
                if openid in members:
                    members.remove(openid)
            url, token = self.config.callback_url, self.config.callback_token
            xml = (
                "<xml>"
                f"<ToUserName><![CDATA[gh_{self.config.app_id[2:14]}]]></ToUserName>"
                f"<FromUserName><![CDATA[{openid}]]></FromUserName>"
                f"<CreateTime>{int(time.time())}</CreateTime>"
                "<MsgType><![CDATA[event]]></MsgType>"
                "<Event><![CDATA[unsubscribe]]></Event>"
                "</xml>"
            ).encode()
        if url:
            self._post_callback(url, token, 0, xml, openid=openid)

    def add_tag(self, name: str, openids: list[str]) -> int:
        with self.lock:
            tag_id = max(max(self.tags) + 1, 100)  # below 100: WeChat's own tags
            self.tags[tag_id] = (name, list(openids))
            return tag_id

    def stop(self) -> None:
        with self.lock:
            for timer in self._timers:
                timer.cancel()

    # The entry point.

    def handle(
        self,
        api: str,
        method: str,
        params: dict[str, str],
        body: bytes,
        form: dict[str, Any],
        client_ip: str,
    ) -> tuple[dict[str, Any] | None, float]:
        """The JSON answer (None: HTTP 404) and how long to hold it back."""
        with self.lock:
            self.calls[api] = self.calls.get(api, 0) + 1
            fault = self._take_fault(api)
            try:
                if fault is not None and fault.errcode is not None:
                    raise Refusal(fault.errcode, fault.errmsg, **fault.extra)
                if self.config.allowed_ips is not None and client_ip not in self.config.allowed_ips:
                    raise Refusal(
                        40164, f"invalid ip {client_ip} ipv6 ::ffff:{client_ip}, not in whitelist"
                    )
                answer = self._dispatch(api, method, params, body, form)
            except Refusal as refusal:
                answer = {
                    "errcode": refusal.errcode,
                    "errmsg": f"{refusal.errmsg} rid: {_rid()}",
                    **refusal.extra,
                }
            return answer, fault.delay if fault is not None else 0.0

    def _take_fault(self, api: str) -> Fault | None:
        queue = self.faults.get(api)
        if not queue:
            return None
        fault = queue[0]
        fault.times -= 1
        if fault.times <= 0:
            queue.popleft()
        return fault

    def _dispatch(
        self, api: str, method: str, params: dict[str, str], body: bytes, form: dict[str, Any]
    ) -> dict[str, Any] | None:
        if api == "token":
            return self._classic_token(params)
        if api == "stable_token":
            if not self.config.stable_token_enabled:
                return None
            if method != "POST":
                raise Refusal(43002, "require POST method")
            return self._stable_token(self._json(body))
        handler = self._handlers().get(api)
        if handler is None:
            return None
        self._check_token(params.get("access_token", ""))
        if api in MASS_APIS:
            self._count_mass_call()
            if not self.config.mass_permission:
                raise Refusal(48001, "api unauthorized")
        return handler(params, body, form)

    def _handlers(
        self,
    ) -> dict[str, Callable[[dict[str, str], bytes, dict[str, Any]], dict[str, Any]]]:
        return {
            "media/uploadimg": lambda p, b, f: self._uploadimg(f),
            "material/add_material": lambda p, b, f: self._add_material(p, f),
            "draft/add": lambda p, b, f: self._draft_add(self._json(b)),
            "draft/get": lambda p, b, f: self._draft_get(self._json(b)),
            "draft/count": lambda p, b, f: {
                "total_count": sum(not d.used for d in self.drafts.values())
            },
            "message/mass/sendall": lambda p, b, f: self._mass(self._json(b), by_list=False),
            "message/mass/send": lambda p, b, f: self._mass(self._json(b), by_list=True),
            "message/mass/preview": lambda p, b, f: self._preview(self._json(b)),
            "message/mass/get": lambda p, b, f: self._mass_get(self._json(b)),
            "message/mass/speed/get": lambda p, b, f: {"speed": 0, "realspeed": 15},
            "user/get": lambda p, b, f: self._page(
                self.followers, p.get("next_openid", ""), total=True
            ),
            "tags/get": lambda p, b, f: {
                "tags": [
                    {"id": tag_id, "name": name, "count": len(members)}
                    for tag_id, (name, members) in sorted(self.tags.items())
                ]
            },
            "user/tag/get": lambda p, b, f: self._tag_get(self._json(b)),
        }

    @staticmethod
    def _json(body: bytes) -> dict[str, Any]:
        if _UNICODE_ESCAPE.search(body):
            raise Refusal(
                40033,
                "invalid charset. please check your request, if include \\uxxxx will create fail!",
            )
        try:
            value = json.loads(body or b"{}")
        except ValueError:
            raise Refusal(47001, "data format error") from None
        if not isinstance(value, dict):
            raise Refusal(47001, "data format error")
        return value

    # Tokens.

    def _check_credentials(self, grant_type: Any, appid: Any, secret: Any) -> None:
        if not appid:
            raise Refusal(41002, "appid missing")
        if not secret:
            raise Refusal(41004, "appsecret missing")
        if grant_type != "client_credential":
            raise Refusal(40002, "invalid grant_type")
        if appid != self.config.app_id:
            raise Refusal(40013, "invalid appid")
        if secret != self.config.app_secret:
            raise Refusal(40125, "invalid appsecret")

    def _issue(self, kind: str) -> dict[str, Any]:
        now = self.config.clock()
        value = secrets.token_urlsafe(96)
        self.tokens[value] = IssuedToken(kind, now + self.config.token_ttl)
        self.current[kind] = value
        self.tokens_issued += 1
        return {"access_token": value, "expires_in": int(self.config.token_ttl)}

    def _classic_token(self, params: dict[str, str]) -> dict[str, Any]:
        self._check_credentials(params.get("grant_type"), params.get("appid"), params.get("secret"))
        previous = self.tokens.get(self.current.get("classic", ""))
        if previous is not None:  # the old one keeps working 5 minutes
            previous.expires_at = min(
                previous.expires_at, self.config.clock() + self.config.old_token_grace
            )
        return self._issue("classic")

    def _stable_token(self, body: dict[str, Any]) -> dict[str, Any]:
        self._check_credentials(body.get("grant_type"), body.get("appid"), body.get("secret"))
        now = self.config.clock()
        value = self.current.get("stable", "")
        token = self.tokens.get(value)
        if body.get("force_refresh") is True:
            recent = [at for at in self.force_refreshes if now - at < 86_400]
            if len(recent) >= self.config.force_refresh_per_day:
                raise Refusal(45009, "reach max api daily quota limit")
            last = self.force_refreshes[-1] if self.force_refreshes else None
            if (
                token is not None
                and now < token.expires_at
                and last is not None
                and now - last < self.config.force_refresh_interval
            ):
                return {"access_token": value, "expires_in": int(token.expires_at - now)}
            self.force_refreshes.append(now)
            if token is not None:
                token.revoked = True
            return self._issue("stable")
        if token is not None and now < token.expires_at - self.config.stable_rotate_window:
            return {"access_token": value, "expires_in": int(token.expires_at - now)}
        return self._issue("stable")

    def _check_token(self, value: str) -> None:
        if not value:
            raise Refusal(41001, "access_token missing")
        token = self.tokens.get(value)
        if token is None:
            raise Refusal(40014, "invalid access_token")
        if token.revoked:
            raise Refusal(40001, "invalid credential, access_token is invalid or not latest")
        if self.config.clock() >= token.expires_at:
            raise Refusal(42001, "access_token expired")
        self.token_uses[value] = self.token_uses.get(value, 0) + 1

    def _count_mass_call(self) -> None:
        now = self.config.clock()
        while self.mass_calls and now - self.mass_calls[0] >= 60:
            self.mass_calls.popleft()
        if len(self.mass_calls) >= self.config.mass_per_minute:
            raise Refusal(45011, "api minute-quota reach limit, must slower, retry next minute")
        self.mass_calls.append(now)

    # Media.

    def _uploadimg(self, form: dict[str, Any]) -> dict[str, Any]:
        data = form.get("media")
        if not isinstance(data, bytes):
            raise Refusal(41005, "media data missing")
        kind = _image_kind(data)
        if kind not in ("jpg", "png"):
            raise Refusal(40005, "invalid file type")
        if len(data) >= 1024 * 1024:
            raise Refusal(40009, "invalid image size")
        url = f"http://mmbiz.qpic.cn/mmbiz_{kind}/{secrets.token_urlsafe(24)}/0"
        self.images.add(url)
        return {"url": url, "errcode": 0, "errmsg": "ok"}

    def _add_material(self, params: dict[str, str], form: dict[str, Any]) -> dict[str, Any]:
        kind = params.get("type", "")
        if kind not in ("image", "voice", "video", "thumb"):
            raise Refusal(40004, "invalid media type")
        data = form.get("media")
        if not isinstance(data, bytes):
            raise Refusal(41005, "media data missing")
        if kind == "image":
            if _image_kind(data) is None:
                raise Refusal(40005, "invalid file type")
            if len(data) > 10 * 1024 * 1024:
                raise Refusal(40006, "invalid meida size")
        if kind == "thumb":
            if _image_kind(data) != "jpg":
                raise Refusal(40005, "invalid file type")
            if len(data) > 64 * 1024:
                raise Refusal(40006, "invalid meida size")
        media_id = secrets.token_urlsafe(48)[:64]
        self.materials[media_id] = kind
        url = f"http://mmbiz.qpic.cn/mmbiz_jpg/{secrets.token_urlsafe(24)}/0?wx_fmt=jpeg"
        return {"media_id": media_id, "url": url}

    # Drafts.

    def _draft_add(self, body: dict[str, Any]) -> dict[str, Any]:
        articles = body.get("articles")
        if not isinstance(articles, list) or not articles:
            raise Refusal(44003, "empty news data")
        if len(articles) > 8:
            raise Refusal(45166, "invalid content")
        stored = [self._article(article) for article in articles]
        media_id = secrets.token_urlsafe(48)[:64]
        self.drafts[media_id] = Draft(stored)
        return {"media_id": media_id}

    def _article(self, article: Any) -> dict[str, Any]:
        if not isinstance(article, dict):
            raise Refusal(47001, "data format error")
        title, content = str(article.get("title") or ""), str(article.get("content") or "")
        if not title or not content:
            raise Refusal(44003, "empty news data")
        if len(title) > 32:
            raise Refusal(45003, "title size out of limit")
        if len(str(article.get("author") or "")) > 16:
            raise Refusal(45110, "author size out of limit")
        if len(str(article.get("digest") or "")) > 120:
            raise Refusal(45004, "description size out of limit")
        if len(content) >= 20_000 or len(content.encode()) >= 1_000_000:
            raise Refusal(45002, "content size out of limit")
        if len(str(article.get("content_source_url") or "").encode()) > 1024:
            raise Refusal(41039, "invalid content_source_url")
        if self.materials.get(str(article.get("thumb_media_id"))) not in ("image", "thumb"):
            raise Refusal(40007, "invalid media_id")
        for flag in ("need_open_comment", "only_fans_can_comment"):
            if article.get(flag, 0) not in (0, 1):
                raise Refusal(47001, "data format error")
        content = _SCRIPT.sub("", content)  # WeChat strips scripts and foreign images
        content = _IMG.sub(lambda tag: tag[0] if _IMG_SRC.search(tag[0]) else "", content)
        return {**article, "content": content, "digest": article.get("digest") or content[:54]}

    def _draft_get(self, body: dict[str, Any]) -> dict[str, Any]:
        draft = self.drafts.get(str(body.get("media_id")))
        if draft is None or draft.used:
            raise Refusal(40007, "invalid media_id")
        return {
            "news_item": [
                {**article, "url": "http://mp.weixin.qq.com/s?__biz=sandbox"}
                for article in draft.articles
            ]
        }

    # Mass sends.

    def _mass(self, body: dict[str, Any], *, by_list: bool) -> dict[str, Any]:
        if by_list and self.config.account_type != "service":
            raise Refusal(48001, "api unauthorized")
        clientmsgid = str(body.get("clientmsgid") or "")
        if len(clientmsgid.encode()) > 64:
            raise Refusal(45067, "clientmsgid size out of limit")
        if body.get("msgtype") != "mpnews":
            raise Refusal(48008, "no permission for this msgtype")
        media_id = str((body.get("mpnews") or {}).get("media_id") or "")
        audience, scope, to_all = self._audience(body, by_list=by_list)
        now = self.config.clock()
        key = clientmsgid or hashlib.sha256(f"{scope}|{media_id}".encode()).hexdigest()
        seen = self.clientmsgids.get(key)
        if seen is not None and now - seen[1] < self.config.clientmsgid_ttl:
            if now - seen[1] < self.config.clientmsgid_retry_window:
                raise Refusal(45066, "same clientmsgid retry too fast")
            raise Refusal(45065, "clientmsgid exist", msg_id=seen[0])
        draft = self.drafts.get(media_id)
        if draft is None or draft.used:
            raise Refusal(40007, "invalid media_id")
        received = self._quota(audience, to_all, now)
        draft.used = True
        job = MassJob(
            self._new_msg_id(),
            2_247_483_000 + len(self.jobs),
            media_id,
            audience,
            received,
            now,
            to_all=to_all,
        )
        self.jobs[job.msg_id] = job
        self.clientmsgids[key] = (job.msg_id, now)
        timer = threading.Timer(self.config.job_finish_delay, self._finish, args=(job,))
        timer.daemon = True
        self._timers.append(timer)
        timer.start()
        return {
            "errcode": 0,
            "errmsg": "send job submission success",
            "msg_id": job.msg_id,
            "msg_data_id": job.msg_data_id,
        }

    def _audience(self, body: dict[str, Any], *, by_list: bool) -> tuple[list[str], str, bool]:
        if by_list:
            touser = body.get("touser")
            if not isinstance(touser, list) or len(touser) < 2:
                raise Refusal(40130, "invalid openid list size, at least two openid")
            if len(touser) > 10_000:
                raise Refusal(40032, "invalid openid list size")
            if any(openid not in self.follower_index for openid in touser):
                raise Refusal(40003, "invalid openid")
            digest = hashlib.sha256("\n".join(sorted(touser)).encode()).hexdigest()
            return list(touser), f"openids:{digest}", False
        filter_ = body.get("filter")
        if not isinstance(filter_, dict):
            raise Refusal(47001, "data format error")
        if filter_.get("is_to_all") is True:
            return list(self.followers), "all", True
        tag = self.tags.get(filter_.get("tag_id", -1))
        if tag is None:
            raise Refusal(45159, "invalid tag id")
        return list(tag[1]), f"tag:{filter_['tag_id']}", False

    def _quota(self, audience: list[str], to_all: bool, now: float) -> list[str]:
        """Who receives it; 45028 when the account may not send another today/this month."""
        moment = datetime.fromtimestamp(now, BEIJING)
        jobs = self.jobs.values()
        if self.config.account_type == "subscription":
            today = moment.date()
            if any(datetime.fromtimestamp(job.created_at, BEIJING).date() == today for job in jobs):
                raise Refusal(45028, "has no masssend quota")
            return audience
        month = moment.strftime("%Y-%m")
        if (
            to_all
            and sum(
                job.to_all
                and datetime.fromtimestamp(job.created_at, BEIJING).strftime("%Y-%m") == month
                for job in jobs
            )
            >= self.config.service_to_all_monthly
        ):
            raise Refusal(45028, "has no masssend quota")
        cap = self.config.service_user_monthly_cap
        received = [
            openid for openid in audience if self.monthly_received.get((month, openid), 0) < cap
        ]
        for openid in received:
            self.monthly_received[(month, openid)] = (
                self.monthly_received.get((month, openid), 0) + 1
            )
        return received

    def _new_msg_id(self) -> int:
        self._next_msg_id += 1
        return self._next_msg_id

    def _preview(self, body: dict[str, Any]) -> dict[str, Any]:
        if not body.get("towxname") and str(body.get("touser") or "") not in self.follower_index:
            raise Refusal(40003, "invalid openid")
        draft = self.drafts.get(str((body.get("mpnews") or {}).get("media_id") or ""))
        if draft is None or draft.used:
            raise Refusal(40007, "invalid media_id")
        return {"errcode": 0, "errmsg": "preview success", "msg_id": self._new_msg_id()}

    def _mass_get(self, body: dict[str, Any]) -> dict[str, Any]:
        try:
            job = self.jobs.get(int(body.get("msg_id") or 0))
        except (TypeError, ValueError):
            job = None
        if job is None:
            raise Refusal(40007, "invalid msg_id")
        return {"msg_id": job.msg_id, "msg_status": job.status}

    def _finish(self, job: MassJob) -> None:
        with self.lock:
            succeeded = self.config.job_status == "send success"
            job.status = "SEND_SUCCESS" if succeeded else "SEND_FAIL"
            url, token = self.config.callback_url, self.config.callback_token
            xml = self._finish_event(job, succeeded)
        if url:
            self._post_callback(url, token, job.msg_id, xml)

    def _finish_event(self, job: MassJob, succeeded: bool) -> bytes:
        sent = len(job.received) if succeeded else 0
        return (
            "<xml>"
            f"<ToUserName><![CDATA[gh_{self.config.app_id[2:14]}]]></ToUserName>"
            f"<FromUserName><![CDATA[{MPHELPER_OPENID}]]></FromUserName>"
            f"<CreateTime>{int(time.time())}</CreateTime>"
            "<MsgType><![CDATA[event]]></MsgType>"
            "<Event><![CDATA[MASSSENDJOBFINISH]]></Event>"
            f"<MsgID>{job.msg_id}</MsgID>"
            f"<Status><![CDATA[{self.config.job_status}]]></Status>"
            f"<TotalCount>{len(job.audience)}</TotalCount>"
            f"<FilterCount>{len(job.received)}</FilterCount>"
            f"<SentCount>{sent}</SentCount>"
            f"<ErrorCount>{len(job.received) - sent}</ErrorCount>"
            "<ArticleUrlResult><Count>1</Count><ResultList><item><ArticleIdx>1</ArticleIdx>"
            f"<ArticleUrl><![CDATA[http://mp.weixin.qq.com/s?__biz=sandbox&mid={job.msg_data_id}"
            "]]></ArticleUrl></item></ResultList></ArticleUrlResult>"
            "</xml>"
        ).encode()

    def _post_callback(
        self, url: str, token: str, msg_id: int, xml: bytes, openid: str = MPHELPER_OPENID
    ) -> None:
        """POST the event, signed; WeChat tries 3 times when the answer is late or not 200.
        ``msg_id`` is 0 for a follower's event, which names the follower in ``openid``."""
        for _ in range(self.config.callback_attempts):
            params, body = self.signed_callback(token, xml, openid=openid)
            try:
                response = httpx.post(
                    url,
                    params=params,
                    content=body,
                    headers={"Content-Type": "text/xml"},
                    timeout=self.config.callback_timeout,
                )
            except httpx.HTTPError as error:
                with self.lock:
                    self.callback_attempts.append(CallbackAttempt(msg_id, None, str(error), params))
                continue
            with self.lock:
                self.callback_attempts.append(
                    CallbackAttempt(msg_id, response.status_code, response.text[:200], params)
                )
            if response.status_code == 200:
                return

    def signed_callback(
        self,
        token: str,
        xml: bytes,
        *,
        openid: str = MPHELPER_OPENID,
        timestamp: str | None = None,
        nonce: str | None = None,
    ) -> tuple[dict[str, str], bytes]:
        """The query and body WeChat posts for the event ``xml``: signed with ``token``, and in
        safe mode (``encoding_aes_key`` set) encrypted, with ``msg_signature`` over the body."""
        timestamp = timestamp or str(int(time.time()))
        nonce = nonce or str(secrets.randbelow(10**10))  # WeChat's nonces are digits
        params = {
            "signature": hashlib.sha1(
                "".join(sorted([token, timestamp, nonce])).encode()
            ).hexdigest(),
            "timestamp": timestamp,
            "nonce": nonce,
            "openid": openid,
        }
        if not self.config.encoding_aes_key:
            return params, xml
        encrypted = self._encrypt(xml)
        params["encrypt_type"] = "aes"
        params["msg_signature"] = hashlib.sha1(
            "".join(sorted([token, timestamp, nonce, encrypted])).encode()
        ).hexdigest()
        body = (
            f"<xml><ToUserName><![CDATA[gh_{self.config.app_id[2:14]}]]></ToUserName>"
            f"<Encrypt><![CDATA[{encrypted}]]></Encrypt></xml>"
        ).encode()
        return params, body

    def _encrypt(self, xml: bytes) -> str:
        """WeChat's message encryption: AES-256-CBC under the EncodingAESKey, IV its first 16
        bytes, of 16 random bytes + the length (4 bytes, big-endian) + the XML + the AppID,
        padded PKCS#7-style to a multiple of 32 bytes; base64."""
        key = base64.b64decode(self.config.encoding_aes_key + "=")
        plain = secrets.token_bytes(16) + struct.pack(">I", len(xml)) + xml
        plain += self.config.app_id.encode()
        pad = 32 - len(plain) % 32
        plain += bytes([pad]) * pad
        encryptor = Cipher(algorithms.AES(key), modes.CBC(key[:16])).encryptor()
        return base64.b64encode(encryptor.update(plain) + encryptor.finalize()).decode()

    # Followers and tags.

    def _page(self, openids: list[str], after: str, *, total: bool) -> dict[str, Any]:
        start = 0
        if after:
            try:
                start = openids.index(after) + 1
            except ValueError:
                raise Refusal(40003, "invalid openid") from None
        page = openids[start : start + PAGE_SIZE]
        answer: dict[str, Any] = {"total": len(openids)} if total else {}
        if not page:
            return {**answer, "count": 0, "next_openid": ""}
        return {**answer, "count": len(page), "data": {"openid": page}, "next_openid": page[-1]}

    def _tag_get(self, body: dict[str, Any]) -> dict[str, Any]:
        tag = self.tags.get(body.get("tagid", -1))
        if tag is None:
            raise Refusal(45159, "invalid tag id")
        return self._page(tag[1], str(body.get("next_openid") or ""), total=False)


def create_app(sandbox: Sandbox) -> FastAPI:
    """The ASGI app: WeChat's ``/cgi-bin/…`` and the ``/sandbox/…`` steering routes."""
    app = FastAPI(title="WeChat sandbox", openapi_url=None, docs_url=None, redoc_url=None)

    @app.api_route("/cgi-bin/{api:path}", methods=["GET", "POST"])
    async def cgi_bin(api: str, request: Request) -> Response:
        form: dict[str, Any] = {}
        body = b""
        if request.headers.get("content-type", "").startswith("multipart/form-data"):
            async with request.form() as parts:
                upload = parts.get("media")
                form = {"media": await upload.read() if isinstance(upload, UploadFile) else None}
        else:
            body = await request.body()
        client_ip = request.client.host if request.client else ""
        answer, delay = sandbox.handle(
            api, request.method, dict(request.query_params), body, form, client_ip
        )
        if delay:
            await asyncio.sleep(delay)
        if answer is None:
            return Response(status_code=404)
        return Response(
            json.dumps(answer, ensure_ascii=False).encode(),
            media_type="application/json; charset=utf-8",
        )

    @app.post("/sandbox/faults")
    async def inject(request: Request) -> JSONResponse:
        spec = await request.json()
        sandbox.inject(
            str(spec["api"]),
            Fault(
                errcode=spec.get("errcode"),
                errmsg=str(spec.get("errmsg", "forced by the sandbox")),
                delay=float(spec.get("delay", 0)),
                times=int(spec.get("times", 1)),
            ),
        )
        return JSONResponse({"ok": True})

    @app.post("/sandbox/tokens/expire")
    async def expire() -> JSONResponse:
        sandbox.expire_tokens()
        return JSONResponse({"ok": True})

    @app.post("/sandbox/followers")
    async def followers(request: Request) -> JSONResponse:
        spec = await request.json()
        added = sandbox.add_followers(int(spec.get("count", 0)))
        tag_id = sandbox.add_tag(str(spec["tag"]), added) if spec.get("tag") else None
        return JSONResponse({"added": len(added), "tag_id": tag_id})

    @app.post("/sandbox/followers/unfollow")
    async def unfollow(request: Request) -> JSONResponse:
        openid = str((await request.json()).get("openid", ""))
        try:
            await asyncio.to_thread(sandbox.unfollow, openid)
        except KeyError as error:
            return JSONResponse({"error": str(error)}, status_code=404)
        return JSONResponse({"unfollowed": openid})

    @app.post("/sandbox/callback")
    async def callback(request: Request) -> JSONResponse:
        spec = await request.json()
        with sandbox.lock:
            sandbox.config.callback_url = spec.get("url") or None
            sandbox.config.callback_token = str(spec.get("token", ""))
            sandbox.config.encoding_aes_key = str(spec.get("aes_key", ""))
            sandbox.config.job_finish_delay = float(
                spec.get("delay", sandbox.config.job_finish_delay)
            )
        return JSONResponse({"ok": True})

    @app.get("/sandbox/state")
    async def state() -> JSONResponse:
        with sandbox.lock:
            return JSONResponse(
                {
                    "tokens_issued": sandbox.tokens_issued,
                    "followers": len(sandbox.followers),
                    "drafts": len(sandbox.drafts),
                    "jobs": [
                        {"msg_id": job.msg_id, "status": job.status, "total": len(job.audience)}
                        for job in sandbox.jobs.values()
                    ],
                    "calls": sandbox.calls,
                    "callback_attempts": len(sandbox.callback_attempts),
                }
            )

    return app


class ThreadedServer:
    """An ASGI app served by uvicorn on a free loopback port, in a thread of this process."""

    def __init__(self, app: Any, port: int | None = None) -> None:
        self.port = port or free_port()
        self.server = uvicorn.Server(
            uvicorn.Config(
                app, host="127.0.0.1", port=self.port, log_level="warning", lifespan="off"
            )
        )
        self.thread = threading.Thread(target=self.server.run, name="asgi-server", daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> None:
        self.thread.start()
        deadline = time.monotonic() + 10
        while not self.server.started:
            if not self.thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError(f"the server on port {self.port} did not start")
            time.sleep(0.02)

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=10)


class SandboxServer(ThreadedServer):
    """The sandbox, serving; ``url`` is what WECHAT_API_BASE should be."""

    def __init__(self, config: SandboxConfig | None = None, port: int | None = None) -> None:
        self.sandbox = Sandbox(config)
        super().__init__(create_app(self.sandbox), port)

    def stop(self) -> None:
        super().stop()
        self.sandbox.stop()

    def __enter__(self) -> SandboxServer:
        self.start()
        return self

    def __exit__(self, *_: object) -> None:
        self.stop()
