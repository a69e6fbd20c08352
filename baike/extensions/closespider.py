"""Cluster-wide CloseSpider: one page budget for every node, and an end to the crawl.

Scrapy's CloseSpider counts pages per process and overshoots by whatever is in
flight; stock scrapy-redis nodes never stop at all. This extension replaces it
(``EXTENSIONS``: Scrapy's own set to None, so ``CLOSESPIDER_PAGECOUNT`` is not
acted on twice) and keeps its other conditions (timeout, item count, error count).

* ``CLOSESPIDER_PAGECOUNT`` is the budget of the whole cluster. The scheduler
  reserves one unit per request it leases, atomically in Redis, and a unit is spent
  when a page arrives or handed back when the request ends without one; so exactly
  the budget is downloaded. Once every unit is spent, every node closes with
  ``closespider_pagecount``, including nodes that start later.
* When the crawl has started, nothing is queued, leased or waiting as a seed on any
  node for ``CLOSESPIDER_FINISHED_GRACE`` seconds, every node closes with ``finished``.
"""

from __future__ import annotations

import logging
import time
from typing import TYPE_CHECKING, Any

from scrapy import signals
from scrapy.exceptions import NotConfigured
from scrapy.extensions.closespider import CloseSpider
from scrapy.utils.asyncio import create_looping_call
from scrapy_redis.connection import get_redis_from_settings

from baike.connection import REDIS_ERRORS
from baike.keys import CrawlKeys

if TYPE_CHECKING:
    from scrapy.crawler import Crawler

    # typing.Self requires Python 3.11
    from typing_extensions import Self

logger = logging.getLogger(__name__)


class ClusterCloseSpider(CloseSpider):
    """Scrapy's CloseSpider with a cluster-wide page budget and end-of-crawl detection."""

    def __init__(self, crawler: Crawler):
        try:
            super().__init__(crawler)
        except NotConfigured:
            # no per-process condition is set; the cluster conditions below still apply
            self.crawler = crawler
            self.task = self.task_no_item = None
            self.close_on = {"pagecount": 0, "pagecount_no_item": 0}
            self.counter = {}
            crawler.signals.connect(self.spider_closed, signal=signals.spider_closed)
        settings = crawler.settings
        self.page_budget = max(settings.getint("CLOSESPIDER_PAGECOUNT"), 0)
        self.finished_grace = settings.getfloat("CLOSESPIDER_FINISHED_GRACE", 3.0)
        self.poll_interval = settings.getfloat("CLOSESPIDER_POLL_INTERVAL", 0.2)
        self.server = get_redis_from_settings(settings)
        self.keys = CrawlKeys.for_spider(crawler.spidercls.name, settings)
        self._idle_since: float | None = None
        self._closing = False
        self._watch = create_looping_call(self._check_cluster)
        crawler.signals.connect(self.watch_cluster, signal=signals.spider_opened)

    @classmethod
    def from_crawler(cls, crawler: Crawler) -> Self:
        return cls(crawler)

    def page_count(self, response: Any, request: Any, spider: Any) -> None:
        """Only CLOSESPIDER_PAGECOUNT_NO_ITEM stays per process; the page budget is the cluster's."""
        self.counter["pagecount_since_last_item"] += 1
        no_item_limit = self.close_on["pagecount_no_item"]
        if no_item_limit and self.counter["pagecount_since_last_item"] >= no_item_limit:
            self._close_spider("closespider_pagecount_no_item")

    def watch_cluster(self, spider: Any) -> None:
        if self.page_budget:
            logger.info("Cluster-wide page budget: %d pages (CLOSESPIDER_PAGECOUNT)", self.page_budget)
        self._record_state(budget=self.page_budget)
        self._check_cluster()
        if not self._closing:
            # this node goes on crawling (a resume, a larger budget): the crawl has not ended
            self._clear_state("reason", "ended_at")
            self._watch.start(self.poll_interval, now=False)

    def spider_closed(self, spider: Any, reason: str = "") -> None:
        super().spider_closed(spider)
        if self._watch.running:
            self._watch.stop()
        try:
            pages = int(self.server.hget(self.keys.budget, "pages") or 0)
        except REDIS_ERRORS:
            return
        self.crawler.stats.set_value("baike/cluster/pages", pages)

    def _check_cluster(self) -> None:
        if self._closing:
            return
        try:
            if self._node_busy():
                # the end of the crawl cannot be near while this node works: one command
                self._idle_since = None
                self._check_budget(int(self.server.hget(self.keys.budget, "pages") or 0))
                return
            pages, waiting, leased, seeds, started = self._cluster_state()
        except REDIS_ERRORS as exc:
            logger.debug("Cluster state unavailable: %s", exc)
            return
        if self._check_budget(pages):
            return
        if waiting or leased or seeds or not started:
            self._idle_since = None
            return
        now = time.monotonic()
        self._idle_since = self._idle_since or now
        if now - self._idle_since >= self.finished_grace:
            logger.info("Nothing queued or in flight on any node for %.1f s: the crawl is finished", self.finished_grace)
            self._close_spider("finished")

    def _node_busy(self) -> bool:
        engine = self.crawler.engine
        scheduler = engine.scheduler
        if scheduler is None:
            return False
        return scheduler.has_pending_requests() or bool(engine.downloader.active)

    def _check_budget(self, pages: int) -> bool:
        """Close when the cluster's budget is spent; True when it is."""
        if not self.page_budget or pages < self.page_budget:
            return False
        logger.info("Cluster page budget spent: %d of %d pages", pages, self.page_budget)
        self._close_spider("closespider_pagecount")
        return True

    def _cluster_state(self) -> tuple[int, int, int, int, bool]:
        with self.server.pipeline(transaction=False) as pipe:
            pipe.hget(self.keys.budget, "pages")
            pipe.zcard(self.keys.requests)
            pipe.zcard(self.keys.leases)
            pipe.llen(self.keys.start_urls)
            pipe.exists(self.keys.started)
            pages, waiting, leased, seeds, started = pipe.execute()
        return int(pages or 0), waiting, leased, seeds, bool(started)

    def _close_spider(self, reason: str) -> None:
        if self._closing:
            return
        self._closing = True
        if reason in ("closespider_pagecount", "finished"):
            self._record_state(reason=reason, ended_at=time.time())
        super()._close_spider(reason)

    def _clear_state(self, *fields: str) -> None:
        try:
            self.server.hdel(self.keys.state, *fields)
        except REDIS_ERRORS as exc:
            logger.warning("Could not update the crawl state in %s: %s", self.keys.state, exc)

    def _record_state(self, **fields: Any) -> None:
        """Write the crawl's state where ``scrapy status`` finds it (hash ``baike:state``)."""
        try:
            self.server.hset(self.keys.state, mapping=fields)
        except REDIS_ERRORS as exc:
            logger.warning("Could not record the crawl state in %s: %s", self.keys.state, exc)
