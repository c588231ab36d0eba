"""``/metrics`` of ``distributor web`` with several processes: prometheus-client's multiprocess
mode sums every process's request latencies, whichever process answers the scrape (the figures
from the database are tested in tests/test_api.py)."""

from __future__ import annotations

from pathlib import Path

import httpx
from prometheus_client.parser import text_string_to_metric_families

from tests.support.web import web_process


def test_every_web_process_s_requests_are_counted_in_each_scrape(
    sqlite_url: str, tmp_path: Path
) -> None:
    with web_process(tmp_path, sqlite_url, WEB_WORKERS="2") as (base, _log):
        for _ in range(20):  # new connections: the kernel shares them between the processes
            assert httpx.get(f"{base}/livez", timeout=30).status_code == 200
        scrapes = [httpx.get(f"{base}/metrics", timeout=30).text for _ in range(4)]
    for text in scrapes:
        counts = {
            sample.labels["route"]: sample.value
            for family in text_string_to_metric_families(text)
            if family.name == "distributor_http_request_duration_seconds"
            for sample in family.samples
            if sample.name.endswith("_count")
        }
        assert counts.get("/livez") == 20, text[:3000]
