"""Every Redis key of a crawl, built from one template table.

Keys follow scrapy-redis's naming (``<spider>:start_urls``, ``<spider>:requests``,
``<spider>:dupefilter``, ``<spider>:items``), so its tooling and habits still
apply; the extra keys baike needs for leases, the page budget, dead letters
and cluster stats sit beside them under the same prefix.
"""

from __future__ import annotations

from dataclasses import dataclass, fields

# REDIS_URL schemes of a Redis Cluster: every key then carries the hash tag {<spider>}.
CLUSTER_SCHEMES = ("redis+cluster://", "rediss+cluster://")

# scrapy-redis's own templates, kept verbatim so its settings keep working. On a Redis
# Cluster the spider's name in them is its hash tag (see key_spider): {baike}:start_urls.
START_URLS = "%(name)s:start_urls"
REQUESTS = "%(spider)s:requests"
DUPEFILTER = "%(spider)s:dupefilter"
ITEMS = "%(spider)s:items"
# hash: cluster-wide counters (pages, items, errors; per node and total); scrapy-redis's
# STATS_KEY names it, as it names the hash of its RedisStatsCollector
STATS = "%(spider)s:stats"
# the Bloom-filter dupefilter's layout hash; its shards are <key>:0, <key>:1, ...
BLOOM = "%(spider)s:bloom"
# What stands for the spider in the keys of frontier shard s >= 1 (BAIKE_SHARDS): on a
# Redis Cluster the hash tag {<spider>:<s>} (shard 0 keeps {<spider>}, so a one-shard crawl's
# keys are those of a crawl without shards); on a single Redis the same without braces.
SHARD_TAG = "%(name)s:%(shard)d"
# hash: the shared rate of one politeness key (a target host, or host and egress):
# "tat" (GCRA's theoretical arrival time, Redis seconds), "rate", "burst"
RATE = "%(spider)s:rate:%(target)s"

TEMPLATES: dict[str, str] = {
    # hash: entry id -> JSON payload of a queued or leased request, a batch of queued
    # ones ("\n" before each payload), or an admitted seed ("S" + the seed as a JSON string)
    "request_data": "%(spider)s:requests:data",
    # string: counter that orders requests of equal priority first in, first out
    "request_seq": "%(spider)s:requests:seq",
    # sorted set: leased request id -> lease deadline (unix seconds)
    "leases": "%(spider)s:leases",
    # hash: leased request id -> "<node id> <frontier score>"
    "lease_owners": "%(spider)s:leases:owners",
    # hash: budget fields "reserved" (pages downloaded or in flight) and "pages", and the
    # ledger: "enqueued", "settled", "seeds" (seed entries admitted from start_urls) and
    # "marked" (fingerprints recorded without a request: other URL forms of stored pages)
    # and "revisits" (revisit requests of stored entries, enqueued without a fingerprint)
    "budget": "%(spider)s:budget",
    # list: JSON dead letters {"reason", "time", "payload"}
    "dead": "%(spider)s:dead",
    # hash: node id -> JSON heartbeat {host, pid, pages, started, seen, ...}
    "nodes": "%(spider)s:nodes",
    # list: JSON samples {node, t, pages} for the report's chart, capped by LTRIM
    "timeline": "%(spider)s:timeline",
    # string: set (Redis time) when the first seed is admitted, so idle nodes know a crawl exists
    "started": "%(spider)s:started",
    # hash: timestamps of crawl state changes
    "state": "%(spider)s:state",
    # hash: "<script> <node id>" -> "<call id>\n<JSON reply>" of that node's last call,
    # replayed when the call is resent (see baike.frontier.scripts)
    "calls": "%(spider)s:calls",
    # hash: another URL form of a stored entry (its /subview/<lemmaId>/<subLemmaId>.htm)
    # -> the canonical URL of the record, so a queued request for that form is dropped
    "aliases": "%(spider)s:aliases",
    # string: the id of the node that flushed the crawl as it started (SCHEDULER_FLUSH_ON_START),
    # set with NX for CLUSTERSTATS_LOST_AFTER seconds so that no other node flushes meanwhile;
    # kept by the flush itself (see baike.fresh)
    "flush": "%(spider)s:flush",
    # hash: the Redis master behind a Sentinel REDIS_URL ("master", "seen/<node id>": host:port)
    # and its failovers ("count"; "last_time" on Redis's clock, "last_from", "last_to"),
    # written by the nodes (see baike.failover)
    "failover": "%(spider)s:failover",
    # Revisits (BAIKE_REVISIT_AFTER > 0; see baike.revisit), none written while it is 0:
    # sorted set: canonical URL of a stored entry -> when it is due again (Redis time)
    "revisit": "%(spider)s:revisit",
    # hash: canonical URL -> JSON freshness state {"etag", "modified" (the validators the
    # server sent), "fp" (fingerprint of the parsed fields), "interval" (seconds),
    # "checked" and "changed" (Redis time), "visits"}
    "freshness": "%(spider)s:freshness",
    # hash: canonical URL -> the entry's previous records, newest first, one JSON record a
    # line, at most BAIKE_HISTORY_LENGTH of them
    "history": "%(spider)s:history",
    # hash: revisit counters "new", "changed", "unchanged" (a full page whose fields did
    # not change) and "not_modified" (answered 304)
    "revisit_stats": "%(spider)s:revisit:stats",
    # With BAIKE_SHARDS > 1 (see baike.frontier.shards; none of these exists with one shard):
    # hash on shard 0: "count" (the crawl's shard count), "bounds" (its fingerprint split,
    # recorded with the count; none in a crawl split by fingerprint % count) and "granted"
    # (page budget units handed to the shards' allowances, less those given back)
    "shards": "%(spider)s:shards",
    # hash on shard 0: grant id -> "<shard> <units> <Redis time>", a grant not yet credited
    "grants": "%(spider)s:shards:grants",
    # sorted set on shard 0: ids of the transfers the ledger finished (grants cleared,
    # give-backs added back), by Redis time; one member per transfer, never pruned (a resent
    # step must find its id however late it comes)
    "transfers": "%(spider)s:shards:transfers",
    # sorted set on every shard: ids of the transfers the shard finished (grants added to its
    # allowance, give-backs cleared), by Redis time; never pruned either
    "credited": "%(spider)s:shards:credited",
    # hash on every shard: give-back id -> "<units> <Redis time>", taken off its allowance and
    # not yet added back to shard 0's "granted"
    "returns": "%(spider)s:shards:returns",
}


@dataclass(frozen=True, slots=True)
class CrawlKeys:
    """The resolved key names of one spider's crawl."""

    start_urls: str
    requests: str
    dupefilter: str
    items: str
    request_data: str
    request_seq: str
    leases: str
    lease_owners: str
    budget: str
    dead: str
    nodes: str
    stats: str
    timeline: str
    started: str
    state: str
    calls: str
    aliases: str
    flush: str
    failover: str
    revisit: str
    freshness: str
    history: str
    revisit_stats: str
    shards: str
    grants: str
    transfers: str
    credited: str
    returns: str
    # the prefix of the politeness keys' rate hashes (see rate), not a key itself
    rate_prefix: str
    # what stands for the spider in these keys (see key_spider), not a key itself
    tag: str = ""

    @classmethod
    def for_spider(cls, name: str, settings: object | None = None, shard: int = 0) -> CrawlKeys:
        """Resolve every key for spider ``name`` (of frontier shard ``shard``: see SHARD_TAG;
        of a shard s >= 1 only the frontier's and the dupefilter's keys are used).

        ``settings`` (a Scrapy Settings) may override the scrapy-redis keys with
        ``REDIS_START_URLS_KEY``, ``SCHEDULER_QUEUE_KEY``,
        ``SCHEDULER_DUPEFILTER_KEY``, ``REDIS_ITEMS_KEY`` and ``STATS_KEY``.
        """
        get = getattr(settings, "get", lambda _name, default=None: default)
        tagged = key_spider(name, settings, shard)
        values = {"spider": tagged, "name": tagged}
        requests = get("SCHEDULER_QUEUE_KEY", REQUESTS) % values
        return cls(
            start_urls=get("REDIS_START_URLS_KEY", START_URLS) % values,
            requests=requests,
            dupefilter=get("SCHEDULER_DUPEFILTER_KEY", DUPEFILTER) % values,
            items=get("REDIS_ITEMS_KEY", ITEMS) % values,
            stats=get("STATS_KEY", STATS) % values,
            **{field: template % values for field, template in TEMPLATES.items()},
            rate_prefix=RATE % {**values, "target": ""},
            tag=tagged,
        )

    def in_shard(self, shard: int) -> CrawlKeys:
        """These keys as frontier shard ``shard`` names them (see SHARD_TAG), from shard 0's:
        for the readers of a crawl (status, reset, dead letters) that learn its shard count
        from Redis rather than from their settings."""
        if not shard:
            return self
        cluster = self.tag.startswith("{") and self.tag.endswith("}")
        name = self.tag[1:-1] if cluster else self.tag
        base = SHARD_TAG % {"name": name, "shard": shard}
        tag = f"{{{base}}}" if cluster else base
        moved = {
            item.name: tag + value[len(self.tag) :] if value.startswith(self.tag) else value
            for item in fields(self)
            for value in (getattr(self, item.name),)
        }
        return CrawlKeys(**{**moved, "tag": tag})

    def rate(self, host: str, egress: str = "") -> str:
        """The rate hash of the politeness key ``host`` (plus ``egress`` when the node names
        one: nodes behind one address share a bucket, nodes with their own get their own)."""
        return self.rate_prefix + (f"{host}@{egress}" if egress else host)

    def all(self) -> list[str]:
        """Every fixed key of the crawl (dupefilter buckets live under ``dupefilter:*``, the
        rate hashes under ``rate_prefix``)."""
        return [getattr(self, item.name) for item in fields(self) if item.name not in ("rate_prefix", "tag")]


def on_cluster(settings: object | None) -> bool:
    """True when ``REDIS_URL`` names a Redis Cluster (``redis+cluster://``, ``rediss+cluster://``)."""
    get = getattr(settings, "get", None)
    url = get("REDIS_URL") if get is not None else None
    return isinstance(url, str) and url.lower().startswith(CLUSTER_SCHEMES)


def key_spider(name: str, settings: object | None = None, shard: int = 0) -> str:
    """What stands for the spider in every key template: ``name``, or on a Redis Cluster
    the hash tag ``{name}``, so that every key of a crawl (buckets and rate hashes
    included) is in one slot and each multi-key script can run there. Frontier shard
    ``shard`` >= 1 has its own tag (SHARD_TAG: ``name:1``, ``{name:1}``), so its slot is
    another and its work may land on another master."""
    base = SHARD_TAG % {"name": name, "shard": shard} if shard else name
    return f"{{{base}}}" if on_cluster(settings) else base


def shard_count(settings: object | None) -> int:
    """BAIKE_SHARDS: how many hash tags the frontier and the dupefilter are split over (1: none)."""
    get = getattr(settings, "getint", None)
    return max(get("BAIKE_SHARDS", 1), 1) if get is not None else 1


def shard_keys(name: str, settings: object | None = None) -> list[CrawlKeys]:
    """The keys of every frontier shard of spider ``name``, shard 0 (the crawl's own) first."""
    return [CrawlKeys.for_spider(name, settings, shard) for shard in range(shard_count(settings))]
