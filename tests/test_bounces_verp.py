"""VERP return paths and our Message-IDs: genuine ones read back, anything else refused."""

from __future__ import annotations

import base64
import re

import pytest

from distributor.config import Settings
from distributor.errors import ConfigurationError, InvalidToken
from distributor.render.message_ids import MessageRef, make_message_id, parse_message_id
from distributor.render.verp import VERP_MAX_AGE_SECONDS, Verp
from subscribers.tokens import TokenPurpose, TokenSigner
from tests.support.bounces import BOUNCE_DOMAIN, FROM_DOMAIN, ISSUED, NOW, SECRET, VERP


def test_round_trip() -> None:
    address = VERP.make_verp(4242, now=ISSUED)
    assert address.endswith("@" + BOUNCE_DOMAIN)
    assert VERP.parse_verp(address, now=NOW) == 4242


def test_fits_a_local_part_and_survives_any_case() -> None:
    largest = 2**63 - 1
    address = VERP.make_verp(largest, now=ISSUED)
    local = address.partition("@")[0]
    assert len(local) <= 64
    assert re.fullmatch(r"[0-9a-z+-]+", local)
    for seen in (address.lower(), address.upper(), f"<{address.upper()}>"):
        assert VERP.parse_verp(seen, now=NOW) == largest


def test_each_delivery_and_each_issue_time_gets_its_own_address() -> None:
    addresses = {
        VERP.make_verp(1, now=ISSUED),
        VERP.make_verp(2, now=ISSUED),
        VERP.make_verp(1, now=ISSUED + 1),
    }
    assert len(addresses) == 3


def _swap_id(address: str, delivery_id: int) -> str:
    local, _, domain = address.partition("@")
    _, rest = local.split("+")
    return f"bounces+{delivery_id}-{rest.split('-', 1)[1]}@{domain}"


@pytest.mark.parametrize(
    ("tamper", "says"),
    [
        (lambda a: _swap_id(a, 43), "forged"),  # someone else's delivery with our tag
        (lambda a: a[: a.index("@") - 1] + ("a" if a[a.index("@") - 1] != "a" else "b")
         + a[a.index("@"):], "forged"),
        (lambda a: a.replace("@" + BOUNCE_DOMAIN, "@bounces.example.com"), "another domain"),
        (lambda a: a.replace("bounces+", "bounce+"), "not one of ours"),
        (lambda a: a.replace("-", "", 1), "not one of ours"),
        (lambda a: a + "\r\nBcc: victim@example.com", "another domain"),
        (lambda a: "bounces+42@" + BOUNCE_DOMAIN, "not one of ours"),
    ],
)  # fmt: skip
def test_altered_addresses_are_refused(tamper: object, says: str) -> None:
    address = VERP.make_verp(42, now=ISSUED)
    assert callable(tamper)
    with pytest.raises(InvalidToken, match=says):
        VERP.parse_verp(tamper(address), now=NOW)


def test_another_sites_key_does_not_verify() -> None:
    other = Verp(BOUNCE_DOMAIN, TokenSigner("another-site-secret"))
    with pytest.raises(InvalidToken, match="forged"):
        VERP.parse_verp(other.make_verp(42, now=ISSUED), now=NOW)


@pytest.mark.parametrize("purpose", list(TokenPurpose))
def test_only_a_tag_made_for_bounces_verifies(purpose: TokenPurpose) -> None:
    """Each purpose has its own key: a tag made for a link never passes as a return path."""
    mac = TokenSigner(SECRET).mac(purpose, f"42:{ISSUED:x}".encode())
    tag = base64.b32encode(mac).decode().rstrip("=").lower()
    address = f"bounces+42-{ISSUED:x}-{tag}@{BOUNCE_DOMAIN}"
    if purpose is TokenPurpose.BOUNCE:
        assert VERP.parse_verp(address, now=NOW) == 42
    else:
        with pytest.raises(InvalidToken, match="forged"):
            VERP.parse_verp(address, now=NOW)


def test_an_old_address_is_a_replay() -> None:
    address = VERP.make_verp(42, now=ISSUED)
    assert VERP.parse_verp(address, now=ISSUED + VERP_MAX_AGE_SECONDS) == 42
    with pytest.raises(InvalidToken, match="replay"):
        VERP.parse_verp(address, now=ISSUED + VERP_MAX_AGE_SECONDS + 1)


def test_bounce_domain_is_off_unless_set() -> None:
    assert Settings.from_env({}).bounce_domain is None
    assert Verp.from_settings(Settings.from_env({"DISTRIBUTOR_SECRET_KEY": SECRET})) is None
    settings = Settings.from_env(
        {"BOUNCE_DOMAIN": " Bounces.News.Example-Union.ORG. ", "DISTRIBUTOR_SECRET_KEY": SECRET}
    )
    assert settings.bounce_domain == BOUNCE_DOMAIN
    verp = Verp.from_settings(settings)
    assert verp is not None and verp.domain == BOUNCE_DOMAIN


@pytest.mark.parametrize("value", ["bounces@example.org", "localhost", "bad domain.org", "-x.org"])
def test_a_bounce_domain_that_is_not_a_domain_is_refused(value: str) -> None:
    with pytest.raises(ConfigurationError, match="BOUNCE_DOMAIN"):
        Settings.from_env({"BOUNCE_DOMAIN": value})


def test_message_id_round_trip_and_forgery() -> None:
    message_id = make_message_id(SECRET, 7, 42, FROM_DOMAIN)
    assert parse_message_id(SECRET, message_id) == MessageRef(7, 42)
    assert parse_message_id(SECRET, f"  {message_id}\r\n") == MessageRef(7, 42)
    other_subscriber = message_id.replace(".r42.", ".r43.")
    assert parse_message_id(SECRET, other_subscriber) is None
    assert parse_message_id("another-secret", message_id) is None
    assert parse_message_id(SECRET, "<CAF1234@mail.gmail.com>") is None
    assert parse_message_id(SECRET, message_id + "<x@y>") is None
