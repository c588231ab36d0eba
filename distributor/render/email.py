"""The email variants of an issue (full, digest, text), each rendered once: Jinja2 (autoescaped),
CSS inlined, headers fixed, with holes where a recipient's name and signed links go.

:func:`distributor.render.personalise.personalise` fills the holes per recipient. A
:class:`CompiledMessage` has a JSON form, so a send stores its renders once and every worker
personalises the same bytes.
"""

from __future__ import annotations

import base64
import re
from dataclasses import dataclass
from email.utils import parseaddr
from typing import Any
from zoneinfo import ZoneInfo

from distributor.config import Settings
from distributor.errors import RenderError
from distributor.issues.document import IssueDocument
from distributor.render.mime import (
    BodyPart,
    InlineImage,
    Placeholders,
    Skeleton,
    Slot,
    check_address,
    check_header_text,
    encode_text,
    mailbox,
)
from distributor.render.tracking import add_tracking
from distributor.render.views import (
    IssueView,
    check_sizes,
    fit,
    inline_css,
    issue_view,
    render_template,
)
from distributor.vocabulary import Variant
from subscribers.tokens import TokenSigner

HTML_BUDGET_BYTES = 90 * 1024  # R16: Gmail clips at 102 KB and would hide the unsubscribe link
SLOT_ALLOWANCE_BYTES = 256  # room each hole may take when filled (a signed URL, an escaped name)
DEFAULT_FEEDBACK_SENDER = "distributor"
TEST_SUBJECT_PREFIX = "[测试] "  # marks a staff test send in the inbox
# Commercial mail says it is advertising (《互联网广告管理办法》; providers' filters look for it).
COMMERCIAL_SUBJECT_PREFIX = "【广告】"

_LIST_LABEL = re.compile(r"[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)+")
_SENDER_ID = re.compile(r"[A-Za-z0-9-]{5,15}")

_TEMPLATES: dict[Variant, tuple[str | None, str]] = {
    Variant.FULL: ("full.html", "text.txt"),
    Variant.DIGEST: ("digest.html", "digest.txt"),
    Variant.TEXT: (None, "text.txt"),
}


@dataclass(frozen=True)
class CompiledMessage:
    """One issue × email variant, rendered and inlined; fill it with ``personalise``."""

    variant: Variant
    subject: str
    from_address: str
    domain: str
    zone: ZoneInfo
    skeleton: Skeleton
    tracked: bool = False  # opens and clicks report back (the HTML has a tracking-token slot)

    def to_json(self) -> dict[str, Any]:
        """Everything, as JSON values: literal runs are UTF-8 text by construction."""
        return {
            "variant": self.variant.value,
            "subject": self.subject,
            "from_address": self.from_address,
            "domain": self.domain,
            "zone": self.zone.key,
            "tracked": self.tracked,
            "headers": [list(header) for header in self.skeleton.headers],
            "boundary": self.skeleton.boundary,
            "parts": [
                {
                    "subtype": part.subtype,
                    "literals": [run.decode("utf-8") for run in part.literals],
                    "slots": [slot.value for slot in part.slots],
                }
                for part in self.skeleton.parts
            ],
            "images": [
                {
                    "content_id": image.content_id,
                    "content_type": image.content_type,
                    "filename": image.filename,
                    "data": base64.b64encode(image.data).decode("ascii"),
                }
                for image in self.skeleton.images
            ],
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> CompiledMessage:
        parts = tuple(
            BodyPart(
                part["subtype"],
                tuple(run.encode("utf-8") for run in part["literals"]),
                tuple(Slot(value) for value in part["slots"]),
            )
            for part in data["parts"]
        )
        images = tuple(
            InlineImage(
                image["content_id"],
                image["content_type"],
                image["filename"],
                base64.b64decode(image["data"]),
            )
            for image in data.get("images", ())
        )
        return cls(
            variant=Variant(data["variant"]),
            subject=data["subject"],
            from_address=data["from_address"],
            domain=data["domain"],
            zone=ZoneInfo(data["zone"]),
            skeleton=Skeleton(
                tuple((name, value) for name, value in data["headers"]),
                parts,
                data["boundary"],
                images,
            ),
            tracked=bool(data.get("tracked", False)),
        )


def compile_issue(
    doc: IssueDocument,
    variant: Variant,
    settings: Settings,
    *,
    list_id: str | None = None,
    newsletter_name: str | None = None,
    feedback_sender: str = DEFAULT_FEEDBACK_SENDER,
    test: bool = False,
    tracking: bool = False,
    commercial: bool = False,
    subject: str | None = None,
) -> CompiledMessage:
    """The email ``variant`` of one issue, ready to personalise for any number of recipients;
    ``test`` marks the subject of a staff test send, ``tracking`` reports opens and clicks,
    ``commercial`` marks advertising (subject and footer); ``subject`` replaces the issue's own
    (an A/B test's other subject), the marks still before it."""
    if variant is Variant.WECHAT:
        raise RenderError(
            "the wechat variant is not an email: render it as a WeChat article",
            code="render.wechat_not_email",
        )
    if subject is None:
        subject = (
            f"{doc.title}第{doc.number}期 要闻摘要"
            if variant is Variant.DIGEST
            else f"{doc.title}第{doc.number}期:{doc.articles[0].headline}"
        )
    if commercial:
        subject = COMMERCIAL_SUBJECT_PREFIX + subject
    if test:
        subject = TEST_SUBJECT_PREFIX + subject
    name = newsletter_name or doc.title
    return _compile_email(
        variant, [doc], settings, subject, list_id, name, feedback_sender, tracking, commercial
    )


def compile_digest(
    docs: list[IssueDocument],
    settings: Settings,
    *,
    list_id: str | None = None,
    newsletter_name: str | None = None,
    feedback_sender: str = DEFAULT_FEEDBACK_SENDER,
    tracking: bool = False,
    commercial: bool = False,
) -> CompiledMessage:
    """One digest email of several issues (e.g. a month's), in the order given."""
    if not docs:
        raise RenderError("a digest needs at least one issue", code="render.digest_empty")
    name = newsletter_name or docs[0].title
    subject = f"{name} 要闻摘要({_numbers_label(docs)})"
    if commercial:
        subject = COMMERCIAL_SUBJECT_PREFIX + subject
    return _compile_email(
        Variant.DIGEST, docs, settings, subject, list_id, name, feedback_sender, tracking,
        commercial,
    )


def _compile_email(
    variant: Variant,
    docs: list[IssueDocument],
    settings: Settings,
    subject: str,
    list_id: str | None,
    newsletter_name: str,
    feedback_sender: str,
    tracking: bool,
    commercial: bool = False,
) -> CompiledMessage:
    check_sizes(docs)
    from_name, from_address, domain = parse_from(settings.mail_from)
    list_label = list_id or f"newsletter.{domain}"
    if not _LIST_LABEL.fullmatch(list_label):
        raise RenderError(
            f"list id {list_label!r} must look like label.example.org (RFC 2919)",
            code="render.list_id",
            value=list_label,
        )
    if not _SENDER_ID.fullmatch(feedback_sender):
        raise RenderError(
            f"Feedback-ID sender {feedback_sender!r} must be 5–15 letters, digits or '-'",
            code="render.feedback_sender",
            value=feedback_sender,
        )
    check_header_text(subject, f"the subject of issue {_numbers_label(docs)}")
    check_header_text(newsletter_name, "the newsletter name")

    placeholders = Placeholders.fresh()
    images = _inline_images(docs, domain)
    sources = {name: image.src for name, image in images.items()}
    views = [issue_view(doc, settings, sources) for doc in docs]
    html_template, text_template = _TEMPLATES[variant]
    context = {
        "issue": views[0],
        "issues": views,
        "footer": docs[-1].masthead,
        "newsletter_name": newsletter_name,
        "numbers_label": _numbers_label(docs),
        "subject": subject,
        "slot": placeholders.markers(),
        # Commercial mail names who sends it and how to reach them, in every message.
        "advertiser": {"name": from_name or newsletter_name, "address": from_address}
        if commercial
        else None,
    }
    parts = [BodyPart.parse("plain", render_template(text_template, **context), placeholders)]
    if html_template is not None:
        preheader = _preheader(variant, views)
        html = inline_css(render_template(html_template, preheader=preheader, **context))
        if tracking:
            html = add_tracking(
                html,
                base_url=settings.public_base_url,
                token_marker=placeholders.marker(Slot.TRACKING_TOKEN),
                skip_markers=(
                    placeholders.marker(Slot.UNSUBSCRIBE_URL),
                    placeholders.marker(Slot.PREFERENCES_URL),
                ),
                signer=TokenSigner(settings.require_secret_key()),
            )
        parts.append(_html_part(html, placeholders, f"issue {_numbers_label(docs)} {variant}"))
        shown = tuple(image for image in images.values() if f'src="{image.src}"' in html)
    else:
        shown = ()

    first, last = _first_last(docs)
    campaign = str(first) if first == last else f"{first}-{last}"
    headers = [
        ("From", mailbox(from_name, from_address)),
        ("Subject", encode_text(subject)),
        ("List-Id", f"{encode_text(newsletter_name)} <{list_label}>"),
        # RFC 8058 one-click needs an https link: over http, the header would promise it falsely.
        *([("List-Unsubscribe-Post", "List-Unsubscribe=One-Click")]
          if settings.one_click_unsubscribe else []),
        ("Feedback-ID", f"i{campaign}:{variant}:{list_label.split('.')[0]}:{feedback_sender}"),
        ("Precedence", "bulk"),
    ]
    return CompiledMessage(
        variant=variant,
        subject=subject,
        from_address=from_address,
        domain=domain,
        zone=settings.zone,
        skeleton=Skeleton.build(headers, parts, shown),
        tracked=tracking and html_template is not None,
    )


def _inline_images(docs: list[IssueDocument], domain: str) -> dict[str, InlineImage]:
    """Each picture of the issues, to be shown by ``cid:``; only those the HTML shows go out."""
    return {
        name: InlineImage(f"{name}@{domain}", image.content_type, name, image.data)
        for doc in docs
        for name, image in doc.images.items()
    }


def _html_part(html: str, placeholders: Placeholders, what: str) -> BodyPart:
    part = BodyPart.parse("html", html, placeholders)
    size = sum(map(len, part.literals)) + SLOT_ALLOWANCE_BYTES * len(part.slots)
    if size > HTML_BUDGET_BYTES:
        raise RenderError(
            f"{what}: the HTML is {size / 1024:.0f} KB after inlining; the budget is "
            f"{HTML_BUDGET_BYTES // 1024} KB because Gmail clips at 102 KB and would hide the "
            "unsubscribe link: send the digest variant or split the issue",
            code="render.html_large",
            what=what,
            size=round(size / 1024),
            most=HTML_BUDGET_BYTES // 1024,
        )
    return part


def parse_from(mail_from: str) -> tuple[str | None, str, str]:
    check_header_text(mail_from, "MAIL_FROM")
    name, address = parseaddr(mail_from)
    check_address(address, "the address in MAIL_FROM", sender=True)
    return name or None, address, address.rpartition("@")[2].lower()


def _preheader(variant: Variant, views: list[IssueView]) -> str:
    """The inbox preview line: the lead's opening for a full issue, headlines for a digest."""
    if variant is Variant.DIGEST:
        return fit("|".join(a.article.headline for v in views for a in v.articles), 110)
    return fit(views[0].articles[0].summary, 110)


def _first_last(docs: list[IssueDocument]) -> tuple[int, int]:
    numbers = [doc.number for doc in docs]
    return min(numbers), max(numbers)


def _numbers_label(docs: list[IssueDocument]) -> str:
    first, last = _first_last(docs)
    return f"第{first}期" if first == last else f"第{first}–{last}期"


