"""This node's own Scrapy stats on ``http://BAIKE_METRICS_BIND:BAIKE_METRICS_PORT/metrics``.

Off by default (``BAIKE_METRICS_PORT = 0``: ``NotConfigured``); the fleet's numbers
come from ``scrapy metrics``, this is for those who also scrape every node. The
server starts when the spider opens and stops when it closes. A port that cannot
be used (in use by another node on this machine) is one error line in the log and
the node crawls on without its endpoint: metrics never stop a crawl.
"""

from __future__ import annotations

import logging
import os
import socket
from typing import TYPE_CHECKING, Any

from prometheus_client import CollectorRegistry
from scrapy import signals
from scrapy.exceptions import NotConfigured

from baike.metrics.nodestats import NodeStatsCollector
from baike.metrics.serve import DEFAULT_BIND, MetricsPortError, serve, stop

if TYPE_CHECKING:
    from typing import Self
    from wsgiref.simple_server import WSGIServer

    from scrapy.crawler import Crawler

logger = logging.getLogger(__name__)


class NodeMetrics:
    """Serves this node's Scrapy stats for Prometheus (``EXTENSIONS``)."""

    def __init__(self, crawler: Crawler, port: int, bind: str = DEFAULT_BIND):
        self.crawler = crawler
        self.port = port
        self.bind = bind
        self.server: WSGIServer | None = None

    @classmethod
    def from_crawler(cls, crawler: Crawler) -> Self:
        port = crawler.settings.getint("BAIKE_METRICS_PORT", 0)
        if not port:
            # off by default: no message, so that Scrapy logs no warning for it
            raise NotConfigured
        extension = cls(crawler, port, crawler.settings.get("BAIKE_METRICS_BIND") or DEFAULT_BIND)
        crawler.signals.connect(extension.spider_opened, signal=signals.spider_opened)
        crawler.signals.connect(extension.spider_closed, signal=signals.spider_closed)
        return extension

    def node_id(self) -> str:
        """The node id its leases and record carry (the scheduler's), else host:pid."""
        scheduler = getattr(self.crawler.engine, "scheduler", None)
        return getattr(scheduler, "node_id", None) or f"{socket.gethostname()}:{os.getpid()}"

    def spider_opened(self, spider: Any = None) -> None:
        registry = CollectorRegistry()
        registry.register(NodeStatsCollector(self.crawler.stats, self.node_id))
        try:
            self.server, _ = serve(registry, self.port, self.bind)
        except MetricsPortError as exc:
            logger.error("Node metrics not served: %s", exc)
            return
        logger.info("Node metrics at http://%s:%d/metrics", self.bind, self.server.server_port)

    def spider_closed(self, spider: Any = None) -> None:
        if self.server is not None:
            stop(self.server)
            self.server = None
