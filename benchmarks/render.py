"""Render cost per issue and personalisation throughput per core, on the sample issue.

    python benchmarks/render.py [ISSUE.txt] [--messages N]

Targets (spec R22 and the render brief): inlining once per issue × variant; at least 2,000
personalised MIME messages/s per core without DKIM and 800/s with RSA-2048 DKIM.
"""

from __future__ import annotations

import argparse
import functools
import statistics
import time
from collections.abc import Callable
from pathlib import Path

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from distributor.config import Settings
from distributor.issues.plaintext import parse_plaintext
from distributor.render.dkim import DkimSigner
from distributor.render.email import compile_issue
from distributor.render.personalise import Recipient, personalise
from distributor.render.views import inline_runs
from distributor.render.wechat import compile_wechat
from distributor.vocabulary import Variant
from subscribers.links import PublicLinks
from subscribers.tokens import TokenSigner

SAMPLE = Path(__file__).resolve().parents[1] / "distributor" / "samples" / "hzgy-471.txt"
DOMAIN = "news.example-union.org"
SETTINGS = Settings(
    secret_key="benchmark-secret-key-0123456789abcdef",
    mail_from=f"杭州工运 <newsletter@{DOMAIN}>",
    public_base_url=f"https://{DOMAIN}",
)
RENDER_RUNS = 20


def timed_ms(action: Callable[[], object], runs: int = RENDER_RUNS) -> str:
    """First run (Jinja compiles the templates, cssutils parses the CSS) and median of the rest."""
    timings = []
    for _ in range(runs + 1):
        started = time.perf_counter()
        action()
        timings.append((time.perf_counter() - started) * 1000)
    return f"first {timings[0]:7.2f} ms, then median {statistics.median(timings[1:]):6.2f} ms"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("issue", nargs="?", type=Path, default=SAMPLE)
    parser.add_argument("--messages", type=int, default=10_000)
    args = parser.parse_args()
    doc = parse_plaintext(args.issue.read_text(encoding="utf-8"), source=args.issue.name).document
    print(f"Issue {doc.title} 第{doc.number}期: {len(doc.articles)} articles")

    print(f"Render + inline per issue ({RENDER_RUNS} runs after the first):")
    for variant in (Variant.FULL, Variant.DIGEST, Variant.TEXT):
        compile_variant = functools.partial(compile_issue, doc, variant, SETTINGS)
        print(f"  {variant:<7} {timed_ms(compile_variant)}")
    print(f"  {'wechat':<7} {timed_ms(lambda: compile_wechat(doc, SETTINGS))}")

    links = PublicLinks(SETTINGS.public_base_url, TokenSigner(SETTINGS.require_secret_key()))
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    signer = DkimSigner.from_pem(DOMAIN, "bench", pem)
    recipients = [
        Recipient(n, f"reader{n}@example.com", f"读者{n}" if n % 2 else None)
        for n in range(args.messages)
    ]
    print(f"Personalise {args.messages:,} messages (signed links), one core:")
    for variant in (Variant.FULL, Variant.DIGEST, Variant.TEXT):
        compiled = compile_issue(doc, variant, SETTINGS)
        runs_before = inline_runs()
        for label, dkim in (("no DKIM", None), ("DKIM RSA-2048", signer)):
            started = time.perf_counter()
            size = 0
            for recipient in recipients:
                message = personalise(compiled, recipient, send_id=1, links=links, signer=dkim)
                size += len(message.data)
            elapsed = time.perf_counter() - started
            print(
                f"  {variant:<7} {label:<14} {args.messages / elapsed:8,.0f} msg/s  "
                f"({elapsed / args.messages * 1e6:5.0f} µs each, {size / args.messages / 1024:.1f}"
                " KB average)"
            )
        print(f"          inlining runs while personalising: {inline_runs() - runs_before}")
    print(f"Inlining ran {inline_runs()} times in total, all in compile_issue/compile_wechat.")


if __name__ == "__main__":
    main()
