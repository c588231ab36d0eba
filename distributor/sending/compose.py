"""Turning a claimed delivery into the bytes on the wire: the send's stored render (loaded once
per process), personalised for the recipient. With ``BOUNCE_DOMAIN`` set, each message's envelope
sender is its delivery's own VERP return path, so a bounce names its delivery (one HMAC)."""

from __future__ import annotations

from collections import OrderedDict

from sqlalchemy.orm import Session, sessionmaker

from distributor.channels.base import Envelope
from distributor.config import Settings
from distributor.render.dkim import DkimSigner
from distributor.render.email import CompiledMessage
from distributor.render.personalise import Recipient, personalise
from distributor.render.verp import Verp
from distributor.sending.claim import ClaimedDelivery
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
        self._compiled: OrderedDict[tuple[int, Variant], CompiledMessage] = OrderedDict()

    def compiled(self, send_id: int, variant: Variant) -> CompiledMessage:
        """The send's render; RenderError when it cannot be made (the caller pauses the send)."""
        key = (send_id, variant)
        compiled = self._compiled.get(key)
        if compiled is None:
            with self.factory.begin() as session:
                compiled = load_render(session, send_id, variant, self.settings)
            self._compiled[key] = compiled
            if len(self._compiled) > CACHE_SIZE:
                self._compiled.popitem(last=False)
        return compiled

    def compose(self, send_id: int, delivery: ClaimedDelivery) -> Envelope:
        message = personalise(
            self.compiled(send_id, delivery.variant),
            Recipient(delivery.subscriber_id or 0, delivery.address, delivery.name),
            send_id=send_id,
            links=self.links,
            signer=self.signer,
        )
        sender = message.envelope_from if self.verp is None else self.verp.make_verp(delivery.id)
        return Envelope(sender, message.recipient, message.data, wire_ready=True)
