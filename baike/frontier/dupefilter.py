"""Shared duplicate filter with compact fingerprints (``DUPEFILTER_CLASS``).

scrapy-redis keeps 40-character SHA1 hex strings in one set: about 80 bytes of
Redis memory per URL. Here a fingerprint is cut to 8 bytes, bucketed by its first
bytes into many small hashes that Redis stores as listpacks, and the rest is the
field name: about a sixth of the memory, still exact for any crawl of Baike's size
(the chance of two of 100 million URLs sharing 64 bits is below 0.03%).
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from scrapy.dupefilters import BaseDupeFilter

from baike.keys import CrawlKeys

if TYPE_CHECKING:
    from redis import Redis
    from scrapy import Request
    from scrapy.crawler import Crawler

    # typing.Self requires Python 3.11
    from typing_extensions import Self

logger = logging.getLogger(__name__)

FINGERPRINT_BYTES = 8


class BucketDupeFilter(BaseDupeFilter):
    """Fingerprints in ``<dupefilter key>:<bucket>`` hashes; never cleared on close."""

    def __init__(
        self,
        server: Redis,
        key: str,
        fingerprinter,
        bucket_bytes: int = 2,
        debug: bool = False,
    ):
        if not 1 <= bucket_bytes < FINGERPRINT_BYTES:
            raise ValueError(f"bucket bytes must be 1..{FINGERPRINT_BYTES - 1}, not {bucket_bytes}")
        self.server = server
        self.key = key
        self.fingerprinter = fingerprinter
        self.bucket_bytes = bucket_bytes
        self.debug = debug
        self.logged_first_duplicate = False

    @classmethod
    def from_crawler(cls, crawler: Crawler) -> Self:
        from scrapy_redis.connection import get_redis_from_settings

        settings = crawler.settings
        keys = CrawlKeys.for_spider(crawler.spidercls.name, settings)
        return cls(
            server=get_redis_from_settings(settings),
            key=keys.dupefilter,
            fingerprinter=crawler.request_fingerprinter,
            bucket_bytes=settings.getint("DUPEFILTER_BUCKET_BYTES", 2),
            debug=settings.getbool("DUPEFILTER_DEBUG"),
        )

    def slot(self, request: Request) -> tuple[str, bytes]:
        """Return ``(bucket key, field)`` holding ``request``'s fingerprint."""
        fingerprint = self.fingerprinter.fingerprint(request)[:FINGERPRINT_BYTES]
        bucket = fingerprint[: self.bucket_bytes].hex()
        return f"{self.key}:{bucket}", fingerprint[self.bucket_bytes :]

    def request_seen(self, request: Request) -> bool:
        """Mark ``request`` seen; True when it already was (one round trip)."""
        key, field = self.slot(request)
        return self.server.hsetnx(key, field, b"") == 0

    def clear(self) -> int:
        """Delete every bucket; only the explicit fresh-crawl operation calls this."""
        deleted = 0
        for key in self.server.scan_iter(match=f"{self.key}:*", count=1000):
            deleted += self.server.unlink(key)
        return deleted

    def close(self, reason: str = "") -> None:
        """Keep the fingerprints: they belong to the whole cluster's crawl."""

    def log(self, request: Request, spider) -> None:
        if self.debug:
            logger.debug("Filtered duplicate request: %(request)s", {"request": request})
        elif not self.logged_first_duplicate:
            logger.debug(
                "Filtered duplicate request %(request)s - no more duplicates will be shown"
                " (see DUPEFILTER_DEBUG to show all duplicates)",
                {"request": request},
            )
            self.logged_first_duplicate = True
