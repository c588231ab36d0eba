"""Who may read ``/metrics`` (made by :mod:`distributor.web.prometheus`).

Only for the addresses in ``METRICS_ALLOW_IPS`` or a request bearing ``METRICS_TOKEN``: the
numbers say how much mail goes where, which is nobody else's business.
"""

from __future__ import annotations

import hmac
import ipaddress
from dataclasses import dataclass, field

from starlette.requests import Request

from distributor.config import Settings
from distributor.errors import ConfigurationError
from distributor.web.security import client_address

Network = ipaddress.IPv4Network | ipaddress.IPv6Network


# --- who may read them --------------------------------------------------------------------------


def allowed_networks(text: str) -> tuple[Network, ...]:
    try:
        return tuple(ipaddress.ip_network(part.strip()) for part in text.split(",") if part.strip())
    except ValueError as error:
        raise ConfigurationError(f"METRICS_ALLOW_IPS={text!r}: {error}") from None


@dataclass(frozen=True)
class MetricsAccess:
    networks: tuple[Network, ...]
    token: str | None = field(repr=False)

    @classmethod
    def from_settings(cls, settings: Settings) -> MetricsAccess:
        return cls(allowed_networks(settings.metrics_allow_ips), settings.metrics_token)

    def allows(self, request: Request) -> bool:
        given = request.headers.get("authorization", "")
        if self.token and hmac.compare_digest(given.encode(), f"Bearer {self.token}".encode()):
            return True
        try:
            client = ipaddress.ip_address(client_address(request))
        except ValueError:
            client = None
        return client is not None and any(client in network for network in self.networks)
