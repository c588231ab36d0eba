"""Turning a claimed delivery into the bytes on the wire: the send's stored render (loaded once
per process), personalised for the recipient. With ``BOUNCE_DOMAIN`` set, each message's envelope
sender is its delivery's own VERP return path, so a bounce names its delivery (one HMAC)."""

from __future__ import annotations

from collections import OrderedDict

from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from distributor.channels.base import Envelope
from distributor.config import Settings
from distributor.render.dkim import DkimSigner
from distributor.render.email import CompiledMessage
from distributor.render.personalise import Recipient, personalise
from distributor.render.verp import Verp
from distributor.sending.ab import render_subject
from distributor.sending.claim import ClaimedDelivery
from distributor.sending.models import ARM_REST, Send
from distributor.sending.renders import load_render
from distributor.vocabulary import Variant
from subscribers.links import PublicLinks
from subscribers.tokens import TokenSigner

CACHE_SIZE = 16  # renders (send × variant) kept per process; a few sends run at once


class EmailComposer:
    def __init__(self, settings: Settings, factory: sessionmaker[Session]) -> None:
        self.settings = settings
        self.factory = factory
        signer = TokenSigner(settings.require_secret_key())
        self.links = PublicLinks(settings.public_base_url, signer)
        self.signer = DkimSigner.from_settings(settings)
        self.verp = Verp.from_settings(settings)
        self._compiled: OrderedDict[tuple[int, Variant, str], CompiledMessage] = OrderedDict()
        self._winners: dict[int, str] = {}  # A/B sends' winners, once chosen (never change)

    def compiled(self, send_id: int, variant: Variant, subject: str = "") -> CompiledMessage:
        """The send's render; RenderError when it cannot be made (the caller pauses the send).
        ``subject`` "b": an A/B test's other subject."""
        key = (send_id, variant, subject)
        compiled = self._compiled.get(key)
        if compiled is None:
            with self.factory.begin() as session:
                compiled = load_render(session, send_id, variant, self.settings, subject)
            self._compiled[key] = compiled
            if len(self._compiled) > CACHE_SIZE:
                self._compiled.popitem(last=False)
        return compiled

    def subject_of(self, send_id: int, arm: str | None) -> str:
        """Which subject a delivery of ``arm`` gets: its arm's, or for the rest the winner's
        (the rest is claimed only once the winner is chosen)."""
        if arm != ARM_REST:
            return render_subject(arm, None)
        winner = self._winners.get(send_id)
        if winner is None:
            with self.factory.begin() as session:
                winner = session.scalar(select(Send.ab_winner).where(Send.id == send_id))
            if winner is not None:
                self._winners[send_id] = winner
        return render_subject(arm, winner)

    def compose(self, send_id: int, delivery: ClaimedDelivery) -> Envelope:
        subject = self.subject_of(send_id, delivery.arm) if delivery.arm else ""
        message = personalise(
            self.compiled(send_id, delivery.variant, subject),
            Recipient(delivery.subscriber_id or 0, delivery.address, delivery.name),
            send_id=send_id,
            links=self.links,
            signer=self.signer,
        )
        sender = message.envelope_from if self.verp is None else self.verp.make_verp(delivery.id)
        return Envelope(sender, message.recipient, message.data, wire_ready=True)
