"""A shared Bloom filter in Redis bitmaps (``DUPEFILTER_CLASS``, standalone use).

About 1.8 bytes of Redis memory per URL at a 0.1% false-positive rate, against 11
for the exact :class:`~baike.frontier.dupefilter.BucketDupeFilter`: the price is
that about one new URL in a thousand is taken for a seen one and never crawled
(measured: bench/README.md).

The filter is sized once, for ``BLOOM_CAPACITY`` URLs at ``BLOOM_ERROR_RATE``:
``m = -n ln p / (ln 2)^2`` bits and ``k = log2(1 / p)`` hashes. The bits are cut
into shards, strings ``<bloom key>:<i>`` of 256 KiB allocations each (a power of
two, which the allocator serves without rounding up: one 18 MB string would take
a 20 MB size class); a URL's shard comes from one part of its fingerprint and its
k bits in the shard from two others (double hashing: ``h1 + i * h2 mod m``). The
last bit of each shard is never a filter bit: setting it allocates the shard at
its full size in one step, harmlessly for a shard another node already filled.
The layout (shards, bits per shard, hashes) is recorded in the hash
``<bloom key>`` by the crawl's first node, and every later node adopts it. A crawl
larger than the capacity still works, with a growing error rate.

The leased scheduler records a URL's bits in the same Lua call that enqueues its
request (:data:`baike.frontier.scripts.PUSH_AND_ACK`, given :meth:`BloomDupeFilter.slot`
and :attr:`BloomDupeFilter.bloom`), so a URL is never marked seen without its
request being stored. ``request_seen()`` (BLOOM_ADD, one round trip) serves other
schedulers.
"""

from __future__ import annotations

import hashlib
import logging
import math
import struct
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, cast

from redis.exceptions import RedisError

from baike import keys
from baike.errors import NodeRefused
from baike.frontier.dupefilter import SharedDupeFilter

if TYPE_CHECKING:
    from typing import Self

    from redis import Redis
    from scrapy import Request, Spider
    from scrapy.crawler import Crawler

logger = logging.getLogger(__name__)

DEFAULT_CAPACITY = 10_000_000
DEFAULT_ERROR_RATE = 0.001
DEFAULT_KEY = keys.BLOOM
# A shard string of this many bytes plus Redis's 10-byte string header is a 256 KiB allocation.
SHARD_BYTES = (1 << 18) - 10
# Filter bits per full shard: all but the last one, which allocates the shard.
SHARD_BITS = 8 * SHARD_BYTES - 1
# A URL's slot field for the push script: h1 and h2, big-endian (both below 2**32).
_SLOT_FIELD = struct.Struct(">II")

# BLOOM_ADD: set the k bits of each URL; a URL was seen when all k were set already.
# KEYS[1..] the shards the URLs fall in
# ARGV[1] k (hashes)   ARGV[2] m (filter bits per shard)
# then triples: shard (index into KEYS), h1, h2   (0 <= h1 < m, 1 <= h2 < m)
# Returns one flag per URL, in order: 1 seen, 0 new. Offsets stay below 2^38, exact
# in Lua's doubles.
BLOOM_ADD = """
local k, m = tonumber(ARGV[1]), tonumber(ARGV[2])
local out = {}
for j = 3, #ARGV, 3 do
  local key, h1, h2 = KEYS[tonumber(ARGV[j])], tonumber(ARGV[j + 1]), tonumber(ARGV[j + 2])
  local seen = 1
  for i = 0, k - 1 do
    if redis.call('SETBIT', key, (h1 + i * h2) % m, 1) == 0 then seen = 0 end
  end
  out[#out + 1] = seen
end
return out
"""

# BLOOM_CHECK: whether each URL is (probably) in the filter, without adding it.
# KEYS and ARGV as for BLOOM_ADD. Returns one flag per URL: 1 present, 0 not.
BLOOM_CHECK = """
local k, m = tonumber(ARGV[1]), tonumber(ARGV[2])
local out = {}
for j = 3, #ARGV, 3 do
  local key, h1, h2 = KEYS[tonumber(ARGV[j])], tonumber(ARGV[j + 1]), tonumber(ARGV[j + 2])
  local present = 1
  for i = 0, k - 1 do
    if redis.call('GETBIT', key, (h1 + i * h2) % m) == 0 then present = 0 break end
  end
  out[#out + 1] = present
end
return out
"""


@dataclass(frozen=True, slots=True)
class BloomLayout:
    """``shards`` bitmaps of ``shard_bits`` filter bits; ``hashes`` bits per URL."""

    shards: int
    shard_bits: int
    hashes: int

    def __post_init__(self) -> None:
        if not 1 <= self.shards <= 1 << 20:
            raise ValueError(f"a Bloom filter has 1..2**20 shards, not {self.shards}")
        if not 8 <= self.shard_bits <= SHARD_BITS:
            raise ValueError(f"a Bloom shard has 8..{SHARD_BITS} bits, not {self.shard_bits}")
        if not 1 <= self.hashes <= 64:
            raise ValueError(f"a Bloom filter uses 1..64 hashes, not {self.hashes}")

    @classmethod
    def for_capacity(cls, capacity: int = DEFAULT_CAPACITY, error_rate: float = DEFAULT_ERROR_RATE) -> BloomLayout:
        """The smallest filter with ``error_rate`` false positives once it holds ``capacity`` URLs."""
        if capacity < 1 or not 0.0 < error_rate < 1.0:
            raise ValueError("capacity must be positive and the error rate between 0 and 1")
        bits = max(8, math.ceil(-capacity * math.log(error_rate) / math.log(2) ** 2))
        shards = -(-bits // SHARD_BITS)
        shard_bits = SHARD_BITS if shards > 1 else bits
        # the optimal k for the target rate; the bits a last shard adds lower the rate further
        return cls(shards=shards, shard_bits=shard_bits, hashes=max(1, round(-math.log2(error_rate))))

    @property
    def bits(self) -> int:
        return self.shards * self.shard_bits

    @property
    def shard_bytes(self) -> int:
        """Length of a shard string, its allocating last bit included."""
        return self.shard_bits // 8 + 1

    def error_rate(self, urls: int) -> float:
        """Expected false-positive rate once ``urls`` URLs are in the filter."""
        return (1.0 - math.exp(-self.hashes * urls / self.bits)) ** self.hashes

    def place(self, fingerprint: bytes) -> tuple[int, int, int]:
        """``(shard, h1, h2)`` of a fingerprint, from three disjoint parts of it."""
        if len(fingerprint) < 20:
            fingerprint = hashlib.sha1(fingerprint).digest()
        h1 = int.from_bytes(fingerprint[:8], "big") % self.shard_bits
        h2 = 1 + int.from_bytes(fingerprint[8:16], "big") % (self.shard_bits - 1)
        return int.from_bytes(fingerprint[16:20], "big") % self.shards, h1, h2

    def as_record(self) -> dict[str, int]:
        return {"shards": self.shards, "shard_bits": self.shard_bits, "hashes": self.hashes}


def bloom_key(settings: Any, spider: str) -> str:
    """The layout hash of spider ``spider``'s Bloom filter: ``BLOOM_KEY``, or ``<spider>:bloom``."""
    tagged = keys.key_spider(spider, settings)
    return cast("str", settings.get("BLOOM_KEY", DEFAULT_KEY) % {"spider": tagged, "name": tagged})


class BloomDupeFilter(SharedDupeFilter):
    """Approximate shared dupefilter in Redis bitmaps; never cleared on close."""

    duplicate_word = "(probable) duplicate"

    def __init__(
        self,
        server: Redis,
        key: str,
        fingerprinter: Any,
        layout: BloomLayout | None = None,
        debug: bool = False,
    ):
        self.server = server
        self.key = key
        self.fingerprinter = fingerprinter
        self.layout = layout or BloomLayout.for_capacity()
        self.debug = debug
        self.logged_first_duplicate = False
        self._add = server.register_script(BLOOM_ADD)
        self._check = server.register_script(BLOOM_CHECK)

    @classmethod
    def from_crawler(cls, crawler: Crawler) -> Self:
        from baike.connection import get_redis

        settings = crawler.settings
        name = crawler.spidercls.name
        if settings.getint("BAIKE_SHARDS", 1) > 1:
            raise NodeRefused(
                "the Bloom-filter dupefilter is not split over frontier shards: with BAIKE_SHARDS above 1 use"
                " DUPEFILTER_CLASS = baike.frontier.dupefilter.BucketDupeFilter"
            )
        dupefilter = cls(
            server=get_redis(settings),
            key=bloom_key(settings, name),
            fingerprinter=crawler.request_fingerprinter,
            layout=BloomLayout.for_capacity(
                settings.getint("BLOOM_CAPACITY", DEFAULT_CAPACITY),
                settings.getfloat("BLOOM_ERROR_RATE", DEFAULT_ERROR_RATE),
            ),
            debug=settings.getbool("DUPEFILTER_DEBUG"),
        )
        dupefilter.create()
        return dupefilter

    @classmethod
    def from_spider(cls, spider: Spider) -> Self:
        """scrapy-redis's own scheduler builds its dupefilter from the spider."""
        return cls.from_crawler(spider.crawler)

    def shard_key(self, index: int) -> str:
        return f"{self.key}:{index}"

    def create(self) -> BloomLayout:
        """Record the layout (or adopt the crawl's) and allocate every shard at full size.

        The layout is recorded in one MULTI/EXEC round trip, so nodes starting
        together agree; allocating sets only the reserved last bit of each shard.
        Raises NodeRefused when the crawl's layout cannot be read or is not one.
        """
        try:
            with self.server.pipeline(transaction=True) as pipe:
                for name, value in self.layout.as_record().items():
                    pipe.hsetnx(self.key, name, value)
                pipe.hmget(self.key, ["shards", "shard_bits", "hashes"])
                *_, recorded_values = pipe.execute()
        except RedisError as exc:
            raise NodeRefused(
                f"cannot read the crawl's Bloom filter layout from {self.key} ({exc}): without it this node"
                " would mark other bits than the others. Check REDIS_URL and that Redis is up, then start again"
            ) from None
        try:
            recorded = BloomLayout(*(int(value) for value in recorded_values))
        except (TypeError, ValueError) as exc:
            raise NodeRefused(
                f"the Bloom filter layout recorded in {self.key} is not one ({exc}); `scrapy reset` starts a fresh"
                " crawl, or point BLOOM_KEY / REDIS_URL at this crawl's data"
            ) from None
        if recorded != self.layout:
            logger.warning(
                "This crawl's Bloom filter is %r (recorded in %s); using it, not the %r this node's settings give",
                recorded,
                self.key,
                self.layout,
            )
            self.layout = recorded
        try:
            with self.server.pipeline(transaction=False) as pipe:
                for index in range(self.layout.shards):
                    pipe.setbit(self.shard_key(index), self.layout.shard_bits, 0)
                pipe.execute()
        except RedisError as exc:
            logger.warning("Could not set up the Bloom filter %s (%s); its shards grow on first use", self.key, exc)
        return self.layout

    def _call(self, script: Any, fingerprints: list[bytes]) -> list[bool]:
        if not fingerprints:
            return []
        # shard key -> its 1-based index in KEYS
        shard_keys: dict[str, int] = {}
        argv: list[int] = [self.layout.hashes, self.layout.shard_bits]
        for fingerprint in fingerprints:
            shard, h1, h2 = self.layout.place(fingerprint)
            argv += [shard_keys.setdefault(self.shard_key(shard), len(shard_keys) + 1), h1, h2]
        return [flag == 1 for flag in script(keys=list(shard_keys), args=argv)]

    def add_fingerprints(self, fingerprints: list[bytes]) -> list[bool]:
        """Add raw fingerprints; for each, True when it was (probably) there already."""
        return self._call(self._add, fingerprints)

    def contains_fingerprints(self, fingerprints: list[bytes]) -> list[bool]:
        """Whether each raw fingerprint is (probably) in the filter, without adding it."""
        return self._call(self._check, fingerprints)

    @property
    def bloom(self) -> tuple[int, int]:
        """``(hashes, bits per shard)``: how the push script sets the bits of a slot."""
        return self.layout.hashes, self.layout.shard_bits

    def slot(self, request: Request) -> tuple[str, bytes]:
        """``(shard key, packed h1 h2)`` of ``request``, for the scheduler's atomic push."""
        shard, h1, h2 = self.layout.place(self.fingerprinter.fingerprint(request))
        return self.shard_key(shard), _SLOT_FIELD.pack(h1, h2)

    def request_seen(self, request: Request) -> bool:
        """Mark ``request`` seen; True when it (probably) already was (one round trip)."""
        return self.add_fingerprints([self.fingerprinter.fingerprint(request)])[0]
