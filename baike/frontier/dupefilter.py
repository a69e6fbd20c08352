"""Shared duplicate filter with compact fingerprints (``DUPEFILTER_CLASS``).

scrapy-redis keeps 40-character SHA1 hex strings in one set: about 90 bytes of
Redis memory per URL. Here each fingerprint is split in two independent parts:
a few bytes pick one of many small hashes (the bucket), and the first
``DUPEFILTER_FIELD_BYTES`` bytes are the field stored in it, with an empty value.
Redis keeps a hash of at most ``hash-max-listpack-entries`` (128 by default)
short fields as one listpack, where a 5-byte field and its empty value take
7 + 2 bytes; the per-key cost (key name, dict entry, object header, allocator
rounding: about 160 bytes) is shared by the bucket's entries. The number of
buckets is chosen so that a crawl of ``DUPEFILTER_EXPECTED_URLS`` fills each one
to ``DUPEFILTER_BUCKET_ENTRIES`` (80) on average, far enough below 128 that
practically no bucket ever turns into a hash table:

    9 + 160 / 80 = 11 bytes per URL (measured: bench/README.md)

The filter is exact for practical purposes: a new URL is taken for a seen one only
when its bucket already holds the same 40-bit field, a chance of about
80 / 2**40 (7e-11) per URL, or 0.07% that a single URL of a 10-million-URL crawl
is skipped.

Every node must cut fingerprints the same way, so the layout (bucket count and
field size) is recorded in the hash ``<dupefilter key>`` by the first node of a
crawl; later nodes adopt it whatever their own settings say. A node that cannot
read the recorded layout, or finds one that is not a layout, refuses to start
(:class:`~baike.errors.NodeRefused`): cutting fingerprints its own way would break
the crawl's dedup without a sign.
"""

from __future__ import annotations

import hashlib
import logging
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from redis.exceptions import RedisError
from scrapy.dupefilters import BaseDupeFilter

from baike.errors import NodeRefused
from baike.frontier.shards import ShardSplit, record_shards, wanted_split
from baike.keys import CrawlKeys, shard_count, shard_keys

if TYPE_CHECKING:
    from typing import Self

    from redis import Redis
    from scrapy import Request, Spider
    from scrapy.crawler import Crawler

logger = logging.getLogger(__name__)

DEFAULT_EXPECTED_URLS = 10_000_000
DEFAULT_BUCKET_ENTRIES = 80
DEFAULT_FIELD_BYTES = 5
# Fingerprint bytes after the field that choose the bucket (up to 2**32 buckets).
BUCKET_INDEX_BYTES = 4
# Fingerprints shorter than field + index are hashed first (Scrapy's are 20 bytes).
_MIN_FINGERPRINT = 20


@dataclass(frozen=True, slots=True)
class BucketLayout:
    """How fingerprints are cut: ``buckets`` hashes, ``field_bytes`` bytes per field."""

    buckets: int
    field_bytes: int = DEFAULT_FIELD_BYTES

    def __post_init__(self) -> None:
        if not 1 <= self.buckets <= 1 << (8 * BUCKET_INDEX_BYTES):
            raise ValueError(f"bucket count must be 1..2**32, not {self.buckets}")
        if not 1 <= self.field_bytes <= _MIN_FINGERPRINT - BUCKET_INDEX_BYTES:
            raise ValueError(f"field bytes must be 1..{_MIN_FINGERPRINT - BUCKET_INDEX_BYTES}, not {self.field_bytes}")

    @classmethod
    def for_size(
        cls,
        expected_urls: int = DEFAULT_EXPECTED_URLS,
        bucket_entries: int = DEFAULT_BUCKET_ENTRIES,
        field_bytes: int = DEFAULT_FIELD_BYTES,
    ) -> BucketLayout:
        """The layout that fills buckets to ``bucket_entries`` at ``expected_urls``."""
        if expected_urls < 1 or bucket_entries < 1:
            raise ValueError("expected URLs and bucket entries must be positive")
        return cls(buckets=-(-expected_urls // bucket_entries), field_bytes=field_bytes)

    def cut(self, fingerprint: bytes) -> tuple[int, bytes]:
        """``(bucket index, field)`` of a fingerprint."""
        if len(fingerprint) < _MIN_FINGERPRINT:
            fingerprint = hashlib.sha1(fingerprint).digest()
        end = self.field_bytes + BUCKET_INDEX_BYTES
        return int.from_bytes(fingerprint[self.field_bytes : end], "big") % self.buckets, fingerprint[
            : self.field_bytes
        ]

    def as_record(self) -> dict[str, int]:
        return {"buckets": self.buckets, "field_bytes": self.field_bytes}


class SharedDupeFilter(BaseDupeFilter):
    """What the cluster's dupefilters share: state under ``key`` that outlives every node.

    Subclasses set ``server``, ``key``, ``debug`` and ``logged_first_duplicate``.
    """

    # how a filtered request is called in the log
    duplicate_word = "duplicate"
    server: Redis
    key: str
    debug: bool
    logged_first_duplicate: bool

    @property
    def bloom(self) -> tuple[int, int]:
        """(hashes, bits per shard) for a Bloom filter's slots in the push script; (0, 0): fields."""
        return (0, 0)

    def clear(self) -> int:
        """Delete ``key`` and everything under ``key:*``; only the fresh-crawl operation calls this."""
        deleted = 0
        for key in self.server.scan_iter(match=f"{self.key}:*", count=1000):
            deleted += self.server.unlink(key)
        return deleted + self.server.unlink(self.key)

    def close(self, reason: str = "") -> None:
        """Keep the fingerprints: they belong to the whole cluster's crawl."""

    def log(self, request: Request, spider: Any) -> None:
        if self.debug:
            logger.debug("Filtered %s request: %s", self.duplicate_word, request)
        elif not self.logged_first_duplicate:
            logger.debug(
                "Filtered %s request %s - no more duplicates will be shown (see DUPEFILTER_DEBUG to show all duplicates)",
                self.duplicate_word,
                request,
            )
            self.logged_first_duplicate = True


class BucketDupeFilter(SharedDupeFilter):
    """Fingerprints in ``<dupefilter key>:<bucket>`` hashes; never cleared on close.

    ``slot()`` gives the scheduler the bucket and field of a request so that its
    Lua push can test and record many fingerprints in one round trip (``HSETNX
    bucket field ''``); ``request_seen()`` does the same for one request, for use
    with other schedulers.
    """

    def __init__(
        self,
        server: Redis,
        key: str,
        fingerprinter: Any,
        layout: BucketLayout | None = None,
        debug: bool = False,
    ):
        self.server = server
        self.key = key
        self.fingerprinter = fingerprinter
        self.layout = layout or BucketLayout.for_size()
        self.debug = debug
        self.logged_first_duplicate = False
        # the bucket key prefix of each frontier shard (BAIKE_SHARDS; see use_shards)
        self.shard_prefixes = [key]
        self._shard_of_prefix = {key: 0}
        self.split = ShardSplit(1, ())

    def use_shards(self, prefixes: list[str], split: ShardSplit) -> None:
        """Split the buckets over frontier shards: a fingerprint's bucket is under
        ``prefixes[split.shard_of(fingerprint)]`` (its shard's dupefilter key; ``split`` the
        crawl's, see :func:`baike.frontier.shards.record_shards`); shard 0's key keeps the
        layout record."""
        if len(prefixes) != split.count:
            raise ValueError(f"{len(prefixes)} bucket prefixes for a split over {split.count} shards")
        self.shard_prefixes = prefixes
        self._shard_of_prefix = {prefix: shard for shard, prefix in enumerate(prefixes)}
        self.split = split

    def bucket_shard(self, bucket: str) -> int:
        """The frontier shard of a bucket key this filter named."""
        return self._shard_of_prefix.get(bucket.rpartition(":")[0], 0)

    @classmethod
    def from_crawler(cls, crawler: Crawler) -> Self:
        from baike.connection import get_redis

        settings = crawler.settings
        keys = CrawlKeys.for_spider(crawler.spidercls.name, settings)
        wanted = BucketLayout.for_size(
            expected_urls=settings.getint("DUPEFILTER_EXPECTED_URLS", DEFAULT_EXPECTED_URLS),
            bucket_entries=settings.getint("DUPEFILTER_BUCKET_ENTRIES", DEFAULT_BUCKET_ENTRIES),
            field_bytes=settings.getint("DUPEFILTER_FIELD_BYTES", DEFAULT_FIELD_BYTES),
        )
        dupefilter = cls(
            server=get_redis(settings),
            key=keys.dupefilter,
            fingerprinter=crawler.request_fingerprinter,
            layout=wanted,
            debug=settings.getbool("DUPEFILTER_DEBUG"),
        )
        if shard_count(settings) > 1:
            dupefilter.use_shards(
                [shard.dupefilter for shard in shard_keys(crawler.spidercls.name, settings)],
                dupefilter.crawl_split(keys, wanted_split(settings)),
            )
        dupefilter.adopt_layout()
        return dupefilter

    @classmethod
    def from_spider(cls, spider: Spider) -> Self:
        """scrapy-redis's own scheduler builds its dupefilter from the spider."""
        return cls.from_crawler(spider.crawler)

    def crawl_split(self, keys: CrawlKeys, wanted: ShardSplit) -> ShardSplit:
        """The crawl's fingerprint split over its shards (recorded by its first node; see
        :func:`baike.frontier.shards.record_shards`). Raises NodeRefused when Redis cannot say."""
        try:
            return record_shards(self.server, keys, wanted)
        except RedisError as exc:
            raise NodeRefused(
                f"cannot read the crawl's shard split from {keys.shards} ({exc}): without it this node would"
                " look for fingerprints in the wrong shards. Check REDIS_URL and that Redis is up, then start again"
            ) from None

    def adopt_layout(self) -> BucketLayout:
        """Record this filter's layout for the crawl, or take the one already recorded.

        One MULTI/EXEC round trip, so two nodes starting together agree. Raises
        NodeRefused when the recorded layout cannot be read or is not one.
        """
        try:
            with self.server.pipeline(transaction=True) as pipe:
                for name, value in self.layout.as_record().items():
                    pipe.hsetnx(self.key, name, value)
                pipe.hmget(self.key, ["buckets", "field_bytes"])
                *_, (buckets, field_bytes) = pipe.execute()
        except RedisError as exc:
            raise NodeRefused(
                f"cannot read the crawl's dupefilter layout from {self.key} ({exc}): without it this node would"
                " cut fingerprints its own way and break the crawl's dedup. Check REDIS_URL and that Redis is up,"
                " then start again"
            ) from None
        try:
            recorded = BucketLayout(buckets=int(buckets), field_bytes=int(field_bytes))
        except (TypeError, ValueError) as exc:
            raise NodeRefused(
                f"the dupefilter layout recorded in {self.key} is not one ({exc}): this database holds another"
                " crawl's or project's data. `scrapy reset` starts a fresh crawl, or point REDIS_URL elsewhere"
            ) from None
        if recorded != self.layout:
            logger.warning(
                "This crawl's dupefilter has %d buckets of %d-byte fields (recorded in %s);"
                " using them, not the %d buckets of %d-byte fields this node's settings give",
                recorded.buckets,
                recorded.field_bytes,
                self.key,
                self.layout.buckets,
                self.layout.field_bytes,
            )
            self.layout = recorded
        return recorded

    def slot_of(self, fingerprint: bytes) -> tuple[str, bytes]:
        """``(bucket key, field)`` of a raw fingerprint."""
        index, field = self.layout.cut(fingerprint)
        if len(self.shard_prefixes) == 1:
            return f"{self.key}:{index:x}", field
        if len(fingerprint) < _MIN_FINGERPRINT:
            fingerprint = hashlib.sha1(fingerprint).digest()
        return f"{self.shard_prefixes[self.split.shard_of(fingerprint)]}:{index:x}", field

    def slot(self, request: Request) -> tuple[str, bytes]:
        """``(bucket key, field)`` holding ``request``'s fingerprint."""
        return self.slot_of(self.fingerprinter.fingerprint(request))

    def request_seen(self, request: Request) -> bool:
        """Mark ``request`` seen; True when it already was (one round trip)."""
        key, field = self.slot(request)
        return self.server.hsetnx(key, field, b"") == 0
