"""`scrapy metrics` scraped by a real Prometheus server during a 2-node crawl.

Prometheus is Debian's package (``scripts/setup.sh --tests`` installs it when it can);
without it the test skips, saying so. The server runs on a free port in a temporary
directory with a generated config that scrapes the exporter every second and loads the
documented rules (docs/monitoring/alerts.yml), their ``for:`` durations shortened.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import time
import urllib.parse
import urllib.request
from pathlib import Path

import pytest

from baike.keys import CrawlKeys
from tests.conftest import ROOT, free_port

KEYS = CrawlKeys.for_spider("baike")
RULES = ROOT / "docs" / "monitoring" / "alerts.yml"
PROMETHEUS = shutil.which("prometheus")

pytestmark = [
    pytest.mark.e2e,
    pytest.mark.skipif(
        PROMETHEUS is None,
        reason="prometheus is not installed (Debian: apt-get install prometheus;"
        " scripts/setup.sh --tests installs it as root)",
    ),
]


def wait_for(check, timeout: float, what: str, every: float = 0.5):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        result = check()
        if result:
            return result
        time.sleep(every)
    raise AssertionError(f"timed out after {timeout} s waiting until {what}")


class Prometheus:
    """A Prometheus server of this test: its own port, data directory and config."""

    def __init__(self, directory: Path, target: str):
        self.port = free_port()
        rules = re.sub(r"(?m)^(\s+for: )\S+$", r"\g<1>1s", RULES.read_text())  # the only change: short for:
        (directory / "rules.yml").write_text(rules)
        (directory / "prometheus.yml").write_text(
            "global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\n"
            "rule_files:\n  - rules.yml\n"
            f"scrape_configs:\n  - job_name: baike\n    static_configs:\n      - targets: ['{target}']\n"
        )
        self.log = (directory / "prometheus.log").open("w")
        self.process = subprocess.Popen(
            [
                PROMETHEUS,
                f"--config.file={directory / 'prometheus.yml'}",
                f"--storage.tsdb.path={directory / 'data'}",
                f"--web.listen-address=127.0.0.1:{self.port}",
            ],
            cwd=directory,
            stdout=self.log,
            stderr=subprocess.STDOUT,
        )

    def query(self, expr: str) -> list[dict]:
        url = f"http://127.0.0.1:{self.port}/api/v1/query?" + urllib.parse.urlencode({"query": expr})
        try:
            with urllib.request.urlopen(url, timeout=5) as answer:
                reply = json.load(answer)
        except OSError:
            return []
        assert reply["status"] == "success", reply
        return reply["data"]["result"]

    def value(self, expr: str) -> float | None:
        result = self.query(expr)
        return float(result[0]["value"][1]) if result else None

    def stop(self) -> None:
        self.process.terminate()
        self.process.wait(timeout=30)
        self.log.close()


@pytest.fixture()
def exporter(redis_server):
    """``scrapy metrics`` on a free port, judging nodes lost after 1 s of silence."""
    port = free_port()
    env = {key: value for key, value in os.environ.items() if key != "REDIS_URL"}
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "scrapy",
            "metrics",
            "--port",
            str(port),
            "-s",
            f"REDIS_URL={redis_server.url}",
            "-s",
            "CLUSTERSTATS_LOST_AFTER=1",
        ],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    line = process.stdout.readline()
    assert f"http://127.0.0.1:{port}/metrics" in line, line
    yield f"127.0.0.1:{port}"
    process.terminate()
    process.wait(timeout=10)
    process.stdout.close()


@pytest.fixture()
def prometheus(tmp_path, exporter):
    server = Prometheus(tmp_path, exporter)
    yield server
    server.stop()


def test_prometheus_sees_the_crawl_and_fires_the_node_lost_alert(
    redis_db, redis_server, replica_factory, node_factory, prometheus
) -> None:
    replica = replica_factory(2000, 7, "--latency-ms", "200")
    redis_db.lpush(KEYS.start_urls, replica.start_url())
    settings = (
        "CLOSESPIDER_PAGECOUNT=0",
        "CLUSTERSTATS_INTERVAL=0.3",
        "SCHEDULER_LEASE_SECONDS=3",
        "CONCURRENT_REQUESTS=4",
    )
    node_port = free_port()
    victim = node_factory(redis_server.url, replica.url, *settings, f"BAIKE_METRICS_PORT={node_port}")
    survivor = node_factory(redis_server.url, replica.url, *settings)

    wait_for(lambda: prometheus.value("baike_nodes_alive") == 2, 60, "Prometheus sees 2 nodes alive")
    first = wait_for(lambda: prometheus.value("baike_pages_total"), 30, "Prometheus has pages")
    wait_for(lambda: (prometheus.value("baike_pages_total") or 0) > first, 30, "baike_pages_total rises")
    assert prometheus.value('baike_crawl_state{status="running"}') == 1
    assert prometheus.value("baike_redis_up") == 1

    # the victim's own endpoint: its Scrapy stats
    with urllib.request.urlopen(f"http://127.0.0.1:{node_port}/metrics", timeout=10) as answer:
        text = answer.read().decode()
    assert re.search(r"^baike_scrapy_response_received_count_total\{node=\"[^\"]+\"\} [1-9]", text, re.M), text[:2000]

    victim.kill()
    victim.wait(timeout=10)
    wait_for(lambda: prometheus.value("baike_nodes_lost") == 1, 30, "the lost-node metric is 1")
    assert prometheus.value("baike_nodes_alive") == 1
    firing = wait_for(
        lambda: prometheus.query('ALERTS{alertname="BaikeNodeLost", alertstate="firing"}'),
        30,
        "the BaikeNodeLost alert fires",
    )
    assert firing[0]["metric"]["severity"] == "warning"
    assert survivor.process.poll() is None, "the survivor still crawls"
