"""Exactly what a reader gets, for staff to look at: the message of a variant, its HTML, and the
preview page showing an email's HTML at phone and desktop widths, side by side.

A preview goes through the same compile → personalise path as a real send (send id 0), for the
anonymous preview reader (:data:`PREVIEW_SUBSCRIBER_ID`) unless a subscriber is named, whose
links unsubscribe nobody.
"""

from __future__ import annotations

import base64
import email
import email.policy
import html
import json
from dataclasses import asdict
from email.message import Message

from distributor.config import Settings
from distributor.errors import RenderError
from distributor.issues.document import IssueDocument
from distributor.render.dkim import DkimSigner
from distributor.render.email import compile_issue
from distributor.render.personalise import Recipient, personalise
from distributor.render.views import render_template
from distributor.render.wechat import compile_wechat
from distributor.vocabulary import Variant
from subscribers.links import PublicLinks
from subscribers.tokens import TokenSigner

# An anonymous reader whose links unsubscribe nobody.
PREVIEW_SUBSCRIBER_ID = 0
PREVIEW_ADDRESS = "preview@example.org"

PREVIEW_WIDTHS = ((375, "手机"), (1024, "电脑"))  # px: a phone, a desktop mail client


def render_preview(html: str, subject: str) -> str:
    """A page showing ``html`` at phone and desktop widths (iframes with srcdoc) for staff."""
    return render_template("preview.html", html=html, subject=subject, widths=PREVIEW_WIDTHS)




def message_bytes(
    doc: IssueDocument, variant: Variant, settings: Settings, to: Recipient
) -> bytes:
    """The RFC 5322 message of an email variant, or the WeChat article as JSON."""
    if variant is Variant.WECHAT:
        article = compile_wechat(doc, settings)
        return json.dumps(asdict(article), ensure_ascii=False, indent=2).encode("utf-8") + b"\n"
    links = PublicLinks(settings.public_base_url, TokenSigner(settings.require_secret_key()))
    message = personalise(
        compile_issue(doc, variant, settings),
        to,
        send_id=0,
        links=links,
        signer=DkimSigner.from_settings(settings),
    )
    return message.data


def html_body(message: bytes) -> str:
    """The decoded text/html part of a message, its pictures shown (see :func:`shown_inline`)."""
    parsed = email.message_from_bytes(message, policy=email.policy.default)
    part = parsed.get_body(("html",))
    if part is None:
        raise RenderError("the message has no HTML part", code="render.no_html")
    return shown_inline(parsed, str(part.get_content()))


def shown_inline(message: Message, html: str) -> str:
    """``html`` with each ``cid:`` picture of ``message`` as a ``data:`` URI, as a mail client
    shows it (RFC 2392): a page or a browser cannot fetch ``cid:``."""
    for part in message.walk():
        content_id = str(part.get("Content-ID", "")).strip().strip("<>")
        if content_id and part.get_content_maintype() == "image":
            payload = part.get_payload(decode=True)
            data = base64.b64encode(payload if isinstance(payload, bytes) else b"").decode()
            uri = f"data:{part.get_content_type()};base64,{data}"
            html = html.replace(f'src="cid:{content_id}"', f'src="{uri}"')
    return html


def variant_html(doc: IssueDocument, variant: Variant, settings: Settings) -> str:
    """What the anonymous preview reader sees of an email variant, as one HTML document: the
    HTML part, or the plain text (the text variant) in a ``<pre>``."""
    reader = Recipient(PREVIEW_SUBSCRIBER_ID, PREVIEW_ADDRESS)
    message = email.message_from_bytes(
        message_bytes(doc, variant, settings, reader), policy=email.policy.default
    )
    part = message.get_body(("html", "plain"))
    if part is None:
        raise RenderError("the message has no body", code="render.no_body")
    content = str(part.get_content())
    if part.get_content_type() == "text/html":
        return shown_inline(message, content)
    return (
        '<!DOCTYPE html><meta charset="utf-8"><pre style="white-space:pre-wrap;'
        f'font:15px/1.6 monospace;margin:12px">{html.escape(content)}</pre>'
    )
