"""The state of a crawl as read from Redis: one snapshot, rendered for people.

Shared by ``scrapy status``, the header of the HTML report (``scrapy export``) and
the live progress line of scripts/crawl.py. Reading only: nothing here writes.

A snapshot is a plain dict (it is also what ``scrapy status --json`` prints)::

    time          Redis's clock when read (every time in a snapshot is Redis's clock)
    state         "waiting for seeds" | "running" | "stopped at budget" | "finished"
    budget        {"limit", "pages", "reserved", "in_flight", "fraction"}
    frontier, seeds, leased, fingerprints, dead_letters, items
    ledger        {"enqueued", "settled", "seeds", "marked", "revisits"} (the frontier's ledger)
    cluster       {"pages", "items", "errors", "start_time", "finish_time"}
    nodes         [{node, host, pid, started, seen, pages, items, errors,
                    pages_per_min, pages_per_sec, finished, reason, status}, ...]

Whatever Redis holds, a snapshot is strict JSON and renders: every value read is
checked (numbers finite and within +-2^63, else None or 0; texts printable and at
most MAX_LABEL characters; records that are not JSON objects skipped).
"""

from __future__ import annotations

import json
import math
import re
from dataclasses import asdict
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, cast
from urllib.parse import unquote_plus, urlsplit

from baike.connection import RedisSettingsError, get_redis, pipelines_time, slot_time, time_reply
from baike.frontier.queue import queued_from_ledger
from baike.frontier.shards import crawl_shards, recorded_split
from baike.revisit import read_freshness

if TYPE_CHECKING:
    from redis import Redis

    from baike.keys import CrawlKeys

WAITING = "waiting for seeds"
RUNNING = "running"
STOPPED = "stopped at budget"
FINISHED = "finished"
TERMINAL_STATES = frozenset({STOPPED, FINISHED})

ALIVE, LOST, GONE = "alive", "lost", "stopped"

# A text from Redis (node id, host, reason) is shown with at most this many characters.
MAX_LABEL = 200
# Numbers read from Redis are used only when finite and within +-MAX_NUMBER (Redis's own
# integers are 64-bit), and only from texts of at most MAX_NUMBER_TEXT characters;
# anything else is not a number baike wrote.
MAX_NUMBER = 2**63
MAX_NUMBER_TEXT = 64
# Control characters (C0, DEL, C1) and lone surrogates, never written to a terminal or a report
_UNPRINTABLE = re.compile(r"[\x00-\x1f\x7f-\x9f\ud800-\udfff]")
# What a password is replaced with
MASK = "***"

# The Redis type of every key baike writes (by CrawlKeys field); a key of another
# type was written by someone else.
KEY_TYPES = {
    "start_urls": "list",
    "requests": "zset",
    "items": "hash",
    "request_data": "hash",
    "request_seq": "string",
    "leases": "zset",
    "lease_owners": "hash",
    "budget": "hash",
    "dead": "list",
    "nodes": "hash",
    "stats": "hash",
    "timeline": "list",
    "started": "string",
    "state": "hash",
    "flush": "string",
    "failover": "hash",
    "revisit": "zset",
    "freshness": "hash",
    "history": "hash",
    "revisit_stats": "hash",
}
# Other types a key may have: the seeds are a set or a sorted set with scrapy-redis's
# REDIS_START_URLS_AS_SET / REDIS_START_URLS_AS_ZSET.
OTHER_KEY_TYPES = {"start_urls": ("set", "zset")}
# The command that counts the seeds, by the seed key's type
SEED_COUNTS = {"list": "LLEN", "set": "SCARD", "zset": "ZCARD"}


class CrawlDataError(Exception):
    """Redis holds no baike crawl, or another project's data; the message is one line."""


class NoCrawlError(CrawlDataError):
    """None of the crawl's keys exist (yet)."""


class ForeignDataError(CrawlDataError):
    """A key with a crawl key's name holds data baike did not write."""


# -- checks -----------------------------------------------------------------------------


def connect(settings: Any, where: str) -> Redis:
    """The crawl's Redis client (:func:`baike.connection.get_redis`: REDIS_URL, REDIS_PARAMS
    and the REDIS_SSL_* files); raises CrawlDataError for settings it cannot use."""
    try:
        return get_redis(settings)
    except RedisSettingsError as exc:
        raise CrawlDataError(str(exc)) from None
    except ValueError as exc:
        raise CrawlDataError(f"REDIS_URL {where} is not a Redis URL: {exc}") from None


def redacted(url: str) -> str:
    """``url`` with every password redis-py would read from it replaced by ``***``.

    Hidden: the password of the userinfo (``redis://user:pw@h``, ``rediss://:pw@h``,
    ``unix://:pw@/path``); a userinfo without a colon, whole (``redis://pw@h``); the
    value of every query parameter whose name, percent-decoded and in any case,
    contains "password" (``?password=pw``, ``?PassWord=pw``, ``?ssl_password=pw``).
    A userinfo cut short by an unescaped ``/``, ``?`` or ``#`` (a URL redis-py cannot
    use) is hidden up to its last ``@``. Everything else is kept as written.
    """
    scheme, sep, rest = url.partition("://")
    if not sep:
        # not a URL redis-py reads; whatever stands before an "@" may still be a secret
        userinfo, at, host = url.rpartition("@")
        return f"{_masked_userinfo(userinfo)}@{host}" if at else url
    try:
        netloc = urlsplit(url).netloc
    except ValueError:  # e.g. an unbalanced "[": show the scheme only
        return f"{scheme}://{MASK}"
    tail = rest[len(netloc) :]
    if "@" in netloc:
        userinfo, _, host = netloc.rpartition("@")
        netloc = f"{_masked_userinfo(userinfo)}@{host}"
    elif netloc and "@" in tail:
        # "redis://:pa/ss@host": the password holds a "/", "?" or "#" that ended the netloc
        return f"{scheme}://{MASK}@{_redacted_tail(tail.rpartition('@')[2])}"
    return f"{scheme}://{netloc}{_redacted_tail(tail)}"


def _masked_userinfo(userinfo: str) -> str:
    """``user:***``, or ``***`` for a userinfo without a colon (it may be a password alone)."""
    user, colon, _ = userinfo.partition(":")
    return f"{user}:{MASK}" if colon else MASK


def _redacted_tail(tail: str) -> str:
    """The path, query and fragment of a URL with every password parameter's value hidden."""
    path, question, rest = tail.partition("?")
    if not question:
        return tail
    query, hash_sign, fragment = rest.partition("#")
    pairs = []
    for pair in query.split("&"):
        name, equals, _ = pair.partition("=")
        secret = equals and "password" in unquote_plus(name).lower()
        pairs.append(f"{name}={MASK}" if secret else pair)
    return f"{path}?{'&'.join(pairs)}{hash_sign}{fragment}"


def check_keys(server: Redis, keys: CrawlKeys) -> list[str]:
    """The crawl keys that exist; raises ForeignDataError when one is not of baike's type."""
    names = [(getattr(keys, field), field, kind) for field, kind in KEY_TYPES.items() if hasattr(keys, field)]
    with server.pipeline(transaction=False) as pipe:
        for key, _, _ in names:
            pipe.type(key)
        found = [_text(kind) for kind in pipe.execute()]
    present = []
    for (key, field, expected), kind in zip(names, found, strict=True):
        if kind == "none":
            continue
        if kind != expected and kind not in OTHER_KEY_TYPES.get(field, ()):
            raise ForeignDataError(
                f"{key} is a Redis {kind}, not the {expected} baike writes: this database holds another"
                " project's data (point REDIS_URL at another database)"
            )
        present.append(key)
    return present


def require_crawl(server: Redis, keys: CrawlKeys, where: str) -> None:
    """Raise NoCrawlError with a one-line explanation unless ``where`` holds a baike crawl."""
    if check_keys(server, keys):
        return
    others = server.dbsize()
    if others:
        raise NoCrawlError(
            f"no baike crawl at {where}: none of its keys ({keys.items}, {keys.nodes}, ...) exist, but"
            f" {others} other keys do (another project's database? check REDIS_URL)"
        )
    raise NoCrawlError(
        f"no baike crawl at {where}: the database is empty (push a seed to {keys.start_urls}"
        " and start nodes with `scrapy crawl baike`)"
    )


# -- the snapshot -----------------------------------------------------------------------


def count_fingerprints(server: Redis, prefix: str, batch: int = 1000) -> int:
    """Fingerprints in the dupefilter buckets ``<prefix>:*`` (one HLEN per bucket, pipelined).

    A key under the prefix that is not a hash is not a bucket and is not counted.
    """
    total = 0
    buckets: list[bytes] = []
    # scan_iter, not SCAN's cursor: on a Redis Cluster redis-py scans every master
    for bucket in server.scan_iter(match=f"{prefix}:*", count=batch):
        buckets.append(bucket)
        if len(buckets) >= batch:
            total += _hlen_sum(server, buckets)
            buckets = []
    return total + _hlen_sum(server, buckets)


def _hlen_sum(server: Redis, buckets: list[bytes]) -> int:
    if not buckets:
        return 0
    with server.pipeline(transaction=False) as pipe:
        for bucket in buckets:
            pipe.hlen(bucket)
        return sum(count for count in pipe.execute(raise_on_error=False) if isinstance(count, int))


def crawl_state(state: dict[str, str], started: bool, pages: int, limit: int, resumed: bool = False) -> str:
    """The crawl's state from ``baike:state``, ``baike:started`` and the budget.

    ``resumed``: a node alive now started after the recorded end, so the recorded
    reason belongs to the previous run.
    """
    reason = None if resumed else state.get("reason")
    if reason == "finished":
        return FINISHED
    if reason == "closespider_pagecount" or (limit and pages >= limit):
        return STOPPED
    return RUNNING if started else WAITING


def node_view(record: dict[str, Any], now: float, lost_after: float, key: str = "?") -> dict[str, Any]:
    """One node's record with its status: alive, lost (silent too long) or stopped.

    Every value is checked, whatever the record holds: numbers are finite (else
    None or 0), texts printable and short; ``key`` (the record's hash field) names a
    node whose record has no string ``node``.
    """
    seen = number(record.get("seen")) or 0.0
    # a node that writes rarely is given three of its own intervals before it is lost
    patience = max(lost_after, 3 * (number(record.get("interval")) or 0.0))
    finished = number(record.get("finished"))
    if finished:
        status = GONE
    else:
        status = LOST if now - seen > patience else ALIVE
    per_min = number(record.get("pages_per_min")) or 0.0
    node = record.get("node")
    reason = record.get("reason")
    pid = _int(record.get("pid"))
    return {
        "node": printable(node if isinstance(node, str) else key),
        "host": printable(record.get("host", "?")),
        "pid": pid if pid > 0 else None,
        "started": number(record.get("started")),
        "seen": seen,
        "pages": _int(record.get("pages")),
        "items": _int(record.get("items")),
        "errors": _int(record.get("errors")),
        "pages_per_min": per_min,
        "pages_per_sec": round(per_min / 60.0, 2),
        "finished": finished,
        "reason": None if reason is None else printable(reason),
        "status": status,
    }


def read_nodes(raw: dict[bytes, bytes], now: float, lost_after: float) -> list[dict[str, Any]]:
    """Every node record of ``baike:nodes`` (records that are not a JSON object skipped), oldest first."""
    nodes = []
    for node, value in raw.items():
        record = read_json(value)
        if isinstance(record, dict):
            nodes.append(node_view(record, now, lost_after, key=_text(node)))
    return sorted(nodes, key=lambda node: (node["started"] or 0.0, node["node"]))


def read_json(raw: bytes | str) -> Any:
    """The JSON value of ``raw``, or None when it is not JSON (or nested too deep to read).

    ``NaN``, ``Infinity`` and numbers too large for a float (``1e999``), which Python's
    json would read as such, read as None: what comes out is strict JSON again.
    """
    try:
        return json.loads(raw, parse_constant=lambda _constant: None, parse_float=_finite_float)
    except (ValueError, RecursionError):  # UnicodeDecodeError is a ValueError
        return None


def snapshot(
    server: Redis,
    keys: CrawlKeys,
    now: float | None = None,
    *,
    budget: int = 0,
    lost_after: float = 10.0,
    fingerprints: bool = True,
    scan: bool = True,
) -> dict[str, Any]:
    """Everything ``scrapy status`` shows, read in one pipelined round trip.

    ``now`` is the time to judge the nodes by; by default Redis's clock, read in the
    same transaction (every time a node writes is Redis's clock too, so no machine's
    own clock matters). ``budget`` is the page budget to assume when no node recorded
    one; with ``fingerprints`` off the dupefilter buckets are not counted (the one
    part whose cost grows with the crawl).

    With ``scan`` off nothing is found with SCAN (whose round trips grow with the
    database), so a snapshot takes at most three round trips whatever the crawl's
    size: the fingerprints are the ledger's count (:func:`ledger_fingerprints`) and
    the rate hashes are those the nodes name in their records (``rate_key``).
    """
    count_seeds = SEED_COUNTS.get(_text(server.type(keys.start_urls)))
    # one transaction, so the ledger and the leases are read at the same instant
    with server.pipeline() as pipe:
        pipe.hgetall(keys.state)
        pipe.hmget(keys.budget, "pages", "reserved", "enqueued", "settled", "seeds", "marked", "revisits")
        pipe.get(keys.started)
        # no seed key (or one of no seed type): EXISTS keeps the slot, and seeds are 0
        pipe.execute_command(count_seeds or "EXISTS", keys.start_urls)
        pipe.zcard(keys.leases)
        pipe.llen(keys.dead)
        pipe.hlen(keys.items)
        pipe.hmget(keys.stats, "pages", "items", "errors", "start_time", "finish_time")
        pipe.hgetall(keys.nodes)
        pipe.hgetall(keys.failover)
        timed = pipelines_time(server)
        if timed:
            pipe.time()
        state_raw, ledger, started, seeds, leased, dead, items, totals, nodes, failover, *clock = pipe.execute()
    if now is None:
        now = time_reply(clock[0] if timed else slot_time(server, keys.state))
    state = {_text(name): _text(value) for name, value in state_raw.items()}
    seeds = seeds if count_seeds else 0
    shards = crawl_shards(server, keys)
    ledger, leased, dead_by_shard = _add_shards(server, shards[1:], ledger, leased, dead)
    dead = sum(dead_by_shard)
    pages, reserved, enqueued, settled, seeded, marked, revisits = (_int(value) for value in ledger)
    counts = {"enqueued": enqueued, "settled": settled, "seeds": seeded, "marked": marked, "revisits": revisits}
    # the frontier holds batched entries; its length in requests is the ledger's
    frontier = queued_from_ledger(enqueued, settled, leased)
    limit = max(_int(state["budget"]) if "budget" in state else budget, 0)
    started_at = number(started)
    ended_at = number(state.get("ended_at"))
    node_list = read_nodes(nodes, now, lost_after)
    resumed = ended_at is not None and any(
        node["status"] == ALIVE and (node["started"] or 0.0) > ended_at for node in node_list
    )
    reason = state.get("reason")
    return {
        "time": now,
        "state": crawl_state(state, started is not None, pages, limit, resumed),
        "reason": None if reason is None else printable(reason),
        "started_at": started_at,
        "ended_at": None if resumed else ended_at,
        "budget": {
            "limit": limit,
            "pages": pages,
            "reserved": reserved,
            "in_flight": max(reserved - pages, 0),
            "fraction": round(min(max(pages / limit, 0.0), 1.0), 4) if limit else None,
        },
        "frontier": frontier,
        "seeds": seeds,
        "leased": leased,
        "fingerprints": _fingerprints(server, shards, counts, scan) if fingerprints else None,
        "shards": len(shards),
        "shard_parts": _shard_parts(server, keys, len(shards)),
        "dead_letters": dead,
        "dead_by_shard": dead_by_shard,
        "items": items,
        "cluster": {
            "pages": _int(totals[0]),
            "items": _int(totals[1]),
            "errors": _int(totals[2]),
            "start_time": number(totals[3]),
            "finish_time": number(totals[4]),
        },
        "ledger": counts,
        "rates": read_rates(server, keys.rate_prefix, now, None if scan else named_rate_keys(nodes, keys.rate_prefix)),
        "nodes": node_list,
        "failover": read_failover(failover, pages, node_list),
        "freshness": asdict(read_freshness(server, keys, now)),
        "nodes_alive": sum(node["status"] == ALIVE for node in node_list),
        "nodes_lost": sum(node["status"] == LOST for node in node_list),
    }


def read_failover(raw: dict[Any, Any], pages: int, nodes: list[dict[str, Any]]) -> dict[str, Any]:
    """The ``failover`` hash (written by nodes behind a Sentinel REDIS_URL, see
    :mod:`baike.failover`): the master now, how many failovers, the last one's time
    (Redis's clock) and addresses; None where nothing is recorded. ``redone``: the pages
    the nodes downloaded beyond the budget's ledger (``pages``), i.e. downloaded again
    because a failover lost their settlement (or a node died holding them).
    """
    fields = {_text(name): value for name, value in raw.items()}
    text = {name: printable(fields[name]) if name in fields else None for name in ("master", "last_from", "last_to")}
    return {
        "master": text["master"],
        "count": _int(fields.get("count")),
        "last_time": number(fields.get("last_time")),
        "last_from": text["last_from"],
        "last_to": text["last_to"],
        "redone": max(sum(node["pages"] for node in nodes) - pages, 0),
    }


def describe_failover(failover: dict[str, Any]) -> str:
    """The master and its failovers, for people."""
    text = f"master {failover['master']}"
    if not failover["count"]:
        return text + ", no failover"
    return (
        f"{text}; {failover['count']} failover(s), the last at {clock(failover['last_time'])}"
        f" ({failover['last_from']} -> {failover['last_to']}); {failover['redone']} pages downloaded again"
    )


def _add_shards(
    server: Redis, shards: list[CrawlKeys], ledger: list[Any], leased: int, dead: int
) -> tuple[list[int], int, list[int]]:
    """Shard 0's ledger fields and leases plus those of frontier shards ``shards``
    (BAIKE_SHARDS; read in one more round trip, each shard's values together), and the
    dead letters of each shard, shard 0's (``dead``) first."""
    totals, dead_by_shard = [_int(value) for value in ledger], [dead]
    if not shards:
        return totals, leased, dead_by_shard
    with server.pipeline(transaction=False) as pipe:
        for keys in shards:
            pipe.hmget(keys.budget, "pages", "reserved", "enqueued", "settled", "seeds", "marked", "revisits")
            pipe.zcard(keys.leases)
            pipe.llen(keys.dead)
        replies = pipe.execute()
    for at in range(0, len(replies), 3):
        totals = [total + _int(value) for total, value in zip(totals, replies[at], strict=True)]
        leased = leased + replies[at + 1]
        dead_by_shard.append(replies[at + 2])
    return totals, leased, dead_by_shard


def _shard_parts(server: Redis, keys: CrawlKeys, shards: int) -> list[float] | None:
    """Each frontier shard's part of the request fingerprints (BAIKE_SHARD0_SHARE, as the
    crawl recorded its split), [1.0] with one shard, None when the record is not a split."""
    if shards <= 1:
        return [1.0]
    split = recorded_split(server, keys)
    return None if split is None else [round(split.fraction(shard), 4) for shard in range(split.count)]


def _fingerprints(server: Redis, shards: list[CrawlKeys], ledger: dict[str, int], scan: bool) -> int:
    """The dupefilter buckets' fields counted (every shard's), or with ``scan`` off the ledger's count."""
    if not scan:
        return ledger_fingerprints(ledger)
    return sum(count_fingerprints(server, keys.dupefilter) for keys in shards)


def ledger_fingerprints(ledger: dict[str, int]) -> int:
    """Fingerprints recorded, from the frontier's ledger: ``enqueued - seeds - revisits + marked``
    (revisits of stored entries enter the frontier without a fingerprint of their own).

    Exact for both dupefilters (every filtered request is recorded in the step that
    enqueues it); requests enqueued unfiltered (``dont_filter``, dead letters put back)
    count too, so it is an upper bound when there are such.
    """
    return max(ledger["enqueued"] - ledger["seeds"] - ledger.get("revisits", 0) + ledger["marked"], 0)


def named_rate_keys(raw_nodes: dict[bytes, bytes], prefix: str, most: int = 64) -> list[str]:
    """The rate hashes the node records name (``rate_key``), sorted: at most ``most``,
    each under ``prefix`` (a record cannot make a reader look at another key)."""
    named = set()
    for value in raw_nodes.values():
        record = read_json(value)
        key = record.get("rate_key") if isinstance(record, dict) else None
        if isinstance(key, str) and key.startswith(prefix) and len(key) <= len(prefix) + MAX_LABEL:
            named.add(key)
    return sorted(named)[:most]


def read_rates(server: Redis, prefix: str, now: float, keys: list[str] | None = None) -> list[dict[str, Any]]:
    """The shared rate of every politeness key (``<prefix><host>[@egress]``): configured and
    current rate, and the cool-down with its reason while one lasts.

    ``keys``: the rate hashes to read (one round trip; those that do not exist are left
    out); by default every one found with SCAN."""
    if keys is None:
        keys = sorted(server.scan_iter(match=f"{prefix}*", count=100))
    with server.pipeline(transaction=False) as pipe:
        for key in keys:
            pipe.hmget(key, "rate", "current", "burst", "cooldown_until", "reason")
        replies = pipe.execute() if keys else []
    rates = []
    for key, held in zip(keys, replies, strict=True):
        if all(value is None for value in held):
            continue
        until = number(held[3]) or 0.0
        rates.append(
            {
                "target": printable(_text(key)[len(prefix) :]),
                "rate": number(held[0]),
                "current": number(held[1]),
                "burst": number(held[2]),
                "cooling_until": until if until > now else None,
                "cooling_for": round(until - now, 1) if until > now else 0.0,
                "reason": printable(_text(held[4])) if held[4] is not None else None,
            }
        )
    return rates


def describe_rate(rate: dict[str, Any]) -> str:
    """One politeness key's shared rate, for people."""
    configured, current = rate["rate"] or 0.0, rate["current"] or 0.0
    text = f"{rate['target']}: {configured:g}/s configured, {current:g}/s now"
    if rate["cooling_until"]:
        text += f"; cooling down for {rate['cooling_for']:g} s more ({rate['reason'] or '?'})"
    return text


def is_over(snap: dict[str, Any]) -> bool:
    """The crawl ended and no node is still closing."""
    return snap["state"] in TERMINAL_STATES and not snap["nodes_alive"]


def cluster_rate(snap: dict[str, Any]) -> float:
    """Pages per second of the nodes alive, each over its last minute."""
    return cast("float", sum(node["pages_per_sec"] for node in snap["nodes"] if node["status"] == ALIVE))


# -- rendering --------------------------------------------------------------------------


def describe_freshness(fresh: dict[str, Any]) -> str:
    """The revisit schedule and what the revisits found, for people."""
    done = fresh["changed"] + fresh["unchanged"] + fresh["not_modified"]
    return (
        f"{fresh['scheduled']} entries scheduled, {fresh['due_now']} due now, {fresh['due_day']} within a day;"
        f" {done} revisits done: {fresh['changed']} changed, {fresh['not_modified']} answered 304,"
        f" {fresh['unchanged']} unchanged"
    )


def render(snap: dict[str, Any], width: int = 40) -> str:
    """The snapshot as the text of ``scrapy status``."""
    budget = snap["budget"]
    where = f" at {snap['redis']}" if snap.get("redis") else ""
    lines = [f"baike crawl{where}: {snap['state']}{_running_for(snap)}"]
    if budget["limit"]:
        lines.append(
            f"budget       {bar(budget['fraction'] or 0.0, width)} {budget['pages']}/{budget['limit']} pages"
            f" ({100 * (budget['fraction'] or 0.0):.0f}%)"
        )
    else:
        lines.append(f"budget       none set; {budget['pages']} pages downloaded")
    fingerprints = "-" if snap["fingerprints"] is None else snap["fingerprints"]
    lines += [
        f"frontier     {snap['frontier']} queued, {snap['seeds']} seeds waiting, {fingerprints} fingerprints seen",
        f"in flight    {snap['leased']} leased, {budget['in_flight']} downloading",
        f"stored       {snap['items']} items, {snap['dead_letters']} dead letters",
        f"cluster      {snap['cluster']['pages']} pages, {snap['cluster']['items']} items,"
        f" {snap['cluster']['errors']} errors, {cluster_rate(snap):.1f} pages/s",
        *([f"shards       {describe_shards(snap)}"] if snap.get("shards", 1) > 1 else []),
        *(f"rate         {describe_rate(rate)}" for rate in snap["rates"]),
        *(
            [f"redis        {describe_failover(snap['failover'])}"]
            if (snap.get("failover") or {}).get("master")
            else []
        ),
        *(
            [f"revisits     {describe_freshness(snap['freshness'])}"]
            if (snap.get("freshness") or {}).get("scheduled")
            else []
        ),
        "",
        f"nodes: {snap['nodes_alive']} alive, {snap['nodes_lost']} lost, {len(snap['nodes'])} in all",
    ]
    lines += _node_table(snap["nodes"], snap["time"])
    return "\n".join(lines)


def describe_shards(snap: dict[str, Any]) -> str:
    """The frontier's shards and each one's part of the fingerprints, as ``scrapy status`` says them."""
    parts = snap.get("shard_parts")
    if not parts:
        return f"{snap['shards']}; the split recorded in Redis is not one (`scrapy reset` starts a fresh crawl)"
    return f"{snap['shards']}, fingerprints " + " / ".join(f"{100 * part:.1f}%" for part in parts)


def _node_table(nodes: list[dict[str, Any]], now: float) -> list[str]:
    if not nodes:
        return ["  (no node has reported yet)"]
    header = ("NODE", "HOST", "PID", "PAGES", "PAGES/S", "LAST HEARTBEAT", "STATUS")
    rows = [
        (
            node["node"],
            node["host"],
            str(node["pid"] or "-"),
            str(node["pages"]),
            f"{node['pages_per_sec']:.1f}",
            f"{clock(node['seen'])} ({duration(now - node['seen'])} ago)",
            node["status"] + (f" ({node['reason']})" if node["status"] == GONE and node["reason"] else ""),
        )
        for node in nodes
    ]
    widths = [max(len(row[i]) for row in (header, *rows)) for i in range(len(header))]
    numeric = {2, 3, 4}

    def line(row: tuple[str, ...]) -> str:
        pairs = enumerate(zip(row, widths, strict=True))
        cells = (cell.rjust(width) if i in numeric else cell.ljust(width) for i, (cell, width) in pairs)
        return ("  " + "  ".join(cells)).rstrip()

    return [line(row) for row in (header, *rows)]


def progress_line(snap: dict[str, Any], width: int = 30) -> str:
    """One line for a terminal that refreshes it in place."""
    budget = snap["budget"]
    limit = budget["limit"] or "-"
    return (
        f"[{bar(budget['fraction'] or 0.0, width)}] {budget['pages']}/{limit} pages  {snap['items']} items"
        f"  {snap['frontier']} queued  {snap['leased']} leased  {snap['nodes_alive']} nodes"
        f"  {cluster_rate(snap):.1f} pages/s  {snap['state']}"
    )


def bar(fraction: float, width: int) -> str:
    done = max(0, min(width, int(width * fraction)))
    return "#" * done + "." * (width - done)


def duration(seconds: float) -> str:
    if not math.isfinite(seconds):
        return "?"
    seconds = max(int(seconds), 0)
    hours, rest = divmod(seconds, 3600)
    minutes, seconds = divmod(rest, 60)
    if hours:
        return f"{hours}h{minutes:02d}m"
    return f"{minutes}m{seconds:02d}s" if minutes else f"{seconds}s"


def clock(timestamp: float | None) -> str:
    """``timestamp`` as a UTC date and time; ``-`` for none, ``?`` for one no calendar holds."""
    if not timestamp:
        return "-"
    try:
        return datetime.fromtimestamp(timestamp, UTC).strftime("%Y-%m-%d %H:%M:%S UTC")
    except (ValueError, OverflowError, OSError):
        return "?"


def _running_for(snap: dict[str, Any]) -> str:
    start = snap["started_at"] or snap["cluster"]["start_time"]
    if not start:
        return ""
    end = snap["ended_at"] if snap["state"] in TERMINAL_STATES and snap["ended_at"] else snap["time"]
    verb = "ran for" if snap["state"] in TERMINAL_STATES else "for"
    return f" ({verb} {duration(end - start)})"


def printable(value: Any, most: int = MAX_LABEL) -> str:
    """``value`` as text fit for a terminal, a report and strict JSON: no control
    characters or lone surrogates (each becomes ``?``), at most ``most`` characters."""
    text = _text(value[: most + 1] if isinstance(value, (str, bytes)) else value)[: most + 1]
    text = _UNPRINTABLE.sub("?", text)
    return text if len(text) <= most else text[: most - 1] + "…"


def _finite_float(text: str) -> float | None:
    real = float(text)
    return real if math.isfinite(real) else None


def _text(value: Any) -> str:
    return value.decode("utf-8", "replace") if isinstance(value, bytes) else str(value)


def number(value: Any) -> float | None:
    """``value`` (a number, or its text) as a finite float within +-MAX_NUMBER; None for anything else."""
    if isinstance(value, bool):
        return None
    if isinstance(value, (bytes, str)):
        if len(value) > MAX_NUMBER_TEXT:
            return None
        value = _text(value)
    elif not isinstance(value, (int, float)):
        return None
    try:
        real = float(value)
    except (ValueError, OverflowError):
        return None
    return real if math.isfinite(real) and abs(real) < MAX_NUMBER else None


def _int(value: Any) -> int:
    """``value`` (an integer, a number, or its text) as an integer within +-MAX_NUMBER; 0 for anything else."""
    if isinstance(value, int) and not isinstance(value, bool):
        return value if abs(value) < MAX_NUMBER else 0
    if isinstance(value, (bytes, str)) and len(value) <= MAX_NUMBER_TEXT:
        try:  # exact, where the text is an integer (a float would round it)
            return _int(int(_text(value)))
        except ValueError:
            pass
    real = number(value)
    return int(real) if real is not None else 0
