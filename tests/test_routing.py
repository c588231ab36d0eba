"""The routing's pure rules: which relay for a domain now, the caps a message counts against, what
an answer says about the relay and the domain, rests and slowdowns over time."""

from __future__ import annotations

from collections import Counter

import pytest

from distributor.channels.base import Outcome, Receipt
from distributor.config_relays import DomainPace, Relay, RoutingPlan
from distributor.sending.routing import (
    Clockwork,
    Strain,
    Verdict,
    by_weight,
    eligible,
    level_now,
    next_free,
    paced_rate,
    quotas_for,
    read_answer,
    rest,
    slow_down,
    too_many,
)

A = Relay("a", "h1", weight=2, hourly_cap=100, daily_cap=1000)
B = Relay("b", "h2", weight=1)
C = Relay("c", "h3", domains=("163.com", "126.com"))
PLAN = RoutingPlan((A, B, C), {"163.com": DomainPace(hourly_cap=300, rate=2.0)})
CLOCK = Clockwork(
    hour_seconds=3600,
    utc_offset_seconds=8 * 3600,
    rest_seconds=30,
    rest_max_seconds=600,
    slowdown_seconds=300,
)
NOW = 1_800_000_000.0  # 2027-01-15 16:00 in Shanghai (08:00 UTC)


def test_a_domain_goes_to_the_relays_that_serve_it_else_to_the_general_ones() -> None:
    assert eligible(PLAN, "163.com", {}, NOW) == [C]
    assert eligible(PLAN, "example.org", {}, NOW) == [A, B]
    # The serving relay rests: its domain goes to the general ones meanwhile.
    assert eligible(PLAN, "163.com", {"c": NOW + 10}, NOW) == [A, B]
    assert eligible(PLAN, "example.org", {"a": NOW + 10}, NOW) == [B]
    assert eligible(PLAN, "example.org", {"a": NOW - 1}, NOW) == [A, B]  # rest over
    assert eligible(PLAN, "example.org", {"a": NOW + 10, "b": NOW + 5}, NOW) == []
    assert next_free(PLAN, "example.org", {"a": NOW + 10, "b": NOW + 5}) == NOW + 5


def test_relays_share_the_messages_by_weight() -> None:
    picks = Counter(by_weight([A, B], roll / 300).name for roll in range(300))
    assert picks == {"a": 200, "b": 100}
    assert by_weight([B], 0.99) is B


def test_a_message_counts_against_its_relays_and_its_domains_caps_in_windows() -> None:
    quotas = quotas_for(A, "163.com", PLAN.pace_of("163.com"), NOW, CLOCK)
    assert [(q.cap, q.domain, q.label) for q in quotas] == [
        (100, False, "a hourly cap 100"),
        (1000, False, "a daily cap 1000"),
        (300, True, "163.com hourly cap 300"),
    ]
    hour, day = quotas[0], quotas[1]
    assert hour.ends_at == NOW + 3600  # NOW is on the hour
    assert day.ends_at == NOW + 8 * 3600  # midnight in Shanghai
    # The next hour is another window, with a key of its own.
    later = quotas_for(A, "163.com", PLAN.pace_of("163.com"), NOW + 3600, CLOCK)
    assert later[0].key != hour.key and later[1].key == day.key
    # A relay without caps counts nothing, unless its day is counted for its status.
    assert quotas_for(B, "example.org", None, NOW, CLOCK) == []
    [counted] = quotas_for(B, "example.org", None, NOW, CLOCK, count_relay=True)
    assert counted.cap is None and counted.key.startswith("cap:relay:b:day:")


def test_a_short_hour_for_tests_shortens_the_windows() -> None:
    fast = Clockwork(2, 0, 1, 10, 5)
    [hour] = quotas_for(B, "163.com", DomainPace(hourly_cap=3), 101.0, fast)
    assert hour.ends_at == 102.0


@pytest.mark.parametrize(
    ("receipt", "verdict"),
    [
        (Receipt(Outcome.SENT, 250, "ok"), Verdict.FINE),
        (Receipt(Outcome.FAILED, 550, "5.1.1 user unknown"), Verdict.FINE),
        (Receipt(Outcome.DEFERRED, 421, "4.7.0 closing"), Verdict.UNREACHABLE),
        (Receipt(Outcome.DEFERRED, None, "connection failed: refused", unsent=True),
         Verdict.UNREACHABLE),
        (Receipt(Outcome.DEFERRED, None, "connection lost during DATA"), Verdict.LOST),
        (Receipt(Outcome.DEFERRED, 451, "4.3.0 try later"), Verdict.REFUSED),
    ],
)
def test_what_an_answer_says_about_its_relay(receipt: Receipt, verdict: Verdict) -> None:
    assert read_answer(receipt) is verdict


def test_too_many_is_a_421_or_450_that_says_we_go_too_fast() -> None:
    assert too_many(Receipt(Outcome.DEFERRED, 421, "4.7.0 too many connections, closing"))
    assert too_many(Receipt(Outcome.DEFERRED, 450, "RP:CEL 163 mx: frequency limited"))
    assert not too_many(Receipt(Outcome.DEFERRED, 450, "4.2.1 mailbox busy"))
    assert not too_many(Receipt(Outcome.DEFERRED, 451, "4.7.0 too many connections"))


def test_a_failing_relay_rests_longer_each_time_and_once_for_many_workers() -> None:
    first = rest(None, NOW, CLOCK)
    assert first == Strain(1, NOW + 30)
    assert rest(first, NOW + 1, CLOCK) == first  # already resting: the same rest
    second = rest(first, NOW + 31, CLOCK)
    assert second == Strain(2, NOW + 31 + 60)
    third = rest(second, second.until + 1, CLOCK)
    assert third.level == 3 and third.until == second.until + 1 + 120
    # Long healthy: the next failure rests it from the start.
    assert rest(third, third.until + 10 * 600, CLOCK) == Strain(1, third.until + 10 * 600 + 30)
    capped = Strain(9, NOW)
    assert rest(capped, NOW + 1, CLOCK).until == NOW + 1 + 600


def test_too_many_halves_a_domains_rate_and_it_speeds_back_up_step_by_step() -> None:
    once = slow_down(None, NOW, CLOCK)
    assert once == Strain(1, NOW + 300)
    assert slow_down(once, NOW + 1, CLOCK) == once  # answers already in flight add nothing
    twice = slow_down(once, NOW + 60, CLOCK)
    assert twice == Strain(2, NOW + 360)
    assert paced_rate(8.0, twice, NOW + 100, CLOCK) == 2.0
    assert level_now(twice, NOW + 360, CLOCK.slowdown_seconds) == 1
    assert paced_rate(8.0, twice, NOW + 361, CLOCK) == 4.0
    assert paced_rate(8.0, twice, NOW + 360 + 300, CLOCK) == 8.0
    worst = Strain(0, 0)
    for minute in range(10):
        worst = slow_down(worst, NOW + 60 * minute, CLOCK)
    assert worst.level == 4  # at most a sixteenth of the rate
