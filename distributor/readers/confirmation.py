"""The double opt-in message: after a sign-up, one message with the signed confirm link.

Built from a Jinja2 template in the person's language and sent straight through the SMTP channel
(not as a send: it has one recipient and no audience). The Celery task that calls
:func:`send_confirmation` retries it when the server defers.
"""

from __future__ import annotations

import secrets
import time
from dataclasses import dataclass
from datetime import datetime
from email.utils import format_datetime

from sqlalchemy.orm import Session

from distributor.channels.base import Channel, Envelope, Outcome, Receipt
from distributor.channels.smtp import SmtpChannel
from distributor.config import Settings
from distributor.db import transaction
from distributor.errors import ConfirmationDeferred
from distributor.render.dkim import DkimSigner
from distributor.render.email import parse_from
from distributor.render.mime import (
    BodyPart,
    Placeholders,
    Skeleton,
    check_address,
    clean_name,
    encode_text,
    header_block,
    mailbox,
)
from distributor.render.views import render_template
from subscribers.links import PublicLinks
from subscribers.models import Subscriber, SubscriberStatus, SubscriptionStatus
from subscribers.returning import pending_return
from subscribers.tokens import TokenSigner

SUBJECTS = {"en": "Please confirm your subscription: {lists}", "zh-CN": "请确认订阅《{lists}》"}


@dataclass(frozen=True)
class PendingSignUp:
    subscriber_id: int
    email: str
    name: str
    locale: str
    lists: tuple[str, ...]
    request: str | None = None  # a returning reader's request the link confirms (its subject)


def pending_sign_up(session: Session, subscriber_id: int) -> PendingSignUp | None:
    """What is waiting for the person's confirmation; None when nothing is (they confirmed,
    left, or were removed since), so a late or repeated task sends nothing. For someone who
    unsubscribed, only the request they made by signing up again (:mod:`subscribers.returning`)."""
    subscriber = session.get(Subscriber, subscriber_id)
    if subscriber is None:
        return None
    if subscriber.status is SubscriberStatus.UNSUBSCRIBED:
        request = pending_return(session, subscriber.id)
        if request is None:
            return None
        return PendingSignUp(
            subscriber.id,
            subscriber.email,
            subscriber.name,
            subscriber.locale,
            (request.list_name,),
            request.link_subject,
        )
    lists = tuple(
        sorted(
            sub.mailing_list.name
            for sub in subscriber.subscriptions
            if sub.status is SubscriptionStatus.PENDING
        )
    )
    if subscriber.status is SubscriberStatus.ACTIVE and not lists:
        return None
    if subscriber.status not in (SubscriberStatus.PENDING, SubscriberStatus.ACTIVE):
        return None
    return PendingSignUp(subscriber.id, subscriber.email, subscriber.name, subscriber.locale, lists)


def confirmation_message(
    pending: PendingSignUp, settings: Settings, *, now: float | None = None
) -> Envelope:
    """The RFC 5322 message asking ``pending`` to confirm, DKIM-signed when configured."""
    from_name, from_address, domain = parse_from(settings.mail_from)
    address = check_address(pending.email, "the subscriber's address")
    lang = "en" if pending.locale.lower().startswith("en") else "zh-CN"
    names = "、".join(pending.lists) if lang == "zh-CN" else ", ".join(pending.lists)
    links = PublicLinks(settings.public_base_url, TokenSigner(settings.require_secret_key()))
    name = clean_name(pending.name)
    text = render_template(
        "confirm.txt",
        lang=lang,
        name=name,
        lists=names or from_name or domain,
        confirm_url=links.confirm(pending.subscriber_id, pending.request),
    )
    seconds = int(time.time() if now is None else now)
    headers = [
        ("From", mailbox(from_name, from_address)),
        ("To", mailbox(name, address)),
        ("Subject", encode_text(SUBJECTS[lang].format(lists=names or from_name or domain))),
        ("Date", format_datetime(datetime.fromtimestamp(seconds, settings.zone))),
        ("Message-ID", f"<c{pending.subscriber_id}.{secrets.token_hex(8)}@{domain}>"),
        ("Auto-Submitted", "auto-generated"),
    ]
    skeleton = Skeleton.build(headers, [BodyPart.parse("plain", text, Placeholders.fresh())])
    body = skeleton.body({})
    signed = list(skeleton.headers)
    signer = DkimSigner.from_settings(settings)
    if signer is not None:
        signed.insert(0, ("DKIM-Signature", signer.sign(signed, body, timestamp=seconds)))
    return Envelope(from_address, address, header_block(signed) + body)


def send_confirmation(
    settings: Settings, subscriber_id: int, channel: Channel | None = None
) -> Receipt | None:
    """Send the confirmation for a sign-up; None when nothing waits for one.

    :class:`ConfirmationDeferred` when the server says try later; a refusal (5xx) is final and
    returned, like a failed delivery.
    """
    with transaction(settings.database_url) as session:
        pending = pending_sign_up(session, subscriber_id)
    if pending is None:
        return None
    envelope = confirmation_message(pending, settings)
    smtp = channel or SmtpChannel.from_settings(settings)
    try:
        receipt = smtp.send(envelope)
    finally:
        if channel is None:
            smtp.close()
    if receipt.outcome is Outcome.DEFERRED:
        raise ConfirmationDeferred(
            f"the mail server deferred the confirmation message: {receipt.response}",
            code="signup.deferred",
        )
    return receipt
