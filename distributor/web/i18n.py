"""The languages of the public pages (zh-CN and English) and every text they show.

A page's language is, in order: the reader's explicit choice (``?lang=``, remembered in a
cookie), the subscriber's own (``Subscriber.locale``) on their pages, ``Accept-Language``, and
Chinese. Service messages are English; the ones a reader can meet have a Chinese translation here.
"""

from __future__ import annotations

from collections.abc import Callable

DEFAULT = "zh-CN"
LANGUAGES = {"zh-CN": "中文", "en": "English"}

Translate = Callable[..., str]


def supported(tag: str | None) -> str | None:
    """The page language for a BCP 47 tag (``en-GB`` → ``en``, ``zh-Hans-CN`` → ``zh-CN``)."""
    if not tag:
        return None
    primary = tag.strip().split("-")[0].split("_")[0].lower()
    return {"zh": "zh-CN", "en": "en"}.get(primary)


def from_accept_language(header: str | None) -> str | None:
    """The supported language the browser prefers most (highest q, then first named)."""
    choices: list[tuple[float, int, str]] = []
    for position, item in enumerate((header or "").split(",")):
        tag, _, params = item.partition(";")
        quality = 1.0
        if params.strip().startswith("q="):
            try:
                quality = float(params.strip()[2:])
            except ValueError:
                continue
        lang = supported(tag)
        if lang is not None and quality > 0:
            choices.append((-quality, position, lang))
    return min(choices)[2] if choices else None


def choose(
    *, asked: str | None, remembered: str | None, own: str | None, accept: str | None
) -> str:
    return (
        supported(asked)
        or supported(remembered)
        or supported(own)
        or from_accept_language(accept)
        or DEFAULT
    )


def translator(lang: str) -> Translate:
    texts = TEXTS[lang]

    def translate(key: str, **values: object) -> str:
        return texts[key].format(**values) if values else texts[key]

    return translate


def service_message(message: str, lang: str) -> str | None:
    """A service's message for the reader: as is in English, translated in Chinese when known."""
    if lang == "en":
        return message[:1].upper() + message[1:] + ("" if message.endswith(".") else ".")
    return SERVICE_MESSAGES_ZH.get(message)


SERVICE_MESSAGES_ZH = {
    "this link is damaged: copy the whole link from the email": (
        "这个链接不完整：请从邮件中复制完整的链接。"
    ),
    "this link is not valid for this page (it was altered or is for another purpose)": (
        "这个链接对本页无效：它被改动过，或是用于其他页面的。"
    ),
    "this link is not valid for this page": "这个链接对本页无效。",
    "this link has expired: ask for a new one": "这个链接已过期：请重新订阅，获取新的链接。",
    "this subscription no longer exists": "这个订阅已不存在。",
    "this confirmation link is no longer valid: please subscribe again": (
        "这个确认链接已失效：请重新订阅。"
    ),
}

TEXTS: dict[str, dict[str, str]] = {
    "zh-CN": {
        "lang.label": "语言",
        "nav.archive": "往期回顾",
        "greeting": "{name}，您好。",
        "greeting.anonymous": "读者朋友，您好。",
        "unsub.title": "退订",
        "unsub.question": "您想停止接收哪些邮件？",
        "unsub.everything": "全部邮件（所有列表）",
        "unsub.only": "仅退订《{list}》",
        "unsub.button": "确认退订",
        "unsub.fewer": "只想少收一些？可以改收要闻摘要：",
        "unsub.preferences": "订阅设置",
        "unsub.already": "您已经退订了全部邮件，我们不会再给您发送。",
        "unsub.done": "已退订",
        "unsub.done.everything": "您已退订，我们不会再给您发送邮件。",
        "unsub.done.list": "您已退订《{list}》，其他订阅不受影响。",
        "prefs.title": "订阅设置",
        "prefs.channel": "接收方式",
        "channel.email": "电子邮件",
        "channel.wechat": "微信",
        "channel.both": "邮件和微信",
        "prefs.format": "内容形式",
        "format.full": "完整版",
        "format.digest": "要闻摘要",
        "format.text": "纯文本",
        "prefs.lists": "订阅的列表",
        "prefs.inactive": "您目前没有订阅。要重新订阅，请在列表页面重新登记并确认。",
        "prefs.language": "页面和邮件的语言",
        "prefs.save": "保存设置",
        "prefs.saved": "设置已保存。",
        "prefs.leave": "不想再收到任何邮件？",
        "prefs.unsubscribe": "全部退订",
        "signup.title": "订阅《{list}》",
        "signup.name": "称呼（可不填）",
        "signup.email": "电子邮箱",
        "signup.website": "请勿填写此项",
        "signup.button": "订阅",
        "signup.note": "我们会发一封确认邮件，点击其中的链接后订阅才生效。",
        "signup.bad_email": "请检查邮箱地址：它不是一个有效的地址。",
        "signup.sent.title": "请查收确认邮件",
        "signup.sent": (
            "我们已向 {email} 发送确认邮件（如果该地址可以订阅）。请打开邮件中的链接完成订阅。"
        ),
        "confirm.title": "确认订阅",
        "confirm.text": "点击下面的按钮，完成订阅。",
        "confirm.button": "确认订阅",
        "confirm.done.title": "订阅成功",
        "confirm.done": "感谢订阅！新一期出版后会发送给您。",
        "archive.title": "往期回顾",
        "archive.empty": "还没有已发送的期刊。",
        "archive.number": "第{number}期",
        "archive.newer": "← 较新",
        "archive.older": "较早 →",
        "archive.page": "第 {page} / {pages} 页",
        "issue.contents": "本期要目",
        "issue.byline": "文 / {byline}",
        "issue.publisher": "{publisher} 主办",
        "error.400": "链接无效",
        "error.403": "表单已失效",
        "error.403.text": "这个表单已过期或不完整：请返回，刷新页面后重试。",
        "error.404": "找不到页面",
        "error.404.text": "这里没有内容：链接可能已失效。",
        "error.429": "操作太频繁",
        "error.429.text": "请稍后再试。",
        "error.500": "出了点问题",
        "error.500.text": "我们这边出了问题，请稍后再试。",
        "error.generic": "这个链接无效：它可能不完整、被改动过或已过期。请从邮件中复制完整的链接。",
    },
    "en": {
        "lang.label": "Language",
        "nav.archive": "Archive",
        "greeting": "Hello {name},",
        "greeting.anonymous": "Hello,",
        "unsub.title": "Unsubscribe",
        "unsub.question": "What would you like to stop receiving?",
        "unsub.everything": "Everything (all lists)",
        "unsub.only": "Only “{list}”",
        "unsub.button": "Unsubscribe",
        "unsub.fewer": "Just want fewer messages? Switch to the digest in your",
        "unsub.preferences": "preferences",
        "unsub.already": "You have unsubscribed from everything: we will not send you anything.",
        "unsub.done": "Unsubscribed",
        "unsub.done.everything": "You are unsubscribed: we will not send you any more messages.",
        "unsub.done.list": "You have left “{list}”; your other subscriptions stay as they are.",
        "prefs.title": "Preferences",
        "prefs.channel": "How to receive it",
        "channel.email": "Email",
        "channel.wechat": "WeChat",
        "channel.both": "Email and WeChat",
        "prefs.format": "What to receive",
        "format.full": "The full issue",
        "format.digest": "A digest of the headlines",
        "format.text": "Plain text",
        "prefs.lists": "Lists",
        "prefs.inactive": (
            "You are not subscribed at the moment. To come back, sign up again on a list's page "
            "and confirm."
        ),
        "prefs.language": "Language of pages and messages",
        "prefs.save": "Save preferences",
        "prefs.saved": "Your preferences are saved.",
        "prefs.leave": "Want no messages at all?",
        "prefs.unsubscribe": "Unsubscribe from everything",
        "signup.title": "Subscribe to “{list}”",
        "signup.name": "Your name (optional)",
        "signup.email": "Email address",
        "signup.website": "Leave this empty",
        "signup.button": "Subscribe",
        "signup.note": (
            "We will send you a message; the subscription starts when you follow its link."
        ),
        "signup.bad_email": "Please check the email address: it is not a valid address.",
        "signup.sent.title": "Check your inbox",
        "signup.sent": (
            "If {email} can be subscribed, a confirmation message is on its way to it. "
            "Open the link in it to finish."
        ),
        "confirm.title": "Confirm your subscription",
        "confirm.text": "Press the button to confirm your subscription.",
        "confirm.button": "Confirm",
        "confirm.done.title": "You are subscribed",
        "confirm.done": "Thank you! You will receive the next issue when it comes out.",
        "archive.title": "Archive",
        "archive.empty": "No issue has been sent yet.",
        "archive.number": "No. {number}",
        "archive.newer": "← Newer",
        "archive.older": "Older →",
        "archive.page": "Page {page} of {pages}",
        "issue.contents": "In this issue",
        "issue.byline": "By {byline}",
        "issue.publisher": "Published by {publisher}",
        "error.400": "This link does not work",
        "error.403": "This form has expired",
        "error.403.text": (
            "The form is out of date or incomplete: go back, reload the page and try again."
        ),
        "error.404": "Page not found",
        "error.404.text": "There is nothing here: the link may be out of date.",
        "error.429": "Too many attempts",
        "error.429.text": "Please try again later.",
        "error.500": "Something went wrong",
        "error.500.text": "Something went wrong on our side; please try again later.",
        "error.generic": (
            "This link is not valid: it may be incomplete, altered or expired. "
            "Copy the whole link from the message."
        ),
    },
}


def _add_staff_texts() -> None:
    from distributor.web.staff_texts import STAFF_TEXTS

    for lang, texts in STAFF_TEXTS.items():
        TEXTS[lang].update(texts)


_add_staff_texts()
