"""The labelled corpus (tests/fixtures/bounces/corpus, written by its build.py in the shapes and
words of many mail systems) read as the issue's acceptance asks: addresses gone recognised,
nothing else taken for one, every failure a bounce, complaints, DMARC reports and automatic
replies all right."""

from __future__ import annotations

import json
from functools import cache

import pytest

from distributor.bounces import Feedback, FeedbackKind
from distributor.bounces.classify import classify
from distributor.bounces.feedback import BOUNCES
from distributor.vocabulary import FailureCause
from tests.support.bounces import FIXTURES

CORPUS = FIXTURES / "corpus"


@cache
def corpus() -> dict[str, tuple[dict[str, str | None], Feedback]]:
    labels = json.loads((CORPUS / "labels.json").read_text(encoding="utf-8"))
    return {name: (label, classify((CORPUS / name).read_bytes())) for name, label in labels.items()}


def labelled(kind: str) -> list[tuple[str, dict[str, str | None], Feedback]]:
    return [
        (name, label, read) for name, (label, read) in corpus().items() if label["kind"] == kind
    ]


def share(hits: list[bool]) -> float:
    assert hits, "no such messages in the corpus"
    return sum(hits) / len(hits)


def test_the_corpus_is_labelled_whole() -> None:
    assert sorted(path.name for path in CORPUS.glob("*.eml")) == sorted(corpus())
    assert len(corpus()) >= 90
    systems = {name.split("-")[0] for name in corpus()}
    assert len(systems) >= 25


def test_addresses_gone_are_recognised() -> None:
    gone = [
        (name, read.cause)
        for name, (label, read) in corpus().items()
        if label["cause"] == FailureCause.ADDRESS_GONE
    ]
    assert share([cause is FailureCause.ADDRESS_GONE for _, cause in gone]) >= 0.95, gone


def test_failures_that_are_not_about_the_address_are_not_taken_for_it() -> None:
    others = [
        (name, read.cause)
        for name, (label, read) in corpus().items()
        if label["cause"] not in (None, FailureCause.ADDRESS_GONE)
    ]
    assert share([cause is FailureCause.ADDRESS_GONE for _, cause in others]) <= 0.05, others


def test_every_failure_is_recognised_as_a_bounce() -> None:
    failures = labelled("hard_bounce") + labelled("soft_bounce")
    assert share([read.kind in BOUNCES for _, _, read in failures]) >= 0.95


@pytest.mark.parametrize(
    ("kind", "read_as"),
    [
        ("complaint", FeedbackKind.COMPLAINT),
        ("opt_out", FeedbackKind.OPT_OUT),
        ("auth_report", FeedbackKind.AUTH_REPORT),
        ("auto_reply", FeedbackKind.AUTO_REPLY),
    ],
)
def test_complaints_dmarc_reports_and_automatic_replies_are_all_right(
    kind: str, read_as: FeedbackKind
) -> None:
    assert [(name, read.kind) for name, _, read in labelled(kind)] == [
        (name, read_as) for name, _, _ in labelled(kind)
    ]


def test_causes_agree_with_the_labels() -> None:
    read = [
        (name, label["cause"], read.cause)
        for name, (label, read) in corpus().items()
        if label["cause"] is not None
    ]
    assert share([cause == expected for _, expected, cause in read]) >= 0.95, read
