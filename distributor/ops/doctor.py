"""``distributor doctor``: would the large receivers take our mail? Each check says what it found
and, when it is wrong, the fix. Gmail, Yahoo and Outlook (``550 5.7.515``, since 2025) refuse
bulk mail from a domain without SPF, DKIM and DMARC that align, a relay without reverse DNS or
TLS, and messages without a working one-click unsubscribe (which needs https).

The DNS is read through :mod:`distributor.ops.dns_records` (``DOCTOR_NAMESERVER`` or the
system's resolver); the relay is asked over SMTP, the public address over https.
"""

from __future__ import annotations

import base64
import ipaddress
import smtplib
import ssl
from collections.abc import Iterable
from dataclasses import dataclass

import httpx
from cryptography.hazmat.primitives import serialization

from distributor.config import Settings
from distributor.errors import ConfigurationError, RenderError
from distributor.ops.dns_records import Dns, spf_records, spf_result, tags
from distributor.render.dkim import DkimSigner
from distributor.render.email import parse_from

# Registries' own second levels, under which an organisation's domain has three labels.
_SECOND_LEVELS = {"com.cn", "net.cn", "org.cn", "gov.cn", "edu.cn", "ac.cn", "co.uk", "org.uk",
                  "com.hk", "org.hk", "com.tw", "org.tw", "com.au", "org.au"}


@dataclass(frozen=True)
class Finding:
    check: str
    ok: bool
    said: str
    fix: str = ""

    def lines(self) -> list[str]:
        mark = "ok  " if self.ok else "FAIL"
        fix = [f"     fix: {self.fix}"] if self.fix else []
        return [f"{mark} {self.check}: {self.said}", *fix]


def organisational_domain(domain: str) -> str:
    """The registered domain (``mail.hzgh.org.cn`` → ``hzgh.org.cn``), as DMARC aligns by it;
    an approximation of the public suffix list for the suffixes Chinese unions use."""
    labels = domain.lower().rstrip(".").split(".")
    keep = 3 if ".".join(labels[-2:]) in _SECOND_LEVELS else 2
    return ".".join(labels[-keep:])


def _aligned(domain: str, from_domain: str, strict: bool) -> bool:
    if strict:
        return domain.lower() == from_domain.lower()
    return organisational_domain(domain) == organisational_domain(from_domain)


def _is_address(host: str) -> bool:
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return False
    return True


# --- DNS ----------------------------------------------------------------------------------------


def spf_findings(lookup: Dns, domain: str, relays: list[str]) -> Iterable[Finding]:
    records = spf_records(lookup, domain)
    wanted = " ".join(f"ip{ipaddress.ip_address(ip).version}:{ip}" for ip in relays)
    if not records:
        yield Finding("SPF", False, f"{domain} publishes no SPF record",
                      f'publish TXT at {domain}: "v=spf1 {wanted} -all"')
        return
    if len(records) > 1:
        yield Finding("SPF", False, f"{domain} publishes {len(records)} SPF records (receivers "
                      "then ignore all of them)", "merge them into one TXT record")
        return
    for ip in relays:
        result = spf_result(lookup, domain, ip)
        if result == "pass":
            yield Finding("SPF", True, f"{domain} allows the relay {ip}")
        else:
            yield Finding(
                "SPF", False, f"{domain}'s SPF says {result} for the relay {ip}: {records[0]!r}",
                f"add ip{ipaddress.ip_address(ip).version}:{ip} before the 'all' of the SPF "
                f"record of {domain}",
            )


def dkim_findings(lookup: Dns, signer: DkimSigner | None) -> Iterable[Finding]:
    if signer is None:
        yield Finding(
            "DKIM", False, "messages are not signed (DKIM_DOMAIN, DKIM_SELECTOR and "
            "DKIM_PRIVATE_KEY_FILE are not set)",
            "openssl genrsa -out dkim.pem 2048; chmod 600 dkim.pem; set the three settings; "
            "run distributor doctor again for the record to publish",
        )
        return
    name = f"{signer.selector}._domainkey.{signer.domain}"
    ours = base64.b64encode(
        signer.private_key.public_key().public_bytes(
            serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
        )
    ).decode()
    publish = f'publish TXT at {name}: "v=DKIM1; k=rsa; p={ours}"'
    published = [tags(text).get("p", "") for text in lookup.txt(name)]
    if not published:
        yield Finding("DKIM", False, f"no DKIM record at {name}", publish)
    elif ours not in published:
        yield Finding("DKIM", False, f"the key published at {name} is not the key in "
                      "DKIM_PRIVATE_KEY_FILE: receivers will find every signature broken", publish)
    else:
        yield Finding("DKIM", True, f"{name} publishes the key messages are signed with")


def dmarc_findings(
    lookup: Dns, from_domain: str, envelope_domain: str, signer: DkimSigner | None
) -> Iterable[Finding]:
    organisation = organisational_domain(from_domain)
    candidates = [from_domain] + ([organisation] if organisation != from_domain else [])
    record = next(
        (text for name in candidates for text in lookup.txt(f"_dmarc.{name}")
         if text.lower().replace(" ", "").startswith("v=dmarc1")),
        None,
    )
    if record is None:
        yield Finding(
            "DMARC", False, f"no DMARC record at _dmarc.{from_domain}",
            f'publish TXT at _dmarc.{from_domain}: "v=DMARC1; p=none; '
            f'rua=mailto:dmarc-reports@{organisation}" (then p=quarantine once reports are clean)',
        )
        return
    policy = tags(record)
    dkim_aligned = signer is not None and _aligned(
        signer.domain, from_domain, policy.get("adkim") == "s"
    )
    spf_aligned = _aligned(envelope_domain, from_domain, policy.get("aspf") == "s")
    if not (dkim_aligned or spf_aligned):
        yield Finding(
            "DMARC", False, f"DMARC p={policy.get('p', '?')} but neither the DKIM domain "
            f"({signer.domain if signer else 'none'}) nor the return path's ({envelope_domain}) "
            f"aligns with From's {from_domain}: every message fails DMARC",
            f"sign with DKIM_DOMAIN={from_domain} (or a subdomain of {organisation})",
        )
        return
    by = " and ".join(name for name, yes in (("DKIM", dkim_aligned), ("SPF", spf_aligned)) if yes)
    yield Finding("DMARC", True, f"p={policy.get('p', '?')}, aligned by {by}")


def ptr_findings(lookup: Dns, relay_host: str, relays: list[str]) -> Iterable[Finding]:
    for ip in relays:
        names = lookup.ptr(ip)
        fix = (f"ask whoever runs {ip} (the hosting provider) to set its reverse DNS (PTR) to "
               f"{relay_host if not _is_address(relay_host) else 'the relay’s name'}, a name "
               f"whose A record is {ip}")
        if not names:
            yield Finding("PTR", False, f"the relay {ip} has no reverse DNS (PTR)", fix)
        elif not any(ip in lookup.addresses(name) for name in names):
            yield Finding("PTR", False, f"{ip}'s PTR {names[0]} does not resolve back to it", fix)
        else:
            yield Finding("PTR", True, f"{ip} is {names[0]}, which resolves back to it")


def mx_findings(lookup: Dns, bounce_domain: str | None) -> Iterable[Finding]:
    if bounce_domain is None:
        return
    hosts = lookup.mx(bounce_domain)
    if not hosts:
        yield Finding(
            "MX", False, f"BOUNCE_DOMAIN {bounce_domain} has no MX: bounces never arrive",
            f"publish MX for {bounce_domain} pointing at the bounce mailbox's server",
        )
    else:
        yield Finding("MX", True, f"bounces to {bounce_domain} go to {', '.join(hosts)}")


# --- the relay and the public address -----------------------------------------------------------


def relay_findings(settings: Settings) -> list[Finding]:
    host, port = settings.smtp_host, settings.smtp_port
    where = f"{host}:{port}"
    context = ssl.create_default_context()
    findings = []
    try:
        if settings.smtp_security == "ssl":
            smtp: smtplib.SMTP = smtplib.SMTP_SSL(host, port, timeout=10, context=context)
        else:
            smtp = smtplib.SMTP(host, port, timeout=10)
        with smtp:
            smtp.ehlo()
            secure = settings.smtp_security == "ssl"
            if not secure and not smtp.has_extn("starttls"):
                findings.append(Finding(
                    "TLS", False, f"the relay {where} is plaintext only (offers no STARTTLS): "
                    "messages, and any password, cross the network readable",
                    "turn on TLS at the relay, then SMTP_SECURITY=starttls (or port 465 with "
                    "SMTP_SECURITY=ssl)",
                ))
            elif not secure and settings.smtp_security == "none":
                findings.append(Finding(
                    "TLS", False, f"the relay {where} offers STARTTLS but SMTP_SECURITY=none",
                    "set SMTP_SECURITY=starttls",
                ))
            elif not secure:
                smtp.starttls(context=context)
                smtp.ehlo()
                secure = True
            if secure:
                findings.append(Finding("TLS", True, f"{where}: TLS, certificate valid for {host}"))
            findings.append(_auth_finding(smtp, settings, secure, where))
    except ssl.SSLError as error:
        findings.append(Finding("TLS", False, f"TLS with {where} failed: {error}",
                                f"give the relay a certificate valid for {host}"))
    except (OSError, smtplib.SMTPException) as error:
        findings.append(Finding("Relay", False, f"cannot talk to the relay {where}: {error}",
                                "check SMTP_HOST and SMTP_PORT, and the firewall"))
    return findings


def _auth_finding(smtp: smtplib.SMTP, settings: Settings, secure: bool, where: str) -> Finding:
    if settings.smtp_username is None:
        return Finding("AUTH", True, f"no login: {where} must accept mail from this machine")
    if not smtp.has_extn("auth"):
        return Finding("AUTH", False, f"{where} offers no AUTH, but SMTP_USERNAME is set",
                       "unset SMTP_USERNAME, or turn on authentication at the relay")
    if not secure and not settings.smtp_allow_plaintext_auth:
        return Finding("AUTH", False, "the password would cross the network in clear: not tried",
                       "turn on TLS at the relay")
    try:
        smtp.login(settings.smtp_username, settings.smtp_password or "")
    except smtplib.SMTPAuthenticationError as error:
        return Finding("AUTH", False, f"{where} refused the login: {error.smtp_code}",
                       "check SMTP_USERNAME and SMTP_PASSWORD")
    return Finding("AUTH", True, f"{where} accepted the login of {settings.smtp_username}")


def public_url_findings(settings: Settings) -> list[Finding]:
    base = settings.public_base_url
    if not settings.one_click_unsubscribe:
        return [Finding(
            "HTTPS", False, f"PUBLIC_BASE_URL {base} is not https: messages carry no one-click "
            "unsubscribe (List-Unsubscribe-Post, RFC 8058), which Gmail and Yahoo require of "
            "bulk senders",
            "serve the pages over https (README, deploy/) and set PUBLIC_BASE_URL=https://…",
        )]
    try:
        answer = httpx.get(f"{base}/livez", timeout=10)
    except httpx.HTTPError as error:
        return [Finding("HTTPS", False, f"{base} cannot be reached over https: {error}",
                        "check the reverse proxy, its certificate and the DNS of the name")]
    if answer.status_code != 200:
        return [Finding("HTTPS", False, f"{base}/livez answered {answer.status_code}",
                        "point the reverse proxy at distributor web")]
    return [Finding("HTTPS", True, f"{base} answers over https: messages carry one-click "
                    "unsubscribe headers")]


def diagnose(settings: Settings, lookup: Dns) -> list[Finding]:
    """Every finding, DNS first."""
    try:
        _, _, from_domain = parse_from(settings.mail_from)
    except RenderError as error:
        raise ConfigurationError(f"MAIL_FROM cannot be used: {error}") from None
    envelope_domain = settings.bounce_domain or from_domain
    signer = DkimSigner.from_settings(settings)
    host = settings.smtp_host
    relays = [host] if _is_address(host) else lookup.addresses(host)
    findings: list[Finding] = []
    if not relays:
        findings.append(Finding("Relay", False, f"SMTP_HOST {host} has no address in DNS",
                                "check SMTP_HOST"))
    findings += spf_findings(lookup, envelope_domain, relays)
    findings += dkim_findings(lookup, signer)
    findings += dmarc_findings(lookup, from_domain, envelope_domain, signer)
    findings += ptr_findings(lookup, host, relays)
    findings += mx_findings(lookup, settings.bounce_domain)
    findings += relay_findings(settings)
    findings += public_url_findings(settings)
    return findings
