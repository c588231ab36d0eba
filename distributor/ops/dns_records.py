"""What the sending domain publishes in DNS, read through one resolver: the system's, or
``DOCTOR_NAMESERVER`` (a site with split DNS, or the tests' own server); and SPF evaluated for
one address (RFC 7208: ip4, ip6, a, mx, include, redirect, all; at most 10 lookups)."""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass, field
from typing import Any

import dns.exception
import dns.resolver
import dns.reversename

from distributor.errors import ConfigurationError

SPF_LOOKUP_LIMIT = 10  # RFC 7208 §4.6.4: more, and receivers answer permerror


def resolver_for(nameserver: str | None, timeout: float = 5.0) -> dns.resolver.Resolver:
    """The system's resolver, or one asking only ``nameserver`` (``host`` or ``host:port``)."""
    if not nameserver:
        resolver = dns.resolver.Resolver()
    else:
        host, _, port = nameserver.rpartition(":") if nameserver.count(":") == 1 else (
            nameserver, "", ""
        )
        try:
            ipaddress.ip_address(host)
            port_number = int(port) if port else 53
        except ValueError:
            raise ConfigurationError(
                f"DOCTOR_NAMESERVER={nameserver!r} is not an IP address, optionally with a "
                "port (e.g. 10.0.0.2 or 127.0.0.1:5353)"
            ) from None
        resolver = dns.resolver.Resolver(configure=False)
        resolver.nameservers = [host]
        resolver.port = port_number
    resolver.lifetime = timeout
    return resolver


@dataclass
class Dns:
    """Lookups that answer an empty list for a name that does not exist or has no such record
    (what a check reports), and raise only when no server answers."""

    resolver: dns.resolver.Resolver
    lookups: int = field(default=0)

    def _records(self, name: str, rdtype: str) -> list[Any]:
        self.lookups += 1
        try:
            return list(self.resolver.resolve(name, rdtype, search=False))
        except (dns.resolver.NXDOMAIN, dns.resolver.NoAnswer):
            return []
        except (dns.resolver.NoNameservers, dns.exception.Timeout) as error:
            raise ConfigurationError(f"no DNS answer for {name} {rdtype}: {error}") from None

    def _answer(self, name: str, rdtype: str) -> list[str]:
        return [record.to_text() for record in self._records(name, rdtype)]

    def txt(self, name: str) -> list[str]:
        """Each TXT record's strings joined (a long DKIM key comes in several)."""
        return [
            b"".join(record.strings).decode(errors="replace")
            for record in self._records(name, "TXT")
        ]

    def addresses(self, name: str) -> list[str]:
        return self._answer(name, "A") + self._answer(name, "AAAA")

    def mx(self, name: str) -> list[str]:
        return [record.split()[-1].rstrip(".") for record in self._answer(name, "MX")]

    def ptr(self, address: str) -> list[str]:
        reverse = dns.reversename.from_address(address).to_text()
        return [name.rstrip(".") for name in self._answer(reverse, "PTR")]


def spf_records(lookup: Dns, domain: str) -> list[str]:
    return [text for text in lookup.txt(domain) if text.lower().split(" ")[0] == "v=spf1"]


def spf_result(lookup: Dns, domain: str, address: str, depth: int = 0) -> str:
    """What ``domain``'s SPF says of mail from ``address``: pass, fail, softfail, neutral, none
    (no record) or permerror (two records, a loop, too many lookups)."""
    if depth > SPF_LOOKUP_LIMIT:
        return "permerror"
    records = spf_records(lookup, domain)
    if not records:
        return "none"
    if len(records) > 1:
        return "permerror"
    ip = ipaddress.ip_address(address)
    results = {"+": "pass", "-": "fail", "~": "softfail", "?": "neutral"}
    redirect = None
    for term in records[0].split()[1:]:
        qualifier = term[0] if term[0] in results else "+"
        mechanism = term.lstrip("+-~?").lower()
        if mechanism.startswith("redirect="):
            redirect = mechanism.partition("=")[2]
            continue
        body, _, prefix = mechanism.partition("/")
        name, _, argument = body.partition(":")
        if name == "all":
            return results[qualifier]
        if name in ("ip4", "ip6"):
            network = ipaddress.ip_network(f"{argument}/{prefix}" if prefix else argument, False)
            matched = ip.version == network.version and ip in network
        elif name in ("a", "mx"):
            target = argument or domain
            hosts = [target] if name == "a" else lookup.mx(target)
            matched = any(
                ip in ipaddress.ip_network(f"{found}/{prefix}" if prefix else found, strict=False)
                for host in hosts
                for found in lookup.addresses(host)
                if ipaddress.ip_address(found).version == ip.version
            )
        elif name == "include":
            inner = spf_result(lookup, argument, address, depth + 1)
            if inner == "permerror":
                return inner
            matched = inner == "pass"
        else:  # exists, ptr: rare, and not for a relay's address
            continue
        if matched:
            return results[qualifier]
        if lookup.lookups > SPF_LOOKUP_LIMIT * 4:
            return "permerror"
    if redirect:
        return spf_result(lookup, redirect, address, depth + 1)
    return "neutral"


def tags(record: str) -> dict[str, str]:
    """A DKIM or DMARC record's ``tag=value`` pairs (whitespace inside a value removed)."""
    pairs = (part.partition("=") for part in record.split(";") if "=" in part)
    return {key.strip().lower(): "".join(value.split()) for key, _, value in pairs}
