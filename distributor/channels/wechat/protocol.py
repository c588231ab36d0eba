"""The shapes of the WeChat calls we make: request bodies built and answers read, field by field.

Pure functions: no network here, so the limits and the parsing are tested on their own. The
limits are the platform's (draft/add, mass/send); breaking one here gives a clear error before
WeChat would answer with a terse errcode.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from distributor.errors import Notice, WechatError

TITLE_MAX_CHARS = 32
AUTHOR_MAX_CHARS = 16
DIGEST_MAX_CHARS = 120  # the 2025 doc says 128, a later check 120: keep to the smaller
CONTENT_MAX_CHARS = 20_000  # "必须少于2万字符": strictly fewer
CONTENT_MAX_BYTES = 1_000_000
SOURCE_URL_MAX_BYTES = 1024
ARTICLES_PER_DRAFT = 8
OPENIDS_PER_SEND = (2, 10_000)
CLIENTMSGID_MAX_BYTES = 64


@dataclass(frozen=True)
class DraftArticle:
    """One article of a draft (``draft/add``); the cover is a permanent material's media_id."""

    title: str
    content: str
    thumb_media_id: str
    author: str = ""
    digest: str = ""
    content_source_url: str = ""
    need_open_comment: bool = False
    only_fans_can_comment: bool = False


def _limit_error(what: str, detail: Notice) -> WechatError:
    return WechatError(
        f"the WeChat article {what} {detail}",
        api="draft/add",
        code="wechat.article_limit",
        article=what,
        detail=detail,
    )


def draft_body(articles: Sequence[DraftArticle]) -> dict[str, Any]:
    """The ``draft/add`` body, after checking every limit WeChat sets."""
    if not 1 <= len(articles) <= ARTICLES_PER_DRAFT:
        raise WechatError(
            f"a WeChat draft holds 1 to {ARTICLES_PER_DRAFT} articles, not {len(articles)}",
            api="draft/add",
            code="wechat.draft_articles",
            most=ARTICLES_PER_DRAFT,
            count=len(articles),
        )
    body = []
    for number, article in enumerate(articles, start=1):
        name = f"{number} ({article.title[:20]!r})"
        if not article.title.strip():
            raise _limit_error(name, Notice("has no title", code="wechat.article_no_title"))
        if len(article.title) > TITLE_MAX_CHARS:
            raise _limit_error(
                name,
                Notice(
                    f"has a title of {len(article.title)} characters; at most {TITLE_MAX_CHARS}",
                    code="wechat.article_title_long",
                    length=len(article.title),
                    most=TITLE_MAX_CHARS,
                ),
            )
        if len(article.author) > AUTHOR_MAX_CHARS:
            raise _limit_error(
                name,
                Notice(
                    f"has an author of {len(article.author)} characters; "
                    f"at most {AUTHOR_MAX_CHARS}",
                    code="wechat.article_author_long",
                    length=len(article.author),
                    most=AUTHOR_MAX_CHARS,
                ),
            )
        if len(article.digest) > DIGEST_MAX_CHARS:
            raise _limit_error(
                name,
                Notice(
                    f"has a summary of {len(article.digest)} characters; "
                    f"at most {DIGEST_MAX_CHARS}",
                    code="wechat.article_digest_long",
                    length=len(article.digest),
                    most=DIGEST_MAX_CHARS,
                ),
            )
        if article.digest and len(articles) > 1:
            raise _limit_error(
                name,
                Notice(
                    "has a summary, which WeChat takes only for a single article",
                    code="wechat.article_digest_single",
                ),
            )
        if not article.content.strip():
            raise _limit_error(name, Notice("has no content", code="wechat.article_empty"))
        if len(article.content) >= CONTENT_MAX_CHARS:
            raise _limit_error(
                name,
                Notice(
                    f"has {len(article.content):,} characters of content; "
                    f"WeChat takes fewer than {CONTENT_MAX_CHARS:,}",
                    code="wechat.article_long",
                    length=len(article.content),
                    most=CONTENT_MAX_CHARS,
                ),
            )
        if len(article.content.encode()) >= CONTENT_MAX_BYTES:
            raise _limit_error(
                name, Notice("has 1 MB of content or more", code="wechat.article_large")
            )
        if len(article.content_source_url.encode()) > SOURCE_URL_MAX_BYTES:
            raise _limit_error(
                name, Notice("has a link longer than 1 KB", code="wechat.article_link_long")
            )
        if not article.thumb_media_id:
            raise _limit_error(name, Notice("has no cover image", code="wechat.article_no_cover"))
        fields: dict[str, Any] = {
            "article_type": "news",
            "title": article.title,
            "author": article.author,
            "content": article.content,
            "content_source_url": article.content_source_url,
            "thumb_media_id": article.thumb_media_id,
            "need_open_comment": int(article.need_open_comment),
            "only_fans_can_comment": int(article.only_fans_can_comment),
        }
        if article.digest:
            fields["digest"] = article.digest
        body.append(fields)
    return {"articles": body}


@dataclass(frozen=True)
class ToAll:
    """Every follower; the send enters the account's history list."""


@dataclass(frozen=True)
class ToTag:
    """The followers with one tag; such a send does not enter the history list."""

    tag_id: int


@dataclass(frozen=True)
class ToOpenids:
    """2 to 10,000 followers by OpenID (certified service accounts only)."""

    openids: tuple[str, ...]


Audience = ToAll | ToTag | ToOpenids


def check_clientmsgid(clientmsgid: str) -> None:
    size = len(clientmsgid.encode())
    if not 0 < size <= CLIENTMSGID_MAX_BYTES:
        raise WechatError(
            f"a WeChat clientmsgid must be 1 to {CLIENTMSGID_MAX_BYTES} bytes, "
            f"not {size}: {clientmsgid[:80]!r}",
            api="message/mass",
            code="wechat.clientmsgid",
            most=CLIENTMSGID_MAX_BYTES,
            size=size,
        )


def mass_body(
    media_id: str, audience: Audience, clientmsgid: str, *, send_ignore_reprint: bool = False
) -> tuple[str, dict[str, Any]]:
    """The API (``message/mass/sendall`` or ``…/send``) and body of a mass send of a draft."""
    check_clientmsgid(clientmsgid)
    body: dict[str, Any] = {
        "mpnews": {"media_id": media_id},
        "msgtype": "mpnews",
        "send_ignore_reprint": int(send_ignore_reprint),
        "clientmsgid": clientmsgid,
    }
    if isinstance(audience, ToOpenids):
        low, high = OPENIDS_PER_SEND
        if not low <= len(audience.openids) <= high:
            raise WechatError(
                f"a WeChat send by OpenID list names {low} to {high:,} followers, "
                f"not {len(audience.openids):,}",
                api="message/mass/send",
                code="wechat.openid_count",
                low=low,
                high=high,
                count=len(audience.openids),
            )
        return "message/mass/send", {"touser": list(audience.openids), **body}
    if isinstance(audience, ToTag):
        return "message/mass/sendall", {
            "filter": {"is_to_all": False, "tag_id": audience.tag_id},
            **body,
        }
    return "message/mass/sendall", {"filter": {"is_to_all": True}, **body}


MsgId = int | str  # a number from mass sends, a string in newer docs: sent back as received


@dataclass(frozen=True)
class MassJob:
    """A mass send WeChat accepted. ``existing``: it had been made before (45065, a retry)."""

    msg_id: MsgId
    msg_data_id: MsgId | None = None
    existing: bool = False


def read_mass_job(answer: Mapping[str, Any], *, existing: bool = False) -> MassJob:
    msg_id = answer.get("msg_id")
    if not isinstance(msg_id, int | str) or isinstance(msg_id, bool):
        raise WechatError(
            f"WeChat accepted a mass send but gave no msg_id: {dict(answer)!r}",
            code="wechat.no_msg_id",
        )
    msg_data_id = answer.get("msg_data_id")
    return MassJob(
        msg_id=msg_id,
        msg_data_id=msg_data_id if isinstance(msg_data_id, int | str) else None,
        existing=existing,
    )


class MassStatus(StrEnum):
    """``message/mass/get``: a job is SENDING until it ends in one of the others."""

    SENDING = "SENDING"
    SEND_SUCCESS = "SEND_SUCCESS"
    SEND_FAIL = "SEND_FAIL"
    DELETE = "DELETE"


@dataclass(frozen=True)
class FollowersPage:
    """One page of ``user/get`` or ``user/tag/get``; an empty page ends the list."""

    openids: tuple[str, ...]
    next_openid: str
    total: int | None = None  # user/get only


def read_followers_page(answer: Mapping[str, Any]) -> FollowersPage:
    data = answer.get("data") or {}
    openids = data.get("openid") or [] if isinstance(data, Mapping) else []
    total = answer.get("total")
    return FollowersPage(
        openids=tuple(str(openid) for openid in openids),
        next_openid=str(answer.get("next_openid") or ""),
        total=int(total) if isinstance(total, int) else None,
    )


@dataclass(frozen=True)
class Tag:
    id: int
    name: str
    count: int


def read_tags(answer: Mapping[str, Any]) -> list[Tag]:
    return [
        Tag(id=int(tag["id"]), name=str(tag["name"]), count=int(tag.get("count", 0)))
        for tag in answer.get("tags") or []
    ]
