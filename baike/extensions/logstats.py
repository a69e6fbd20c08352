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
    """LogStats whose line also reports the cluster's pages and pages/min.

    Only LogStats' public surface is used: its constructor, ``from_crawler``, its signal
    handlers (which start the periodic call of :meth:`log` and set the final per-minute
    stats) and :meth:`log`, replaced here. The counts come from the node's stats collector
    and the rates from this class's own previous counts, not from LogStats' attributes.
    """

    # (pages, items, cluster pages) at the last line; None before the first
    previous: tuple[int, int, int | None] | None = None

    def spider_opened(self, spider: Any) -> None:
        self.previous = None
        super().spider_opened(spider)

    def log(self, spider: Any) -> None:
        stats = self.stats
        pages = int(stats.get_value("response_received_count", 0))
        items = int(stats.get_value("item_scraped_count", 0))
        cluster = stats.get_value(CLUSTER_PAGES_STAT)
        cluster = None if cluster is None else int(cluster)
        # a node joining a running crawl starts the cluster's rate from the total it finds, not from 0
        last_pages, last_items, last_cluster = self.previous or (0, 0, cluster)
        self.previous = (pages, items, cluster)
        per_minute = 60.0 / self.interval
        message = (
            "Crawled %(pages)d pages (at %(pagerate)d pages/min), scraped %(items)d items (at %(itemrate)d items/min)"
        )
        args: dict[str, Any] = {
            "pages": pages,
            "pagerate": (pages - last_pages) * per_minute,
            "items": items,
            "itemrate": (items - last_items) * per_minute,
        }
        if cluster is not None:
            message += "; cluster: %(cluster)d pages (at %(clusterrate)d pages/min)"
            args.update(cluster=cluster, clusterrate=(cluster - (last_cluster or cluster)) * per_minute)
        logger.info(message, args, extra={"spider": spider})
