"""The project's typed settings, their forms and ranges, and the check of a node's values.

``scrapy crawl`` runs :func:`check_settings` before anything starts, so that a bad
value (``-s CLOSESPIDER_PAGECOUNT=abc``, a negative lease time, a zero flush
interval, ``yes`` for a boolean) is one line naming the setting and the form it
needs, instead of a traceback from whichever component reads it first.

A value passes when the component reading it gets what it expects: numbers are read
the way Scrapy's ``getint``/``getfloat`` read them (``"16"``, ``"0.5"``, ``"1e3"``),
with no fractions for whole numbers and no NaN or infinity; booleans are the forms
Scrapy documents for ``getbool``; lists are lists or comma-separated strings. A
setting that is not set at all is left to its component's default.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

from baike.frontier.bloom import DEFAULT_CAPACITY, DEFAULT_ERROR_RATE, BloomLayout
from baike.frontier.dupefilter import (
    DEFAULT_BUCKET_ENTRIES,
    DEFAULT_EXPECTED_URLS,
    DEFAULT_FIELD_BYTES,
    BucketLayout,
)
from baike.frontier.scheduler import MAX_FLUSH_SIZE
from baike.keys import on_cluster
from baike.scrapyredis import refusals
from baike.urls import deny_list

if TYPE_CHECKING:
    from collections.abc import Callable

    from scrapy.settings import BaseSettings

Kind = Literal["int", "float", "bool", "list"]

# The forms Scrapy documents for getbool (True and False also stand for 1 and 0).
BOOL_FORMS = frozenset({True, False, "1", "0", "True", "False", "true", "false"})


@dataclass(frozen=True, slots=True)
class Rule:
    """The form a typed setting must have: kind, range, and a note on special values."""

    kind: Kind
    low: float | None = None
    high: float | None = None
    # True when ``low`` itself is not allowed (a time that must be above 0)
    above_low: bool = False
    below_high: bool = False
    unit: str = ""
    note: str = ""
    # lists: the rule of every item, and what the items are called
    item: Rule | None = None
    items_are: str = ""

    @property
    def expected(self) -> str:
        """The expected form in words, e.g. ``a whole number >= 0 (0 = no budget)``."""
        if self.kind == "bool":
            words = "True or False (or 1 or 0)"
        elif self.kind == "list":
            words = "a comma-separated list" + (f" of {self.items_are}" if self.items_are else "")
        else:
            words = ("a whole number" if self.kind == "int" else "a number") + (f" of {self.unit}" if self.unit else "")
            words += self._range()
        return f"{words} ({self.note})" if self.note else words

    def _range(self) -> str:
        if self.kind == "int" and self.low is not None and self.high is not None:
            return f" from {self.low:g} to {self.high:g}"
        bounds = []
        if self.low is not None:
            bounds.append(f"{'>' if self.above_low else '>='} {self.low:g}")
        if self.high is not None:
            bounds.append(f"{'<' if self.below_high else '<='} {self.high:g}")
        return " " + " and ".join(bounds) if bounds else ""

    def accepts(self, value: Any) -> bool:
        """True when ``value`` (as set, before any conversion) has this form."""
        try:
            converted = CONVERTERS[self.kind](value)
        except (TypeError, ValueError):
            return False
        if self.kind == "list":
            return self.item is None or all(self.item.accepts(item) for item in converted)
        if self.kind == "bool":
            return True
        return self._in_range(converted)

    def _in_range(self, number: float) -> bool:
        if self.low is not None and (number < self.low or (self.above_low and number == self.low)):
            return False
        return self.high is None or not (number > self.high or (self.below_high and number == self.high))


def _whole(value: Any) -> int:
    """``int(value)`` as Scrapy's getint does, without truncating fractions or taking booleans."""
    if isinstance(value, bool) or (isinstance(value, float) and not value.is_integer()):
        raise ValueError(value)
    return int(value)


def _number(value: Any) -> float:
    """``float(value)`` as Scrapy's getfloat does, finite only."""
    if isinstance(value, bool):
        raise ValueError(value)
    number = float(value)
    if not math.isfinite(number):
        raise ValueError(value)
    return number


def _boolean(value: Any) -> Any:
    """``value`` when it is one of :data:`BOOL_FORMS` (a float never is)."""
    if isinstance(value, float) or value not in BOOL_FORMS:
        raise ValueError(value)
    return value


def _listing(value: Any) -> list[Any]:
    """A list as Scrapy's getlist makes it: a list or tuple, or a string split on commas."""
    if isinstance(value, str):
        return value.split(",") if value else []
    if isinstance(value, (list, tuple)):
        return list(value)
    raise ValueError(value)


CONVERTERS: dict[Kind, Callable[[Any], Any]] = {
    "int": _whole,
    "float": _number,
    "bool": _boolean,
    "list": _listing,
}


def whole(low: int = 0, high: int | None = None, note: str = "") -> Rule:
    return Rule("int", low=low, high=high, note=note)


def seconds(low: float = 0.0, above: bool = True, note: str = "") -> Rule:
    """A time in seconds; above ``low`` (the default) or at least ``low``."""
    return Rule("float", low=low, above_low=above, unit="seconds", note=note)


BOOL = Rule("bool")
OFF_AT_ZERO = "0 = off"

TYPED_SETTINGS: dict[str, Rule] = {
    # where the crawl lives
    "REDIS_START_URLS_BATCH_SIZE": whole(1),
    "REDIS_WAIT_REPLICAS": whole(0, note="0 = no WAIT"),
    "REDIS_WAIT_TIMEOUT": Rule("int", low=1, unit="milliseconds"),
    "REDIS_START_URLS_AS_SET": BOOL,
    "REDIS_START_URLS_AS_ZSET": BOOL,
    "REDIS_DECODE_RESPONSES": BOOL,
    # the shared frontier
    "SCHEDULER_PERSIST": BOOL,
    "SCHEDULER_FLUSH_ON_START": BOOL,
    "SCHEDULER_IDLE_BEFORE_CLOSE": whole(0, note="seconds; only 0 with the leased scheduler"),
    "SCHEDULER_BATCH_SIZE": whole(1),
    "SCHEDULER_FLUSH_SIZE": whole(1, MAX_FLUSH_SIZE),
    "SCHEDULER_FLUSH_INTERVAL": seconds(),
    "SCHEDULER_FLUSH_SHARD_SIZE": whole(1, MAX_FLUSH_SIZE),
    "SCHEDULER_LEASE_SECONDS": seconds(),
    "SCHEDULER_HEARTBEAT_INTERVAL": seconds(),
    "SCHEDULER_IDLE_POLL": seconds(),
    "SCHEDULER_KNOWN_FINGERPRINTS": whole(0),
    "BAIKE_KNOWN_LINKS": whole(0, note=OFF_AT_ZERO),
    "BAIKE_SHARDS": whole(1, 0xFFFF),
    "BAIKE_SHARD0_SHARE": Rule("float", low=0.0, high=1.0, above_low=True, note="1 = an even split"),
    "SCHEDULER_EXTRA_META_KEYS": Rule("list", items_are="Request.meta keys"),
    # dedup
    "DUPEFILTER_EXPECTED_URLS": whole(1),
    "DUPEFILTER_BUCKET_ENTRIES": whole(1),
    "DUPEFILTER_FIELD_BYTES": whole(1, 16),
    "DUPEFILTER_DEBUG": BOOL,
    "BLOOM_CAPACITY": whole(1),
    "BLOOM_ERROR_RATE": Rule("float", low=0.0, high=1.0, above_low=True, below_high=True),
    # stopping: baike's cluster-wide conditions and Scrapy's per-process ones
    "CLOSESPIDER_PAGECOUNT": whole(0, note="0 = no budget"),
    "CLOSESPIDER_FINISHED_GRACE": seconds(above=False),
    "CLOSESPIDER_POLL_INTERVAL": seconds(),
    "MAX_IDLE_TIME_BEFORE_CLOSE": Rule(
        "int", unit="seconds", note="0 = wait forever, below 0 = close as soon as the crawl has nothing"
    ),
    "CLOSESPIDER_TIMEOUT": seconds(above=False, note=OFF_AT_ZERO),
    "CLOSESPIDER_TIMEOUT_NO_ITEM": whole(0, note=f"seconds, {OFF_AT_ZERO}"),
    "CLOSESPIDER_ITEMCOUNT": whole(0, note=OFF_AT_ZERO),
    "CLOSESPIDER_ERRORCOUNT": whole(0, note=OFF_AT_ZERO),
    "CLOSESPIDER_PAGECOUNT_NO_ITEM": whole(0, note=OFF_AT_ZERO),
    # politeness and robustness
    "ROBOTSTXT_OBEY": BOOL,
    "CONCURRENT_REQUESTS": whole(1),
    "CONCURRENT_REQUESTS_PER_DOMAIN": whole(1),
    "DOWNLOAD_TIMEOUT": seconds(),
    "AUTOTHROTTLE_ENABLED": BOOL,
    "AUTOTHROTTLE_START_DELAY": seconds(above=False),
    "AUTOTHROTTLE_MAX_DELAY": seconds(above=False),
    "AUTOTHROTTLE_TARGET_CONCURRENCY": Rule("float", low=0.0, above_low=True),
    "RETRY_ENABLED": BOOL,
    "RETRY_TIMES": whole(0),
    "RETRY_HTTP_CODES": Rule("list", item=whole(100, 599), items_are="HTTP status codes (100 to 599)"),
    "COOKIES_ENABLED": BOOL,
    "TELNETCONSOLE_ENABLED": BOOL,
    "REMOTE_CONTROL_ENABLED": BOOL,
    "BAIKE_CAPTCHA_RETRIES": whole(0),
    "BAIKE_DENY_URLS": Rule("list", items_are="Baike URLs or paths (/item/<name>, /view/<n>.htm)"),
    "BAIKE_CLUSTER_RATE": Rule("float", low=0.0, above_low=False, unit="requests per second", note=OFF_AT_ZERO),
    "BAIKE_CLUSTER_BURST": whole(1),
    "BAIKE_COOLDOWN": seconds(above=False),
    "BAIKE_COOLDOWN_MAX": seconds(above=False),
    "BAIKE_BACKOFF_WINDOW": seconds(1.0, above=False),
    # revisits (baike.revisit)
    "BAIKE_REVISIT_AFTER": seconds(above=False, note=OFF_AT_ZERO),
    "BAIKE_REVISIT_MIN": seconds(above=False),
    "BAIKE_REVISIT_MAX": seconds(above=False),
    "BAIKE_REVISIT_GRACE": seconds(above=False),
    "BAIKE_REVISIT_PRIORITY": Rule("int", low=-10_000, high=10_000),
    "BAIKE_HISTORY_LENGTH": whole(0),
    # item pipelines
    "REDIS_STORE_BATCH_SIZE": whole(1),
    "REDIS_STORE_FLUSH_INTERVAL": seconds(),
    "REDIS_STORE_RETRY_SECONDS": seconds(above=False),
    # cluster stats and the stats line
    "CLUSTERSTATS_ENABLED": BOOL,
    "CLUSTERSTATS_INTERVAL": seconds(),
    "CLUSTERSTATS_RATE_WINDOW": seconds(),
    "CLUSTERSTATS_TIMELINE_LENGTH": whole(0, note="0 = no timeline"),
    "CLUSTERSTATS_ERROR_STATS": Rule("list", items_are="stats names"),
    "CLUSTERSTATS_LOST_AFTER": seconds(),
    "LOGSTATS_INTERVAL": seconds(above=False, note="0 = no stats line"),
    # metrics
    "BAIKE_METRICS_PORT": whole(0, 65535, note="a TCP port, 0 = off"),
}


def check_settings(settings: BaseSettings) -> list[str]:
    """Every problem with the typed settings in ``settings``, one line each, in table order.

    Each line names the setting, its value and the expected form, e.g.
    ``CLOSESPIDER_PAGECOUNT='abc' is not valid: expected a whole number >= 0 (0 = no budget)``.
    Once every typed setting has its form and range, the scrapy-redis settings this node
    cannot honour are reported (:func:`baike.scrapyredis.refusals`, e.g.
    ``SCHEDULER_IDLE_BEFORE_CLOSE=10 refused: ...; use MAX_IDLE_TIME_BEFORE_CLOSE``), and
    settings that go together (the dupefilter's and the Bloom filter's sizes) are checked
    together. An empty list means the node may start.
    """
    problems = [
        f"{name}={value!r} is not valid: expected {rule.expected}"
        for name, rule in TYPED_SETTINGS.items()
        if (value := settings.get(name)) is not None and not rule.accepts(value)
    ]
    return problems or [
        *refusals(settings),
        *_check_layouts(settings),
        *_check_deny_list(settings),
        *_check_replica_wait(settings),
    ]


def _check_replica_wait(settings: BaseSettings) -> list[str]:
    if on_cluster(settings) and settings.getint("REDIS_WAIT_REPLICAS", 0) > 0:
        return [
            "REDIS_WAIT_REPLICAS is not supported with a Redis Cluster REDIS_URL yet (WAIT is sent on one pinned"
            " connection of a single master's pool): leave it 0, or use a Sentinel REDIS_URL"
        ]
    return []


def _check_deny_list(settings: BaseSettings) -> list[str]:
    try:
        deny_list(settings.getlist("BAIKE_DENY_URLS"))
    except ValueError as exc:
        return [f"BAIKE_DENY_URLS: {exc}"]
    return []


def _check_layouts(settings: BaseSettings) -> list[str]:
    """Build the two dupefilter layouts from the sizes, with the filters' own defaults and checks."""
    problems = []
    try:
        BucketLayout.for_size(
            expected_urls=settings.getint("DUPEFILTER_EXPECTED_URLS", DEFAULT_EXPECTED_URLS),
            bucket_entries=settings.getint("DUPEFILTER_BUCKET_ENTRIES", DEFAULT_BUCKET_ENTRIES),
            field_bytes=settings.getint("DUPEFILTER_FIELD_BYTES", DEFAULT_FIELD_BYTES),
        )
    except ValueError as exc:
        problems.append(f"DUPEFILTER_EXPECTED_URLS, DUPEFILTER_BUCKET_ENTRIES: no usable bucket layout ({exc})")
    try:
        BloomLayout.for_capacity(
            settings.getint("BLOOM_CAPACITY", DEFAULT_CAPACITY),
            settings.getfloat("BLOOM_ERROR_RATE", DEFAULT_ERROR_RATE),
        )
    except ValueError as exc:
        problems.append(f"BLOOM_CAPACITY, BLOOM_ERROR_RATE: no usable Bloom filter ({exc})")
    return problems
