"""The CLI's hints change an error's words, never its kind or its fields."""

from __future__ import annotations

import pytest

from distributor.cli.hints import hinted
from distributor.errors import DistributorError, NotFound, WechatRateLimited


def test_hint_wraps_the_message_and_keeps_the_class() -> None:
    with pytest.raises(NotFound) as caught, hinted(NotFound, "{message} (see: list)"):
        raise NotFound("no issue 9")
    assert caught.value.message == "no issue 9 (see: list)"
    assert str(caught.value) == "no issue 9 (see: list)"


def test_hint_keeps_the_fields_of_an_error_with_its_own_arguments() -> None:
    with pytest.raises(WechatRateLimited) as caught, hinted(DistributorError, "--at {message}"):
        raise WechatRateLimited("slow down", errcode=45009, api="mass/send", retry_after=7.5)
    assert caught.value.message == "--at slow down"
    assert (caught.value.errcode, caught.value.retry_after) == (45009, 7.5)


def test_other_errors_pass_untouched() -> None:
    with pytest.raises(ValueError, match=r"^plain$"), hinted(NotFound, "{message}!"):
        raise ValueError("plain")
