"""``/metrics`` made by prometheus-client: the database's figures (which every worker writes, so
they are the whole site's whatever the number of worker processes or machines) read at each
scrape, and the request latency of every process of ``distributor web``, summed across them by
prometheus-client's multiprocess mode (``PROMETHEUS_MULTIPROC_DIR``, which the web server sets
for its children).

Providers' thresholds are published beside the rates, so that a dashboard draws them and an
alert compares against them (``deploy/prometheus/alerts.yml``): Gmail's postmaster guidelines
ask for complaints under 0.1 % and never 0.3 % or more.
"""

from __future__ import annotations

import os
import time
from collections.abc import Awaitable, Callable, Iterable

from prometheus_client import CollectorRegistry, Histogram, generate_latest, multiprocess
from prometheus_client.exposition import CONTENT_TYPE_PLAIN_0_0_4
from prometheus_client.metrics_core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from distributor.campaigns.outcome_figures import OutcomeFigures
from distributor.sending.monitoring import SendingSnapshot
from distributor.sending.route_status import DomainView, RelayView, RoutingReport
from distributor.web.security import ASGIApp, Message, Scope

CONTENT_TYPE = CONTENT_TYPE_PLAIN_0_0_4
MULTIPROCESS_DIR = "PROMETHEUS_MULTIPROC_DIR"
# (provider, level) -> share of messages: complaints and hard bounces.
COMPLAINT_LIMITS: dict[tuple[str, ...], float] = {
    ("gmail", "target"): 0.001,
    ("gmail", "maximum"): 0.003,
}
BOUNCE_LIMITS: dict[tuple[str, ...], float] = {("common", "maximum"): 0.02}

REQUEST_SECONDS = Histogram(
    "distributor_http_request_duration_seconds",
    "Time to answer a request, by route (every web process).",
    ["route"],
    registry=None,
)


class SendingCollector(Collector):
    """The database's figures, as read for this scrape."""

    def __init__(
        self, snapshot: SendingSnapshot, figures: OutcomeFigures, routing: RoutingReport
    ) -> None:
        self.snapshot = snapshot
        self.figures = figures
        self.routing = routing

    def collect(self) -> Iterable[Metric]:
        snapshot, figures = self.snapshot, self.figures
        by_label: list[tuple[str, str, list[str], dict[tuple[str, ...], float]]] = [
            ("distributor_sends", "Sends by state.", ["state"],
             {(k,): v for k, v in snapshot.sends.items()}),
            ("distributor_deliveries", "Deliveries by state (all sends).", ["state"],
             {(k,): v for k, v in snapshot.deliveries.items()}),
            ("distributor_smtp_answers_last_hour",
             "Mail server answers in the last hour, by class (none: no answer).", ["class"],
             {(k,): v for k, v in snapshot.answers.items()}),
            ("distributor_messages_last_hour",
             "Messages in the last hour by channel, receiving domain (the 20 busiest; the rest: "
             "other) and outcome (sent, deferred, failed).", ["channel", "domain", "outcome"],
             {key: float(n) for key, n in figures.outcomes.items()}),
            ("distributor_send_progress_ratio",
             "Share of a running send's deliveries that are final.", ["send_id"],
             {(str(send_id),): ratio for send_id, ratio in figures.progress.items()}),
            ("distributor_complaint_rate_limit",
             "Providers' complaint-rate thresholds (Gmail: under 0.1 %, never 0.3 %).",
             ["provider", "level"], COMPLAINT_LIMITS),
            ("distributor_bounce_rate_limit",
             "The hard-bounce rate above which receivers start to refuse.",
             ["provider", "level"], BOUNCE_LIMITS),
        ]
        for name, text, labels, values in by_label:
            family = GaugeMetricFamily(name, text, labels=labels)
            for key, value in sorted(values.items()):
                family.add_metric(list(key), value)
            yield family
        single: list[tuple[str, str, float]] = [
            ("distributor_sent_per_second", "Messages accepted per second over the last minute.",
             snapshot.sent_per_second),
            ("distributor_queue_depth", "Planned deliveries not sent yet.", snapshot.queue_depth),
            ("distributor_sent_last_day", "Messages accepted in the last 24 hours.",
             figures.sent_last_day),
            ("distributor_bounced_last_day", "Hard bounces received in the last 24 hours.",
             figures.bounced_last_day),
            ("distributor_complained_last_day", "Complaints received in the last 24 hours.",
             figures.complained_last_day),
            ("distributor_bounce_rate", "Hard bounces per message accepted, last 24 hours.",
             figures.bounce_rate),
            ("distributor_complaint_rate", "Complaints per message accepted, last 24 hours.",
             figures.complaint_rate),
        ]
        for name, text, value in single:
            yield GaugeMetricFamily(name, text, value=value)
        yield from _routing(self.routing, time.time())


def _routing(routing: RoutingReport, now: float) -> Iterable[Metric]:
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
    for name, text, relay_value in relays:
        family = GaugeMetricFamily(f"distributor_relay_{name}", text, labels=["relay"])
        for relay in routing.relays:
            if (value := relay_value(relay)) is not None:
                family.add_metric([relay.name], value)
        yield family
    for name, text, domain_value in domains:
        family = GaugeMetricFamily(f"distributor_domain_{name}", text, labels=["domain"])
        for domain in routing.domains:
            if (value := domain_value(domain)) is not None:
                family.add_metric([domain.domain], value)
        yield family


def exposition(
    snapshot: SendingSnapshot, figures: OutcomeFigures, routing: RoutingReport
) -> bytes:
    registry = CollectorRegistry()
    if os.environ.get(MULTIPROCESS_DIR):
        multiprocess.MultiProcessCollector(registry)  # type: ignore[no-untyped-call]
    else:
        registry.register(REQUEST_SECONDS)
    registry.register(SendingCollector(snapshot, figures, routing))
    return generate_latest(registry)


class RequestTimer:
    """ASGI middleware: each HTTP request's time, labelled by its route's path template (so
    ``/api/v1/sends/{send_id}`` is one series, not one per send); the time to the response's
    headers is also told in a ``Server-Timing: app;dur=<ms>`` header (the browser's developer
    tools show it; ``benchmarks/web_staff.py`` reads it)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

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
            REQUEST_SECONDS.labels(label).observe(time.perf_counter() - started)
