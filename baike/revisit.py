"""Keeping the copy fresh: revisits on a schedule, conditional requests, change history.

With ``BAIKE_REVISIT_AFTER`` > 0 every stored entry has a due time in the ``revisit``
sorted set (Redis time) and a freshness state in the ``freshness`` hash (see
:mod:`baike.keys`). The leased scheduler moves due entries into the shared frontier
(:data:`~baike.frontier.scripts.PROMOTE_DUE`) as revisit requests, at
``BAIKE_REVISIT_PRIORITY`` (below new URLs by default), bypassing the dupefilter; from
there they are leased, budgeted and settled like any request. A revisit carries the
validators the server sent last (``If-None-Match`` / ``If-Modified-Since``, added when the
request is decoded); a 304 updates the state and the schedule only
(:data:`~baike.frontier.scripts.NOT_MODIFIED`). A full page is parsed and stored through
:data:`~baike.frontier.scripts.STORE_VERSIONS`, which compares the fingerprint of the
parsed fields (:func:`fingerprint`, never the raw HTML) with the stored one: a changed
entry's previous record goes to its history. Intervals adapt: halved after a change,
grown by half when unchanged, within ``BAIKE_REVISIT_MIN`` and ``BAIKE_REVISIT_MAX``.

With ``BAIKE_REVISIT_AFTER`` = 0 (off) none of this runs and none of these keys is written.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from baike.connection import redis_time
from baike.frontier import scripts

if TYPE_CHECKING:
    from collections.abc import Iterable

    from redis import Redis

    from baike.keys import CrawlKeys

# Request meta keys of a revisit request (written by PROMOTE_DUE, allowed by the schema)
REVISIT_META_KEY = "baike_revisit"
ETAG_META_KEY = "baike_etag"
MODIFIED_META_KEY = "baike_modified"
# Record fields left out of the change fingerprint: when and where it was crawled, not what it says
UNFINGERPRINTED = frozenset({"url", "crawled_at", "changed_at"})
# Most due entries one promotion moves into the frontier
PROMOTE_BATCH = 256
DAY = 86_400.0


@dataclass(frozen=True, slots=True)
class RevisitPolicy:
    """The revisit settings of a crawl (docs/settings.md)."""

    after: float = 0.0  # BAIKE_REVISIT_AFTER: the first interval, seconds; 0 = off
    shortest: float = 3_600.0  # BAIKE_REVISIT_MIN
    longest: float = 90 * DAY  # BAIKE_REVISIT_MAX
    grace: float = 600.0  # BAIKE_REVISIT_GRACE: the crawl is not finished while one is due within it
    priority: int = -1  # BAIKE_REVISIT_PRIORITY: frontier priority of a revisit (new URLs: 0)
    history: int = 5  # BAIKE_HISTORY_LENGTH: previous versions kept per entry

    @classmethod
    def from_settings(cls, settings: Any) -> RevisitPolicy:
        return cls(
            after=max(settings.getfloat("BAIKE_REVISIT_AFTER", 0.0), 0.0),
            shortest=max(settings.getfloat("BAIKE_REVISIT_MIN", 3_600.0), 0.0),
            longest=max(settings.getfloat("BAIKE_REVISIT_MAX", 90 * DAY), 0.0),
            grace=max(settings.getfloat("BAIKE_REVISIT_GRACE", 600.0), 0.0),
            priority=settings.getint("BAIKE_REVISIT_PRIORITY", -1),
            history=max(settings.getint("BAIKE_HISTORY_LENGTH", 5), 0),
        )

    @property
    def enabled(self) -> bool:
        return self.after > 0

    def bounds(self) -> list[float]:
        """ARGV of the scripts: default interval, shortest, longest."""
        return [self.after, min(self.shortest, self.longest), self.longest]


def fingerprint(record: dict[str, Any]) -> str:
    """The change fingerprint of a record: a hash of its parsed fields (not of its URL or times)."""
    fields = {name: value for name, value in record.items() if name not in UNFINGERPRINTED}
    text = json.dumps(fields, ensure_ascii=False, sort_keys=True, separators=(",", ":"))
    return hashlib.sha1(text.encode("utf-8")).hexdigest()


def payload_tail(priority: int) -> str:
    """What follows a revisit payload's meta (see PROMOTE_DUE): the spider's callback (no errback:
    the frontier settles failures itself), the priority, and
    ``dont_filter`` (a stored entry's fingerprint is seen already)."""
    return f',"callback":"parse","errback":null,"priority":{int(priority)},"dont_filter":true}}'


def conditional_headers(meta: dict[str, Any]) -> dict[str, str]:
    """``If-None-Match`` / ``If-Modified-Since`` of a revisit request's stored validators."""
    headers = {}
    etag, modified = meta.get(ETAG_META_KEY), meta.get(MODIFIED_META_KEY)
    if isinstance(etag, str) and etag:
        headers["If-None-Match"] = etag
    if isinstance(modified, str) and modified:
        headers["If-Modified-Since"] = modified
    return headers


class Revisits:
    """The revisit scripts of one crawl, on one Redis client."""

    def __init__(self, server: Redis, keys: CrawlKeys, policy: RevisitPolicy):
        self.server = server
        self.keys = keys
        self.policy = policy
        self._promote = server.register_script(scripts.PROMOTE_DUE)
        self._store = server.register_script(scripts.STORE_VERSIONS)
        self._not_modified = server.register_script(scripts.NOT_MODIFIED)

    def promote_due(self, most: int = PROMOTE_BATCH) -> int:
        """Move up to ``most`` due entries into the frontier; returns how many."""
        keys = self.keys
        return int(
            self._promote(
                keys=[keys.revisit, keys.freshness, keys.requests, keys.request_data, keys.request_seq, keys.budget],
                args=[most, self.policy.priority, self.policy.after, payload_tail(self.policy.priority)],
            )
        )

    def store(self, records: list[tuple[dict[str, Any], str, str, str, str]], client: Redis | None = None) -> list[int]:
        """Store ``(record, record JSON, alias or "", ETag, Last-Modified)`` tuples with their
        history and schedule (STORE_VERSIONS); returns ``[new, changed, unchanged]``."""
        args: list[Any] = [*self.policy.bounds(), self.policy.history]
        for record, text, alias, etag, modified in records:
            args += [record["url"], fingerprint(record), text, alias, etag, modified]
        keys = self.keys
        reply = self._store(
            keys=[keys.items, keys.aliases, keys.freshness, keys.history, keys.revisit, keys.revisit_stats],
            args=args,
            client=client,
        )
        return [int(count) for count in reply]

    def not_modified(self, url: str, etag: str = "", modified: str = "") -> float:
        """A revisit of ``url`` was answered 304; returns its next due time (0: not stored)."""
        keys = self.keys
        reply = self._not_modified(
            keys=[keys.freshness, keys.revisit, keys.revisit_stats],
            args=[*self.policy.bounds(), url, etag, modified],
        )
        return float(reply)


def make_due(server: Redis, keys: CrawlKeys, within: float | None, now: float) -> int:
    """``scrapy recrawl``: make the entries due within ``within`` seconds of ``now`` (Redis
    time; every stored entry when None) due now. Entries stored before revisits were on are
    scheduled too. Returns how many entries were made due."""
    urls: Iterable[Any]
    if within is None:
        urls = (url for url, _ in server.hscan_iter(keys.items, count=1000))
    else:
        urls = server.zrangebyscore(keys.revisit, "-inf", now + within)
    due: set[Any] = set()
    chunk: list[Any] = []
    for url in urls:
        chunk.append(url)
        if len(chunk) >= 1000:
            server.zadd(keys.revisit, dict.fromkeys(chunk, now))
            due.update(chunk)
            chunk = []
    if chunk:
        server.zadd(keys.revisit, dict.fromkeys(chunk, now))
        due.update(chunk)
    return len(due)


@dataclass(frozen=True, slots=True)
class Freshness:
    """What ``scrapy status`` and the report show of the revisits."""

    scheduled: int = 0
    due_now: int = 0
    due_day: int = 0
    next_due: float | None = None  # Redis time
    revisits: int = 0  # revisit requests ever enqueued
    new: int = 0
    changed: int = 0
    unchanged: int = 0
    not_modified: int = 0

    @property
    def done(self) -> int:
        """Revisits answered: changed, unchanged or 304."""
        return self.changed + self.unchanged + self.not_modified


def read_freshness(server: Redis, keys: CrawlKeys, now: float) -> Freshness:
    """The revisit schedule and counters at Redis time ``now``, in one round trip."""
    with server.pipeline(transaction=False) as pipe:
        pipe.zcard(keys.revisit)
        pipe.zcount(keys.revisit, "-inf", now)
        pipe.zcount(keys.revisit, "-inf", now + DAY)
        pipe.zrange(keys.revisit, 0, 0, withscores=True)
        pipe.hget(keys.budget, "revisits")
        pipe.hmget(keys.revisit_stats, "new", "changed", "unchanged", "not_modified")
        scheduled, due_now, due_day, first, revisits, counters = pipe.execute()
    new, changed, unchanged, not_modified = (int(value or 0) for value in counters)
    next_due = float(first[0][1]) if first else None
    return Freshness(scheduled, due_now, due_day, next_due, int(revisits or 0), new, changed, unchanged, not_modified)


def due_within(server: Redis, keys: CrawlKeys, grace: float) -> bool:
    """Whether a stored entry is due within ``grace`` seconds of Redis's now."""
    first = server.zrange(keys.revisit, 0, 0, withscores=True)
    return bool(first) and float(first[0][1]) <= redis_time(server, keys.revisit) + grace
