"""``/metrics`` of ``distributor web`` with several processes: prometheus-client's multiprocess
mode sums every process's request latencies, whichever process answers the scrape (the figures
from the database are tested in tests/test_api.py)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import httpx
from prometheus_client.parser import text_string_to_metric_families

from distributor.devservers.ports import free_port
from tests.support.polling import wait_until
from tests.support.sending import SECRET


def answers(url: str) -> bool:
    try:
        return httpx.get(url, timeout=5).status_code == 200
    except httpx.HTTPError:
        return False


def test_every_web_process_s_requests_are_counted_in_each_scrape(
    sqlite_url: str, tmp_path: Path
) -> None:
    port, log = free_port(), tmp_path / "web.log"
    base = f"http://127.0.0.1:{port}"
    env = {"PATH": "/usr/bin:/bin", "HOME": str(tmp_path), "DATABASE_URL": sqlite_url,
           "DISTRIBUTOR_SECRET_KEY": SECRET, "WEB_WORKERS": "2"}
    with log.open("wb") as out:
        process = subprocess.Popen(
            [sys.executable, "-m", "distributor", "web", "--port", str(port)],
            env=env, stdout=out, stderr=subprocess.STDOUT,
        )
    try:
        wait_until(lambda: answers(f"{base}/readyz"), bool, timeout=90, what="/readyz")
        wait_until(lambda: log.read_text().count("Application startup complete"), lambda n: n >= 2,
                   timeout=90, what="both processes ready")
        for _ in range(20):  # new connections: the kernel shares them between the processes
            assert httpx.get(f"{base}/livez", timeout=30).status_code == 200
        scrapes = [httpx.get(f"{base}/metrics", timeout=30).text for _ in range(4)]
    finally:
        process.terminate()
        process.wait(timeout=30)
    for text in scrapes:
        counts = {
            sample.labels["route"]: sample.value
            for family in text_string_to_metric_families(text)
            if family.name == "distributor_http_request_duration_seconds"
            for sample in family.samples
            if sample.name.endswith("_count")
        }
        assert counts.get("/livez") == 20, text[:3000]
