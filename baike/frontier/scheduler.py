"""scrapy-redis's Scheduler with leases, batches and a cluster-wide page budget (``SCHEDULER``).

What it changes from the stock scheduler, and why:

* Requests are taken in batches and leased (see :mod:`baike.frontier.queue`), so a
  node that dies loses nothing; leases are extended by a heartbeat while the node
  lives and handed back when it closes.
* New requests are buffered and sent with the dupefilter check and the settling
  of finished leases in one atomic round trip, instead of two per link.
* Nothing is deleted when a node closes: the frontier and the fingerprints belong
  to the whole cluster. A fresh crawl is the explicit ``scrapy reset`` operation, which
  scrapy-redis's ``SCHEDULER_FLUSH_ON_START`` runs as the first node of a crawl starts
  (see :mod:`baike.fresh`): before its dupefilter records the crawl's layout.
* A lost Redis connection is logged once, retried with back-off, and never loses
  buffered requests or acknowledgements. A flush that failed is resent as it was,
  under the same call id, before anything newer: if Redis had applied it and only
  the reply was lost, the resend changes nothing (see :mod:`baike.frontier.scripts`).
  While Redis is out of reach the node hands out no more work; when it is back, the
  leases that expired meanwhile (and may be another node's now) are dropped, not
  downloaded twice, and acknowledgements of them are refused and counted
  (``baike/leases/stale_acks``).
* Behind a Sentinel ``REDIS_URL`` the client follows a failover by itself; when the
  first command after an outage reached another master, the node says so in one line
  (instead of "Redis is back"), records it for ``scrapy status`` (see
  :mod:`baike.failover`) and forgets its known-fingerprint cache: the new master may
  lack the last writes of the old one (replication is asynchronous), and a fingerprint
  it lacks must reach Redis again when its page is redone. A failover may also lose what
  a page wrote before its acknowledgement reaches the new master: each acknowledgement
  names the page's stored records, and each flush the node's last confirmed flush; the
  script settles a lease only if Redis holds both, and otherwise the page is done again
  (see :meth:`settle` and :meth:`_lost_writes`).
* With ``REDIS_WAIT_REPLICAS`` a flush is confirmed only once that many replicas hold it
  (``WAIT``, see :class:`baike.connection.ReplicaWait`): a flush whose ``WAIT`` failed is
  resent under its call id, so a failover loses no flush this node counts as done.
"""

from __future__ import annotations

import importlib
import logging
import os
import secrets
import socket
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from itertools import count
from typing import TYPE_CHECKING, Any

from redis.cluster import RedisCluster
from redis.crc import key_slot
from redis.exceptions import RedisError
from scrapy import signals
from scrapy.utils.asyncio import create_looping_call
from scrapy.utils.misc import load_object
from scrapy_redis.scheduler import Scheduler

from baike.connection import REDIS_ERRORS, get_redis, replica_wait, slot_time
from baike.errors import NodeRefused
from baike.failover import Failover, FailoverWatch, redis_failover
from baike.fresh import flush_at_start, log_flush_at_start, release_flush_guard
from baike.frontier.bloom import bloom_key
from baike.frontier.failures import FailedRequests
from baike.frontier.known import KnownFingerprints
from baike.frontier.queue import (
    LEASE_META_KEY,
    MARK,
    Answers,
    PayloadError,
    Pushed,
    Taken,
    handle_shard,
    new_call_id,
)
from baike.frontier.shards import ShardSplit, Transfers, record_shards, wanted_split
from baike.keys import CrawlKeys, shard_count, shard_keys
from baike.revisit import RevisitPolicy, Revisits
from baike.scrapyapi import wake_engine
from baike.status import redacted
from baike.urls import canonicalize, is_alias_form, normalize_origin

if TYPE_CHECKING:
    from typing import Self

    from redis import Redis
    from scrapy import Request, Spider
    from scrapy.crawler import Crawler

logger = logging.getLogger(__name__)

# the lines a flush logs for acknowledgements Redis did not settle (count, of how many sent)
UNSTORED_WARNING = (
    "Redis lacked what %d of %d acknowledged pages stored (records, or links of an earlier flush:"
    " a failover lost them): their requests went back to the frontier, to be done again"
)
STALE_WARNING = (
    "Redis refused %d of %d acknowledgements: their leases had expired and went to other nodes"
    " (this node was cut off or stalled longer than SCHEDULER_LEASE_SECONDS), or a failover lost them"
)

# A flush names each request's dupefilter bucket by a 2-byte index (see PUSH_AND_ACK).
MAX_FLUSH_SIZE = 0xFFFF
# Request meta key of a request that is never downloaded: its fingerprint is only recorded
# as seen, in the next flush (another URL form of a page just parsed). Never stored.
SEEN_ONLY_META_KEY = "_baike_seen_only"
# Meta key of a request yielded by a leased page's callback: the lease it descends
# from, until the request reaches the scheduler (never stored: it starts with "_").
# Set by the acknowledgement middleware (baike.frontier.acks).
PARENT_META_KEY = "_baike_parent"
# How to push a seed, by the Redis type of the seed key (for the wrong-type message).
SEED_COMMANDS = {"list": "LPUSH", "set": "SADD", "zset": "ZADD"}


@dataclass(slots=True)
class _Flush:
    """One flush's requests and acknowledgements, kept as they are until Redis took them."""

    call_id: str
    pushes: list[tuple[str | None, bytes | None, int, str]] = field(default_factory=list)
    acks: list[tuple[str, bool, str]] = field(default_factory=list)
    # the known-fingerprint cache keys of the filtered pushes
    keys: list[int] = field(default_factory=list)
    # push index -> the lease whose request that push replaces (a retry or redirect)
    replaces: dict[int, str] = field(default_factory=dict)
    # the host's answers since the last flush, for the shared rate
    answers: Answers = field(default_factory=Answers)
    # with shards: the numbers of the flush's calls (see _plan) Redis confirmed
    done: set[int] = field(default_factory=set)


@dataclass(slots=True)
class _ShardCall:
    """One script call of a flush over shards: pushes (their indices in the flush) and acks."""

    shard: int
    pushes: list[int] = field(default_factory=list)
    acks: list[tuple[str, bool, str]] = field(default_factory=list)
    replaces: dict[int, str] = field(default_factory=dict)
    answers: bool = False


def uses_leases(settings: Any) -> bool:
    """Whether this node's ``SCHEDULER`` is the leased scheduler (or a subclass).

    The class named comes from the node's own settings (settings.py, ``-s``), never
    from anything read from Redis, a seed or a page.
    """
    return issubclass(load_object(settings["SCHEDULER"]), LeasedScheduler)


def records_checkable(server: Any, keys: CrawlKeys) -> bool:
    """Whether a flush can check the stored records in its script: always on one Redis; on a
    Redis Cluster only when the items hash shares the frontier's slot (its default name)."""
    if not isinstance(server, RedisCluster):
        return True
    return bool(key_slot(keys.items.encode()) == key_slot(keys.requests.encode()))


def make_node_id() -> str:
    """A node id unique across machines and restarts: ``host:pid:random``."""
    return f"{socket.gethostname()}:{os.getpid()}:{secrets.token_hex(2)}"


class LeasedScheduler(Scheduler):  # type: ignore[misc]  # scrapy-redis is untyped
    """Shared frontier scheduler; every node of a crawl runs one."""

    def __init__(self, server: Redis, crawler: Crawler, **kwargs: Any):
        super().__init__(server, persist=True, **kwargs)
        settings = crawler.settings
        self.crawler = crawler
        self.stats = crawler.stats
        self.node_id = make_node_id()
        self.batch_size = settings.getint("SCHEDULER_BATCH_SIZE", 8)
        self.flush_size = settings.getint("SCHEDULER_FLUSH_SIZE", 4096)
        self.flush_interval = settings.getfloat("SCHEDULER_FLUSH_INTERVAL", 0.5)
        # a flush goes as soon as one shard's new requests reach this many (see _count_push)
        self.flush_shard_size = settings.getint("SCHEDULER_FLUSH_SHARD_SIZE", 256)
        if not 0 < self.flush_size <= MAX_FLUSH_SIZE or self.flush_interval <= 0:
            raise ValueError(
                f"SCHEDULER_FLUSH_SIZE must be 1 to {MAX_FLUSH_SIZE} and SCHEDULER_FLUSH_INTERVAL above 0"
                f" (got {self.flush_size} and {self.flush_interval})"
            )
        if not 0 < self.flush_shard_size <= MAX_FLUSH_SIZE:
            raise ValueError(f"SCHEDULER_FLUSH_SHARD_SIZE must be 1 to {MAX_FLUSH_SIZE} (got {self.flush_shard_size})")
        self.lease_seconds = settings.getfloat("SCHEDULER_LEASE_SECONDS", 60.0)
        self.idle_poll = settings.getfloat("SCHEDULER_IDLE_POLL", 0.2)
        self.heartbeat_interval = min(settings.getfloat("SCHEDULER_HEARTBEAT_INTERVAL", 5.0), self.lease_seconds / 3)
        self.page_budget = max(settings.getint("CLOSESPIDER_PAGECOUNT"), 0)
        self.mirror = normalize_origin(settings.get("BAIKE_MIRROR"))
        self.started_at = time.time()
        # leased to this node: buffered (not yet handed to the engine) and active
        self._buffer: deque[tuple[str, Request]] = deque()
        self._active: set[str] = set()
        # the errback of every request handed out: settles the lease of one that ends without a page
        self.failures = FailedRequests(self.settle, crawler.stats, settings.getlist("RETRY_HTTP_CODES"))
        self._pushes: list[tuple[str | None, bytes | None, int, str]] = []
        # fingerprints this node knows are in the shared dupefilter (a subset of it)
        self._known = KnownFingerprints(settings.getint("SCHEDULER_KNOWN_FINGERPRINTS", 1_000_000))
        # the cache keys of the filtered requests in _pushes, added to _known once flushed
        self._push_keys: list[int] = []
        self._replaces: dict[int, str] = {}
        self._answers = Answers()
        # the cluster cools down (Baike pushed back) until then, on this node's monotonic clock
        self._paused_until = 0.0
        self.first_cooldown = max(settings.getfloat("BAIKE_COOLDOWN", 5.0), 0.0)
        self._pages: set[str] = set()
        self._acks: list[tuple[str, bool, str]] = []
        # lease -> the URLs of the records its page stored, until the flush carrying its ack
        # is confirmed: Redis settles the lease only if it holds them (see settle)
        self._records: dict[str, tuple[str, ...]] = {}
        self._next_take = 0.0
        # the last take found the cluster's rate out of tokens (or cooling down)
        self._rate_limited = False
        # a flush sent but not confirmed: resent as it is, under its call id, before any other
        self._unconfirmed: _Flush | None = None
        self._call_numbers = count(1)
        self._call_prefix = new_call_id()
        # the call id of the next take: kept until a take is confirmed, so that the
        # take after a lost reply replays it instead of leasing more
        self._take_call = self._next_call_id()
        self._seed_key_warned = False
        self._redis_down_since: float | None = None
        self._retry_at = 0.0
        self._loops: list[Any] = []
        self.keys = CrawlKeys.for_spider(crawler.spidercls.name, settings)
        self._checks_records = records_checkable(server, self.keys)
        # shard -> the id of this node's last push call Redis confirmed there: the next call
        # names it, and Redis trusts none of its acks unless it holds that call (see _lost_writes)
        self._confirmed_calls: dict[int, str] = {}
        # BAIKE_SHARDS: the frontier shards (see baike.frontier.shards), shard 0 the crawl's own
        self.shards = shard_count(settings)
        self.shard_keys = shard_keys(crawler.spidercls.name, settings)
        # the crawl's fingerprint split over the shards (recorded by its first node: _record_shards)
        self.split = ShardSplit(1, ())
        self._transfers: Transfers | None = None
        self._take_shard = 0
        # new requests buffered per shard since the last flush (see _count_push)
        self._shard_pushes = [0] * self.shards
        self._next_rebalance = 0.0
        # with shards: the acks of the last flush, sent with the next one (see _hold_acks)
        self._held_acks: list[tuple[str, bool, str]] = []
        self._held_fenced: list[tuple[tuple[str | None, bytes | None, int, str], str]] = []
        self._failover = FailoverWatch(server, self.keys, self.node_id)
        # revisits of stored entries (BAIKE_REVISIT_AFTER > 0): due ones are moved into the
        # frontier before a take, at most once per second per node
        policy = RevisitPolicy.from_settings(settings)
        self.revisits = Revisits(server, self.keys, policy) if policy.enabled else None
        self._next_promote = 0.0
        self._replica_wait = replica_wait(server, settings)
        self.flush_on_start = settings.getbool("SCHEDULER_FLUSH_ON_START")
        if self.flush_on_start:
            self._flush_at_start()
        self._record_shards(wanted_split(settings))
        # built here, not in open(), as Scrapy's own scheduler does: a node that cannot
        # agree with the crawl's dupefilter is refused before its engine opens
        self.df = load_object(self.dupefilter_cls).from_crawler(crawler)
        # list the requests Redis filters as duplicates while the dupefilter logs them
        self._df_logs_all = bool(getattr(self.df, "debug", False))
        # told of each request of a leased page once it is handled here (count_children)
        self._child_arrived: Callable[[str], None] | None = None

    @classmethod
    def from_crawler(cls, crawler: Crawler) -> Self:
        # every class and module loaded here and in open() is named by the node's own
        # settings, never by anything read from Redis, a seed or a page
        settings = crawler.settings
        kwargs: dict[str, Any] = {}
        for name, setting in (
            ("queue_key", "SCHEDULER_QUEUE_KEY"),
            ("queue_cls", "SCHEDULER_QUEUE_CLASS"),
            ("dupefilter_cls", "DUPEFILTER_CLASS"),
            ("serializer", "SCHEDULER_SERIALIZER"),
        ):
            if settings.get(setting):
                kwargs[name] = settings.get(setting)
        if isinstance(kwargs.get("serializer"), str):
            kwargs["serializer"] = importlib.import_module(kwargs["serializer"])
        return cls(server=get_redis(settings), crawler=crawler, **kwargs)

    # -- Scrapy's scheduler interface ---------------------------------------------------

    def open(self, spider: Spider) -> None:
        self.spider = spider
        self.queues = [
            load_object(self.queue_cls)(
                server=self.server, spider=spider, key=keys.requests, serializer=self.serializer
            )
            for keys in self.shard_keys
        ]
        if self.shards > 1:
            for shard, queue in enumerate(self.queues):
                queue.use_shard(shard, self.split)
        self.queue = self.queues[0]
        self.crawler.signals.connect(self.response_received, signal=signals.response_received)
        try:
            waiting = sum(len(queue) for queue in self.queues)
        except REDIS_ERRORS as exc:
            self._redis_failed(exc)
            waiting = 0
        if waiting:
            logger.info("Resuming crawl (%d requests in the shared frontier)", waiting)
        logger.info("Node %s joined the crawl at %s", self.node_id, self.where)
        self._start_loop(self._heartbeat, self.heartbeat_interval)
        self._start_loop(self._poll_when_idle, self.idle_poll)
        self._start_loop(self._flush, self.flush_interval)

    def close(self, reason: str) -> None:
        for loop in self._loops:
            if loop.running:
                loop.stop()
        self._flush()
        if self._held_acks and self._unconfirmed is None:
            # with shards, the acks held by the flush just sent
            self._flush()
        self._release_flush_guard()
        leased = [request_id for request_id, _ in self._buffer] + sorted(self._active)
        self._buffer.clear()
        self._active.clear()
        self.failures.clear()
        try:
            released = sum(
                self.queues[shard].release(self.node_id, part) for shard, part in self._by_shard(leased).items()
            )
        except REDIS_ERRORS as exc:
            logger.error(
                "Redis unreachable at close (%s): %d leases will return to the frontier when they expire in %.0f s",
                exc,
                len(leased),
                self.lease_seconds,
            )
            return
        if released:
            logger.info("Handed %d untouched requests back to the shared frontier", released)
        self._inc("baike/frontier/released", released)

    @property
    def where(self) -> str:
        """REDIS_URL without its password, for log lines."""
        return redacted(self.crawler.settings.get("REDIS_URL") or "redis://127.0.0.1:6379/0")

    def has_pending_requests(self) -> bool:
        return bool(self._buffer or self._pushes or self._unconfirmed or self._held_acks)

    @property
    def waiting_for_rate(self) -> bool:
        """Work is queued for this node, held back by the cluster's rate (or a cool-down)."""
        return self.cooling_down or (self._rate_limited and time.monotonic() < self._next_take)

    @property
    def cooling_down(self) -> bool:
        """Whether the cluster is pausing because Baike pushed back (captcha, Retry-After)."""
        return time.monotonic() < self._paused_until

    def cap_rate(self, rate: float, why: str) -> None:
        """Cap the cluster's rate at ``rate`` requests/s, for every node (or set one here);
        with shards each shard's part of it (``rate`` times its part of the fingerprints)."""
        if self.queue.rate and self.queue.rate <= rate * self.split.fraction(0):
            return
        logger.info("%s: the cluster's rate is capped at %g requests/s", why, rate)
        for shard, queue in enumerate(self.queues):
            share = rate * self.split.fraction(shard)
            if not queue.rate:
                queue.rate = share
            try:
                queue.cap_rate(share)
            except REDIS_ERRORS as exc:
                self._redis_failed(exc)
                queue.rate = share

    def report_answer(self, kind: str, retry_after: float = 0.0) -> None:
        """Count one answer of the host for the shared rate: "healthy", "failed" (403, 429,
        5xx) or "captcha". A captcha or a Retry-After pauses this node at once; the next
        flush tells the cluster, which pauses every node."""
        if kind == "captcha":
            self._answers.captchas += 1
            self._pause(self.first_cooldown, "a captcha")
        elif kind == "failed":
            self._answers.failed += 1
        else:
            self._answers.healthy += 1
        if retry_after > 0:
            self._answers.retry_after = max(self._answers.retry_after, retry_after)
            self._pause(retry_after, f"Retry-After: {retry_after:g}")

    def __len__(self) -> int:
        unconfirmed = len(self._unconfirmed.pushes) if self._unconfirmed else 0
        return len(self._buffer) + len(self._pushes) + unconfirmed

    def count_children(self, arrived: Callable[[str], None]) -> None:
        """Call ``arrived(lease)`` for every request that a leased page yielded (its meta
        names the lease under PARENT_META_KEY) once :meth:`enqueue_request` handled it:
        buffered for the next flush, or dropped. The acknowledgement middleware counts
        a page's requests here instead of on Scrapy's ``request_scheduled`` signal."""
        self._child_arrived = arrived

    def enqueue_request(self, request: Request) -> bool:
        """Buffer ``request`` for the next flush; settle the lease it descends from.

        A redirect or retry copies its parent's meta, so the parent's lease id
        arrives here with it: the parent is settled in the same atomic flush that
        enqueues the child, and nothing is lost in between.
        """
        child_of = request.meta.pop(PARENT_META_KEY, None) if self._child_arrived is not None else None
        try:
            return self._enqueue(request)
        finally:
            # after the request is buffered: its parent's acknowledgement follows it
            if child_of is not None and self._child_arrived is not None:
                self._child_arrived(child_of)

    def _enqueue(self, request: Request) -> bool:
        if request.meta.get(SEEN_ONLY_META_KEY):
            self._mark_seen(request)
            return False
        parent = request.meta.pop(LEASE_META_KEY, None)
        # a retry or redirect copies the frontier's errback: the stored request keeps its own
        self.failures.detach(parent, request)
        replaces = parent is not None and self.settle(parent)
        bucket, fingerprint = None, None
        if not request.dont_filter:
            if not hasattr(self.df, "slot"):
                # a dupefilter without slots the push script can record (not one of
                # baike's) is asked directly, one round trip per request, and the push
                # is unfiltered
                if self.df.request_seen(request):
                    self._filtered(request)
                    return False
            else:
                bucket, fingerprint = self.df.slot(request)
                known = self._known.key(bucket, fingerprint)
                if known in self._known:
                    self._filtered(request)
                    return False
                self._push_keys.append(known)
        try:
            payload = self.queue.encode(request)
        except (PayloadError, TypeError, ValueError) as exc:
            logger.warning("Not scheduling %s: %s", request.url, exc)
            self._inc("baike/frontier/unschedulable")
            if fingerprint is not None:
                self._push_keys.pop()
            return False
        if replaces:
            # kept only if the parent's lease is still this node's when the flush lands
            self._replaces[len(self._pushes)] = parent
        push = (bucket, fingerprint, request.priority, payload)
        self._pushes.append(push)
        self._count_push(push, parent if replaces else None)
        return True

    def _count_push(self, push: tuple[str | None, bytes | None, int, str], parent: str | None) -> None:
        """Count a buffered push on its shard, and flush once that shard has
        SCHEDULER_FLUSH_SHARD_SIZE of them (or SCHEDULER_FLUSH_SIZE are buffered in all).

        Each script call costs Redis a fixed part whatever it carries, so a flush waits until
        its calls are full (or SCHEDULER_FLUSH_INTERVAL passes): with N shards each shard's
        calls are then as full as one shard's, and N times fewer per master.
        """
        shard = self._push_shard(push, parent) if self.shards > 1 else 0
        self._shard_pushes[shard] += 1
        if self._shard_pushes[shard] >= self.flush_shard_size or len(self._pushes) >= self.flush_size:
            self._flush()

    def _mark_seen(self, request: Request) -> None:
        """Record ``request``'s fingerprint as seen in the next flush, queueing nothing."""
        if request.dont_filter:
            return
        if not hasattr(self.df, "slot"):
            self.df.request_seen(request)
        else:
            bucket, fingerprint = self.df.slot(request)
            known = self._known.key(bucket, fingerprint)
            if known in self._known:
                return
            self._push_keys.append(known)
            push = (bucket, fingerprint, 0, MARK)
            self._pushes.append(push)
            self._count_push(push, None)
        self._inc("baike/frontier/aliases_marked")

    def next_request(self) -> Request | None:
        # New requests and acks go out every SCHEDULER_FLUSH_INTERVAL (or when a shard
        # has SCHEDULER_FLUSH_SHARD_SIZE waiting), not on every call: each script call
        # has a fixed cost on Redis. A node with nothing downloading flushes before it
        # takes, as it may be about to lease its own children.
        if self._redis_down_since is not None or self.cooling_down:
            # no work is handed out while Redis is out of reach (the leases may expire
            # meanwhile, and the next heartbeat tells which are still this node's), nor
            # while the cluster cools down
            return None
        if not self._buffer:
            if not self._active:
                self._flush()
            self._take()
        if not self._buffer:
            return None
        request_id, request = self._buffer.popleft()
        self._active.add(request_id)
        self.failures.attach(request_id, request)
        self._inc("scheduler/dequeued/redis")
        return request

    # -- verbs for the acknowledgement middleware and the failed requests ---------------

    def settle(self, request_id: str, dead_reason: str = "", records: tuple[str, ...] = ()) -> bool:
        """Settle a lease of this node, to the dead letters when ``dead_reason`` is given.

        Buffered until the next flush, which also carries the requests the page
        produced, so the lease is never settled before its children are safe.
        ``records`` are the URLs of the records the page stored (in the items hash):
        Redis settles the lease only if it holds them all, and otherwise puts its request
        back in the frontier. Stored before the ack, a record can only be missing when a
        failover lost it (the new master holds an earlier state of the crawl); the page is
        then done again instead of being settled without its entry.
        Returns False when the lease is not (or no longer) this node's.
        """
        if request_id not in self._active:
            return False
        self._active.discard(request_id)
        self.failures.forget(request_id)
        page = request_id in self._pages
        self._pages.discard(request_id)
        self._acks.append((request_id, page, dead_reason))
        if records and self._checks_records:
            self._records[request_id] = records
        if dead_reason:
            self._inc("baike/frontier/dead_lettered")
        return True

    def response_received(self, response: Any, request: Request, spider: Any) -> None:
        """Note that a page was downloaded under a lease: its budget unit is spent."""
        lease = self.lease_of(request)
        if lease is not None:
            self._pages.add(lease)

    def lease_of(self, request: Request) -> str | None:
        """The lease id ``request`` was taken under, if it is one of this node's."""
        request_id = request.meta.get(LEASE_META_KEY)
        return request_id if request_id in self._active else None

    # -- internals ------------------------------------------------------------------------

    def _flush_at_start(self) -> None:
        """scrapy-redis's SCHEDULER_FLUSH_ON_START: ``scrapy reset --keep-items``, run by the
        first node of a crawl only (:func:`baike.fresh.flush_at_start`); one line says what
        was done. A node that cannot flush as asked is refused."""
        settings = self.crawler.settings
        lost_after = settings.getfloat("CLUSTERSTATS_LOST_AFTER", 10.0)
        try:
            done = flush_at_start(
                self.server, self.keys, bloom_key(settings, self.crawler.spidercls.name), self.node_id, lost_after
            )
        except RedisError as exc:
            held = "" if self._release_flush_guard() else f"; no node flushes at start until {self.keys.flush} expires"
            raise NodeRefused(
                f"SCHEDULER_FLUSH_ON_START: could not flush the crawl at {self.where} ({exc}). Check that Redis is"
                " up and that the node's Redis user may run the fresh-crawl commands (acl:node-flush in"
                f" docs/redis.md), or run `scrapy reset` and start the node without it{held}"
            ) from None
        log_flush_at_start(done, self.where, self.keys)

    def _release_flush_guard(self) -> bool:
        """Let the next crawl's first node flush again: give back the guard if this node set it.
        False when Redis could not be asked (the guard then expires on its own)."""
        if not self.flush_on_start:
            return True
        try:
            release_flush_guard(self.server, self.keys, self.node_id)
        except RedisError as exc:
            logger.debug("Flush guard %s left to expire: %s", self.keys.flush, exc)
            return False
        return True

    def _start_loop(self, func: Any, interval: float) -> None:
        loop = create_looping_call(func)
        loop.start(interval, now=False)
        self._loops.append(loop)

    def _flush(self) -> None:
        """Send the unconfirmed flush again, or the buffered requests and acks as a new one."""
        if not self._redis_ready():
            return
        if self._unconfirmed is None:
            if not (self._pushes or self._acks or self._answers or self._held_acks):
                return
            self._unconfirmed = _Flush(
                self._next_call_id(), self._pushes, self._acks, self._push_keys, self._replaces, self._answers
            )
            self._pushes, self._acks, self._push_keys, self._replaces = [], [], [], {}
            self._shard_pushes = [0] * self.shards
            self._answers = Answers()
            if self.shards > 1:
                self._hold_acks(self._unconfirmed)
        batch = self._unconfirmed
        if self.shards > 1:
            self._flush_shards(batch)
            return
        try:
            with self._replica_wait.pinned() as client:
                pushed = self.queue.push_and_ack(
                    self.node_id,
                    batch.pushes,
                    batch.acks,
                    getattr(self.df, "bloom", (0, 0)),
                    call_id=batch.call_id,
                    replaces=batch.replaces,
                    answers=batch.answers,
                    list_filtered=self._lists_filtered(),
                    client=client,
                    records=self._records_of(batch.acks),
                    after=self._confirmed_calls.get(0, ""),
                )
                # confirmed only once the replicas asked for hold it (nothing without REDIS_WAIT_REPLICAS)
                self._replica_wait.wait(client)
        except REDIS_ERRORS as exc:
            self._redis_failed(exc)
            return
        self._confirmed_calls[0] = batch.call_id
        self._flushed(batch, pushed)

    def _flushed(self, batch: _Flush, pushed: Pushed) -> None:
        """``batch`` is in Redis: count it, and learn what the reply says."""
        self._unconfirmed = None
        self._redis_ok()
        if pushed.cooling:
            self._pause(pushed.cooling, "the cluster's cool-down")
        # these fingerprints are in Redis now: a later link to the same entry is dropped
        # here without encoding it or asking Redis again
        self._known.add_many(batch.keys)
        self._log_filtered(batch, pushed.duplicates)
        self._inc("scheduler/enqueued/redis", pushed.added)
        self._inc("baike/frontier/duplicates", pushed.filtered)
        self._inc("baike/frontier/settled", len(batch.acks) - pushed.stale - pushed.unstored)
        for lease, _, _ in batch.acks:
            self._records.pop(lease, None)
        self._warn_unsettled("baike/leases/unstored", pushed.unstored, len(batch.acks), UNSTORED_WARNING)
        self._warn_unsettled("baike/leases/stale_acks", pushed.stale, len(batch.acks), STALE_WARNING)
        if pushed.behind:
            self._lost_writes()

    def _warn_unsettled(self, stat: str, refused: int, sent: int, message: str) -> None:
        """Count ``refused`` of the ``sent`` acknowledgements that Redis did not settle under
        ``stat``, and say why in one line (nothing when there are none)."""
        if refused:
            self._inc(stat, refused)
            logger.warning(message, refused, sent)

    def _lost_writes(self) -> None:
        """Redis lacks a flush it confirmed to this node (a failover lost it): the pages in
        flight, and those whose acknowledgement is not sent yet, may have sent links in it.

        None of them is settled: each is forgotten here (its acknowledgement is never sent)
        and handed back to the frontier to be done again (or left to expire, when Redis
        fails meanwhile). The fingerprints this node learned from its flushes are forgotten.
        """
        redo = set(self._active) | {ack[0] for ack in self._acks} | {ack[0] for ack in self._held_acks}
        self._acks = [ack for ack in self._acks if ack[0] not in redo]
        self._held_acks = [ack for ack in self._held_acks if ack[0] not in redo]
        self._held_fenced = [(push, parent) for push, parent in self._held_fenced if parent not in redo]
        for lease in redo:
            self._active.discard(lease)
            self._pages.discard(lease)
            self._records.pop(lease, None)
            self.failures.forget(lease)
        self._forget_known()
        self._inc("baike/leases/redone", len(redo))
        logger.warning(
            "Redis lacks writes it confirmed to this node (a failover lost them): %d pages in flight or not yet"
            " acknowledged go back to the frontier, to be done again",
            len(redo),
        )
        try:
            for shard, part in self._by_shard(sorted(redo)).items():
                self.queues[shard].release(self.node_id, part)
        except REDIS_ERRORS as exc:
            logger.debug("Leases left to expire (%s): %d", exc, len(redo))

    def _records_of(self, acks: list[tuple[str, bool, str]]) -> dict[str, tuple[str, ...]]:
        """The records to check for ``acks``: those of the leases whose pages stored some."""
        return {lease: self._records[lease] for lease, _, _ in acks if lease in self._records}

    def _hold_acks(self, batch: _Flush) -> None:
        """With shards: hold ``batch``'s acks (with the retries and redirects fenced by them)
        for the next flush, and send the acks held by the last one instead.

        A lease is settled only once every link its page found is in its shard: the links
        of a page reach the scheduler before its ack, so they are in this flush or an earlier
        one, and the acks held now go out once this flush is confirmed. A node killed in
        between redoes the page; the dupefilter drops its links the second time. So each
        flush is one call per shard (its links, and its acks of the flush before), not two.
        A retry or redirect of a lease that belongs to the lease's own shard is held with
        its ack and kept only if the ack is accepted, as without shards; a redirect to another
        shard is pushed at once, unfenced (the dupefilter keeps it from being queued twice
        if another node took the parent over).
        """
        now: list[tuple[str | None, bytes | None, int, str]] = []
        fenced: list[tuple[tuple[str | None, bytes | None, int, str], str]] = []
        for index, push in enumerate(batch.pushes):
            parent = batch.replaces.get(index)
            if parent is not None and self._push_shard(push, parent) == handle_shard(parent):
                fenced.append((push, parent))
            else:
                now.append(push)
        held_acks, held_fenced = self._held_acks, self._held_fenced
        self._held_acks, self._held_fenced = batch.acks, fenced
        batch.pushes = now + [push for push, _ in held_fenced]
        batch.replaces = {len(now) + number: parent for number, (_, parent) in enumerate(held_fenced)}
        batch.acks = held_acks

    def _push_shard(self, push: tuple[str | None, bytes | None, int, str], parent: str | None) -> int:
        """The shard of a push: its fingerprint's; an unfiltered one's is its parent's, else 0."""
        bucket = push[0]
        return self.df.bucket_shard(bucket) if bucket else handle_shard(parent) if parent else 0

    def _flush_shards(self, batch: _Flush) -> None:
        """Send ``batch`` over the shards (see :meth:`_plan`): the calls Redis has not confirmed
        yet, in order, each under its own call id; the batch is done when all are."""
        added = filtered = stale = unstored = 0
        behind = False
        cooling = 0.0
        duplicates: list[int] = []
        try:
            with self._replica_wait.pinned() as client:
                for number, call in enumerate(self._plan(batch)):
                    if number in batch.done:
                        continue
                    call_id = f"{batch.call_id}.{number}"
                    pushed = self.queues[call.shard].push_and_ack(
                        self.node_id,
                        [batch.pushes[index] for index in call.pushes],
                        call.acks,
                        getattr(self.df, "bloom", (0, 0)),
                        call_id=call_id,
                        replaces=call.replaces,
                        answers=batch.answers if call.answers else None,
                        list_filtered=self._lists_filtered(),
                        client=client,
                        # the records are on shard 0's slot
                        records=self._records_of(call.acks) if call.shard == 0 else None,
                        after=self._confirmed_calls.get(call.shard, ""),
                    )
                    batch.done.add(number)
                    self._confirmed_calls[call.shard] = call_id
                    behind = behind or pushed.behind
                    added, filtered, stale = added + pushed.added, filtered + pushed.filtered, stale + pushed.stale
                    unstored += pushed.unstored
                    cooling = max(cooling, pushed.cooling)
                    duplicates += [call.pushes[index] for index in pushed.duplicates]
                self._replica_wait.wait(client)
        except REDIS_ERRORS as exc:
            self._redis_failed(exc)
            return
        self._flushed(batch, Pushed(added, filtered, stale, cooling, 0.0, tuple(duplicates), unstored, behind))

    def _plan(self, batch: _Flush) -> list[_ShardCall]:
        """The script calls of a flush over shards (see :meth:`_hold_acks`): one per shard
        with its links (a request's shard is its fingerprint's, see
        :func:`baike.frontier.shards.shard_of`) and its acks, with the host's answers for
        every shard's part of the shared rate."""
        calls: dict[int, _ShardCall] = {}
        for index, push in enumerate(batch.pushes):
            parent = batch.replaces.get(index)
            call = calls.setdefault(self._push_shard(push, parent), _ShardCall(0))
            if parent is not None:
                call.replaces[len(call.pushes)] = parent
            call.pushes.append(index)
        for ack in batch.acks:
            calls.setdefault(handle_shard(ack[0]), _ShardCall(0)).acks.append(ack)
        if batch.answers:
            for shard in range(self.shards):
                calls.setdefault(shard, _ShardCall(0)).answers = True
        for shard, call in calls.items():
            call.shard = shard
        return [calls[shard] for shard in sorted(calls)]

    def _by_shard(self, leases: list[str]) -> dict[int, list[str]]:
        """``leases`` grouped by their frontier shard."""
        grouped: dict[int, list[str]] = {}
        for lease in leases:
            grouped.setdefault(handle_shard(lease), []).append(lease)
        return grouped

    def _record_shards(self, wanted: ShardSplit) -> None:
        """Refuse a node whose BAIKE_SHARDS is not the crawl's (one line; see baike.frontier.shards),
        and take the crawl's fingerprint split: a node whose BAIKE_SHARD0_SHARE gives another
        follows the recorded one and says so once."""
        try:
            self.split = record_shards(self.server, self.keys, wanted)
        except RedisError as exc:
            raise NodeRefused(
                f"cannot read the crawl's shard count from {self.keys.shards} at {self.where} ({exc}). Check"
                " REDIS_URL and that Redis is up, then start again"
            ) from None
        if self.split.count > 1:
            self._transfers = Transfers(self.server, self.shard_keys, self.split)
        if self.split == wanted:
            return
        if self.split.bounds is None:
            logger.warning(
                "This crawl's frontier was split over %d shards before the split was recorded (in %s):"
                " its fingerprints keep the even split by fingerprint %% %d, whatever BAIKE_SHARD0_SHARE says",
                self.split.count,
                self.keys.shards,
                self.split.count,
            )
        else:
            logger.warning(
                "This crawl's shard 0 takes %.3g of an even share of the fingerprints (recorded in %s);"
                " following it, not BAIKE_SHARD0_SHARE=%.3g of this node's settings",
                self.split.shard0_share,
                self.keys.shards,
                wanted.shard0_share,
            )

    def _filtered(self, request: Request) -> None:
        """``request`` is a duplicate: counted, and logged as the dupefilter logs (DUPEFILTER_DEBUG)."""
        self._inc("baike/frontier/duplicates")
        self.df.log(request, self.spider)

    def _lists_filtered(self) -> bool:
        """Whether the push script should name the requests it filters: while the dupefilter
        logs every duplicate (DUPEFILTER_DEBUG), or has not logged its first one yet."""
        return self._df_logs_all or not getattr(self.df, "logged_first_duplicate", True)

    def _log_filtered(self, batch: _Flush, duplicates: tuple[int, ...]) -> None:
        """Log the requests of ``batch`` that Redis filtered (indices into its pushes)."""
        for index in duplicates:
            if not self._lists_filtered():
                return
            try:
                request = self.queue.decode(batch.pushes[index][3].encode("utf-8"))
            except (IndexError, PayloadError):
                continue
            self.df.log(request, self.spider)

    def _pause(self, seconds: float, why: str) -> None:
        """Hand out no work for ``seconds`` (or longer, if already pausing); logged when it starts."""
        until = time.monotonic() + seconds
        if until <= self._paused_until:
            return
        if not self.cooling_down:
            logger.warning("Baike pushed back (%s): this node pauses for %.1f s with the cluster", why, seconds)
            self._inc("baike/rate/pauses")
        self._paused_until = until

    def _resume_if_due(self) -> None:
        if self._paused_until and not self.cooling_down:
            self._paused_until = 0.0
            logger.info("The cluster's cool-down is over; this node goes on")
            self._wake_engine()

    def _next_call_id(self) -> str:
        return f"{self._call_prefix}-{next(self._call_numbers)}"

    def _take(self) -> None:
        now = time.monotonic()
        if now < self._next_take or not self._redis_ready():
            return
        try:
            self._promote_due(now)
            taken = self._take_shards() if self.shards > 1 else self._take_from(self.queue)
        except REDIS_ERRORS as exc:
            self._redis_failed(exc)
            return
        self._redis_ok()
        self._buffer.extend(self._drop_aliases(taken.requests))
        self._start_seeds(taken)
        self._inc("baike/frontier/reclaimed", taken.reclaimed)
        self._inc("baike/frontier/rejected", len(taken.rejected))
        self._inc("baike/seeds/admitted", max(taken.admitted, 0))
        if taken.admitted < 0 and not self._seed_key_warned:
            self._seed_key_warned = True
            logger.error(
                "The seed key %s is not a Redis %s: no seeds are read from it. Push seeds with %s,"
                " or set REDIS_START_URLS_AS_SET / REDIS_START_URLS_AS_ZSET to match it",
                self.keys.start_urls,
                self.queue.seed_form,
                SEED_COMMANDS[self.queue.seed_form],
            )
        if not taken.requests and not taken.seeds:
            # With the budget all reserved, units come back only when a download
            # elsewhere fails: ask again at the idle pace, not on every engine call.
            # Out of the cluster's rate: ask again when its next token is due.
            pause = self.idle_poll if taken.budget_left == 0 else min(self.idle_poll, 0.05)
            self._next_take = now + (taken.wait or pause)
            self._rate_limited = taken.wait > 0

    def _promote_due(self, now: float) -> None:
        """Move the stored entries that are due into the frontier (PROMOTE_DUE), at most once a
        second; Redis errors propagate to the take."""
        if self.revisits is None or now < self._next_promote:
            return
        self._next_promote = now + 1.0
        promoted = self.revisits.promote_due()
        if promoted:
            logger.info("%d stored entries are due: revisiting them", promoted)
            self._inc("baike/revisit/promoted", promoted)

    def _take_from(self, queue: Any) -> Taken:
        """One take from ``queue`` under the current take call id (kept until confirmed)."""
        taken: Taken = queue.take(
            self.node_id, self.batch_size, self.lease_seconds, self.page_budget, call_id=self._take_call
        )
        self._take_call = self._next_call_id()
        return taken

    def _take_shards(self) -> Taken:
        """Take from the shards in turn, from the one after the last asked, until one gives
        some. A failed take is retried on the same shard (its call id replays there).
        When no shard gave work, or one had no budget left for its queue, the budget is
        rebalanced between them (see :meth:`baike.frontier.shards.Transfers.rebalance`), and
        when that moved units and nothing was taken the shards are asked once more."""
        merged = Taken()
        for attempt in range(2):
            starved = False
            for _ in range(self.shards):
                taken = self._take_from(self.queues[self._take_shard])
                self._take_shard = (self._take_shard + 1) % self.shards
                merged.reclaimed += taken.reclaimed
                merged.admitted = taken.admitted if taken.admitted < 0 else merged.admitted + taken.admitted
                merged.rejected += taken.rejected
                merged.bad_seeds += taken.bad_seeds
                merged.wait = max(merged.wait, taken.wait)
                merged.budget_left = taken.budget_left
                # the shard's allowance, not its queue, cut the take short
                starved = starved or (
                    taken.budget_left == 0 and len(taken.requests) + len(taken.seeds) < self.batch_size
                )
                if taken.requests or taken.seeds:
                    merged.requests, merged.seeds = taken.requests, taken.seeds
                    break
            got = bool(merged.requests or merged.seeds)
            if not self.page_budget or (got and not starved):
                return merged
            moved = self._rebalance()
            if got or not moved or attempt:
                return merged
        return merged

    def _rebalance(self) -> int:
        """Move budget units to the shards whose queue needs them (at most every SCHEDULER_IDLE_POLL);
        returns the units moved."""
        now = time.monotonic()
        if now < self._next_rebalance or self._transfers is None:
            return 0
        self._next_rebalance = now + self.idle_poll
        moved = self._transfers.rebalance(self.page_budget, self.batch_size, self._redis_now)
        if moved:
            self._next_take = 0.0
            self._inc("baike/shards/units_moved", moved)
        return moved

    def _redis_now(self) -> float:
        """Redis's clock (that of shard 0's master), in seconds."""
        seconds, micros = slot_time(self.server, self.keys.shards)
        return seconds + micros / 1e6

    def _drop_aliases(self, taken: list[tuple[str, Request]]) -> list[tuple[str, Request]]:
        """The taken requests less those for another URL form of an entry already stored.

        Such a request (``/subview/<lemmaId>/<subLemmaId>.htm`` of a sense stored under
        its ``/item/`` URL, see the ``aliases`` key) is settled as not downloaded, so its
        budget unit goes back. One round trip, only for takes that hold such forms; when
        it fails the requests are downloaded, and their redirect is filtered as seen.
        """
        forms: dict[str, list[str]] = {}
        for lease, request in taken:
            if "/subview/" not in request.url:  # most takes hold none: no parsing per request
                continue
            url = canonicalize(request.url, mirror=self.mirror)
            if url is not None and is_alias_form(url):
                forms.setdefault(url, []).append(lease)
        if not forms:
            return taken
        try:
            stored = self.server.hmget(self.keys.aliases, list(forms))
        except REDIS_ERRORS as exc:
            logger.debug("Cannot check %d URL forms against the stored entries: %s", len(forms), exc)
            return taken
        dropped = {lease for leases, record in zip(forms.values(), stored, strict=True) if record for lease in leases}
        for lease in dropped:
            self._active.add(lease)
            self.settle(lease)
        self._inc("baike/frontier/aliases_dropped", len(dropped))
        return [(lease, request) for lease, request in taken if lease not in dropped]

    def _start_seeds(self, taken: Taken) -> None:
        """Enqueue the request of each leased seed; its lease settles in the same flush."""
        for reason in taken.bad_seeds:
            logger.error('Skipping a seed: %s. Push a Baike entry URL or a JSON object {"url": ...}', reason)
        self._inc("baike/seeds/rejected", len(taken.bad_seeds))
        for request_id, request in taken.seeds:
            self._active.add(request_id)
            logger.info("Seed accepted: %s", request.url)
            self._inc("baike/seeds/accepted")
            self.enqueue_request(request)

    def _poll_when_idle(self) -> None:
        """Look for work (and seeds) while the engine sleeps, and wake it when there is some.

        Scrapy only asks an idle scheduler again on its 5-second heartbeat; a
        cluster node must pick up requests other nodes produce, seeds pushed
        meanwhile, or leases a dead node left, at once.
        """
        self._resume_if_due()
        if self._buffer or self._active or self.cooling_down:
            return
        self._flush()
        self._take()
        if self._buffer or self._pushes:
            self._wake_engine()

    def _wake_engine(self) -> None:
        # Scrapy has no public call for it: baike.scrapyapi keeps the one private use
        wake_engine(self.crawler.engine)

    def _heartbeat(self) -> None:
        """Extend this node's leases; drop the buffered ones that are no longer its own."""
        if not self._redis_ready():
            return
        leased = [lease for lease, _ in self._buffer] + list(self._active)
        try:
            lost = [
                lease
                for shard, part in self._by_shard(leased).items()
                for lease in self.queues[shard].heartbeat(self.node_id, part, self.lease_seconds)
            ]
        except REDIS_ERRORS as exc:
            self._redis_failed(exc)
            return
        self._redis_ok()
        if lost:
            self._drop_lost(set(lost))

    def _drop_lost(self, lost: set[str]) -> None:
        """Forget buffered requests whose leases expired: another node has or will have them.

        Requests already downloading go on; their acknowledgements will be refused.
        """
        kept = deque(entry for entry in self._buffer if entry[0] not in lost)
        dropped = len(self._buffer) - len(kept)
        self._buffer = kept
        if dropped:
            self._inc("baike/leases/lost", dropped)
            logger.warning("Dropped %d buffered requests whose leases expired meanwhile", dropped)

    def _redis_ready(self) -> bool:
        return self._redis_down_since is None or time.monotonic() >= self._retry_at

    def _redis_failed(self, exc: Exception) -> None:
        now = time.monotonic()
        if self._redis_down_since is None:
            self._redis_down_since = now
            logger.error(
                "Lost Redis (%s). Buffered requests and acknowledgements are kept;"
                " retrying with back-off. Check that redis-server is running and REDIS_URL is right.",
                exc,
            )
        self._inc("baike/redis/errors")
        down_for = now - self._redis_down_since
        self._retry_at = now + min(max(down_for, 0.5), 10.0)

    def _redis_ok(self) -> None:
        """A command succeeded: note a failover, and end an outage (one line for either)."""
        failover = self._failover.check()
        if failover is not None:
            self._failed_over(failover)
        if self._redis_down_since is not None:
            if failover is None:
                logger.warning(
                    "Redis is back after %.1f s; the crawl goes on", time.monotonic() - self._redis_down_since
                )
            self._redis_down_since = None
            # before any buffered request is handed out: which leases are still ours?
            self._heartbeat()
            if self._buffer:
                self._wake_engine()

    def _failed_over(self, failover: Failover) -> None:
        """Log the failover once, count it, and forget the fingerprints this node knew
        were in Redis: the new master may lack the last of them."""
        down = time.monotonic() - self._redis_down_since if self._redis_down_since is not None else 0.0
        logger.warning(
            "Redis failover: the master moved from %s to %s (%.1f s without Redis); the crawl goes on"
            " with the new master, redoing what it lacks",
            failover.old,
            failover.new,
            down,
        )
        self._forget_known(failover)
        self._inc("baike/redis/failovers")

    def _forget_known(self, failover: Failover | None = None) -> None:
        """Forget the fingerprints this node knew were in Redis, and tell the spider to forget
        its links (``redis_failover``; ``failover`` None when Redis was found lacking this
        node's writes without a change of master seen)."""
        self._known.clear()
        self.crawler.signals.send_catch_log(redis_failover, failover=failover)

    def _inc(self, key: str, count: int = 1) -> None:
        if count:
            self.stats.inc_value(key, count)
