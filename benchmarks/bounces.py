"""Bounce throughput on one core: classify and match a mixed bounce mailbox, then classify,
match **and apply** it against a real database (SQLite, or ``--database-url``).

    python benchmarks/bounces.py [--messages 10000] [--batch 100] [--database-url URL]

The mailbox is made from tests/fixtures/bounces (DSNs, Exchange, QQ, NetEase, Sina, Exim, qmail,
auto-replies, abuse reports), each copy with its own delivery id, VERP address and Message-ID,
signed with this run's key. For the apply run, message n is about delivery n + 1, a sent message
of one of ten sends to its own subscriber; messages are processed as the mailbox poller does, in
batches of ``BATCH_SIZE`` (``--batch``), one transaction each (``--batch 1``: one per message,
as before batching). Target (issue 14): at least 500 messages/s.
"""

from __future__ import annotations

import argparse
import collections
import re
import resource
import tempfile
import time
import tracemalloc
from pathlib import Path

from sqlalchemy import func, insert, select

from distributor.bounces.apply import PausePolicy, Processed
from distributor.bounces.classify import classify
from distributor.bounces.mailbox import BATCH_SIZE, process_batch
from distributor.bounces.match import MatchedFeedback, match
from distributor.db import dispose_engines, session_factory, transaction, upgrade
from distributor.issues.importer import read_issue_file
from distributor.issues.store import save_issue
from distributor.render.message_ids import make_message_id
from distributor.render.verp import Verp
from distributor.sending.models import Delivery, Send
from distributor.vocabulary import DeliveryState, SendState, Variant
from subscribers.models import Subscriber, SubscriberStatus
from subscribers.query import Audience
from subscribers.tokens import TokenSigner

FIXTURES = Path(__file__).resolve().parents[1] / "tests" / "fixtures" / "bounces"
SECRET = "benchmark-secret-key-0123456789abcdef"
DOMAIN = "news.example-union.org"
VERP = Verp(f"bounces.{DOMAIN}", TokenSigner(SECRET))
_VERP_ADDRESS = re.compile(rb"bounces\+\d+-[0-9a-f]+-[a-z2-7]{26}@[a-z0-9.-]+")
_MESSAGE_ID = re.compile(rb"<s\d+\.r\d+\.[0-9a-f]{16}@[a-z0-9.-]+>")
SAMPLE_ISSUE = Path(__file__).resolve().parents[1] / "distributor" / "samples" / "hzgy-471.txt"
SEND_SIZE = 1000


def mailbox(size: int) -> list[bytes]:
    """``size`` messages cycling through the fixtures, message n about delivery n."""
    templates = [path.read_bytes() for path in sorted(FIXTURES.glob("*.eml"))]
    now = int(time.time())
    messages = []
    for n in range(size):
        verp = VERP.make_verp(n + 1, now=now).encode()
        message_id = make_message_id(SECRET, _send_of(n), n + 1, DOMAIN).encode()
        raw = _VERP_ADDRESS.sub(verp, templates[n % len(templates)])
        messages.append(_MESSAGE_ID.sub(message_id, raw))
    return messages


def _send_of(n: int) -> int:
    return n // SEND_SIZE + 1


def seed(url: str, size: int) -> None:
    """One issue; ``size`` subscribers, each with one sent delivery of the same id, in sends of
    :data:`SEND_SIZE`."""
    report = read_issue_file(SAMPLE_ISSUE)
    with transaction(url) as session:
        issue_id = save_issue(session, report.document, source_format=report.format).id
        sends = range(1, _send_of(size - 1) + 1)
        session.execute(insert(Send), [
            {"id": send_id, "issue_id": issue_id, "audience": Audience(lists=("members",)),
             "variant": Variant.FULL, "state": SendState.DONE} for send_id in sends
        ])  # fmt: skip
        for start in range(0, size, 5000):
            chunk = range(start, min(size, start + 5000))
            session.execute(insert(Subscriber), [
                {"id": n + 1, "email": f"reader{n}@example.org", "email_key":
                 f"reader{n}@example.org", "status": SubscriberStatus.ACTIVE, "attributes": {}}
                for n in chunk
            ])  # fmt: skip
            session.execute(insert(Delivery), [
                {"id": n + 1, "send_id": _send_of(n), "subscriber_id": n + 1, "channel": "email",
                 "address": f"reader{n}@example.org", "variant": Variant.FULL,
                 "state": DeliveryState.SENT, "attempts": 1} for n in chunk
            ])  # fmt: skip


def apply_all(url: str, messages: list[bytes], batch: int) -> collections.Counter[str]:
    factory = session_factory(url)
    policy = PausePolicy(rate=0.05, min_accepted=200)
    outcomes: collections.Counter[str] = collections.Counter()
    for start in range(0, len(messages), batch):
        chunk = messages[start : start + batch]
        for result in process_batch(factory, chunk, verp=VERP, policy=policy):
            outcomes[result.outcome.value if isinstance(result, Processed) else "error"] += 1
    return outcomes


def benchmark_apply(url: str | None, messages: list[bytes], batch: int) -> None:
    with tempfile.TemporaryDirectory() as folder:
        url = url or f"sqlite:///{Path(folder) / 'bounces.db'}"
        upgrade(url)
        seed(url, len(messages))
        cpu, wall = time.process_time(), time.perf_counter()
        outcomes = apply_all(url, messages, batch)
        cpu, wall = time.process_time() - cpu, time.perf_counter() - wall
        with transaction(url) as session:
            suppressed = session.scalar(
                select(func.count()).where(Subscriber.status != SubscriberStatus.ACTIVE)
            )
        dispose_engines()
    backend = url.partition(":")[0]
    print(
        f"classify + match + apply ({backend}, {batch} per transaction): "
        f"{len(messages) / wall:,.0f} messages/s wall, {len(messages) / cpu:,.0f}/s CPU"
    )
    print(f"  outcomes: {dict(sorted(outcomes.items()))}; subscribers suppressed: {suppressed:,}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--messages", type=int, default=10_000)
    parser.add_argument("--batch", type=int, default=BATCH_SIZE, help="messages per transaction")
    parser.add_argument("--database-url", help="a migrated, empty database (default: SQLite)")
    args = parser.parse_args()
    messages = mailbox(args.messages)
    megabytes = sum(map(len, messages)) / 1e6
    print(f"{len(messages):,} messages from {len(list(FIXTURES.glob('*.eml')))} fixtures, "
          f"{megabytes:.1f} MB, {megabytes * 1e3 / len(messages):.1f} KB average")  # fmt: skip

    kinds: collections.Counter[str] = collections.Counter()
    matched = 0
    started = time.process_time()
    for raw in messages:
        result = match(classify(raw), VERP)
        kinds[result.feedback.kind.value] += 1
        matched += isinstance(result, MatchedFeedback)
    elapsed = time.process_time() - started
    print(f"classify + match: {len(messages) / elapsed:,.0f} messages/s on one core "
          f"({elapsed / len(messages) * 1e6:.0f} µs each, CPU time)")  # fmt: skip
    print(f"  kinds: {dict(sorted(kinds.items()))}; matched to a delivery: {matched:,}")

    sample = messages[:1000]
    tracemalloc.start()
    for raw in sample:
        classify(raw)
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    print(f"peak Python heap while classifying ({len(sample):,} messages): {peak / 1e6:.2f} MB")

    benchmark_apply(args.database_url, messages, args.batch)
    print(f"peak resident set of the process (includes the mailbox): "
          f"{resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f} MB")  # fmt: skip


if __name__ == "__main__":
    main()
