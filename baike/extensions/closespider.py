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
  With revisits on (``BAIKE_REVISIT_AFTER`` > 0), a stored entry due within
  ``BAIKE_REVISIT_GRACE`` seconds (Redis time) counts as work: ``finished`` means nothing
  new and nothing due within the grace period.
* scrapy-redis's ``MAX_IDLE_TIME_BEFORE_CLOSE`` (or the spider's ``max_idle_time``): a
  node that has waited that many seconds with nothing to do while the crawl has nothing
  either (no seed waiting, nothing queued or leased on any node, started or not) closes
  with ``max_idle_time_before_close``; 0 waits forever, a negative number closes at the
  first such moment. The wait is this node's own, on its monotonic clock, as the grace is.
  scrapy-redis measures it in the spider's idle handler, from the last time seeds were
  waiting, and would close a node whose own queue ran dry while other nodes still hold
  the work its next requests come from; here the spider never closes on its own idle.

Only the leased scheduler (``SCHEDULER`` = :class:`~baike.frontier.scheduler.LeasedScheduler`
or a subclass) reserves budget units. With any other scheduler (Scrapy's own, for a
single node debugging the spider) ``CLOSESPIDER_PAGECOUNT`` is this node's own budget,
counted exactly as Scrapy's CloseSpider counts it; the node neither reads the cluster's
ledger nor writes the crawl's state, and its end of work is its own: seeds waiting,
and the Redis queue only when its scheduler shares one (scrapy-redis's).
"""

from __future__ import annotations

import logging
import time
from collections import Counter
from typing import TYPE_CHECKING, Any

from scrapy import signals
from scrapy.utils.asyncio import CallLaterResult, call_later, create_looping_call
from scrapy.utils.defer import deferred_from_coro
from scrapy.utils.misc import load_object
from scrapy_redis.scheduler import Scheduler as RedisScheduler

from baike.connection import REDIS_ERRORS, get_redis, redis_time
from baike.frontier.scheduler import LeasedScheduler, uses_leases
from baike.keys import CrawlKeys, shard_keys
from baike.revisit import RevisitPolicy, due_within

if TYPE_CHECKING:
    from typing import Self

    from scrapy.crawler import Crawler

logger = logging.getLogger(__name__)

LEASED_SCHEDULER = f"{LeasedScheduler.__module__}.{LeasedScheduler.__qualname__}"
# why a node closes after MAX_IDLE_TIME_BEFORE_CLOSE (Scrapy's reasons are named after their settings)
MAX_IDLE_REASON = "max_idle_time_before_close"
# what a node's scheduler adds to its stats for each request it schedules
ENQUEUED_STATS = ("scheduler/enqueued", "scheduler/enqueued/redis")
# Scrapy's CloseSpider conditions counted per process, as Scrapy counts them (CLOSESPIDER_<NAME>)
PER_PROCESS = ("itemcount", "errorcount", "pagecount_no_item", "timeout_no_item")


class ClusterCloseSpider:
    """Scrapy's CloseSpider with a cluster-wide page budget and end-of-crawl detection.

    Not a subclass of Scrapy's: its conditions are kept here, on Scrapy's signals and
    the engine's public ``close_spider_async``, so that every close goes through
    :meth:`close_spider` (which records the crawl's end) and nothing depends on the
    private state of Scrapy's extension.
    """

    def __init__(self, crawler: Crawler):
        self.crawler = crawler
        settings = crawler.settings
        self.page_budget = max(settings.getint("CLOSESPIDER_PAGECOUNT"), 0)
        # Scrapy's per-process conditions (0: off); the page budget is the cluster's
        self.close_on = {name: settings.getint(f"CLOSESPIDER_{name.upper()}") for name in PER_PROCESS}
        self.timeout = settings.getfloat("CLOSESPIDER_TIMEOUT")
        self.counter: Counter[str] = Counter()
        self.finished_grace = settings.getfloat("CLOSESPIDER_FINISHED_GRACE", 3.0)
        self.poll_interval = settings.getfloat("CLOSESPIDER_POLL_INTERVAL", 0.2)
        # seconds; the spider's max_idle_time, when it has one, wins (read when it opens)
        self.max_idle = settings.getint("MAX_IDLE_TIME_BEFORE_CLOSE", 0)
        self.server = get_redis(settings)
        self.keys = CrawlKeys.for_spider(crawler.spidercls.name, settings)
        # BAIKE_SHARDS: every frontier shard's keys (shard 0's alone without shards)
        self.shard_keys = shard_keys(crawler.spidercls.name, settings)
        # only the leased scheduler reserves the cluster's budget units and holds leases
        self.cluster_wide = uses_leases(settings)
        policy = RevisitPolicy.from_settings(settings)
        # revisits due within this many seconds keep the crawl open (None: revisits off)
        self.revisit_grace = policy.grace if policy.enabled and self.cluster_wide else None
        # scrapy-redis's schedulers keep the frontier in Redis; Scrapy's keeps it in memory
        # (SCHEDULER is this node's own setting, never data from Redis)
        self.shared_queue = issubclass(load_object(settings["SCHEDULER"]), RedisScheduler)
        self._idle_since: float | None = None
        # since when this node and the whole crawl have had nothing (MAX_IDLE_TIME_BEFORE_CLOSE)
        self._empty_since: float | None = None
        self._closing = False
        self._watch = create_looping_call(self._check_cluster)
        self._timers: list[Any] = []
        self._connect(crawler)

    @classmethod
    def from_crawler(cls, crawler: Crawler) -> Self:
        return cls(crawler)

    def _connect(self, crawler: Crawler) -> None:
        connect = crawler.signals.connect
        connect(self.watch_cluster, signal=signals.spider_opened)
        connect(self.spider_closed, signal=signals.spider_closed)
        connect(self.page_count, signal=signals.response_received)
        connect(self.item_scraped, signal=signals.item_scraped)
        if self.close_on["errorcount"]:
            connect(self.error_count, signal=signals.spider_error)

    # -- Scrapy's per-process conditions -------------------------------------------------

    def page_count(self, response: Any, request: Any, spider: Any) -> None:
        """CLOSESPIDER_PAGECOUNT_NO_ITEM is per process; the page budget is the cluster's.

        Without the leased scheduler there is no cluster budget: Scrapy's own count, per node.
        """
        self.counter["pagecount"] += 1
        self.counter["pagecount_since_last_item"] += 1
        if not self.cluster_wide and self.counter["pagecount"] == self.page_budget:
            self.close_spider("closespider_pagecount")
            return
        no_item_limit = self.close_on["pagecount_no_item"]
        if no_item_limit and self.counter["pagecount_since_last_item"] >= no_item_limit:
            self.close_spider("closespider_pagecount_no_item")

    def item_scraped(self, item: Any, spider: Any) -> None:
        self.counter["itemcount"] += 1
        self.counter["pagecount_since_last_item"] = 0
        self.counter["items_in_period"] += 1
        if self.counter["itemcount"] == self.close_on["itemcount"]:
            self.close_spider("closespider_itemcount")

    def error_count(self, failure: Any, response: Any, spider: Any) -> None:
        self.counter["errorcount"] += 1
        if self.counter["errorcount"] == self.close_on["errorcount"]:
            self.close_spider("closespider_errorcount")

    def _start_timers(self) -> None:
        """CLOSESPIDER_TIMEOUT and CLOSESPIDER_TIMEOUT_NO_ITEM, from the spider's opening."""
        if self.timeout:
            self._timers.append(call_later(self.timeout, self.close_spider, "closespider_timeout"))
        no_item = self.close_on["timeout_no_item"]
        if no_item:
            check = create_looping_call(self._count_items_produced)
            check.start(no_item, now=False)
            self._timers.append(check)
            logger.info("Spider will stop when no items are produced after %d seconds.", no_item)

    def _count_items_produced(self) -> None:
        if self.counter["items_in_period"]:
            self.counter["items_in_period"] = 0
            return
        no_item = self.close_on["timeout_no_item"]
        logger.info("Closing spider since no items were produced in the last %d seconds.", no_item)
        self.close_spider("closespider_timeout_no_item")

    def _stop_timers(self) -> None:
        for timer in self._timers:
            if isinstance(timer, CallLaterResult):
                timer.cancel()
            elif timer.running:
                timer.stop()
        self._timers.clear()

    # -- the cluster's conditions --------------------------------------------------------

    def watch_cluster(self, spider: Any) -> None:
        max_idle = getattr(spider, "max_idle_time", None)
        if isinstance(max_idle, int):
            self.max_idle = max_idle
        self._start_timers()
        self._log_budget()
        self._record_state(budget=self.page_budget)
        self._check_cluster()
        if not self._closing:
            # this node goes on crawling (a resume, a larger budget): the crawl has not ended
            self._clear_state("reason", "ended_at")
            self._watch.start(self.poll_interval, now=False)

    def spider_closed(self, spider: Any, reason: str = "") -> None:
        self._stop_timers()
        if self._watch.running:
            self._watch.stop()
        if not self.cluster_wide:
            return
        try:
            pages = self._pages()
        except REDIS_ERRORS:
            return
        self.crawler.stats.set_value("baike/cluster/pages", pages)

    def _log_budget(self) -> None:
        if not self.page_budget:
            return
        if self.cluster_wide:
            logger.info("Cluster-wide page budget: %d pages (CLOSESPIDER_PAGECOUNT)", self.page_budget)
            return
        logger.info(
            "Page budget: %d pages for this node alone (CLOSESPIDER_PAGECOUNT is per node with SCHEDULER %s;"
            " the cluster-wide budget needs %s)",
            self.page_budget,
            self.crawler.settings["SCHEDULER"],
            LEASED_SCHEDULER,
        )

    def _check_cluster(self) -> None:
        if self._closing:
            return
        try:
            if self._node_busy():
                # the end of the crawl cannot be near while this node works: one command
                self._idle_since = self._empty_since = None
                if self.cluster_wide:
                    self._check_budget(self._pages())
                return
            pages, waiting, leased, seeds, started = self._cluster_state() if self.cluster_wide else self._node_state()
        except REDIS_ERRORS as exc:
            logger.debug("Cluster state unavailable: %s", exc)
            return
        if self._check_budget(pages):
            return
        if waiting or leased or seeds or self._revisits_due():
            self._idle_since = self._empty_since = None
            return
        now = time.monotonic()
        self._empty_since = self._empty_since or now
        if not started:
            self._idle_since = None
        elif self._check_finished(now):
            return
        self._check_max_idle(now)

    def _revisits_due(self) -> bool:
        """Whether a stored entry is due within BAIKE_REVISIT_GRACE (only with revisits on)."""
        if self.revisit_grace is None:
            return False
        return due_within(self.server, self.keys, self.revisit_grace)

    def _check_finished(self, now: float) -> bool:
        """Close with ``finished`` once the started crawl has had nothing for the grace."""
        self._idle_since = self._idle_since or now
        if now - self._idle_since < self.finished_grace:
            return False
        logger.info(
            "Nothing queued or in flight %s for %.1f s: the crawl is finished", self._where, self.finished_grace
        )
        self.close_spider("finished")
        return True

    def _check_max_idle(self, now: float) -> None:
        """MAX_IDLE_TIME_BEFORE_CLOSE: close once this node waited that long with the crawl empty."""
        waited = now - (self._empty_since or now)
        if not self.max_idle or waited < self.max_idle:
            return
        logger.info(
            "Waited %.1f s with nothing to crawl (no seeds, nothing queued or leased %s): closing this node"
            " (MAX_IDLE_TIME_BEFORE_CLOSE=%d)",
            waited,
            self._where,
            self.max_idle,
        )
        self.close_spider(MAX_IDLE_REASON)

    @property
    def _where(self) -> str:
        return "on any node" if self.shared_queue else "on this node"

    def _node_busy(self) -> bool:
        engine = self.crawler.engine
        scheduler = engine.scheduler
        if scheduler is None:
            return False
        # requests held back by the cluster's rate are work: the crawl is not over
        waiting = getattr(scheduler, "waiting_for_rate", False)
        return scheduler.has_pending_requests() or bool(engine.downloader.active) or waiting

    def _check_budget(self, pages: int) -> bool:
        """Close when the cluster's budget is spent; True when it is (never without the leased
        scheduler: then Scrapy's page_count applies the budget, per node)."""
        if not self.cluster_wide or not self.page_budget or pages < self.page_budget:
            return False
        logger.info("Cluster page budget spent: %d of %d pages", pages, self.page_budget)
        self.close_spider("closespider_pagecount")
        return True

    def _pages(self) -> int:
        """Pages downloaded by the cluster: every shard's (one round trip)."""
        if len(self.shard_keys) == 1:
            return int(self.server.hget(self.keys.budget, "pages") or 0)
        with self.server.pipeline(transaction=False) as pipe:
            for keys in self.shard_keys:
                pipe.hget(keys.budget, "pages")
            return sum(int(pages or 0) for pages in pipe.execute())

    def _cluster_state(self) -> tuple[int, int, int, int, bool]:
        """Pages, queued entries, leases, seeds waiting (or, with shards, budget transfers
        pending: the crawl is not over while one is) and whether the crawl started."""
        with self.server.pipeline(transaction=False) as pipe:
            for keys in self.shard_keys:
                pipe.hget(keys.budget, "pages")
                pipe.zcard(keys.requests)
                pipe.zcard(keys.leases)
            # seeds wait in a list, a set or a sorted set (scrapy-redis's forms): any of them
            # exists only while it holds a seed
            pipe.exists(self.keys.start_urls)
            pipe.exists(self.keys.started)
            if len(self.shard_keys) > 1:
                pipe.hlen(self.keys.grants)
                for keys in self.shard_keys:
                    pipe.hlen(keys.returns)
            replies = pipe.execute()
        count = 3 * len(self.shard_keys)
        pages, waiting, leased = (sum(int(value or 0) for value in replies[at:count:3]) for at in range(3))
        seeds, started, *transfers = replies[count:]
        return pages, waiting, leased, seeds + sum(transfers), bool(started)

    def _node_state(self) -> tuple[int, int, int, int, bool]:
        """``_cluster_state`` of a node without the leased scheduler: no cluster pages and no
        leases; the Redis queue when its scheduler has one; started once it scheduled a request
        (or, with a Redis queue, once the crawl did)."""
        with self.server.pipeline(transaction=False) as pipe:
            pipe.exists(self.keys.start_urls)
            if self.shared_queue:
                pipe.zcard(self.keys.requests)
                pipe.exists(self.keys.started)
            seeds, *shared = pipe.execute()
        waiting, started = shared or (0, False)
        scheduled = any(self.crawler.stats.get_value(name) for name in ENQUEUED_STATS)
        return 0, waiting, 0, seeds, bool(started) or scheduled

    def close_spider(self, reason: str) -> None:
        """Close this node with ``reason``, once; a spent budget or a finished crawl is
        recorded as the crawl's end."""
        if self._closing:
            return
        self._closing = True
        if reason in ("closespider_pagecount", "finished"):
            self._record_end(reason)
        deferred_from_coro(self.crawler.engine.close_spider_async(reason=reason))

    def _clear_state(self, *fields: str) -> None:
        if not self.cluster_wide:
            return
        try:
            self.server.hdel(self.keys.state, *fields)
        except REDIS_ERRORS as exc:
            logger.warning("Could not update the crawl state in %s: %s", self.keys.state, exc)

    def _record_end(self, reason: str) -> None:
        """Record why and when the crawl ended; the time is Redis's clock, which ``scrapy
        status`` compares with the start of every node (all on Redis's clock) to tell a
        resumed crawl from an ended one."""
        if not self.cluster_wide:
            return
        try:
            ended_at = redis_time(self.server, self.keys.state)
        except REDIS_ERRORS as exc:
            logger.warning("Could not record the crawl state in %s: %s", self.keys.state, exc)
            return
        self._record_state(reason=reason, ended_at=ended_at)

    def _record_state(self, **fields: Any) -> None:
        """Write the crawl's state where ``scrapy status`` finds it (hash ``baike:state``); only
        a node of the cluster's budget does: a lone node's budget and end are its own."""
        if not self.cluster_wide:
            return
        try:
            # (the ignore: redis-py's hset takes a Mapping invariant in its key type, which no dict[str, Any] is)
            self.server.hset(self.keys.state, mapping=fields)  # type: ignore[arg-type]
        except REDIS_ERRORS as exc:
            logger.warning("Could not record the crawl state in %s: %s", self.keys.state, exc)
