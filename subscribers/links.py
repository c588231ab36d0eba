"""Public URLs a subscriber receives. Each carries a signed token, never a bare id.

The web pages that answer them (unsubscribe: GET shows the page, POST is the RFC 8058 one-click;
preferences; confirm) live under these paths.
"""

from __future__ import annotations

from dataclasses import dataclass

from subscribers.tokens import TokenPurpose, TokenSigner

UNSUBSCRIBE_PATH = "/u/"
PREFERENCES_PATH = "/p/"
CONFIRM_PATH = "/c/"
ARCHIVE_PATH = "/archive/"
SIGNUP_PATH = "/subscribe/"  # + list id: the sign-up page of a public list
OPEN_PIXEL_PATH = "/t/o/"  # + recipient token + ".gif"
CLICK_PATH = "/t/c/"  # + recipient token + "?u=<target>&s=<mac of target>"


def signup_url(base_url: str, list_id: int) -> str:
    """A public list's sign-up page: not signed, anyone may ask (and must then confirm)."""
    return f"{base_url}{SIGNUP_PATH}{list_id}"


def unsubscribe_subject(subscriber_id: int, send_id: int | None) -> str:
    """``<subscriber>`` or ``<subscriber>.<send>``: links made before sends were named still
    verify."""
    return str(subscriber_id) if send_id is None else f"{subscriber_id}.{send_id}"


@dataclass(frozen=True)
class PublicLinks:
    base_url: str
    signer: TokenSigner

    def unsubscribe(self, subscriber_id: int, send_id: int | None = None) -> str:
        """Signed with the send the message came from, so an unsubscribe is counted against it."""
        subject = unsubscribe_subject(subscriber_id, send_id)
        token = self.signer.sign(TokenPurpose.UNSUBSCRIBE, subject)
        return f"{self.base_url}{UNSUBSCRIBE_PATH}{token}"

    def preferences(self, subscriber_id: int) -> str:
        token = self.signer.sign(TokenPurpose.PREFERENCES, str(subscriber_id))
        return f"{self.base_url}{PREFERENCES_PATH}{token}"

    def confirm(self, subscriber_id: int, request: str | None = None) -> str:
        """``request``: a returning reader's request it confirms (``<list>.<code>``, see
        :mod:`subscribers.returning`); None for a sign-up's pending lists."""
        subject = str(subscriber_id) if request is None else f"{subscriber_id}.{request}"
        token = self.signer.sign(TokenPurpose.CONFIRM, subject)
        return f"{self.base_url}{CONFIRM_PATH}{token}"

    def tracking_token(self, send_id: int, subscriber_id: int) -> str:
        """Whose open or click a tracked message reports: the send and the subscriber."""
        return self.signer.sign(TokenPurpose.TRACK, f"{send_id}-{subscriber_id}")

    def archive(self, issue_number: int) -> str:
        """Issues are public; the archive is addressed by the printed issue number."""
        return f"{self.base_url}{ARCHIVE_PATH}{issue_number}"
