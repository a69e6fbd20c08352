"""scrapy-redis's settings in baike: each one honoured with its documented meaning, or refused.

A user coming from scrapy-redis brings its settings along. Most work here as scrapy-redis
documents them (docs/settings.md, "scrapy-redis settings", lists every one and what baike
does with it). The ones that cannot work with the leased frontier, or would quietly do
something else here, are refused when ``scrapy crawl`` starts: :func:`refusals` gives one
line each, naming what to use instead (:func:`baike.settingscheck.check_settings` runs it),
and :func:`argument_refusals` does the same for scrapy-redis's spider attributes given as
``-a name=value``.

Which settings apply depends on the node's ``SCHEDULER`` (its own setting, never data
from Redis): baike's leased scheduler, scrapy-redis's own ``scrapy_redis.scheduler.Scheduler``
(which applies its settings itself, as scrapy-redis documents), or another one such as
Scrapy's, which reads none of scrapy-redis's scheduler settings.
"""

from __future__ import annotations

import codecs
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Literal

from scrapy.utils.misc import load_object
from scrapy_redis.dupefilter import RFPDupeFilter
from scrapy_redis.pipelines import RedisPipeline
from scrapy_redis.scheduler import Scheduler as RedisScheduler
from scrapy_redis.stats import RedisStatsCollector

from baike.frontier.queue import LeasedQueue
from baike.frontier.scheduler import LeasedScheduler

if TYPE_CHECKING:
    from scrapy.settings import BaseSettings

SchedulerKind = Literal["leased", "scrapy-redis", "other", "unknown"]

# scrapy-redis reads these to build a client without REDIS_URL; baike always has a REDIS_URL
CONNECTION_PARTS = ("REDIS_HOST", "REDIS_PORT", "REDIS_DB")
# serializers that run code named by what they read (scrapy-redis's default is the first)
PICKLING_SERIALIZERS = frozenset({"scrapy_redis.picklecompat", "pickle", "_pickle", "marshal"})
# scrapy-redis's spider attributes that a spider argument (-a) may set, and what to use instead
SPIDER_ARGUMENTS = {
    "redis_key": "seeds are read from REDIS_START_URLS_KEY by every node; use -s REDIS_START_URLS_KEY=...",
    "redis_batch_size": "each take admits REDIS_START_URLS_BATCH_SIZE seeds; use -s REDIS_START_URLS_BATCH_SIZE=...",
    "redis_encoding": "seeds are read as UTF-8",
}

Refusal = Callable[["BaseSettings", SchedulerKind], "str | None"]


def scheduler_kind(settings: BaseSettings) -> SchedulerKind:
    """Which scheduler ``SCHEDULER`` names; "unknown" when it cannot be loaded (Scrapy reports that)."""
    loaded = _load(settings.get("SCHEDULER"))
    if not isinstance(loaded, type):
        return "unknown"
    if issubclass(loaded, LeasedScheduler):
        return "leased"
    return "scrapy-redis" if issubclass(loaded, RedisScheduler) else "other"


def refusals(settings: BaseSettings) -> list[str]:
    """One line per scrapy-redis setting this node cannot honour, with what to use instead."""
    kind = scheduler_kind(settings)
    return [line for rule in RULES if (line := rule(settings, kind))]


def argument_refusals(arguments: dict[str, Any]) -> list[str]:
    """One line per scrapy-redis spider attribute given as ``-a`` that baike does not read
    (``max_idle_time`` is read, as MAX_IDLE_TIME_BEFORE_CLOSE is, and must be a whole number)."""
    lines = [
        f"-a {name}={value!r} is refused: {SPIDER_ARGUMENTS[name]}"
        for name, value in arguments.items()
        if name in SPIDER_ARGUMENTS
    ]
    max_idle = arguments.get("max_idle_time")
    if max_idle is not None:
        try:
            int(max_idle)
        except ValueError:
            lines.append(f"-a max_idle_time={max_idle!r} is not valid: expected a whole number of seconds")
    return lines


# -- the rules: each returns one line, or None ------------------------------------------------


def connection_parts(settings: BaseSettings, kind: SchedulerKind) -> str | None:
    named = [f"{name}={settings.get(name)!r}" for name in CONNECTION_PARTS if settings.get(name)]
    if not named:
        return None
    return (
        f"{', '.join(named)} refused: baike always connects to REDIS_URL, which scrapy-redis prefers to"
        " REDIS_HOST, REDIS_PORT and REDIS_DB; write them into REDIS_URL=redis://host:port/db (or the REDIS_URL"
        " environment variable)"
    )


def encoding(settings: BaseSettings, kind: SchedulerKind) -> str | None:
    for name, value in (("REDIS_ENCODING", settings.get("REDIS_ENCODING")), *_params(settings, "encoding")):
        if value and not _is_utf8(value):
            return (
                f"{name}={value!r} refused: seeds, frontier payloads and stored records are UTF-8 (and scrapy export"
                " reads them so); leave it unset, or utf-8"
            )
    return None


def decode_responses(settings: BaseSettings, kind: SchedulerKind) -> str | None:
    given = ("REDIS_DECODE_RESPONSES", settings.get("REDIS_DECODE_RESPONSES"))
    for name, value in (given, *_params(settings, "decode_responses")):
        if value is not None and _truthy(value):
            return (
                f"{name}={value!r} refused: baike reads Redis replies as bytes (seeds, payloads, fingerprints,"
                " records); leave it off"
            )
    return None


def items_serializer(settings: BaseSettings, kind: SchedulerKind) -> str | None:
    value = settings.get("REDIS_ITEMS_SERIALIZER")
    if not value:
        return None
    return (
        f"REDIS_ITEMS_SERIALIZER={value!r} refused: baike.pipelines.RedisStorePipeline stores each item as a JSON"
        " object in the hash REDIS_ITEMS_KEY, which scrapy export reads; export to another format with"
        " `scrapy export -o FILE`, or add a pipeline of your own to ITEM_PIPELINES"
    )


def redis_pipeline(settings: BaseSettings, kind: SchedulerKind) -> str | None:
    for path, order in settings.getwithbase("ITEM_PIPELINES").items():
        loaded = _load(path)
        if order is not None and isinstance(loaded, type) and issubclass(loaded, RedisPipeline):
            return (
                f"ITEM_PIPELINES has {_name(path)}, refused: it pushes items onto a list named REDIS_ITEMS_KEY, where"
                " baike keeps a hash of records; baike.pipelines.RedisStorePipeline (enabled by default) stores every"
                " item there already: remove it"
            )
    return None


def stats_class(settings: BaseSettings, kind: SchedulerKind) -> str | None:
    value = settings.get("STATS_CLASS")
    loaded = _load(value)
    if not (isinstance(loaded, type) and issubclass(loaded, RedisStatsCollector)):
        return None
    return (
        f"STATS_CLASS={_name(value)} refused: it would write every node's Scrapy stats, one command each, into the"
        " cluster's stats hash STATS_KEY; baike keeps Scrapy's stats in each node and adds the cluster's up in that"
        " hash itself (baike.extensions.clusterstats.ClusterStats, shown by scrapy status): leave STATS_CLASS unset"
    )


def dupefilter_class_setting(settings: BaseSettings, kind: SchedulerKind) -> str | None:
    value = settings.get("SCHEDULER_DUPEFILTER_CLASS")
    if not value:
        return None
    return (
        f"SCHEDULER_DUPEFILTER_CLASS={_name(value)} refused: scrapy-redis's scheduler, and baike's, read"
        f" DUPEFILTER_CLASS; set DUPEFILTER_CLASS={_name(value)} instead"
    )


def persist(settings: BaseSettings, kind: SchedulerKind) -> str | None:
    value = settings.get("SCHEDULER_PERSIST")
    if value is None or _truthy(value):
        return None
    if kind == "leased":
        return (
            f"SCHEDULER_PERSIST={value!r} refused: no node deletes the shared frontier and fingerprints when it"
            " closes, since the other nodes still crawl them; for a fresh crawl run `scrapy reset`, or start the"
            " first node with SCHEDULER_FLUSH_ON_START=True"
        )
    return _not_read("SCHEDULER_PERSIST", value, kind, settings, "run `scrapy reset` for a fresh crawl")


def flush_on_start(settings: BaseSettings, kind: SchedulerKind) -> str | None:
    value = settings.get("SCHEDULER_FLUSH_ON_START")
    if value is None or not _truthy(value):
        return None
    if kind == "leased" and not _truthy(settings.get("CLUSTERSTATS_ENABLED", True)):
        return (
            f"SCHEDULER_FLUSH_ON_START={value!r} refused with CLUSTERSTATS_ENABLED off: without node records a"
            " starting node cannot tell a running crawl from an ended one, and could flush it; turn"
            " CLUSTERSTATS_ENABLED on, or run `scrapy reset` before starting the nodes"
        )
    return _not_read("SCHEDULER_FLUSH_ON_START", value, kind, settings, "run `scrapy reset` for a fresh crawl")


def idle_before_close(settings: BaseSettings, kind: SchedulerKind) -> str | None:
    value = settings.get("SCHEDULER_IDLE_BEFORE_CLOSE")
    if value is None or not int(value):
        return None
    if kind == "leased":
        return (
            f"SCHEDULER_IDLE_BEFORE_CLOSE={value!r} refused: it is how long scrapy-redis's queue blocks the node"
            " waiting for a request, and the leased scheduler never blocks: an idle node looks for work every"
            " SCHEDULER_IDLE_POLL seconds; to close a node that waits too long, use MAX_IDLE_TIME_BEFORE_CLOSE"
        )
    return _not_read("SCHEDULER_IDLE_BEFORE_CLOSE", value, kind, settings, "use MAX_IDLE_TIME_BEFORE_CLOSE")


def queue_class(settings: BaseSettings, kind: SchedulerKind) -> str | None:
    value = settings.get("SCHEDULER_QUEUE_CLASS")
    loaded = _load(value)
    if kind != "leased" or not value or not isinstance(loaded, type) or issubclass(loaded, LeasedQueue):
        return None
    return (
        f"SCHEDULER_QUEUE_CLASS={_name(value)} refused: the leased scheduler needs baike.frontier.queue.LeasedQueue"
        " (or a subclass), which leases what it hands out; scrapy-redis's queues run with"
        " SCHEDULER=scrapy_redis.scheduler.Scheduler"
    )


def shared_dupefilter(settings: BaseSettings, kind: SchedulerKind) -> str | None:
    value = settings.get("DUPEFILTER_CLASS")
    loaded = _load(value)
    if kind != "leased" or not (isinstance(loaded, type) and issubclass(loaded, RFPDupeFilter)):
        return None
    return (
        f"DUPEFILTER_CLASS={_name(value)} refused: built by the leased scheduler (from the crawler, not the spider)"
        " it keeps each node's fingerprints under a key of its own (dupefilter:<timestamp>), so nodes would crawl"
        " each other's pages again; use baike.frontier.dupefilter.BucketDupeFilter (the default) or"
        " baike.frontier.bloom.BloomDupeFilter"
    )


def serializer(settings: BaseSettings, kind: SchedulerKind) -> str | None:
    value = settings.get("SCHEDULER_SERIALIZER")
    if kind != "leased" or _name(value) not in PICKLING_SERIALIZERS:
        return None
    return (
        f"SCHEDULER_SERIALIZER={_name(value)} refused: it would run whatever code a payload read from Redis names;"
        " the leased frontier's payloads are JSON checked against a strict schema (baike.frontier.serializer, the"
        " default)"
    )


RULES: tuple[Refusal, ...] = (
    connection_parts,
    encoding,
    decode_responses,
    persist,
    flush_on_start,
    idle_before_close,
    queue_class,
    dupefilter_class_setting,
    shared_dupefilter,
    serializer,
    redis_pipeline,
    items_serializer,
    stats_class,
)


# -- helpers ----------------------------------------------------------------------------------


def _not_read(name: str, value: Any, kind: SchedulerKind, settings: BaseSettings, instead: str) -> str | None:
    """The line for a scheduler setting that this node's SCHEDULER does not read (None when it does)."""
    if kind in ("leased", "scrapy-redis", "unknown"):
        return None
    return (
        f"{name}={value!r} refused: only scrapy-redis's schedulers read it, and SCHEDULER is"
        f" {_name(settings.get('SCHEDULER'))}; {instead}"
    )


def _load(path: Any) -> Any:
    """The object ``path`` names (or ``path`` itself when it is one); None when it cannot be loaded."""
    if not isinstance(path, str):
        return path
    try:
        return load_object(path)
    except (ImportError, NameError, ValueError, AttributeError):
        return None


def _name(value: Any) -> str:
    """A setting's value as written: a dotted path, or the path of the object given."""
    if isinstance(value, str) or value is None:
        return str(value)
    return f"{getattr(value, '__module__', '')}.{getattr(value, '__qualname__', value)}".lstrip(".")


def _params(settings: BaseSettings, name: str) -> list[tuple[str, Any]]:
    """``REDIS_PARAMS[name]`` as a (label, value) pair, when set."""
    params = settings.getdict("REDIS_PARAMS")
    return [(f"REDIS_PARAMS[{name!r}]", params[name])] if name in params else []


def _is_utf8(value: Any) -> bool:
    try:
        return codecs.lookup(str(value)).name == "utf-8"
    except LookupError:
        return False


def _truthy(value: Any) -> bool:
    """A boolean setting's value as Scrapy's getbool reads it (the typed check ran first)."""
    if isinstance(value, str):
        return value.strip().lower() in ("1", "true")
    return bool(value)
