"""The frontier and the dupefilter split over BAIKE_SHARDS hash tags (a Redis Cluster's masters).

With ``BAIKE_SHARDS`` = N > 1 a request belongs to the shard its fingerprint falls in (see
:class:`ShardSplit`): its frontier entry, lease, and dupefilter bucket live under that
shard's keys (``baike.keys.SHARD_TAG``: ``{baike}`` for shard 0, ``{baike:1}``, ...), so
each shard's scripts run on the master of its slot. Everything else (seeds, items, node
records, stats, state) stays on shard 0, so shard 0 takes a smaller part of the
fingerprints (``BAIKE_SHARD0_SHARE`` of an even share) and its master no more work than
the others'. The split is recorded in the crawl's ``shards`` hash by its first node and
every node follows the recorded one. With one shard nothing here is used and every key is
the one of a crawl without shards.

The page budget cannot be spent by one script across slots, so it is split (see
:data:`baike.frontier.scripts.GRANT` and the scripts after it): shard 0's ledger hands
units to a shard's allowance in a two-step transfer (grant, credit, clear), and a shard
with nothing queued hands its unused units back (debit, return, clear). Every step is
safe to run twice, and a transfer left half done by a node that died is finished by any
node once it is :data:`STALE_AFTER` seconds old (:meth:`Transfers.complete`). The pages
of all the shards therefore never exceed ``CLOSESPIDER_PAGECOUNT``; the budget is spent
when they reach it.

Links are pushed to their shards before the page that found them is acknowledged on
its own (see the scheduler's flush): a node killed in between redoes the page, and
the dupefilter drops its links the second time.
"""

from __future__ import annotations

import logging
import secrets
from bisect import bisect_right
from dataclasses import dataclass
from itertools import pairwise
from typing import TYPE_CHECKING, Any

from baike.errors import NodeRefused
from baike.frontier import scripts
from baike.keys import CrawlKeys, shard_count

if TYPE_CHECKING:
    from collections.abc import Callable

    from redis import Redis

logger = logging.getLogger(__name__)

# A pending transfer older than this (seconds, Redis time) is finished by any node.
STALE_AFTER = 5.0


# BAIKE_SHARD0_SHARE's default: the part of an even share of the fingerprints that shard 0
# takes, because its master also does the crawl's work that is not split (bench/shards.py)
DEFAULT_SHARD0_SHARE = 0.4
# The fingerprint's last 4 bytes, read as an integer, are split over the shards.
SPACE = 1 << 32
# BAIKE_SHARD0_SHARE is taken in millionths, so every node computes the same bounds.
SHARE_UNIT = 1_000_000


@dataclass(frozen=True, slots=True)
class ShardSplit:
    """How request fingerprints are split over ``count`` shards.

    The fingerprint's last 4 bytes (independent of the dupefilter's bucket and field, cut
    from its first bytes) are an integer u in [0, SPACE): shard s takes ``bounds[s-1] <= u <
    bounds[s]`` (0 and SPACE at the ends). A split without bounds is that of a crawl split
    before they were recorded: ``u % count``. One shard takes everything.
    """

    count: int
    bounds: tuple[int, ...] | None = None

    @classmethod
    def weighted(cls, count: int, shard0_share: float) -> ShardSplit:
        """Shard 0 takes ``shard0_share`` of an even share (``shard0_share / count`` of all the
        fingerprints), the others the rest in equal parts; 1.0 is an even split. Integer
        arithmetic on the share in millionths: the same bounds on every node."""
        if count <= 1:
            return cls(1, ())
        first = SPACE * max(round(shard0_share * SHARE_UNIT), 1) // (count * SHARE_UNIT)
        rest = SPACE - first
        return cls(count, tuple(first + rest * shard // (count - 1) for shard in range(count - 1)))

    @classmethod
    def parse(cls, count: int, record: str) -> ShardSplit:
        """The split recorded for a crawl of ``count`` shards (``record``: the bounds, "" for
        ``% count``). Raises ValueError when ``record`` is not ``count - 1`` increasing bounds."""
        if count <= 1:
            return cls(1, ())
        if not record:
            return cls(count)
        bounds = tuple(int(bound) for bound in record.split(" "))
        edges = (0, *bounds, SPACE)
        if len(bounds) != count - 1 or any(low >= high for low, high in pairwise(edges)):
            raise ValueError(f"{record[:60]!r} is not {count - 1} increasing bounds below {SPACE}")
        return cls(count, bounds)

    @property
    def record(self) -> str:
        """The bounds as the crawl's ``shards`` hash keeps them ("" for ``% count``)."""
        return " ".join(str(bound) for bound in self.bounds or ())

    @property
    def shard0_share(self) -> float:
        """Shard 0's part of the fingerprints against an even share (1.0 when even)."""
        return self.fraction(0) * self.count

    def shard_of(self, fingerprint: bytes) -> int:
        """The shard of a request by its fingerprint (of Scrapy's 20 bytes; at least 4)."""
        if self.count <= 1:
            return 0
        value = int.from_bytes(fingerprint[-4:], "big")
        return value % self.count if self.bounds is None else bisect_right(self.bounds, value)

    def fraction(self, shard: int) -> float:
        """The part of all fingerprints that falls in ``shard``."""
        if self.bounds is None:
            return 1 / self.count
        edges = (0, *self.bounds, SPACE)
        return (edges[shard + 1] - edges[shard]) / SPACE

    def portion(self, shard: int, units: int) -> int:
        """``units`` times ``shard``'s fraction, rounded up (integer arithmetic)."""
        if self.bounds is None:
            return -(-units // self.count)
        edges = (0, *self.bounds, SPACE)
        return -(-units * (edges[shard + 1] - edges[shard]) // SPACE)


def shard_of(fingerprint: bytes, split: ShardSplit) -> int:
    """The shard of a request by its fingerprint under ``split`` (see :class:`ShardSplit`)."""
    return split.shard_of(fingerprint)


def wanted_split(settings: Any) -> ShardSplit:
    """The split this node's settings give (BAIKE_SHARDS, BAIKE_SHARD0_SHARE), before it is
    checked against the crawl's (:func:`record_shards`)."""
    return ShardSplit.weighted(shard_count(settings), settings.getfloat("BAIKE_SHARD0_SHARE", DEFAULT_SHARD0_SHARE))


def record_shards(server: Redis, keys: CrawlKeys, wanted: ShardSplit) -> ShardSplit:
    """Record the crawl's shard count and split (its first node with shards does), or read
    them: the split every node of the crawl uses, which may differ from ``wanted`` (a crawl
    split before bounds were recorded keeps ``% count``; one recorded with another
    BAIKE_SHARD0_SHARE keeps its own).

    Raises NodeRefused, one line, when the crawl in Redis has another count than ``wanted``'s,
    or a split that is not one.
    """
    shards = wanted.count
    record = server.register_script(scripts.RECORD_SHARDS)
    recorded, bounds = record(keys=[keys.shards, keys.budget], args=[shards, wanted.record])
    recorded = int(recorded)
    if recorded != shards:
        raise NodeRefused(
            f"this crawl's frontier is split over {recorded} shard{'s' if recorded != 1 else ''} (recorded in"
            f" {keys.shards if recorded > 1 else keys.budget}), this node has BAIKE_SHARDS={shards}: start it with"
            f" BAIKE_SHARDS={recorded}, or `scrapy reset` for a fresh crawl"
        )
    try:
        return ShardSplit.parse(recorded, _text(bounds))
    except ValueError as exc:
        raise NodeRefused(
            f"the fingerprint split recorded in {keys.shards} is not one ({exc}): this database holds another"
            " crawl's or project's data. `scrapy reset` starts a fresh crawl, or point REDIS_URL elsewhere"
        ) from None


def recorded_split(server: Redis, keys: CrawlKeys) -> ShardSplit | None:
    """The fingerprint split recorded for the crawl (one shard when none is), or None when
    what is recorded is not a split (a reader reports it; a node refuses it at start)."""
    count, bounds = server.hmget(keys.shards, ["count", "bounds"])
    try:
        return ShardSplit.parse(max(int(count or 1), 1), _text(bounds or ""))
    except ValueError:
        return None


def recorded_shards(server: Redis, keys: CrawlKeys) -> int:
    """The shard count recorded for the crawl (1 when none is)."""
    try:
        return max(int(server.hget(keys.shards, "count") or 1), 1)
    except ValueError:
        return 1


def crawl_shards(server: Redis, keys: CrawlKeys, shards: int = 1) -> list[CrawlKeys]:
    """The keys of every frontier shard of the crawl: as many as recorded in Redis (or
    ``shards``, the reader's BAIKE_SHARDS, when more), shard 0's first."""
    return [keys.in_shard(shard) for shard in range(max(recorded_shards(server, keys), shards))]


@dataclass(slots=True)
class ShardState:
    """What one shard holds, read from its ledger (see :func:`read_shards`)."""

    queued: int = 0
    leased: int = 0
    allowance: int = 0
    reserved: int = 0
    pages: int = 0
    returns: int = 0  # pending give-backs

    @property
    def free(self) -> int:
        """Units of the allowance not reserved by a lease."""
        return self.allowance - self.reserved


def read_shards(server: Redis, shard_keys: list[CrawlKeys]) -> tuple[list[ShardState], int, int]:
    """Every shard's state, the units granted and the pending grants: one pipelined round trip
    (each shard's values are read together; shards are read one after the other)."""
    with server.pipeline(transaction=False) as pipe:
        for keys in shard_keys:
            pipe.hmget(keys.budget, "enqueued", "settled", "allowance", "reserved", "pages")
            pipe.zcard(keys.leases)
            pipe.hlen(keys.returns)
        pipe.hget(shard_keys[0].shards, "granted")
        pipe.hlen(shard_keys[0].grants)
        replies = pipe.execute()
    states = []
    for at in range(0, 3 * len(shard_keys), 3):
        (enqueued, settled, allowance, reserved, pages), leased, returns = replies[at : at + 3]
        enqueued, settled = int(enqueued or 0), int(settled or 0)
        states.append(
            ShardState(
                queued=max(enqueued - settled - leased, 0),
                leased=leased,
                allowance=int(allowance or 0),
                reserved=int(reserved or 0),
                pages=int(pages or 0),
                returns=returns,
            )
        )
    return states, int(replies[-2] or 0), int(replies[-1] or 0)


class Transfers:
    """Moves page budget units between shard 0's ledger and the shards' allowances.

    ``split`` is the crawl's (see :func:`record_shards`): a grant is sized by the shard's part
    of the fingerprints, its part of the crawl's new work (None: an even split).
    """

    def __init__(self, server: Redis, shard_keys: list[CrawlKeys], split: ShardSplit | None = None):
        self.server = server
        self.shard_keys = shard_keys
        self.split = split or ShardSplit(len(shard_keys))
        self.ledger = shard_keys[0]
        self._grant = server.register_script(scripts.GRANT)
        self._credit = server.register_script(scripts.CREDIT)
        self._clear_grant = server.register_script(scripts.CLEAR_GRANT)
        self._debit = server.register_script(scripts.DEBIT)
        self._return = server.register_script(scripts.RETURN)
        self._clear_return = server.register_script(scripts.CLEAR_RETURN)

    def grant(self, shard: int, units: int, budget: int, grant_id: str | None = None) -> int:
        """Move up to ``units`` of the budget to ``shard``'s allowance; returns how many moved.

        A step that fails leaves the grant pending: :meth:`complete` finishes it.
        """
        grant_id = grant_id or f"g-{secrets.token_hex(8)}"
        ledger = self.ledger
        granted = int(
            self._grant(keys=[ledger.shards, ledger.grants, ledger.transfers], args=[grant_id, shard, units, budget])
        )
        if granted > 0:
            self.credit(shard, grant_id, granted)
        return granted

    def credit(self, shard: int, grant_id: str, units: int) -> None:
        """Steps 2 and 3 of a grant (each a no-op when done already)."""
        keys = self.shard_keys[shard]
        self._credit(keys=[keys.budget, keys.credited], args=[grant_id, units])
        self._clear_grant(keys=[self.ledger.grants, self.ledger.transfers], args=[grant_id])

    def give_back(self, shard: int, units: int, back_id: str | None = None) -> int:
        """Move up to ``units`` unused units of ``shard``'s allowance back to the budget, if
        nothing is queued there; returns how many moved."""
        back_id = back_id or f"r-{secrets.token_hex(8)}"
        keys = self.shard_keys[shard]
        taken = int(self._debit(keys=[keys.budget, keys.returns, keys.leases, keys.credited], args=[back_id, units]))
        if taken > 0:
            self.add_back(shard, back_id, taken)
        return taken

    def add_back(self, shard: int, back_id: str, units: int) -> None:
        """Steps 2 and 3 of a give-back (each a no-op when done already)."""
        keys = self.shard_keys[shard]
        self._return(keys=[self.ledger.shards, self.ledger.transfers], args=[back_id, units])
        self._clear_return(keys=[keys.returns, keys.credited], args=[back_id])

    def complete(self, now: float, older_than: float = STALE_AFTER) -> int:
        """Finish the transfers pending for more than ``older_than`` seconds before ``now``
        (Redis time): the node that began them died or lost Redis. Returns how many."""
        done = 0
        for grant_id, record in self.server.hgetall(self.ledger.grants).items():
            parsed = _pending(record, 3)
            if parsed is None or not 0 <= parsed[0] < len(self.shard_keys):
                logger.warning("Unreadable pending grant %r in %s: left alone", grant_id, self.ledger.grants)
                continue
            shard, units, since = parsed
            if now - since >= older_than:
                self.credit(shard, _text(grant_id), units)
                done += 1
        for shard, keys in enumerate(self.shard_keys):
            for back_id, record in self.server.hgetall(keys.returns).items():
                parsed = _pending(record, 2)
                if parsed is None:
                    logger.warning("Unreadable pending give-back %r in %s: left alone", back_id, keys.returns)
                    continue
                units, since = parsed
                if now - since >= older_than:
                    self.add_back(shard, _text(back_id), units)
                    done += 1
        return done

    def rebalance(self, budget: int, batch: int, clock: Callable[[], float]) -> int:
        """Let queued work meet the budget: finish stale transfers (``clock()`` is Redis's time,
        asked only when a transfer is pending), grant units to shards with requests queued and
        no free allowance (each at most its part of the units left, by the split, or ``batch``), and (when the budget has none left to grant) take unused units back
        from shards with nothing queued. Returns units moved and transfers finished."""
        states, granted, pending = read_shards(self.server, self.shard_keys)
        completed = 0
        if pending or any(state.returns for state in states):
            completed = self.complete(clock())
            if completed:
                states, granted, _ = read_shards(self.server, self.shard_keys)
        starving = [shard for shard, state in enumerate(states) if state.queued > 0 and state.free <= 0]
        if not starving:
            return completed
        moved = 0
        left = budget - granted
        if left <= 0:
            for shard, state in enumerate(states):
                if state.queued == 0 and state.free > 0:
                    moved += self.give_back(shard, state.free)
            left = budget - (granted - moved)
        shares = [max(batch, self.split.portion(shard, left)) for shard in range(len(self.shard_keys))]
        for shard in starving:
            if left <= 0:
                break
            units = self.grant(shard, min(shares[shard], states[shard].queued, left), budget)
            left -= units
            moved += units
        return moved + completed


def _pending(record: Any, width: int) -> tuple[int, ...] | None:
    """The numbers of a pending transfer's record ("<shard> <units> <time>" or "<units> <time>")."""
    parts = _text(record).split(" ")
    if len(parts) != width:
        return None
    try:
        return tuple(int(part) for part in parts)
    except ValueError:
        return None


def _text(value: Any) -> str:
    return value.decode("utf-8", "replace") if isinstance(value, bytes) else str(value)
