"""What a long-running process (worker, beat, web server) checks before it starts.

A setting that cannot work stops the process at once, with one line that names it, instead of a
process that says "ready" and then fails every second; a setting that works but will hurt in
production is a warning, logged once at start.
"""

from __future__ import annotations

from distributor.bounces.mailbox import MailboxSettings
from distributor.channels.smtp import SmtpChannel
from distributor.config import Settings
from distributor.errors import ConfigurationError, RenderError
from distributor.render.dkim import DkimSigner
from distributor.render.email import parse_from

EXAMPLE_MAIL_FROM = "杭州工运 <newsletter@your-domain.cn>"
# Names that never reach a real mailbox (RFC 2606, RFC 6761).
_LOCAL_DOMAINS = ("localhost", "test", "example", "invalid", "local")
_EXAMPLE_DOMAINS = ("example.org", "example.com", "example.net")


def check_settings(settings: Settings) -> list[str]:
    """The warnings for these settings; ConfigurationError for the first that cannot work."""
    settings.require_secret_key()
    for relay in settings.routing.relays:
        SmtpChannel.for_relay(relay, settings)  # refuses a password in clear
    MailboxSettings.from_settings(settings)  # the same for the bounce mailbox
    try:
        _, _, domain = parse_from(settings.mail_from)
    except RenderError as error:
        raise ConfigurationError(
            f"MAIL_FROM cannot be used: {error}; e.g. MAIL_FROM='{EXAMPLE_MAIL_FROM}'"
        ) from None
    warnings = DkimSigner.check(settings)
    if _is_local(domain):
        warnings.append(
            f"MAIL_FROM is at {domain}: a mail server on this machine takes it, real receivers "
            f"refuse it. Set MAIL_FROM to an address at your own domain, e.g. '{EXAMPLE_MAIL_FROM}'"
        )
    if settings.claim_lease_seconds < settings.smtp_timeout:
        warnings.append(
            f"CLAIM_LEASE_SECONDS ({settings.claim_lease_seconds:g}) is shorter than "
            f"SMTP_TIMEOUT ({settings.smtp_timeout:g}): one answer that takes that long outlasts "
            "the claim, and its message may go out twice (flagged as a possible duplicate). "
            f"Set CLAIM_LEASE_SECONDS to at least {settings.smtp_timeout:g}"
        )
    if not settings.one_click_unsubscribe:
        warnings.append(
            f"PUBLIC_BASE_URL {settings.public_base_url} is not https: messages offer no "
            "one-click unsubscribe (RFC 8058 needs https), which large receivers require of "
            "bulk senders"
        )
    return warnings


def _is_local(domain: str) -> bool:
    return domain.rpartition(".")[2] in _LOCAL_DOMAINS or any(
        domain == example or domain.endswith("." + example) for example in _EXAMPLE_DOMAINS
    )
