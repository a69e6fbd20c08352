"""The frontier and the dupefilter split over BAIKE_SHARDS hash tags (a Redis Cluster's masters).

With ``BAIKE_SHARDS`` = N > 1 a request belongs to shard ``fingerprint % N`` (see
:func:`shard_of`): its frontier entry, lease, and dupefilter bucket live under that
shard's keys (``baike.keys.SHARD_TAG``: ``{baike}`` for shard 0, ``{baike:1}``, ...), so
each shard's scripts run on the master of its slot. Everything else (seeds, items, node
records, stats, state) stays on shard 0. With one shard nothing here is used and every
key is the one of a crawl without shards.

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
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from baike.errors import NodeRefused
from baike.frontier import scripts
from baike.keys import CrawlKeys

if TYPE_CHECKING:
    from collections.abc import Callable

    from redis import Redis

logger = logging.getLogger(__name__)

# A pending transfer older than this (seconds, Redis time) is finished by any node.
STALE_AFTER = 5.0


def shard_of(fingerprint: bytes, shards: int) -> int:
    """The shard of a request by its fingerprint (the last 4 bytes of Scrapy's 20-byte
    fingerprint: independent of the dupefilter's bucket and field, cut from its first bytes)."""
    if shards <= 1:
        return 0
    return int.from_bytes(fingerprint[-4:], "big") % shards


def record_shards(server: Redis, keys: CrawlKeys, shards: int) -> None:
    """Record the crawl's shard count (its first node with shards does), or check it.

    Raises NodeRefused, one line, when the crawl in Redis has another count than ``shards``.
    """
    record = server.register_script(scripts.RECORD_SHARDS)
    recorded = int(record(keys=[keys.shards, keys.budget], args=[shards]))
    if recorded != shards:
        raise NodeRefused(
            f"this crawl's frontier is split over {recorded} shard{'s' if recorded != 1 else ''} (recorded in"
            f" {keys.shards if recorded > 1 else keys.budget}), this node has BAIKE_SHARDS={shards}: start it with"
            f" BAIKE_SHARDS={recorded}, or `scrapy reset` for a fresh crawl"
        )


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
    """Moves page budget units between shard 0's ledger and the shards' allowances."""

    def __init__(self, server: Redis, shard_keys: list[CrawlKeys]):
        self.server = server
        self.shard_keys = shard_keys
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
        no free allowance, and (when the budget has none left to grant) take unused units back
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
        share = max(batch, -(-left // len(self.shard_keys)))
        for shard in starving:
            if left <= 0:
                break
            units = self.grant(shard, min(share, states[shard].queued, left), budget)
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
