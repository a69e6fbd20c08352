"""A fresh crawl: the one operation that deletes a crawl's state.

``scrapy reset`` runs it by hand (:func:`reset_crawl`). A node started with scrapy-redis's
``SCHEDULER_FLUSH_ON_START`` runs the same operation as it starts, when it is the first
node of the crawl (:func:`flush_at_start`). Nothing else ever deletes crawl state: a node
that closes keeps everything, since the frontier and the fingerprints belong to the cluster.

A fresh crawl deletes every key of :class:`~baike.keys.CrawlKeys` (the frontier and its
data, leases, budget and ledger, dead letters, node records, cluster stats, timeline, crawl
state, call replies) except the seeds waiting in ``start_urls``, the flush guard and, when
asked, the stored items; then the dupefilter's buckets and layout, the Bloom filter's shards
and layout, and the shared rates' hashes.

"The first node" is decided the way ``scrapy reset`` refuses: a node flushes only when no
node of the crawl is alive (``baike:nodes``, as ``scrapy status`` reads it), and only the
node that sets the guard ``baike:flush`` (``SET NX``, on Redis's clock) may flush, so of
nodes starting together exactly one does, and a node joining a running crawl never wipes it.
The guard lasts ``CLUSTERSTATS_LOST_AFTER`` seconds, long enough for the flushing node's own
record to say it is alive; that node gives the guard back when it closes.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import TYPE_CHECKING, cast

from baike.connection import redis_time
from baike.frontier.bloom import BloomDupeFilter
from baike.frontier.dupefilter import BucketDupeFilter
from baike.frontier.shards import crawl_shards
from baike.status import ALIVE, read_nodes

if TYPE_CHECKING:
    from redis import Redis

    from baike.keys import CrawlKeys

logger = logging.getLogger(__name__)

# Live nodes named in a log line; the rest are counted.
NAMED_NODES = 5

# RELEASE_FLUSH_GUARD: give the flush guard back if it still names this node (its TTL may
# have run out and another node set it since). Safe to run twice.
# KEYS[1] the flush guard (string)   ARGV[1] node id
# Returns 1 when the guard was this node's and is gone, else 0.
RELEASE_FLUSH_GUARD = """
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
"""


@dataclass(frozen=True, slots=True)
class FlushAtStart:
    """What a node started with ``SCHEDULER_FLUSH_ON_START`` did."""

    flushed: bool
    deleted: int = 0
    # why not: the node whose guard was set, or the nodes alive
    guarded_by: str = ""
    alive: tuple[str, ...] = ()


def live_nodes(server: Redis, keys: CrawlKeys, lost_after: float) -> list[str]:
    """The ids of the nodes whose record in ``baike:nodes`` says they are alive.

    As ``scrapy status`` decides: not closed, and heard from within ``lost_after``
    seconds (or three of the node's own intervals) of Redis's clock. A
    ``baike:nodes`` of another type holds no node of this crawl.
    """
    if server.type(keys.nodes) not in (b"hash", "hash"):
        return []
    nodes = read_nodes(
        cast("dict[bytes, bytes]", server.hgetall(keys.nodes)), redis_time(server, keys.nodes), lost_after
    )
    return [node["node"] for node in nodes if node["status"] == ALIVE]


def doomed_keys(keys: CrawlKeys, keep_items: bool) -> list[str]:
    """The crawl's fixed keys a fresh crawl deletes: all but the seeds, the flush guard and
    (with ``keep_items``) the items and their aliases (the other URL forms of stored entries),
    with their revisit schedule, freshness state and history."""
    copy = (keys.items, keys.aliases, keys.revisit, keys.freshness, keys.history, keys.revisit_stats)
    kept = {keys.start_urls, keys.flush, *(copy if keep_items else ())}
    return [key for key in keys.all() if key not in kept]


def frontier_keys(keys: CrawlKeys) -> list[str]:
    """The keys a frontier shard s >= 1 holds (see baike.frontier.shards); its buckets aside."""
    return [
        keys.requests,
        keys.request_data,
        keys.request_seq,
        keys.leases,
        keys.lease_owners,
        keys.budget,
        keys.dead,
        keys.calls,
        keys.credited,
        keys.returns,
    ]


def reset_crawl(server: Redis, keys: CrawlKeys, bloom_key: str, keep_items: bool) -> int:
    """Delete the crawl's state (see the module); returns how many keys were deleted."""
    shards = crawl_shards(server, keys)
    deleted = server.delete(*doomed_keys(keys, keep_items))
    for shard in shards[1:]:
        # a frontier shard's keys (BAIKE_SHARDS): its frontier, leases, ledger and dead letters
        deleted += server.delete(*frontier_keys(shard))
        deleted += sum(server.unlink(key) for key in server.scan_iter(match=f"{shard.rate_prefix}*", count=1000))
    for shard in shards:
        deleted += BucketDupeFilter(server, shard.dupefilter, fingerprinter=None).clear()
    deleted += sum(server.unlink(key) for key in server.scan_iter(match=f"{keys.rate_prefix}*", count=1000))
    return deleted + BloomDupeFilter(server, bloom_key, fingerprinter=None).clear()


def flush_at_start(server: Redis, keys: CrawlKeys, bloom_key: str, node: str, lost_after: float) -> FlushAtStart:
    """``scrapy reset --keep-items``, run by ``node`` if it is the first node of the crawl.

    Sets the guard first (``SET NX PX`` for ``lost_after`` seconds: whoever sets it
    decides), then flushes unless a node is alive (heard from within ``lost_after``).
    Redis errors propagate: the caller refuses the node.
    """
    if not server.set(keys.flush, node, nx=True, px=max(int(lost_after * 1000), 1)):
        holder = cast("bytes | None", server.get(keys.flush))
        return FlushAtStart(False, guarded_by=holder.decode("utf-8", "replace") if holder else "another node")
    alive = live_nodes(server, keys, lost_after)
    if alive:
        return FlushAtStart(False, alive=tuple(alive))
    return FlushAtStart(True, deleted=reset_crawl(server, keys, bloom_key, keep_items=True))


def log_flush_at_start(done: FlushAtStart, where: str, keys: CrawlKeys) -> None:
    """The one INFO line saying what a node started with SCHEDULER_FLUSH_ON_START did."""
    if done.flushed:
        logger.info(
            "SCHEDULER_FLUSH_ON_START: flushed the crawl at %s as its first node: deleted %d key%s (frontier,"
            " fingerprints, leases, budget, dead letters, node records, stats and state); kept the seeds in %s"
            " and the items in %s",
            where,
            done.deleted,
            "" if done.deleted == 1 else "s",
            keys.start_urls,
            keys.items,
        )
    elif done.alive:
        named = ", ".join(done.alive[:NAMED_NODES])
        if len(done.alive) > NAMED_NODES:
            named += f" and {len(done.alive) - NAMED_NODES} more"
        logger.info(
            "SCHEDULER_FLUSH_ON_START: not flushed: the crawl is running on %d live node%s (%s); joining it",
            len(done.alive),
            "" if len(done.alive) == 1 else "s",
            named,
        )
    else:
        logger.info(
            "SCHEDULER_FLUSH_ON_START: not flushed: node %s started this crawl moments ago (only the first"
            " node flushes); joining it",
            done.guarded_by,
        )


def release_flush_guard(server: Redis, keys: CrawlKeys, node: str) -> bool:
    """Give the flush guard back if it is still ``node``'s; True when it was."""
    return bool(server.register_script(RELEASE_FLUSH_GUARD)(keys=[keys.flush], args=[node]))
