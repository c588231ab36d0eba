"""The keys and clock the bounce fixtures (tests/fixtures/bounces/*.eml) were made with.

Their VERP addresses and Message-IDs are genuine for this secret and domain, issued at
:data:`ISSUED`; tests match them a day later (:data:`NOW`).
"""

from __future__ import annotations

from pathlib import Path

from distributor.render.verp import Verp
from subscribers.tokens import TokenSigner

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures" / "bounces"
SECRET = "bounce-fixtures-secret-key-0123456789"
BOUNCE_DOMAIN = "bounces.news.example-union.org"
FROM_DOMAIN = "news.example-union.org"
ISSUED = 1735689600  # 2025-01-01T00:00:00Z
NOW = ISSUED + 86400
VERP = Verp(BOUNCE_DOMAIN, TokenSigner(SECRET))


def fixture(name: str) -> bytes:
    return (FIXTURES / name).read_bytes()
