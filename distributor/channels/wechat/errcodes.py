"""Every errcode the WeChat Official Account API documents for the calls we make, in plain words.

WeChat answers HTTP 200 with ``{"errcode": N, "errmsg": "…"}``; the errmsg is terse English (or
Chinese) with a trace suffix, so clients match on the number and staff read what is written here:
what happened, and what they can do about it (mostly in the WeChat console, mp.weixin.qq.com).
"""

from __future__ import annotations

from dataclasses import dataclass

from distributor.errors import Notice


@dataclass(frozen=True)
class Errcode:
    meaning: str
    action: str


_RETRY_LATER = "Nothing to change: it is tried again later; if it persists, tell the developers."
_CONSOLE_KEY = (
    "In the WeChat console (设置与开发 → 基本配置) copy the AppID and AppSecret into "
    "WECHAT_APP_ID and WECHAT_APP_SECRET."
)
_REPORT = "This is a defect in the service, not in your account: tell the developers."
_NEW_DRAFT = "Publish the issue to WeChat again: a new draft is made."

ERRCODES: dict[int, Errcode] = {
    -1: Errcode("WeChat is busy (system error)", _RETRY_LATER),
    # The access token and the credentials behind it.
    40001: Errcode(
        "the AppSecret is wrong, or the access token was replaced by a newer one",
        "If it keeps happening, another system may be refreshing the token of this account with "
        "force: use one token service per account. " + _CONSOLE_KEY,
    ),
    40002: Errcode("WeChat did not accept the grant type of the token request", _REPORT),
    40013: Errcode("the AppID is not valid", _CONSOLE_KEY),
    40014: Errcode("the access token is not valid", _RETRY_LATER),
    40125: Errcode(
        "the AppSecret is not valid",
        "Reset the AppSecret in the WeChat console (设置与开发 → 基本配置) and put the new one "
        "in WECHAT_APP_SECRET.",
    ),
    40164: Errcode(
        "this server's IP address is not on the account's IP whitelist",
        "Add this server's public IP address to the whitelist in the WeChat console "
        "(设置与开发 → 基本配置 → IP白名单).",
    ),
    40243: Errcode(
        "the AppSecret is frozen by the account's administrator",
        "Ask the administrator to unfreeze or reset the AppSecret in the WeChat console.",
    ),
    41001: Errcode("the call carried no access token", _REPORT),
    41002: Errcode("the AppID is missing", "Set WECHAT_APP_ID."),
    41004: Errcode("the AppSecret is missing", "Set WECHAT_APP_SECRET."),
    42001: Errcode("the access token has expired", _RETRY_LATER),
    43002: Errcode("the call must be a POST", _REPORT),
    50004: Errcode(
        "the token interface is forbidden for this account",
        "Check the account's status and notices in the WeChat console.",
    ),
    50007: Errcode(
        "the account is frozen",
        "Log in to the WeChat console and follow its instructions to unfreeze the account.",
    ),
    89503: Errcode(
        "this server's IP address waits for the administrator's confirmation",
        "Ask the account's administrator to confirm the IP address in the WeChat app, then try "
        "again.",
    ),
    89506: Errcode(
        "the administrator refused this server's IP address",
        "Ask the administrator to accept it; WeChat allows a new request after 24 hours.",
    ),
    89507: Errcode(
        "the administrator refused this server's IP address",
        "Ask the administrator to accept it; WeChat allows a new request after 1 hour.",
    ),
    # Quotas.
    45009: Errcode(
        "the account's daily quota for this API is used up",
        "Wait for the quota to reset at midnight (Beijing time), or reset it once in the WeChat "
        "console (开发 → 接口权限 → 接口调用次数 清零; 10 resets a month).",
    ),
    45011: Errcode(
        "too many calls this minute", "Nothing to change: it is tried again the next minute."
    ),
    48006: Errcode("the quota may not be reset again this month", "Wait for next month's quota."),
    # Images and cover material.
    40004: Errcode("WeChat does not know this kind of material", _REPORT),
    40005: Errcode(
        "the file type is not accepted (article images: JPG or PNG; a thumb cover: JPG)",
        "Replace the image with a JPG or PNG and publish again.",
    ),
    40006: Errcode(
        "the file is too large for its kind",
        "Use a smaller image (article images < 1 MB, a thumb cover ≤ 64 KB) and publish again.",
    ),
    40009: Errcode(
        "the image is too large (article images must be under 1 MB)",
        "Use a smaller image and publish again.",
    ),
    45001: Errcode(
        "the file is larger than WeChat allows", "Use a smaller file and publish again."
    ),
    40007: Errcode(
        "the draft, material or message named does not exist, or was already used "
        "(a draft is used up by one mass send)",
        _NEW_DRAFT,
    ),
    # Drafts (articles).
    40033: Errcode("the request had characters escaped as \\uXXXX", _REPORT),
    41039: Errcode(
        "the 'read the original' link is not valid (at most 1 KB)",
        "Shorten or correct the issue's link and publish again.",
    ),
    40114: Errcode("the article index in a draft update is out of range", _REPORT),
    44003: Errcode("the draft has no article in it", "Publish an issue with content."),
    45002: Errcode(
        "the article is too long (WeChat takes fewer than 20,000 characters)",
        "Shorten the issue or split it into several articles, and publish again.",
    ),
    45003: Errcode(
        "the title is too long (at most 32 characters)", "Shorten the title and publish again."
    ),
    45004: Errcode(
        "the summary (digest) is too long (at most 120 characters)",
        "Shorten the summary and publish again.",
    ),
    45110: Errcode(
        "the author name is too long (at most 16 characters)",
        "Shorten the author and publish again.",
    ),
    45166: Errcode(
        "WeChat rejected the article's content",
        "Check the issue for scripts, forms or unusual markup, and publish again.",
    ),
    53404: Errcode(
        "a product card in the article is not allowed", "Remove the product card and publish again."
    ),
    53405: Errcode(
        "a product card in the article is not valid", "Remove the product card and publish again."
    ),
    53406: Errcode(
        "a product card in the article is not valid", "Remove the product card and publish again."
    ),
    88000: Errcode(
        "the account may not open comments on articles",
        "Publish without comments, or enable comments in the WeChat console.",
    ),
    # Mass sends.
    40003: Errcode(
        "an OpenID is not a follower of this account (unknown, or unfollowed)",
        "Sync the followers again; the reader may have unfollowed.",
    ),
    40032: Errcode("a send by OpenID list may name at most 10,000 followers", _REPORT),
    40130: Errcode("a send by OpenID list must name at least two followers", _REPORT),
    40060: Errcode("the article number given for deletion does not exist", _REPORT),
    45028: Errcode(
        "the account's mass-send quota is used up (a subscription account: one mass send a "
        "day; a service account: four a month)",
        "Send tomorrow (subscription account) or next month (service account); a send made in "
        "the WeChat console counts as well.",
    ),
    45065: Errcode(
        "this mass send was already made (same clientmsgid within 24 hours)",
        "Nothing: the earlier send stands.",
    ),
    45066: Errcode(
        "the same mass send was retried within a minute",
        "Nothing to change: it is tried again after a minute.",
    ),
    45067: Errcode("the clientmsgid is longer than 64 bytes", _REPORT),
    48001: Errcode(
        "the account is not allowed to use this API (it may not be certified, or the permission "
        "was taken away)",
        "In the WeChat console (设置与开发 → 接口权限) check that the account is certified "
        "(微信认证) and has the permission for mass sends (群发) and drafts.",
    ),
    48003: Errcode(
        "the administrator has not accepted the mass-send agreement",
        "Log in to the WeChat console, open 群发功能 and accept the agreement.",
    ),
    48008: Errcode(
        "the account may not send this kind of message (test accounts cannot send articles)",
        "Use a certified Official Account.",
    ),
    # Free publishing.
    53503: Errcode(
        "the draft did not pass WeChat's publishing check",
        "Open the draft in the WeChat console to see why, correct the issue and publish again.",
    ),
    53504: Errcode(
        "the draft must be published from the WeChat console",
        "Publish it in the WeChat console (草稿箱).",
    ),
    53505: Errcode(
        "the draft must be saved by hand before it is published",
        "Open the draft in the WeChat console (草稿箱) and save it once.",
    ),
    53600: Errcode("the article id is not valid", _REPORT),
    # Tags.
    45157: Errcode("the tag name is not valid", "Choose another tag name."),
    45158: Errcode("the tag name is too long (at most 30 characters)", "Shorten the tag name."),
    # Template and subscription notifications.
    40037: Errcode(
        "the template id is not valid",
        "Check the template id in the WeChat console (广告与服务 → 模板消息).",
    ),
    43004: Errcode("the reader does not follow the account", "Nothing: they unfollowed."),
    43101: Errcode("the reader did not accept this notification", "Nothing: they refused it."),
    47003: Errcode("a template field is not valid", _REPORT),
}

# The token was rejected: refresh it and try the call once more.
TOKEN_ERRCODES = frozenset({40001, 40014, 42001})
# WeChat asks to slow down: wait, then try again.
BACKOFF_ERRCODES = frozenset({45009, 45011, 45066})
CLIENTMSGID_EXISTS = 45065


# The catalogs word each errcode above as err.wechat.errcode.<errcode>: what happened, what to do
# (tests/test_wechat_protocol.py holds them to the table).
ERRCODE_TEXTS = "err.wechat.errcode."


def describe(errcode: int, errmsg: str, api: str) -> Notice:
    """One message for a person: which call, which code, what it means, what to do; its code
    words what it means and what to do in the page's language."""
    known = ERRCODES.get(errcode)
    if known is None:
        return Notice(
            f"WeChat refused {api} with errcode {errcode}, which we do not know "
            f"(WeChat said: {errmsg!r}). Look it up in WeChat's global return codes, or tell "
            "the developers.",
            code="wechat.errcode_unknown",
            errmsg=errmsg[:200],
        )
    return Notice(
        f"WeChat refused {api} (errcode {errcode}): {known.meaning}. {known.action}",
        code=ERRCODE_TEXTS.removeprefix("err.") + str(errcode),
    )
