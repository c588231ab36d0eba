"""One address rule: whatever the subscriber store accepts, a send can be addressed to."""

from __future__ import annotations

import random

import pytest

from distributor.errors import InvalidAddress, RenderError
from distributor.render.mime import check_address
from subscribers.address import normalise_address

# What people type, paste from Word or get from an input method, around and inside an address.
PIECES = [
    *"abcXYZ019", ".", "..", "@", "＠", "。", "．", "-", "_", "+", "'", '"', " ", "\t", "\n",
    "ｗ", "例子", "中国", "xn--", "xn--fsqu00a", "ß", "ﬁ", "İ", "\u200b", "\u0301", "!", "#",
    "qq", "com", "163", ".com", ".com.", "@qq.com", "@qq.com.", "@例子.中国", "。com",
    "1.2.3.4", "a" * 63, "-x", "x-",
]


def candidates(seed: int, count: int) -> list[str]:
    rng = random.Random(seed)
    return ["".join(rng.choices(PIECES, k=rng.randint(1, 8))) for _ in range(count)]


@pytest.mark.parametrize("seed", range(4))
def test_every_address_the_store_accepts_passes_the_senders_check(seed: int) -> None:
    accepted = 0
    for raw in candidates(seed, 5_000):
        try:
            email = normalise_address(raw).email
        except InvalidAddress:
            continue
        accepted += 1
        try:
            check_address(email, "the address")
        except RenderError:
            pytest.fail(f"{raw!r} was stored as {email!r}, which no send can go to")
    assert accepted > 100  # the generator reaches the interesting part of the space


@pytest.mark.parametrize(
    "raw",
    ["hugang@qq.com.", "hugang@qq.com。", "hugang@QQ.COM．", " hugang＠qq。com "],
)
def test_a_trailing_or_ideographic_full_stop_is_the_same_domain(raw: str) -> None:
    assert normalise_address(raw).email == "hugang@qq.com"
    check_address(normalise_address(raw).email, "the address")


@pytest.mark.parametrize(
    ("raw", "reason"),
    [("hugang@qq.com..", "not a valid domain name"), ("hugang@com.", "has no dot")],
)
def test_more_than_the_root_dot_is_refused(raw: str, reason: str) -> None:
    with pytest.raises(InvalidAddress, match=reason):
        normalise_address(raw)


def test_a_long_value_is_quoted_short_in_the_message() -> None:
    with pytest.raises(InvalidAddress) as caught:
        normalise_address("x" * 10_000)
    assert len(caught.value.message) < 120
