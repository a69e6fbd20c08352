"""Item pipelines, one concern each: validate, clean, store."""

from __future__ import annotations

import json
import logging
import re
import time
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, TypeGuard

from itemadapter import ItemAdapter
from scrapy.exceptions import DropItem
from scrapy.utils.asyncio import create_looping_call
from scrapy.utils.defer import deferred_to_future
from twisted.internet.defer import Deferred, succeed
from twisted.internet.threads import deferToThread

from baike.connection import REDIS_ERRORS, ReplicaWait, get_redis, replica_wait
from baike.keys import CrawlKeys
from baike.parsing import clean_text
from baike.revisit import RevisitPolicy, Revisits
from baike.urls import canonicalize, subview_url

if TYPE_CHECKING:
    from typing import Self

    from redis import Redis
    from scrapy.crawler import Crawler

logger = logging.getLogger(__name__)

RECORD_FIELDS = (
    "url",
    "title",
    "subtitle",
    "summary",
    "infobox",
    "lemma_id",
    "old_lemma_id",
    "sub_lemma_id",
    "crawled_at",
)
_BRACKETS = re.compile(r"^[（(](.*)[）)]$")


class ValidatePipeline:
    """Drops items that are not entries: no canonical URL or no title."""

    def __init__(self, crawler: Crawler):
        self.stats = crawler.stats

    @classmethod
    def from_crawler(cls, crawler: Crawler) -> Self:
        return cls(crawler)

    def process_item(self, item: Any) -> Any:
        adapter = ItemAdapter(item)
        url = adapter.get("url")
        if not isinstance(url, str) or canonicalize(url) != url:
            self._drop("no_canonical_url", f"not a canonical entry URL: {url!r}")
        title = adapter.get("title")
        if not isinstance(title, str) or not title.strip():
            self._drop("no_title", f"no title: {url}")
        if not isinstance(adapter.get("infobox") or {}, dict):
            self._drop("bad_infobox", f"infobox is not a mapping: {url}")
        return item

    def _drop(self, reason: str, message: str) -> None:
        self.stats.inc_value(f"baike/items/invalid/{reason}")
        raise DropItem(message)


class CleanPipeline:
    """Normalises text fields and stamps ``crawled_at``."""

    def process_item(self, item: Any) -> Any:
        adapter = ItemAdapter(item)
        for name in ("title", "subtitle", "summary"):
            value = adapter.get(name)
            if isinstance(value, str):
                adapter[name] = clean_text(value) or None
        subtitle = adapter.get("subtitle")
        if subtitle:
            match = _BRACKETS.match(subtitle)
            adapter["subtitle"] = match.group(1).strip() if match else subtitle
        adapter["infobox"] = {
            clean_text(name).replace(" ", ""): clean_text(str(value))
            for name, value in (adapter.get("infobox") or {}).items()
        }
        if not adapter.get("crawled_at"):
            adapter["crawled_at"] = datetime.now(UTC).isoformat(timespec="seconds")
        return item


class RedisStorePipeline:
    """Stores one JSON record per entry in the hash ``baike:items``, keyed by URL.

    Writing by key makes the store idempotent: a page crawled twice (a lease that
    expired under a slow node) still leaves one record. With each record its legacy
    ``/subview/`` URL (when its ids name one) goes to the ``aliases`` hash in the same
    transaction, so a request for that form still queued is dropped undownloaded
    (:meth:`~baike.frontier.scheduler.LeasedScheduler.take`). Records are written in
    batches from a thread, so the reactor never waits on Redis; an item leaves
    this pipeline (and its request can be acknowledged) only once it is stored.

    With ``REDIS_WAIT_REPLICAS`` "stored" means held by that many replicas too (``WAIT``
    on the connection that wrote; see :class:`baike.connection.ReplicaWait`), so the
    acknowledgement never reaches a master that may lose the record in a failover. A
    Redis outage is logged once (when it starts and when it ends), not per retry.
    """

    def __init__(
        self,
        server: Redis,
        key: str,
        batch_size: int,
        interval: float,
        retry_seconds: float = 300.0,
        aliases_key: str = "",
        replicas: ReplicaWait | None = None,
        revisits: Revisits | None = None,
        stats: Any = None,
    ):
        self.server = server
        # BAIKE_REVISIT_AFTER > 0: records go through STORE_VERSIONS (history, schedule)
        self.revisits = revisits
        # the node's stats collector (revisit counters), None outside a crawl
        self.stats = stats
        # url -> (record, alias, ETag, Last-Modified) of the batch, for STORE_VERSIONS
        self._versions: dict[str, tuple[dict[str, Any], str, str, str]] = {}
        self.replicas = replicas or ReplicaWait(server)
        self._down_since: float | None = None
        self.retry_seconds = retry_seconds
        self.key = key
        self.aliases_key = aliases_key
        self.batch_size = batch_size
        self.interval = interval
        self._batch: dict[str, str] = {}
        self._aliases: dict[str, str] = {}
        self._waiting: list[Deferred[None]] = []
        self._loop = create_looping_call(self._flush_in_background)

    @classmethod
    def from_crawler(cls, crawler: Crawler) -> Self:
        settings = crawler.settings
        keys = CrawlKeys.for_spider(crawler.spidercls.name, settings)
        policy = RevisitPolicy.from_settings(settings)
        return cls(
            server=get_redis(settings),
            key=keys.items,
            aliases_key=keys.aliases,
            batch_size=settings.getint("REDIS_STORE_BATCH_SIZE", 50),
            interval=settings.getfloat("REDIS_STORE_FLUSH_INTERVAL", 0.25),
            retry_seconds=settings.getfloat("REDIS_STORE_RETRY_SECONDS", 300.0),
            replicas=replica_wait(get_redis(settings), settings),
            revisits=Revisits(get_redis(settings), keys, policy) if policy.enabled else None,
            stats=crawler.stats,
        )

    def open_spider(self) -> None:
        self._loop.start(self.interval, now=False)

    async def close_spider(self) -> None:
        if self._loop.running:
            self._loop.stop()
        await deferred_to_future(self._flush())

    async def process_item(self, item: Any) -> Any:
        record: dict[str, Any] = {name: ItemAdapter(item).get(name) for name in RECORD_FIELDS}
        if self.revisits is not None:
            # the time this version was first seen; kept while the entry does not change
            record["changed_at"] = record["crawled_at"]
        stored: Deferred[None] = Deferred()
        self._batch[record["url"]] = json.dumps(record, ensure_ascii=False)
        alias = _alias_of(record)
        if alias and alias != record["url"] and self.aliases_key:
            self._aliases[alias] = record["url"]
        if self.revisits is not None:
            adapter = ItemAdapter(item)
            etag, modified = str(adapter.get("etag") or ""), str(adapter.get("last_modified") or "")
            self._versions[record["url"]] = (record, alias if alias and alias != record["url"] else "", etag, modified)
        self._waiting.append(stored)
        if len(self._batch) >= self.batch_size:
            self._flush()
        await deferred_to_future(stored)
        return item

    def _flush_in_background(self) -> None:
        self._flush()

    def _flush(self) -> Deferred[None]:
        if not self._batch:
            return succeed(None)
        batch, aliases, waiting = self._batch, self._aliases, self._waiting
        self._batch, self._aliases, self._waiting = {}, {}, []
        if self.revisits is not None:
            versions, self._versions = self._versions, {}
            writing = deferToThread(self._write_versions, batch, versions)
            writing.addCallbacks(lambda _: _fire(waiting, None), lambda failure: _fire(waiting, failure))
            return writing
        writing = deferToThread(self._write, batch, aliases)
        writing.addCallbacks(lambda _: _fire(waiting, None), lambda failure: _fire(waiting, failure))
        return writing

    def _write_versions(self, batch: dict[str, str], versions: dict[str, tuple[dict[str, Any], str, str, str]]) -> None:
        """Write a batch through STORE_VERSIONS (one atomic script: records, aliases, history,
        freshness and schedule), riding out a Redis outage like :meth:`_write`."""
        revisits = self.revisits
        assert revisits is not None
        rows = [
            (record, batch[url], alias, etag, modified) for url, (record, alias, etag, modified) in versions.items()
        ]

        def store(_batch: dict[str, str], _aliases: dict[str, str] | None) -> None:
            if self.replicas.replicas:
                with self.replicas.pinned() as client:
                    counts = revisits.store(rows, client=client)
                    self.replicas.wait(client)
            else:
                counts = revisits.store(rows)
            self._count_versions(counts)

        self._write(batch, None, store)

    def _count_versions(self, counts: list[int]) -> None:
        if self.stats is None:
            return
        for name, count in zip(("new", "changed", "unchanged"), counts, strict=True):
            if count:
                self.stats.inc_value(f"baike/revisit/{name}", count)

    def _write(self, batch: dict[str, str], aliases: dict[str, str] | None = None, store: Any = None) -> None:
        """Write a batch (and its records' aliases, atomically), riding out a Redis
        outage of up to ``retry_seconds``."""
        store = store or self._store
        deadline = time.monotonic() + self.retry_seconds
        pause = 0.5
        while True:
            try:
                store(batch, aliases)
            except REDIS_ERRORS as exc:
                if time.monotonic() + pause > deadline:
                    raise
                self._failed(len(batch), exc)
                time.sleep(pause)
                pause = min(pause * 2, 10.0)
                continue
            if self._down_since is not None:
                logger.info("Items are stored again after %.1f s", time.monotonic() - self._down_since)
                self._down_since = None
            return

    def _store(self, batch: dict[str, str], aliases: dict[str, str] | None) -> None:
        """One attempt: the records and their aliases in one transaction, then (with
        REDIS_WAIT_REPLICAS) ``WAIT`` on the same connection. Waiting, the records go first
        and the aliases after them, each its own command: an alias never names a record
        that is not stored."""
        # (the ignores: redis-py's hset takes a Mapping invariant in its key type, which no dict[str, str] is)
        if self.replicas.replicas:
            with self.replicas.pinned() as client:
                client.hset(self.key, mapping=batch)  # type: ignore[arg-type]
                if aliases:
                    client.hset(self.aliases_key, mapping=aliases)  # type: ignore[arg-type]
                self.replicas.wait(client)
            return
        if not aliases:
            self.server.hset(self.key, mapping=batch)  # type: ignore[arg-type]
            return
        with self.server.pipeline(transaction=True) as pipe:
            pipe.hset(self.key, mapping=batch)  # type: ignore[arg-type]
            pipe.hset(self.aliases_key, mapping=aliases)  # type: ignore[arg-type]
            pipe.execute()

    def _failed(self, items: int, exc: Exception) -> None:
        """A write failed: said once per outage (the first failure), then at debug level."""
        if self._down_since is None:
            self._down_since = time.monotonic()
            logger.warning("Storing %d items failed (%s); retrying with back-off, the items are kept", items, exc)
        else:
            logger.debug("Storing %d items failed again: %s", items, exc)


def _alias_of(record: dict[str, Any]) -> str | None:
    """The record's legacy ``/subview/`` URL, when its ids name one."""
    old, sub = record.get("old_lemma_id"), record.get("sub_lemma_id")
    if _is_id(old) and _is_id(sub):
        return subview_url(old, sub)
    return None


def _is_id(value: Any) -> TypeGuard[int]:
    return isinstance(value, int) and not isinstance(value, bool) and value > 0


def _fire(waiting: list[Deferred[None]], result: Any) -> None:
    for stored in waiting:
        if result is None:
            stored.callback(None)
        else:
            stored.errback(result)
