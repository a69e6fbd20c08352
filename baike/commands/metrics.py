"""``scrapy metrics``: one Prometheus exporter for the whole crawl, read from Redis at scrape time."""

from __future__ import annotations

import logging
import sys
from typing import TYPE_CHECKING

from prometheus_client import CollectorRegistry
from scrapy.exceptions import UsageError

from baike.cli import CrawlCommand
from baike.metrics.fleet import FleetCollector
from baike.metrics.serve import DEFAULT_BIND, DEFAULT_PORT, MetricsPortError, serve, stop
from baike.status import CrawlDataError

if TYPE_CHECKING:
    import argparse


class Command(CrawlCommand):
    failure_prefix = "metrics"

    def syntax(self) -> str:
        return "[--port PORT] [--bind ADDRESS]"

    def short_desc(self) -> str:
        return "Serve the crawl's metrics for Prometheus (/metrics, read from Redis at every scrape)"

    def long_desc(self) -> str:
        return (
            "Serves http://ADDRESS:PORT/metrics (default 127.0.0.1:9410) until stopped: the crawl at "
            "REDIS_URL as Prometheus metrics (pages, items, errors, budget, frontier, leases, dead letters, "
            "fingerprints, nodes, shared rate), read from Redis in a few round trips at every scrape. "
            "When Redis cannot be reached the answer is baike_redis_up 0. One exporter serves the whole "
            "fleet; see docs/monitoring.md."
        )

    def add_options(self, parser: argparse.ArgumentParser) -> None:
        super().add_options(parser)
        parser.add_argument(
            "--port", type=int, default=DEFAULT_PORT, help=f"TCP port (default {DEFAULT_PORT}; 0: any free one)"
        )
        parser.add_argument("--bind", default=DEFAULT_BIND, help=f"address to listen on (default {DEFAULT_BIND})")

    def run(self, args: list[str], opts: argparse.Namespace) -> None:
        if args:
            raise UsageError("metrics takes no arguments")
        try:
            server = self.connect()
        except CrawlDataError as exc:
            self.fail(str(exc))
            return
        collector = FleetCollector(
            server,
            self.keys,
            budget=self.settings.getint("CLOSESPIDER_PAGECOUNT"),
            lost_after=self.settings.getfloat("CLUSTERSTATS_LOST_AFTER", 10.0),
        )
        registry = CollectorRegistry()
        registry.register(collector)
        try:
            httpd, thread = serve(registry, opts.port, opts.bind)
        except MetricsPortError as exc:
            self.fail(str(exc))
            return
        self._log_to_stderr()
        print(
            f"metrics: serving http://{opts.bind}:{httpd.server_port}/metrics for the crawl at {self.where}",
            flush=True,
        )
        try:
            while thread.is_alive():
                thread.join(1.0)
        except KeyboardInterrupt:
            pass
        finally:
            stop(httpd)

    @staticmethod
    def _log_to_stderr() -> None:
        """The exporter's own lines (Redis lost, Redis back) on stderr, one line each
        (Scrapy's logging is off for commands)."""
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(logging.Formatter("metrics: %(message)s"))
        log = logging.getLogger("baike.metrics")
        log.addHandler(handler)
        log.setLevel(logging.INFO)
        log.propagate = False
