"""``/metrics`` in the Prometheus text format (version 0.0.4), written here: a few gauges from
the database, the relays' and domains' routing, and one histogram of this process's request
latency.

Only for the addresses in ``METRICS_ALLOW_IPS`` or a request bearing ``METRICS_TOKEN``: the
numbers say how much mail goes where, which is nobody else's business.
"""

from __future__ import annotations

import bisect
import hmac
import ipaddress
import threading
import time
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, field

from starlette.requests import Request

from distributor.config import Settings
from distributor.errors import ConfigurationError
from distributor.sending.monitoring import SendingSnapshot
from distributor.sending.route_status import DomainView, RelayView, RoutingReport
from distributor.web.security import ASGIApp, Message, Scope, client_address

BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
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


# --- request latency ----------------------------------------------------------------------------


@dataclass
class Histogram:
    """Cumulative buckets per label, as Prometheus reads them; one lock, a few adds a request."""

    counts: dict[str, list[int]] = field(default_factory=dict)
    sums: dict[str, float] = field(default_factory=dict)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def observe(self, label: str, seconds: float) -> None:
        with self.lock:
            counts = self.counts.setdefault(label, [0] * (len(BUCKETS) + 1))
            counts[bisect.bisect_left(BUCKETS, seconds)] += 1
            self.sums[label] = self.sums.get(label, 0.0) + seconds

    def lines(self, name: str, label_name: str) -> Iterable[str]:
        with self.lock:
            snapshot = {label: list(counts) for label, counts in self.counts.items()}
            sums = dict(self.sums)
        yield f"# HELP {name} Time to answer a request, by route (this process)."
        yield f"# TYPE {name} histogram"
        for label, counts in sorted(snapshot.items()):
            running = 0
            tag = f'{label_name}="{escape(label)}"'
            for bound, count in zip((*BUCKETS, float("inf")), counts, strict=True):
                running += count
                le = "+Inf" if bound == float("inf") else repr(bound)
                yield f'{name}_bucket{{{tag},le="{le}"}} {running}'
            yield f"{name}_sum{{{tag}}} {sums[label]:.6f}"
            yield f"{name}_count{{{tag}}} {running}"


class RequestTimer:
    """ASGI middleware: each HTTP request's time, labelled by its route's path template (so
    ``/api/v1/sends/{send_id}`` is one series, not one per send); the time to the response's
    headers is also told in a ``Server-Timing: app;dur=<ms>`` header (the browser's developer
    tools show it; ``benchmarks/web_staff.py`` reads it)."""

    def __init__(self, app: ASGIApp, histogram: Histogram) -> None:
        self.app = app
        self.histogram = histogram

    async def __call__(
        self,
        scope: Scope,
        receive: Callable[[], Awaitable[Message]],
        send: Callable[[Message], Awaitable[None]],
    ) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()

        async def timed(message: Message) -> None:
            if message["type"] == "http.response.start":
                took = (time.perf_counter() - started) * 1000
                headers = [*message.get("headers", []), (b"server-timing", b"app;dur=%.1f" % took)]
                message = {**message, "headers": headers}
            await send(message)

        try:
            await self.app(scope, receive, timed)
        finally:
            route = scope.get("route")
            label = getattr(route, "path", None) or "unmatched"
            self.histogram.observe(label, time.perf_counter() - started)


# --- the text -----------------------------------------------------------------------------------


def escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def _gauge(name: str, help_text: str, label: str, values: dict[str, int]) -> list[str]:
    lines = [f"# HELP {name} {help_text}", f"# TYPE {name} gauge"]
    lines += [f'{name}{{{label}="{escape(key)}"}} {n}' for key, n in sorted(values.items())]
    return lines


def _routing(routing: RoutingReport, now: float) -> list[str]:
    """Per relay and per capped or slowed domain; a cap's gauge only where there is a cap."""
    relays: list[tuple[str, str, Callable[[RelayView], float | None]]] = [
        ("sent_today", "Messages a relay took today (office day).", lambda r: r.sent_today),
        ("deferred_today", "Messages a relay deferred or did not take today.",
         lambda r: r.deferred_today),
        ("resting_seconds", "Seconds a relay still rests after failing (0: in use).",
         lambda r: max(0.0, (r.resting_until or now) - now)),
        ("cap_left_today", "Messages a relay may still take today under its daily cap.",
         lambda r: r.daily_cap_left),
    ]
    domains: list[tuple[str, str, Callable[[DomainView], float | None]]] = [
        ("sent_today", "Messages sent to a capped receiving domain today.",
         lambda d: d.sent_today),
        ("cap_left_today", "Messages a receiving domain may still be sent today.",
         lambda d: d.daily_cap_left),
        ("cap_left_hour", "Messages a receiving domain may still be sent this hour.",
         lambda d: d.hourly_cap_left),
        ("slowdown", "Halvings of a receiving domain's rate after its 'too many' answers.",
         lambda d: d.slowdown),
    ]
    lines: list[str] = []
    for name, help_text, relay_value in relays:
        values = {r.name: relay_value(r) for r in routing.relays}
        lines += _gauge(f"distributor_relay_{name}", help_text, "relay", _known(values))
    for name, help_text, domain_value in domains:
        values = {d.domain: domain_value(d) for d in routing.domains}
        lines += _gauge(f"distributor_domain_{name}", help_text, "domain", _known(values))
    return lines


def _known(values: dict[str, float | None]) -> dict[str, int]:
    return {key: int(n) for key, n in values.items() if n is not None}


def exposition(
    snapshot: SendingSnapshot, histogram: Histogram, routing: RoutingReport | None = None
) -> str:
    lines = [
        *_gauge("distributor_sends", "Sends by state.", "state", snapshot.sends),
        *_gauge(
            "distributor_deliveries",
            "Deliveries by state (all sends).",
            "state",
            snapshot.deliveries,
        ),
        *_gauge(
            "distributor_smtp_answers_last_hour",
            "Mail server answers in the last hour, by class (none: no answer).",
            "class",
            snapshot.answers,
        ),
        "# HELP distributor_sent_per_second Messages accepted per second over the last minute.",
        "# TYPE distributor_sent_per_second gauge",
        f"distributor_sent_per_second {snapshot.sent_per_second:.3f}",
        "# HELP distributor_queue_depth Planned deliveries not sent yet.",
        "# TYPE distributor_queue_depth gauge",
        f"distributor_queue_depth {snapshot.queue_depth}",
        *(_routing(routing, time.time()) if routing is not None else []),
        *histogram.lines("distributor_http_request_duration_seconds", "route"),
    ]
    return "\n".join(lines) + "\n"
