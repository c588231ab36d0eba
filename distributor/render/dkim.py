"""DKIM signatures (RFC 6376, rsa-sha256, relaxed/relaxed) made with ``cryptography``.

Receivers honour one-click unsubscribe only when the signature covers ``List-Unsubscribe`` and
``List-Unsubscribe-Post`` (RFC 8058), and Gmail counts ``Feedback-ID`` only when signed, so those
are always in ``h=``. The body differs per recipient (signed links), so its hash is taken per
message; our bodies are canonical by construction, so the hash runs straight over the bytes.
"""

from __future__ import annotations

import base64
import functools
import hashlib
import re
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa

from distributor.config import Settings
from distributor.errors import ConfigurationError

SIGNED_HEADERS = (
    "from",
    "to",
    "subject",
    "date",
    "message-id",
    "list-id",
    "list-unsubscribe",
    "list-unsubscribe-post",
    "feedback-id",
    "mime-version",
    "content-type",
)
MIN_KEY_BITS = 1024  # RFC 8301: verifiers must not accept less
RECOMMENDED_KEY_BITS = 2048
_FOLD = re.compile(r"\r\n(?=[ \t])")
_WSP_RUN = re.compile(r"[ \t]+")


@functools.lru_cache(maxsize=256)
def relaxed_header(name: str, value: str) -> bytes:
    """RFC 6376 §3.4.2: lower-case name, unfolded value with whitespace runs collapsed. Cached:
    most signed headers are the same for every message of a send."""
    unfolded = _WSP_RUN.sub(" ", _FOLD.sub("", value)).strip(" ")
    return f"{name.strip().lower()}:{unfolded}\r\n".encode("ascii")


@dataclass(frozen=True)
class DkimSigner:
    domain: str
    selector: str
    private_key: rsa.RSAPrivateKey = field(repr=False)

    @classmethod
    def from_pem(cls, domain: str, selector: str, pem: bytes) -> DkimSigner:
        key = serialization.load_pem_private_key(pem, password=None)
        if not isinstance(key, rsa.RSAPrivateKey) or key.key_size < MIN_KEY_BITS:
            raise ConfigurationError(
                f"the DKIM key must be an RSA private key of at least {MIN_KEY_BITS} bits "
                f"({RECOMMENDED_KEY_BITS} recommended)"
            )
        return cls(domain.lower().rstrip("."), selector, key)

    @classmethod
    def from_settings(cls, settings: Settings) -> DkimSigner | None:
        """None when DKIM is not configured; a half configuration is an error, not a silent skip."""
        values = (settings.dkim_domain, settings.dkim_selector, settings.dkim_private_key_file)
        if not any(values):
            return None
        if not all(values):
            raise ConfigurationError(
                "DKIM needs DKIM_DOMAIN, DKIM_SELECTOR and DKIM_PRIVATE_KEY_FILE together; "
                "set all three or none"
            )
        domain, selector, key_file = (str(value) for value in values)
        try:
            pem = Path(key_file).read_bytes()
        except OSError as error:
            raise ConfigurationError(
                f"DKIM_PRIVATE_KEY_FILE={key_file!r} cannot be read: {error.strerror}"
            ) from None
        try:
            return cls.from_pem(domain, selector, pem)
        except ValueError as error:
            raise ConfigurationError(
                f"DKIM_PRIVATE_KEY_FILE={key_file!r} is not an unencrypted PEM private key: {error}"
            ) from None

    @classmethod
    def check(cls, settings: Settings) -> list[str]:
        """What a process checks at start: errors raise (as when signing); a key that others on
        the machine can read, or that receivers may soon refuse, is a warning."""
        signer = cls.from_settings(settings)
        if signer is None:
            return []
        key_file = str(settings.dkim_private_key_file)
        warnings = []
        mode = Path(key_file).stat().st_mode & 0o777
        if mode & 0o077:
            warnings.append(
                f"DKIM_PRIVATE_KEY_FILE={key_file!r} can be read by other users (mode "
                f"{mode:03o}): anyone who reads it can sign mail as {signer.domain}; "
                "make it readable by its owner only (mode 600)"
            )
        bits = signer.private_key.key_size
        if bits < RECOMMENDED_KEY_BITS:
            warnings.append(
                f"DKIM_PRIVATE_KEY_FILE={key_file!r} holds a {bits}-bit key: receivers are "
                f"moving to {RECOMMENDED_KEY_BITS} bits or more; make a new key of that size"
            )
        return warnings

    def sign(
        self, headers: Sequence[tuple[str, str]], body: bytes, *, timestamp: int | None = None
    ) -> str:
        """The ``DKIM-Signature`` value for a message with these headers (as sent) and body.

        The body must be canonical already (RFC 6376 §3.4.4 relaxed), as every skeleton's body
        is: base64 lines, part headers and boundaries, one CRLF at the end."""
        signed = [(name, value) for name, value in headers if name.lower() in SIGNED_HEADERS]
        body_hash = base64.b64encode(hashlib.sha256(body).digest()).decode("ascii")
        when = int(time.time()) if timestamp is None else timestamp
        value = (
            f"v=1; a=rsa-sha256; c=relaxed/relaxed; d={self.domain}; s={self.selector};\r\n"
            f" t={when}; h={':'.join(name.lower() for name, _ in signed)};\r\n"
            f" bh={body_hash};\r\n b="
        )
        data = b"".join(relaxed_header(name, text) for name, text in signed)
        data += relaxed_header("DKIM-Signature", value).removesuffix(b"\r\n")
        signature = base64.b64encode(
            self.private_key.sign(data, padding.PKCS1v15(), hashes.SHA256())
        ).decode("ascii")
        return value + "\r\n ".join(signature[i : i + 72] for i in range(0, len(signature), 72))
