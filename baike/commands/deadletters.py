"""``scrapy deadletters``: list the requests that failed for good, and put them back.

A requeue moves one dead letter at a time with :data:`REQUEUE`, one script call that
removes the letter and enqueues its request together: a requeue killed at any moment
leaves each letter either in the dead list or in the frontier, never in neither, and
two requeues running at once enqueue each letter once.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, cast

from scrapy.exceptions import UsageError

from baike.cli import CrawlCommand
from baike.frontier import serializer
from baike.frontier.schema import RequestSchema
from baike.frontier.shards import crawl_shards
from baike.keys import shard_count
from baike.spiders.baike import BaikeSpider
from baike.status import number, printable, read_json
from baike.urls import canonicalize

if TYPE_CHECKING:
    import argparse
    from collections.abc import Iterator

    from redis import Redis

    from baike.keys import CrawlKeys

# Dead letters read per LRANGE while requeueing.
PAGE = 500
# Frontier priorities a requeued request may have, as for every frontier entry: its
# score, -priority * 2^32 + seq, must keep every digit when Lua prints it (14 significant
# digits; see baike.frontier.scripts).

# REQUEUE: move one dead letter's request back into the frontier.
# KEYS[1] dead list   KEYS[2] requests zset   KEYS[3] request_data hash
# KEYS[4] request_seq   KEYS[5] budget hash
# ARGV[1] the dead letter, exactly as stored   ARGV[2] the request's payload
# ARGV[3] its priority (an integer)
# The letter is removed (LREM count 1) and, only if it was still there, its request is
# enqueued as PUSH_AND_ACK enqueues one unfiltered request: the next request_seq is its
# id, its score -priority * 2^32 + id, and the ledger's "enqueued" grows by one.
# Nothing is written unless every key has the type the frontier writes and the two
# counters hold integers INCRBY and HINCRBY can raise, so the script never fails
# between its writes (Redis does not roll a failed script back).
# Returns 1 (requeued), 0 (the letter was gone: another requeue took it) or
# -1 (a key holds data baike does not write; nothing written).
REQUEUE = """
local kinds = {'list', 'zset', 'hash', 'string', 'hash'}
for k = 1, 5 do
  local kind = redis.call('TYPE', KEYS[k]).ok
  if kind ~= 'none' and kind ~= kinds[k] then return -1 end
end
local function counter(value)
  return not value or (#value <= 18 and string.match(value, '^%-?%d+$') ~= nil)
end
if not counter(redis.call('GET', KEYS[4])) or not counter(redis.call('HGET', KEYS[5], 'enqueued')) then
  return -1
end
if redis.call('LREM', KEYS[1], 1, ARGV[1]) == 0 then return 0 end
local seq = redis.call('INCRBY', KEYS[4], 1)
local id = tostring(seq)
redis.call('HSET', KEYS[3], id, ARGV[2])
redis.call('ZADD', KEYS[2], -tonumber(ARGV[3]) * 4294967296 + seq, id)
redis.call('HINCRBY', KEYS[5], 'enqueued', 1)
return 1
"""


class ForeignFrontier(Exception):
    """A frontier key holds data of a type baike does not write; nothing was requeued."""


def requeue_letter(server: Redis, keys: CrawlKeys, raw: bytes, payload: str, priority: int) -> bool:
    """Move dead letter ``raw`` into the frontier as ``payload`` in one step (:data:`REQUEUE`).

    Returns False when the letter was no longer in the dead list (nothing enqueued).
    Raises ForeignFrontier when a frontier key holds another type (nothing written).
    """
    moved = server.register_script(REQUEUE)(
        keys=[keys.dead, keys.requests, keys.request_data, keys.request_seq, keys.budget],
        args=[raw, payload, priority],
    )
    if moved == -1:
        raise ForeignFrontier(
            f"{keys.requests}, {keys.request_data}, {keys.request_seq} or {keys.budget} holds data baike"
            " does not write: nothing requeued (point REDIS_URL at the crawl's database)"
        )
    return bool(moved == 1)


# What a requeued request may hold: the frontier's own schema, with the spider's callbacks.
REQUEUE_SCHEMA = RequestSchema.build(BaikeSpider.frontier_callbacks)


def requeueable(record: dict[str, Any]) -> tuple[str, int] | None:
    """The payload and priority to requeue a parsed dead letter with, or None if it holds no request.

    A request is a payload object that fits the frontier's request schema
    (:mod:`baike.frontier.schema`) with a canonical Baike entry URL; its meta is
    dropped, so its retries start afresh.
    """
    payload = record.get("payload")
    if not isinstance(payload, dict):
        return None
    payload = {name: value for name, value in payload.items() if name != "meta"}
    try:
        text = serializer.dumps(payload)
        request = REQUEUE_SCHEMA.check(serializer.loads(text))
    except (TypeError, ValueError):
        return None
    if canonicalize(request["url"]) != request["url"]:
        return None
    return text, request["priority"]


def dead_letters(server: Redis, key: str, page: int = PAGE) -> Iterator[bytes]:
    """Every dead letter, one LRANGE per ``page``."""
    start = 0
    while True:
        letters = cast("list[bytes]", server.lrange(key, start, start + page - 1))
        yield from letters
        if len(letters) < page:
            return
        start += page


class Command(CrawlCommand):
    failure_prefix = "deadletters failed"

    def syntax(self) -> str:
        return "[--requeue] [--json]"

    def short_desc(self) -> str:
        return "List dead letters (requests that failed for good); --requeue puts them back in the frontier"

    def add_options(self, parser: argparse.ArgumentParser) -> None:
        super().add_options(parser)
        parser.add_argument("--requeue", action="store_true", help="move requeueable dead letters back to the frontier")
        parser.add_argument("--json", action="store_true", help="print one JSON record per line")

    def run(self, args: list[str], opts: argparse.Namespace) -> None:
        if args:
            raise UsageError("deadletters takes no arguments")
        keys = self.keys
        try:
            server = self.connect()
            # every frontier shard has its dead letters (BAIKE_SHARDS); shard 0's alone without shards
            for shard in crawl_shards(server, keys, shard_count(self.settings)):
                if opts.requeue:
                    self._requeue(server, shard)
                else:
                    self._list(server, shard, opts.json)
        except (Exception, KeyboardInterrupt) as exc:  # one line, not a traceback: a user-facing command
            self.fail(str(exc) or "interrupted; every letter is either still dead or requeued")

    def _list(self, server: Redis, keys: CrawlKeys, as_json: bool) -> None:
        count = 0
        for raw in dead_letters(server, keys.dead):
            count += 1
            record = _parse(raw)
            if as_json:
                print(json.dumps(record, ensure_ascii=False, allow_nan=False))
                continue
            payload = record.get("payload")
            url = payload.get("url") if isinstance(payload, dict) else None
            shown = url if isinstance(url, str) else record.get("raw", "")
            print(f"{_when(record.get('time'))}  {printable(record.get('reason', '?'))}  {printable(shown, 80)}")
        if not as_json:
            print(f"{count} dead letters in {keys.dead}")

    def _requeue(self, server: Redis, keys: CrawlKeys) -> None:
        """Requeue every letter that holds a request, each in one atomic step; keep the rest.

        Only letters that hold a request ever leave the list (here or in a requeue
        running at once), and new ones are appended, so the letters kept so far are
        exactly those before the next one to read. Letters dead-lettered while this
        runs are left for the next requeue.
        """
        requeued = kept = read = 0
        total = server.llen(keys.dead)
        while read < total:
            letters = cast("list[bytes]", server.lrange(keys.dead, kept, kept + PAGE - 1))
            if not letters:
                break  # another requeue took the rest
            for raw in letters[: total - read]:
                read += 1
                request = requeueable(_parse(raw))
                if request is None:
                    kept += 1
                elif requeue_letter(server, keys, raw, *request):
                    requeued += 1
        print(f"Requeued {requeued} requests into {keys.requests}; kept {kept} that are not requests.")


def _parse(raw: bytes) -> dict[str, Any]:
    """A dead letter as a JSON object; an unreadable one as ``{"reason", "raw"}``."""
    record = read_json(raw)
    if isinstance(record, dict):
        return record
    shown = raw[:200].decode("utf-8", "replace") if record is None else printable(record)
    return {"reason": "unreadable dead letter", "raw": shown}


def _when(timestamp: Any) -> str:
    """A dead letter's time as ``YYYY-MM-DD HH:MM:SS``, or ``?`` when it holds none."""
    seconds = number(timestamp)
    try:
        return datetime.fromtimestamp(seconds, UTC).strftime("%Y-%m-%d %H:%M:%S") if seconds is not None else "?"
    except (ValueError, OverflowError, OSError):
        return "?"
