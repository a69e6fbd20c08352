"""Scrapy's periodic stats line, with the cluster's pages beside the node's own.

Replaces ``scrapy.extensions.logstats.LogStats`` in ``EXTENSIONS``::

    Crawled 120 pages (at 60 pages/min), scraped 118 items (at 59 items/min);
    cluster: 242 pages (at 121 pages/min)

The cluster total is the one :class:`baike.extensions.clusterstats.ClusterStats`
last read back from Redis, so this line costs no Redis round trip of its own; with
ClusterStats disabled the line is Scrapy's.
"""

from __future__ import annotations

import logging
from typing import Any

from scrapy.extensions.logstats import LogStats

from baike.extensions.clusterstats import CLUSTER_STAT

logger = logging.getLogger(__name__)

CLUSTER_PAGES_STAT = CLUSTER_STAT % "pages"


class ClusterLogStats(LogStats):
    """LogStats whose line also reports the cluster's pages and pages/min."""

    cluster_pages: int | None = None
    cluster_rate: float = 0.0
    _cluster_prev: int | None = None

    def spider_opened(self, spider: Any) -> None:
        self._cluster_prev = None
        super().spider_opened(spider)

    def calculate_stats(self) -> None:
        super().calculate_stats()
        current = self.stats.get_value(CLUSTER_PAGES_STAT)
        if current is None:
            self.cluster_pages, self.cluster_rate = None, 0.0
            return
        # a node joining a running crawl starts from the total it finds, not from 0
        previous = current if self._cluster_prev is None else self._cluster_prev
        self.cluster_pages = int(current)
        self.cluster_rate = (self.cluster_pages - previous) * self.multiplier
        self._cluster_prev = self.cluster_pages

    def log(self, spider: Any) -> None:
        self.calculate_stats()
        message = (
            "Crawled %(pages)d pages (at %(pagerate)d pages/min), scraped %(items)d items (at %(itemrate)d items/min)"
        )
        args: dict[str, Any] = {
            "pages": self.pages,
            "pagerate": self.prate,
            "items": self.items,
            "itemrate": self.irate,
        }
        if self.cluster_pages is not None:
            message += "; cluster: %(cluster)d pages (at %(clusterrate)d pages/min)"
            args.update(cluster=self.cluster_pages, clusterrate=self.cluster_rate)
        logger.info(message, args, extra={"spider": spider})
