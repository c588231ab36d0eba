"""``distributor doctor`` against a DNS server the test runs, a real SMTP relay on loopback and
the settings' public address: each broken thing is reported with its fix, the rest as fine."""

from __future__ import annotations

import base64
import ssl
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from ipaddress import IPv4Address
from pathlib import Path

import pytest
from aiosmtpd.controller import Controller
from click.testing import CliRunner, Result
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import NameOID

from distributor.cli import main
from distributor.devservers.ports import free_port
from distributor.ops.doctor import organisational_domain
from tests.support.dns_server import DnsServer, Zone, txt
from tests.support.smtp import RecordingHandler, SmtpServer

DOMAIN = "hzgh.org.cn"


def private_key(path: Path) -> str:
    """A new 2048-bit key saved to ``path`` (owner only); its public half as DKIM publishes it."""
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    path.write_bytes(key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    ))
    path.chmod(0o600)
    public = key.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return base64.b64encode(public).decode()


@pytest.fixture
def smtp() -> Iterator[SmtpServer]:
    with SmtpServer() as server:  # aiosmtpd without TLS: a plaintext-only relay
        yield server


@pytest.fixture
def dkim_key(tmp_path: Path) -> tuple[Path, str]:
    path = tmp_path / "dkim.pem"
    return path, private_key(path)


def good_zone(public_key: str) -> Zone:
    return {
        # SPF is of the return path's domain (VERP: bounces+…@BOUNCE_DOMAIN).
        (f"bounces.{DOMAIN}", "TXT"): [txt("v=spf1 ip4:192.0.2.0/24 include:_spf.relay.cn -all")],
        ("_spf.relay.cn", "TXT"): [txt("v=spf1 ip4:127.0.0.1 ~all")],
        (f"s2026._domainkey.{DOMAIN}", "TXT"): [txt(f"v=DKIM1; k=rsa; p={public_key}")],
        (f"_dmarc.{DOMAIN}", "TXT"): [txt("v=DMARC1; p=quarantine; rua=mailto:d@hzgh.org.cn")],
        ("1.0.0.127.in-addr.arpa", "PTR"): ["mail.hzgh.org.cn."],
        ("mail.hzgh.org.cn", "A"): ["127.0.0.1"],
        (f"bounces.{DOMAIN}", "MX"): ["10 mail.hzgh.org.cn."],
    }


def doctor(server: DnsServer, relay: dict[str, str], key: Path, **extra: str) -> Result:
    """``distributor doctor`` with a good site's settings, the relay's and ``extra``."""
    env = {
        "DOCTOR_NAMESERVER": server.nameserver,
        "MAIL_FROM": f"杭州工运 <newsletter@{DOMAIN}>",
        "BOUNCE_DOMAIN": f"bounces.{DOMAIN}",
        "DKIM_DOMAIN": DOMAIN,
        "DKIM_SELECTOR": "s2026",
        "DKIM_PRIVATE_KEY_FILE": str(key),
        "PUBLIC_BASE_URL": "http://news.hzgh.org.cn",
        **relay,
        **extra,
    }
    return CliRunner().invoke(main, ["doctor"], env=env)


def test_a_good_domain_passes_its_dns_checks_and_the_relay_and_url_are_named(
    smtp: SmtpServer, dkim_key: tuple[Path, str]
) -> None:
    path, public = dkim_key
    with DnsServer(good_zone(public)) as server:
        result = doctor(server, smtp.env(), path)
    lines = result.output.splitlines()
    assert "ok   SPF: bounces.hzgh.org.cn allows the relay 127.0.0.1" in lines, result.output
    key = f"s2026._domainkey.{DOMAIN}"
    assert f"ok   DKIM: {key} publishes the key messages are signed with" in lines
    assert "ok   DMARC: p=quarantine, aligned by DKIM and SPF" in lines
    assert "ok   PTR: 127.0.0.1 is mail.hzgh.org.cn, which resolves back to it" in lines
    assert f"ok   MX: bounces to bounces.{DOMAIN} go to mail.hzgh.org.cn" in lines
    # The loopback relay has no TLS, and the URL is http: both are reported, with the fix.
    assert any(line.startswith("FAIL TLS: the relay 127.0.0.1:") and "plaintext only" in line
               for line in lines)
    assert "     fix: turn on TLS at the relay, then SMTP_SECURITY=starttls (or port 465 with " \
        "SMTP_SECURITY=ssl)" in lines
    assert any(line.startswith("FAIL HTTPS: PUBLIC_BASE_URL http://news.hzgh.org.cn is not https")
               for line in lines)
    assert lines[-1] == "2 of 8 checks need a fix"
    assert result.exit_code == 1


@pytest.mark.parametrize(
    ("breakage", "reported", "fix"),
    [
        ("spf", "FAIL SPF: bounces.hzgh.org.cn's SPF says fail for the relay 127.0.0.1",
         "     fix: add ip4:127.0.0.1 before the 'all' of the SPF record of bounces.hzgh.org.cn"),
        ("dkim", "FAIL DKIM: the key published at s2026._domainkey.hzgh.org.cn is not the key",
         '     fix: publish TXT at s2026._domainkey.hzgh.org.cn: "v=DKIM1; k=rsa; p=MII'),
        ("dmarc", "FAIL DMARC: no DMARC record at _dmarc.hzgh.org.cn",
         '     fix: publish TXT at _dmarc.hzgh.org.cn: "v=DMARC1; p=none; '),
        ("ptr", "FAIL PTR: the relay 127.0.0.1 has no reverse DNS (PTR)",
         "     fix: ask whoever runs 127.0.0.1 (the hosting provider) to set its reverse DNS"),
        ("mx", "FAIL MX: BOUNCE_DOMAIN bounces.hzgh.org.cn has no MX: bounces never arrive",
         "     fix: publish MX for bounces.hzgh.org.cn pointing at the bounce mailbox's server"),
    ],
)
def test_each_broken_record_is_reported_with_its_fix(
    smtp: SmtpServer, dkim_key: tuple[Path, str], tmp_path: Path,
    breakage: str, reported: str, fix: str,
) -> None:
    path, public = dkim_key
    zone = good_zone(public)
    if breakage == "spf":
        zone[("_spf.relay.cn", "TXT")] = [txt("v=spf1 ip4:198.51.100.7 -all")]
    elif breakage == "dkim":
        zone[(f"s2026._domainkey.{DOMAIN}", "TXT")] = [
            txt(f"v=DKIM1; k=rsa; p={private_key(tmp_path / 'other.pem')}")
        ]
    elif breakage == "dmarc":
        del zone[(f"_dmarc.{DOMAIN}", "TXT")]
    elif breakage == "ptr":
        del zone[("1.0.0.127.in-addr.arpa", "PTR")]
    else:
        del zone[(f"bounces.{DOMAIN}", "MX")]
    with DnsServer(zone) as server:
        result = doctor(server, smtp.env(), path)
    lines = result.output.splitlines()
    at = next((i for i, line in enumerate(lines) if line.startswith(reported)), None)
    assert at is not None, result.output
    assert lines[at + 1].startswith(fix), result.output
    assert lines[-1] == "3 of 8 checks need a fix"  # this, the relay's TLS and the http URL
    assert result.exit_code == 1


def test_dmarc_fails_when_neither_dkim_nor_the_return_path_aligns(
    smtp: SmtpServer, tmp_path: Path
) -> None:
    path = tmp_path / "k.pem"
    public = private_key(path)
    zone = good_zone(public)
    zone[("s2026._domainkey.mailer.example.net", "TXT")] = [txt(f"v=DKIM1; p={public}")]
    zone[("mailer.example.net", "TXT")] = [txt("v=spf1 ip4:127.0.0.1 -all")]
    zone[("mailer.example.net", "MX")] = ["10 mail.hzgh.org.cn."]
    with DnsServer(zone) as server:
        result = doctor(server, smtp.env(), path, DKIM_DOMAIN="mailer.example.net",
                        BOUNCE_DOMAIN="mailer.example.net")
    assert "FAIL DMARC: DMARC p=quarantine but neither the DKIM domain (mailer.example.net) nor " \
        "the return path's (mailer.example.net) aligns with From's hzgh.org.cn" in result.output


def test_doctor_nameserver_must_be_an_address() -> None:
    result = CliRunner().invoke(main, ["doctor"], env={"DOCTOR_NAMESERVER": "dns.example.org"})
    assert result.exit_code == 2
    assert "DOCTOR_NAMESERVER='dns.example.org' is not an IP address" in result.output


def test_the_organisational_domain_keeps_a_registry_s_second_level() -> None:
    assert organisational_domain("mail.hzgh.org.cn") == "hzgh.org.cn"
    assert organisational_domain("bounces.news.example.org") == "example.org"


def self_signed_context(tmp_path: Path) -> ssl.SSLContext:
    """A server's TLS with a certificate nobody vouches for (itself)."""
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "relay.hzgh.org.cn")])
    now = datetime.now(UTC)
    certificate = (
        x509.CertificateBuilder().subject_name(name).issuer_name(name)
        .public_key(key.public_key()).serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(days=1)).not_valid_after(now + timedelta(days=1))
        .add_extension(x509.SubjectAlternativeName([x509.IPAddress(IPv4Address("127.0.0.1"))]),
                       critical=False)
        .sign(key, hashes.SHA256())
    )
    (tmp_path / "relay.pem").write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
    private_key_path = tmp_path / "relay.key"
    private_key_path.write_bytes(key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    ))
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(tmp_path / "relay.pem", private_key_path)
    return context


def test_a_relay_with_a_certificate_nobody_vouches_for_and_an_unreachable_https_address(
    dkim_key: tuple[Path, str], tmp_path: Path
) -> None:
    path, public = dkim_key
    port = free_port()
    relay = Controller(RecordingHandler(), hostname="127.0.0.1", port=port,
                       tls_context=self_signed_context(tmp_path))
    relay.start()
    try:
        with DnsServer(good_zone(public)) as server:
            relay_env = {"SMTP_HOST": "127.0.0.1", "SMTP_PORT": str(port),
                         "SMTP_SECURITY": "starttls"}
            result = doctor(server, relay_env, path,
                            PUBLIC_BASE_URL=f"https://127.0.0.1:{free_port()}")
    finally:
        relay.stop()
    lines = result.output.splitlines()
    tls = next(line for line in lines if line.startswith("FAIL TLS: "))
    assert f"TLS with 127.0.0.1:{port} failed" in tls and "certificate verify failed" in tls
    assert "     fix: give the relay a certificate valid for 127.0.0.1" in lines
    assert any(line.startswith("FAIL HTTPS: https://127.0.0.1:") and "cannot be reached over "
               "https" in line for line in lines), result.output
