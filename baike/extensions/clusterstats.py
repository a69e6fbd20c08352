"""Cluster-wide stats in Redis: one record per node and counters shared by all nodes.

scrapy-redis's RedisStatsCollector moves every node's stats into one shared hash:
each node overwrites ``start_time`` (the cluster then "starts" when its last node
did), and its ``get_value`` runs ``int()`` on every value, which crashes LogStats as
soon as a stat is a float. This extension keeps Scrapy's own in-memory stats on each
node and publishes from them instead:

* ``baike:nodes``: node id -> JSON record ``{node, host, pid, started, seen, pages,
  items, errors, pages_per_min, finished, reason, interval, rate_key}``; a node only
  ever writes its own record. ``rate_key`` names the rate hash of the node's
  politeness key (None without the leased scheduler), so that readers find the rate
  hashes without a SCAN of the database.
* ``baike:stats``: the counters ``pages``, ``items`` and ``errors`` of the cluster and
  ``node/<node id>/<counter>`` of each node, always raised by the node's delta since
  its last write (HINCRBY), so no node overwrites another's count; ``start_time`` is
  set by the first node only, ``finish_time`` by each node that closes, and
  ``node/<node id>/start_time`` / ``finish_time`` by that node.
* ``baike:timeline``: a capped list of ``{node, t, pages}`` samples for the chart of
  the HTML report.

Everything goes in one MULTI/EXEC round trip every ``CLUSTERSTATS_INTERVAL`` seconds
and once more at close. Every time written (``started``, ``seen``, ``finished``, the
``*_time`` stats, the timeline's ``t``) is Redis's clock, not this machine's, so that
readers on other machines compare like with like: the node measures the offset of
Redis's ``TIME`` from its own clock once when it opens, and again with a ``TIME`` in
every write's transaction, and stamps with its clock plus the last offset.

A Redis error is logged and the writes back off (the reactor must not wait on a dead
Redis every two seconds); the deltas are carried over to the next write that
succeeds, so no count is lost.
"""

from __future__ import annotations

import json
import logging
import os
import socket
import time
from collections import deque
from typing import TYPE_CHECKING, Any

from redis.exceptions import RedisError
from scrapy import signals
from scrapy.exceptions import NotConfigured
from scrapy.utils.asyncio import create_looping_call

from baike.connection import RedisClock, get_redis, pipelines_time
from baike.frontier.scheduler import LeasedScheduler
from baike.keys import CrawlKeys

if TYPE_CHECKING:
    from typing import Self

    from redis import Redis
    from scrapy.crawler import Crawler

logger = logging.getLogger(__name__)

COUNTERS = ("pages", "items", "errors")

# KEEP_EARLIEST: set a hash field to a time unless it already holds an earlier one, so the
# cluster's start is its earliest node's, whichever node writes first.
# KEYS[1] stats hash   ARGV[1] field   ARGV[2] time (Redis seconds)
KEEP_EARLIEST = """
local held = tonumber(redis.call('HGET', KEYS[1], ARGV[1]) or '')
if not held or tonumber(ARGV[2]) < held then redis.call('HSET', KEYS[1], ARGV[1], ARGV[2]) end
return 1
"""
PAGES_STAT = "response_received_count"
ITEMS_STAT = "item_scraped_count"
DEFAULT_ERROR_STATS = ("log_count/ERROR", "baike/requests/failed")
# Longest pause between two writes while Redis is unreachable, in seconds.
MAX_BACKOFF = 30.0
# Local stats holding the cluster totals last read back from Redis (for the log line).
CLUSTER_STAT = "clusterstats/%s"


def node_field(node: str, name: str) -> str:
    """The ``baike:stats`` field of one node's counter or timestamp."""
    return f"node/{node}/{name}"


class ClusterStats:
    """Publishes this node's record and counter deltas to Redis (``EXTENSIONS``)."""

    def __init__(
        self,
        crawler: Crawler,
        server: Redis,
        keys: CrawlKeys,
        interval: float = 2.0,
        timeline_length: int = 20_000,
        rate_window: float = 60.0,
        error_stats: tuple[str, ...] = DEFAULT_ERROR_STATS,
    ):
        self.crawler = crawler
        self.server = server
        self._keep_earliest = server.register_script(KEEP_EARLIEST)
        self._start_kept = False
        self.keys = keys
        self.interval = interval
        self.timeline_length = max(timeline_length, 0)
        self.rate_window = rate_window
        self.error_stats = error_stats
        self.node_id = f"{socket.gethostname()}:{os.getpid()}"
        # Redis's clock, as last measured; the node's start is stamped again when it opens
        self.clock = RedisClock()
        self.started = self.clock.now()
        self._published = dict.fromkeys(COUNTERS, 0)
        self._samples: deque[tuple[float, int]] = deque()
        self._last_sampled: int | None = None
        self._down_since: float | None = None
        self._retry_at = 0.0
        self._loop = create_looping_call(self._write)

    @classmethod
    def from_crawler(cls, crawler: Crawler) -> Self:
        settings = crawler.settings
        if not settings.getbool("CLUSTERSTATS_ENABLED", True):
            raise NotConfigured("CLUSTERSTATS_ENABLED is off")
        interval = settings.getfloat("CLUSTERSTATS_INTERVAL", 2.0)
        if interval <= 0:
            raise NotConfigured("CLUSTERSTATS_INTERVAL must be positive")
        extension = cls(
            crawler,
            server=get_redis(settings),
            keys=CrawlKeys.for_spider(crawler.spidercls.name, settings),
            interval=interval,
            timeline_length=settings.getint("CLUSTERSTATS_TIMELINE_LENGTH", 20_000),
            rate_window=settings.getfloat("CLUSTERSTATS_RATE_WINDOW", 60.0),
            error_stats=tuple(settings.getlist("CLUSTERSTATS_ERROR_STATS", list(DEFAULT_ERROR_STATS))),
        )
        crawler.signals.connect(extension.spider_opened, signal=signals.spider_opened)
        crawler.signals.connect(extension.spider_closed, signal=signals.spider_closed)
        return extension

    # -- signal handlers ----------------------------------------------------------------

    def spider_opened(self, spider: Any = None) -> None:
        self.node_id = self._scheduler_node_id() or self.node_id
        self._measure_clock()
        self.started = self.clock.now()
        self._write()
        self._loop.start(self.interval, now=False)

    def spider_closed(self, spider: Any = None, reason: str = "") -> None:
        if self._loop.running:
            self._loop.stop()
        self._write(finished=self.clock.now(), reason=reason or "unknown")

    # -- internals ----------------------------------------------------------------------

    def _measure_clock(self) -> None:
        """Take Redis's clock before the first timestamp; an unreachable Redis leaves the
        last offset (the writes then fail and back off anyway, and measure again)."""
        try:
            self.clock.measure(self.server, self.keys.stats)
        except RedisError as exc:
            logger.debug("Redis's clock not read (%s); stamping with the last offset", exc)

    def _scheduler_node_id(self) -> str | None:
        # the scheduler's id is the one its leases carry, so status can match them
        scheduler = getattr(self.crawler.engine, "scheduler", None)
        if isinstance(scheduler, LeasedScheduler):
            return scheduler.node_id
        return None

    def _rate_key(self) -> str | None:
        """The rate hash of this node's politeness key, from the leased scheduler's queue."""
        scheduler = getattr(self.crawler.engine, "scheduler", None)
        if isinstance(scheduler, LeasedScheduler):
            return getattr(getattr(scheduler, "queue", None), "rate_key", None)
        return None

    def counts(self) -> dict[str, int]:
        """This node's pages, items and errors so far, from its own stats."""
        stats = self.crawler.stats
        return {
            "pages": int(stats.get_value(PAGES_STAT, 0) or 0),
            "items": int(stats.get_value(ITEMS_STAT, 0) or 0),
            "errors": sum(int(stats.get_value(name, 0) or 0) for name in self.error_stats),
        }

    def pages_per_min(self, now: float, pages: int) -> float:
        """Pages per minute over the last ``rate_window`` seconds (less right after start)."""
        self._samples.append((now, pages))
        while len(self._samples) > 2 and self._samples[1][0] <= now - self.rate_window:
            self._samples.popleft()
        since, before = self._samples[0]
        elapsed = now - since
        return round((pages - before) * 60.0 / elapsed, 1) if elapsed > 0 else 0.0

    def record(self, now: float, counts: dict[str, int], finished: float | None, reason: str | None) -> dict[str, Any]:
        return {
            "node": self.node_id,
            "host": socket.gethostname(),
            "pid": os.getpid(),
            "started": self.started,
            "seen": now,
            **counts,
            "pages_per_min": self.pages_per_min(now, counts["pages"]),
            "finished": finished,
            "reason": reason,
            "interval": self.interval,
            "rate_key": self._rate_key(),
        }

    def _write(self, finished: float | None = None, reason: str | None = None) -> None:
        # while Redis is down, writes back off (each failure may block the reactor for
        # a connect timeout); the last one, at close, is always tried
        if finished is None and time.monotonic() < self._retry_at:
            return
        now = self.clock.now()
        counts = self.counts()
        deltas = {name: counts[name] - self._published[name] for name in COUNTERS}
        record = self.record(now, counts, finished, reason)
        sample = self.timeline_length > 0 and (counts["pages"] != self._last_sampled or finished is not None)
        try:
            totals = self._send(record, deltas, finished, sample=sample)
        except RedisError as exc:
            self._failed(exc)
            return
        if self._down_since is not None:
            logger.info("Cluster stats are written to Redis again")
            self._down_since = None
        self._published = counts
        if sample:
            self._last_sampled = counts["pages"]
        for name, total in zip(COUNTERS, totals, strict=True):
            self.crawler.stats.set_value(CLUSTER_STAT % name, int(total))

    def _send(self, record: dict[str, Any], deltas: dict[str, int], finished: float | None, sample: bool) -> list[Any]:
        """One MULTI/EXEC round trip; returns the cluster totals after the increments.

        The transaction ends with a ``TIME``, which measures Redis's clock for the
        next write's timestamps.
        """
        node, stats = self.node_id, self.keys.stats
        with self.server.pipeline(transaction=True) as pipe:
            for name in COUNTERS:
                pipe.hincrby(stats, name, deltas[name])
            for name in COUNTERS:
                pipe.hincrby(stats, node_field(node, name), deltas[name])
            pipe.hset(self.keys.nodes, node, json.dumps(record))
            pipe.hsetnx(stats, node_field(node, "start_time"), self.started)
            if finished is not None:
                pipe.hset(stats, mapping={"finish_time": finished, node_field(node, "finish_time"): finished})
            if sample:
                point = {"node": node, "t": round(record["seen"], 3), "pages": record["pages"]}
                pipe.rpush(self.keys.timeline, json.dumps(point))
                pipe.ltrim(self.keys.timeline, -self.timeline_length, -1)
            timed = pipelines_time(self.server)
            if timed:
                pipe.time()
            before = time.time()
            replies = pipe.execute()
            if timed:
                self.clock.update(replies[-1], before, time.time())
        if not timed:
            self.clock.measure(self.server, stats)
        if not self._start_kept:
            self._keep_earliest(keys=[stats], args=["start_time", self.started])
            self._start_kept = True
        return replies[: len(COUNTERS)]

    def _failed(self, exc: Exception) -> None:
        now = time.monotonic()
        if self._down_since is None:
            self._down_since = now
            logger.warning(
                "Cluster stats not written to %s (%s); retrying with back-off, counts are kept",
                self.keys.stats,
                exc,
            )
        else:
            logger.debug("Cluster stats still not written to Redis: %s", exc)
        self._retry_at = now + min(max(now - self._down_since, self.interval), MAX_BACKOFF)
