"""Following a Sentinel failover: which master each node reached, and when it changed.

With a ``redis+sentinel://`` REDIS_URL every new connection asks the Sentinels for the
master (:func:`baike.connection.sentinel_client`), so after a failover the next command
that succeeds reached the new master. :class:`FailoverWatch` compares, after such a
command, the master the client reached with the one it reached before (no round trip:
the address redis-py's Sentinel pool keeps). When it changed, the node logs it in one
line and records it in the ``failover`` hash, on Redis's clock, where ``scrapy status``
reads it. The first node to see a failover counts it; the others find it counted.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import TYPE_CHECKING

from baike.connection import REDIS_ERRORS, master_address

if TYPE_CHECKING:
    from redis import Redis

    from baike.keys import CrawlKeys

logger = logging.getLogger(__name__)

# RECORD_MASTER: record the master node ARGV[1] reaches now (ARGV[3]), having reached
# ARGV[2] before ("" at its start); count a failover once, whichever node sees it first.
# KEYS[1] failover hash. Returns 1 when this call counted a failover, else 0.
# Safe to run twice: the second run finds the master recorded and changes nothing.
RECORD_MASTER = """
local held = redis.call('HGET', KEYS[1], 'master')
redis.call('HSET', KEYS[1], 'seen/' .. ARGV[1], ARGV[3])
if held == ARGV[3] then return 0 end
redis.call('HSET', KEYS[1], 'master', ARGV[3])
local from = held or ARGV[2]
if from == '' or from == ARGV[3] then return 0 end
local t = redis.call('TIME')
redis.call('HINCRBY', KEYS[1], 'count', 1)
redis.call('HSET', KEYS[1], 'last_time', tonumber(t[1]) + tonumber(t[2]) / 1000000, 'last_from', from,
  'last_to', ARGV[3])
return 1
"""


# Scrapy signal sent by a node's scheduler when it sees a failover (``failover``: a
# Failover), or finds Redis lacking a flush it confirmed to the node (``failover``: None):
# whatever the node knew to be in Redis may be missing on the new master.
redis_failover = object()


@dataclass
class Failover:
    """A change of master seen by this node: from where to where."""

    old: str
    new: str
    counted: bool


class FailoverWatch:
    """The master this node's Sentinel client reaches, and its changes.

    :meth:`check` is cheap (no round trip unless the master changed) and meant to run
    after every command that succeeded. For a client that is not a Sentinel client it
    never reports anything.
    """

    def __init__(self, server: Redis, keys: CrawlKeys, node_id: str):
        self.server = server
        self.node_id = node_id
        self.key = keys.failover
        self._record = server.register_script(RECORD_MASTER)
        self.master: str | None = None
        # the master reached but not recorded yet (Redis failed as it was written)
        self._unrecorded: tuple[str, str] | None = None

    def check(self) -> Failover | None:
        """The failover this node just came through, once per change of master, else None.

        Records the master in Redis (the change, or the first master this node
        reached); when Redis fails meanwhile the record is written by a later check.
        """
        current = master_address(self.server)
        if current is None or current == self.master:
            if self._unrecorded:
                self._write(*self._unrecorded)
            return None
        old, self.master = self.master, current
        counted = self._write(old or "", current)
        return Failover(old, current, counted) if old else None

    def _write(self, old: str, new: str) -> bool:
        """Record ``new`` (reached after ``old``); True when this call counted a failover."""
        try:
            counted = bool(self._record(keys=[self.key], args=[self.node_id, old, new]))
        except REDIS_ERRORS as exc:
            logger.debug("The master %s is not recorded in %s yet: %s", new, self.key, exc)
            self._unrecorded = (old, new)
            return False
        self._unrecorded = None
        return counted
