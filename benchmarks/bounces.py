"""Bounce classification throughput on one core: classify and match a mixed bounce mailbox.

    python benchmarks/bounces.py [--messages 10000]

The mailbox is made from tests/fixtures/bounces (DSNs, Exchange, QQ, NetEase, Sina, Exim, qmail,
auto-replies, abuse reports), each copy with its own delivery id, VERP address and Message-ID,
signed with this run's key. Target (issue 14): at least 500 messages/s.
"""

from __future__ import annotations

import argparse
import collections
import re
import resource
import time
import tracemalloc
from pathlib import Path

from distributor.bounces import MatchedFeedback, Verp, classify, match
from distributor.render.message_ids import make_message_id
from subscribers.tokens import TokenSigner

FIXTURES = Path(__file__).resolve().parents[1] / "tests" / "fixtures" / "bounces"
SECRET = "benchmark-secret-key-0123456789abcdef"
DOMAIN = "news.example-union.org"
VERP = Verp(f"bounces.{DOMAIN}", TokenSigner(SECRET))
_VERP_ADDRESS = re.compile(rb"bounces\+\d+-[0-9a-f]+-[a-z2-7]{26}@[a-z0-9.-]+")
_MESSAGE_ID = re.compile(rb"<s\d+\.r\d+\.[0-9a-f]{16}@[a-z0-9.-]+>")


def mailbox(size: int) -> list[bytes]:
    """``size`` messages cycling through the fixtures, message n about delivery n."""
    templates = [path.read_bytes() for path in sorted(FIXTURES.glob("*.eml"))]
    now = int(time.time())
    messages = []
    for n in range(size):
        verp = VERP.make_verp(n, now=now).encode()
        message_id = make_message_id(SECRET, n // 1000 + 1, n, DOMAIN).encode()
        raw = _VERP_ADDRESS.sub(verp, templates[n % len(templates)])
        messages.append(_MESSAGE_ID.sub(message_id, raw))
    return messages


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--messages", type=int, default=10_000)
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
    print(f"peak resident set of the process (includes the mailbox): "
          f"{resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f} MB")  # fmt: skip


if __name__ == "__main__":
    main()
