"""The shared frontier with leases (``SCHEDULER_QUEUE_CLASS``).

A request taken from the frontier is leased to one node until a deadline, not
forgotten: it is settled (acknowledged) only when its page is fully handled, and
if the node dies its lease expires and any node's next take puts it back. Taking
also reserves one unit of the cluster-wide page budget per request, in the same
atomic step, so the cluster never downloads more pages than the budget.

Layout (see :mod:`baike.keys`): ``requests`` is a sorted set of entry ids by
score, ``requests:data`` holds their JSON payloads, ``leases`` holds leased ids by
deadline and ``leases:owners`` the node and original score of each lease. An entry
is one request or a batch of the requests one flush added at one priority (see
:data:`baike.frontier.scripts.PUSH_AND_ACK`), so the frontier's length in requests
comes from the ledger in ``budget``, not from the sorted set.
"""

from __future__ import annotations

import json
import logging
import secrets
import struct
import time
from dataclasses import astuple, dataclass, field
from functools import partial
from typing import TYPE_CHECKING, Any, NamedTuple, cast
from urllib.parse import urlsplit

from scrapy import Request
from scrapy_redis.queue import Base

from baike.frontier import scripts
from baike.frontier import serializer as json_serializer
from baike.frontier.schema import CRAWLER_META, HEADERS, SEED_SCORE, RequestSchema
from baike.keys import CrawlKeys
from baike.revisit import conditional_headers
from baike.urls import BAIKE_ORIGIN, canonicalize, download_url, normalize_origin

if TYPE_CHECKING:
    from collections.abc import Callable

    from redis import Redis
    from redis.commands.core import Script
    from scrapy import Spider

    from baike.frontier.shards import ShardSplit

logger = logging.getLogger(__name__)

# Request meta key carrying the lease id of a request taken from the frontier.
LEASE_META_KEY = "baike_lease"
# The errback the spider had before the frontier settled failed requests itself.
SPIDER_ERRBACK = "errback"
# Meta keys that belong to one download and must not travel through Redis.
_TRANSIENT_META = frozenset({LEASE_META_KEY, "download_slot", "download_latency", "download_timeout"})
# Most expired leases one take puts back, so a take stays short after a mass death.
RECLAIM_PER_TAKE = 200
# Most requests one frontier entry batches. A take that cuts an entry copies its rest
# back, and Redis's Lua hashes every byte of every string it makes: entries no larger
# than SCHEDULER_BATCH_SIZE's default are mostly taken whole.
ENTRY_MAX_REQUESTS = 16
# Seeds each take admits from the seed key into the frontier (scrapy-redis's setting).
DEFAULT_SEED_BATCH = 16
# A frontier entry that is a seed admitted by LEASE: this byte, then the raw seed as a JSON string.
SEED_MARK = b"S"
# The payload of a push that only marks its fingerprint seen (see PUSH_AND_ACK's marks).
MARK = ""
# A push's slot starts with its dupefilter bucket's index among the call's keys; 0: none.
_SLOT_INDEX = struct.Struct(">H")
_UNFILTERED = _SLOT_INDEX.pack(0)


class PayloadError(ValueError):
    """A frontier payload this crawler must not execute."""


class BadSeed(ValueError):
    """A seed that cannot start a crawl; the message says why."""


class Pushed(NamedTuple):
    """What one push-and-ack call did."""

    added: int
    filtered: int
    stale: int = 0  # acknowledgements refused: their leases were no longer this node's
    cooling: float = 0.0  # seconds the cluster's cool-down still lasts (Redis time)
    rate: float = 0.0  # the cluster's rate now, requests per second (0: no shared rate)
    duplicates: tuple[int, ...] = ()  # indices of the filtered pushes, when asked for
    # acknowledgements refused because Redis lacked what their page stored (a record, or
    # the node's last confirmed call: a failover lost it): their requests went back to the frontier
    unstored: int = 0
    # Redis lacked the node's last confirmed call (``after``): it holds an earlier state
    behind: bool = False


@dataclass(slots=True)
class Answers:
    """What the host answered since the last report, counted by a node and reported to
    the shared rate in its next flush (see PUSH_AND_ACK)."""

    healthy: int = 0
    failed: int = 0  # 403, 429, 5xx
    captchas: int = 0
    retry_after: float = 0.0  # the longest Retry-After, seconds

    def __bool__(self) -> bool:
        return bool(self.healthy or self.failed or self.captchas or self.retry_after)


@dataclass(slots=True)
class Taken:
    """What one :meth:`LeasedQueue.take` returned.

    ``seeds`` are leases of admitted seeds with the request each one starts: the
    scheduler enqueues that request and settles the seed's lease in one flush.
    ``rejected`` and ``bad_seeds`` hold the reasons of what went to the dead letters.
    """

    requests: list[tuple[str, Request]] = field(default_factory=list)
    seeds: list[tuple[str, Request]] = field(default_factory=list)
    reclaimed: int = 0
    budget_left: int = -1  # -1: no budget set
    admitted: int = 0  # seeds moved into the frontier; -1: the seed key has another type
    wait: float = 0.0  # seconds until the cluster's rate has a token again; 0: not rate-limited
    rejected: list[str] = field(default_factory=list)
    bad_seeds: list[str] = field(default_factory=list)


class LeasedQueue(Base):  # type: ignore[misc]  # scrapy-redis is untyped
    """Priority frontier (FIFO among equal priorities) with leases and a page budget."""

    def __init__(self, server: Redis, spider: Spider, key: str, serializer: Any = None):
        super().__init__(server, spider, key, serializer or json_serializer)
        self.keys = CrawlKeys.for_spider(spider.name, spider.settings)
        self.mirror = normalize_origin(spider.settings.get("BAIKE_MIRROR"))
        settings = spider.settings
        self.schema = RequestSchema.build(
            getattr(spider, "frontier_callbacks", ("parse",)), settings.getlist("SCHEDULER_EXTRA_META_KEYS")
        )
        self.seed_batch = settings.getint("REDIS_START_URLS_BATCH_SIZE", DEFAULT_SEED_BATCH)
        self.seed_form = seed_form(settings)
        self.rate = max(settings.getfloat("BAIKE_CLUSTER_RATE", 0.0), 0.0)
        self.burst = max(settings.getint("BAIKE_CLUSTER_BURST", 16), 1)
        host = urlsplit(self.mirror or BAIKE_ORIGIN).netloc
        self.rate_key = self.keys.rate(host, settings.get("BAIKE_EGRESS") or "")
        self.backoff = (
            max(settings.getfloat("BAIKE_COOLDOWN", 5.0), 0.0),
            max(settings.getfloat("BAIKE_COOLDOWN_MAX", 300.0), 0.0),
            max(settings.getfloat("BAIKE_BACKOFF_WINDOW", 30.0), 1.0),
        )
        self._dropped_meta: set[str] = set()
        # the frontier shard this queue serves (BAIKE_SHARDS, see baike.frontier.shards)
        self.shard, self.shards = 0, 1
        self._push_and_ack = server.register_script(scripts.PUSH_AND_ACK)
        self._lease = server.register_script(scripts.LEASE)
        self._release = server.register_script(scripts.RELEASE)
        self._heartbeat = server.register_script(scripts.HEARTBEAT)
        self._dead_letter_raw = server.register_script(scripts.DEAD_LETTER_RAW)

    def use_shard(self, shard: int, split: ShardSplit) -> None:
        """Serve frontier shard ``shard`` of the crawl's ``split``: its keys (baike.keys.SHARD_TAG),
        its part of the shared rate (rate and burst times the shard's part of the fingerprints,
        so the host's total is unchanged, in a rate hash of its own slot), leases on its
        allowance of the budget, and seeds on shard 0 only."""
        shards = split.count
        self.shard, self.shards = shard, shards
        self.keys = CrawlKeys.for_spider(self.spider.name, self.spider.settings, shard)
        self.key = self.keys.requests
        host = urlsplit(self.mirror or BAIKE_ORIGIN).netloc
        self.rate_key = self.keys.rate(host, self.spider.settings.get("BAIKE_EGRESS") or "")
        if shards > 1:
            self.rate *= split.fraction(shard)
            self.burst = max(split.portion(shard, self.burst), 1)
            if shard:
                self.seed_batch = 0

    # -- encoding ---------------------------------------------------------------

    def encode(self, request: Request) -> str:
        """Serialise ``request`` with its canonical URL and only durable meta.

        Raises PayloadError for a request that is not a Baike entry.
        """
        canonical = canonicalize(request.url, mirror=self.mirror)
        if canonical is None:
            raise PayloadError(f"not a Baike entry URL: {request.url}")
        obj = self._to_dict(request)
        obj["url"] = canonical
        obj["meta"] = self._durable_meta(obj["meta"])
        obj["headers"] = {name: values for name, values in obj["headers"].items() if _text(name) in HEADERS}
        return cast("str", self.serializer.dumps(obj))

    def _durable_meta(self, meta: dict[str, Any]) -> dict[str, Any]:
        """The meta keys that travel through Redis: the schema's, not this download's own."""
        kept = {}
        for key, value in meta.items():
            if key in CRAWLER_META or key in self.schema.extra_meta:
                kept[key] = value
            elif key not in _TRANSIENT_META and not key.startswith("_") and key not in self._dropped_meta:
                self._dropped_meta.add(key)
                logger.warning(
                    "Meta key %r is not carried through the shared frontier; add it to"
                    " SCHEDULER_EXTRA_META_KEYS to keep it",
                    key,
                )
        return kept

    def _to_dict(self, request: Request) -> dict[str, Any]:
        """``request.to_dict()``, without its per-call method lookup for spider callbacks.

        Scrapy finds a callback's name by scanning the spider's members on every
        call, which costs more than the rest of scheduling a link put together;
        the spider's own bound methods carry their name already.
        """
        callbacks = (request.callback, request.errback)
        if not all(callback is None or getattr(callback, "__self__", None) is self.spider for callback in callbacks):
            return request.to_dict(spider=self.spider)
        return {
            "url": request.url,
            "callback": request.callback.__name__ if request.callback else None,
            "errback": request.errback.__name__ if request.errback else None,
            "headers": dict(request.headers),
            "method": request.method,
            "body": request.body,
            "cookies": request.cookies,
            "meta": dict(request.meta),
            "encoding": request.encoding,
            "priority": request.priority,
            "dont_filter": request.dont_filter,
            "flags": request.flags,
            "cb_kwargs": request.cb_kwargs,
        }

    def decode(self, payload: bytes) -> Request:
        """Build a request from a payload, refusing anything this crawler would not write.

        The payload is checked against :class:`~baike.frontier.schema.RequestSchema`
        and built into a plain Request here: no class, module or callable is ever
        looked up from what Redis holds, only the spider's listed callbacks.
        Raises PayloadError with the reason.
        """
        try:
            obj = self.schema.check(self._without_spider_errback(self.serializer.loads(payload)))
        except ValueError as exc:
            raise PayloadError(str(exc)) from None
        url = obj["url"]
        if canonicalize(url) != url:
            raise PayloadError(f"not a canonical Baike entry URL: {url[:200]!r}")
        # a revisit sends the validators the server gave for the stored version
        headers = {**obj["headers"], **conditional_headers(obj["meta"])}
        return Request(
            download_url(url, self.mirror),
            callback=self._callback(obj["callback"]),
            errback=self._callback(obj["errback"]),
            priority=obj["priority"],
            dont_filter=obj["dont_filter"],
            meta=obj["meta"],
            flags=obj["flags"],
            headers=headers or None,
        )

    def _without_spider_errback(self, obj: Any) -> Any:
        """A request stored by an older node names the spider's errback, which settled its
        lease; the frontier does that now (:mod:`baike.frontier.failures`), and a spider
        without such a method is given the request without it."""
        if isinstance(obj, dict) and obj.get("errback") == SPIDER_ERRBACK and not hasattr(self.spider, SPIDER_ERRBACK):
            obj["errback"] = None
        return obj

    def _callback(self, name: str | None) -> Any:
        if name is None:
            return None
        method = getattr(self.spider, name, None)
        if not callable(method):
            raise PayloadError(f"the spider has no method {name!r}")
        return method

    def decode_seed(self, payload: bytes) -> Request:
        """The request an admitted seed entry starts (``SEED_MARK`` + the seed as a JSON string).

        The spider reads the seed (``request_from_seed``); its meta and priority are
        then held to the request schema. Raises BadSeed with the reason.
        """
        raw = seed_text(payload)
        if raw is None:
            raise BadSeed("unreadable seed entry")
        try:
            request: Request = self.spider.request_from_seed(raw)
            self.schema.check_meta(request.meta)
            self.schema.check_priority(request.priority)
        except ValueError as exc:
            raise BadSeed(str(exc)) from None
        return request

    # -- verbs ------------------------------------------------------------------

    def __len__(self) -> int:
        """Requests waiting in the frontier (leased ones not included)."""
        return queued_requests(self.server, self.keys)

    def push_and_ack(
        self,
        node: str,
        pushes: list[tuple[str | None, bytes | None, int, str]],
        acks: list[tuple[str, bool, str]],
        bloom: tuple[int, int] = (0, 0),
        call_id: str | None = None,
        replaces: dict[int, str] | None = None,
        answers: Answers | None = None,
        list_filtered: bool = False,
        client: Redis | None = None,
        records: dict[str, tuple[str, ...]] | None = None,
        after: str = "",
    ) -> Pushed:
        """Enqueue new requests and settle leases in one atomic round trip.

        ``pushes`` are ``(bucket key or None, fingerprint field, priority, payload)``;
        a request whose fingerprint is already in its bucket is dropped. A push whose
        payload is :data:`MARK` only records its fingerprint as seen. With
        ``bloom`` = (hashes, bits per shard) the buckets are a Bloom filter's shards
        and the fields its packed ``(h1, h2)`` (see ``BloomDupeFilter.slot``).
        ``acks`` are ``(lease, page downloaded, dead-letter reason or "")``; an ack
        whose lease is no longer ``node``'s is refused and counted in ``stale``.
        Resending a call with the same ``call_id`` replays its reply and changes nothing.
        ``replaces`` maps the index of a push that is a retry or redirect of a leased
        request to that lease (acknowledged in ``acks``): it is dropped if that ack is
        refused, since the request is another node's now. ``answers`` are reported to the
        cluster's shared rate, which may back off; the reply says for how long it cools down.
        With ``list_filtered`` the reply names the pushes filtered as duplicates (for
        DUPEFILTER_DEBUG's log). ``client`` sends the script instead of the queue's own
        client (one pinned connection, for ``WAIT``). ``records`` maps an acknowledged lease
        to the URLs of the records its page stored: an ack whose records are not all in the
        items hash (a failover lost them) is refused, its request back in the frontier, and
        counted in ``unstored``. ``after`` is the call id of ``node``'s last call Redis
        confirmed: when Redis did not record it as the node's last, it lacks that call (a
        failover lost it), and every ack is refused the same way (``behind`` says so).
        """
        report = [self.rate, *astuple(answers or Answers()), *self.backoff] if self.rate else [0] * 8
        return push_and_ack(
            partial(self._push_and_ack, client=client) if client is not None else self._push_and_ack,
            self.keys,
            node,
            pushes,
            acks,
            bloom,
            call_id or new_call_id(),
            replaces,
            (self.rate_key, report),
            list_filtered,
            records,
            after,
        )

    def push(self, request: Request) -> None:
        """Enqueue one request unfiltered (scrapy-redis's queue contract)."""
        self.push_and_ack("", [(None, None, request.priority, self.encode(request))], [])

    def take(self, node: str, count: int, lease_seconds: float, budget: int = 0, call_id: str | None = None) -> Taken:
        """Admit waiting seeds, then lease up to ``count`` requests to ``node`` for ``lease_seconds``.

        Expired leases are put back first; "expired" and the deadline are Redis's
        clock. With ``budget`` > 0 no more requests are leased than the budget has
        units left. One payload costs one payload: any that fails to decode goes to
        the dead letters with its reason, and the rest of the batch goes on. Each
        request comes with its lease (:func:`lease_handle`). Resending a call with
        the same ``call_id`` replays its reply and leases nothing more. With shards, the
        budget is this shard's allowance (see :mod:`baike.frontier.shards`).
        """
        if self.shards > 1 and budget > 0:
            budget = -1
        reply = self._lease(
            keys=[
                self.key,
                self.keys.request_data,
                self.keys.leases,
                self.keys.lease_owners,
                self.keys.budget,
                self.keys.request_seq,
                self.keys.start_urls,
                self.keys.started,
                self.keys.calls,
                self.rate_key,
            ],
            args=[
                node,
                call_id or new_call_id(),
                count,
                budget,
                lease_seconds,
                RECLAIM_PER_TAKE,
                self.seed_batch,
                self.seed_form,
                SEED_SCORE,
                self.rate,
                self.burst,
            ],
        )
        taken = Taken(
            reclaimed=int(reply[0]), budget_left=int(reply[1]), admitted=int(reply[2]), wait=int(reply[4]) / 1000
        )
        token = str(int(reply[3]))
        for i in range(5, len(reply), 2):
            self._sort(taken, node, lease_handle(reply[i].decode(), token, self.shard), reply[i + 1])
        return taken

    def _sort(self, taken: Taken, node: str, lease: str, payload: bytes) -> None:
        """File one leased payload under ``taken``: a request, a seed, or a dead letter."""
        seed = payload[:1] == SEED_MARK
        try:
            request = self.decode_seed(payload) if seed else self.decode(payload)
        except Exception as exc:  # any failure costs this payload only
            reason = f"bad seed: {exc}" if seed else f"rejected payload: {exc}"
            (taken.bad_seeds if seed else taken.rejected).append(reason)
            self.reject(node, lease, payload, reason)
            return
        request.meta[LEASE_META_KEY] = lease
        (taken.seeds if seed else taken.requests).append((lease, request))

    def pop(self, timeout: int = 0) -> Request | None:
        """Lease one request for a minute (scrapy-redis's queue contract)."""
        taken = self.take(f"pop-{id(self)}", 1, 60.0)
        return taken.requests[0][1] if taken.requests else None

    def reject(self, node: str, lease: str, payload: bytes, reason: str) -> None:
        """Move an unusable payload leased to ``node`` to the dead letters, logged with the reason."""
        request_id, token = split_handle(lease)
        logger.warning("Dead-lettered frontier entry %s (%s); see `scrapy deadletters`", request_id, reason)
        if payload[:1] == SEED_MARK:
            payload = seed_text(payload) or payload
        record = {
            "reason": reason,
            "time": time.time(),
            "raw": payload[:1024].decode("utf-8", errors="replace"),
        }
        self._dead_letter_raw(
            keys=[self.keys.request_data, self.keys.leases, self.keys.lease_owners, self.keys.budget, self.keys.dead],
            args=[node, request_id, token, json.dumps(record, ensure_ascii=False)],
        )

    def release(self, node: str, leases: list[str]) -> int:
        """Give ``node``'s leases back to the frontier unspent; returns how many."""
        if not leases:
            return 0
        return int(
            self._release(
                keys=[self.key, self.keys.leases, self.keys.lease_owners, self.keys.budget],
                args=[node, *lease_args(leases)],
            )
        )

    def heartbeat(self, node: str, leases: list[str], lease_seconds: float) -> list[str]:
        """Extend ``node``'s leases to Redis's now + ``lease_seconds``.

        Returns the leases that are no longer ``node``'s (they expired, and may have
        been taken again): the node must not download them.
        """
        if not leases:
            return []
        lost = self._heartbeat(
            keys=[self.keys.leases, self.keys.lease_owners],
            args=[node, lease_seconds, *lease_args(leases)],
        )
        lost_ids = {request_id.decode() for request_id in lost}
        return [lease for lease in leases if split_handle(lease)[0] in lost_ids]

    def cap_rate(self, rate: float) -> None:
        """Cap the politeness key's rate at ``rate`` for every node (robots.txt's Crawl-delay)."""
        self.server.hset(self.rate_key, "cap", rate)

    def leased(self) -> int:
        """Requests leased to any node right now."""
        return cast("int", self.server.zcard(self.keys.leases))

    def clear(self) -> None:
        """Delete the frontier and its leases (the explicit fresh-crawl operation only)."""
        self.server.delete(
            self.key, self.keys.request_data, self.keys.request_seq, self.keys.leases, self.keys.lease_owners
        )


def _text(name: str | bytes) -> str:
    return name.decode("latin-1") if isinstance(name, bytes) else name


def seed_form(settings: Any) -> str:
    """The Redis type of the seed key: scrapy-redis's REDIS_START_URLS_AS_SET / _AS_ZSET, else a list."""
    if settings.getbool("REDIS_START_URLS_AS_ZSET"):
        return "zset"
    if settings.getbool("REDIS_START_URLS_AS_SET"):
        return "set"
    return "list"


def seed_text(payload: bytes) -> bytes | None:
    """The raw seed, as it was pushed, inside an admitted seed entry; None if unreadable."""
    try:
        text = json.loads(payload[1:].decode("utf-8", "surrogateescape"))
    except ValueError:
        return None
    return text.encode("utf-8", "surrogateescape") if isinstance(text, str) else None


def queued_requests(server: Redis, keys: CrawlKeys) -> int:
    """Requests waiting in the frontier, from the ledger: enqueued - settled - leased.

    The ledger and the leases are only ever changed together, by one script, so the
    difference is exact at any moment without walking the batched entries.
    """
    with server.pipeline() as pipe:
        pipe.hmget(keys.budget, "enqueued", "settled")
        pipe.zcard(keys.leases)
        (enqueued, settled), leased = pipe.execute()
    return queued_from_ledger(int(enqueued or 0), int(settled or 0), leased)


def queued_from_ledger(enqueued: int, settled: int, leased: int) -> int:
    """Requests in the frontier, given the ledger and the number of leases read together."""
    return max(enqueued - settled - leased, 0)


def push_and_ack(
    script: Script | Callable[..., Any],
    keys: CrawlKeys,
    node: str,
    pushes: list[tuple[str | None, bytes | None, int, str]],
    acks: list[tuple[str, bool, str]],
    bloom: tuple[int, int] = (0, 0),
    call_id: str = "",
    replaces: dict[int, str] | None = None,
    report: tuple[str, list[Any]] | None = None,
    list_filtered: bool = False,
    records: dict[str, tuple[str, ...]] | None = None,
    after: str = "",
) -> Pushed:
    """Run :data:`~baike.frontier.scripts.PUSH_AND_ACK` (see :meth:`LeasedQueue.push_and_ack`).

    Packs the requests the way the script reads them: per priority (and per
    :data:`ENTRY_MAX_REQUESTS`), one string of ``(bucket index, fingerprint)`` slots
    and one of ``"\\n"``-prefixed payloads. ``replaces`` maps the index of a push that
    replaces a leased request (its retry or redirect) to that lease, acknowledged in
    the same call: such a push is kept only if its lease's ack is accepted. ``report``
    is the politeness key's rate hash and the answers' arguments (see the script).
    With ``list_filtered`` the reply's ``duplicates`` are the indices in ``pushes`` of
    the requests filtered as duplicates. ``records`` maps a lease of ``acks`` to the URLs
    of the records its page stored, checked in the items hash before the lease is settled;
    ``after`` the id of the node's last call Redis confirmed ("" for none). Raises ValueError when fingerprints differ in
    width or more than 65,535 buckets are named in one call.
    """
    widths = {len(fingerprint) for bucket, fingerprint, _, _ in pushes if bucket and fingerprint is not None}
    if len(widths) > 1:
        raise ValueError(f"fingerprint fields of different widths in one push: {sorted(widths)}")
    width = widths.pop() if widths else 0
    blank = bytes(width)
    bucket_index: dict[str, int] = {}
    ack_index = {lease: number for number, (lease, _, _) in enumerate(acks, 1)}
    # (priority, slots, payloads, replaced ack, the pushes' indices)
    groups: list[tuple[int, list[bytes], list[str], int, list[int]]] = []
    # (priority, replaced ack, marks only) -> index of its group being filled
    filling: dict[tuple[int, int, bool], int] = {}
    for number, (bucket, fingerprint, priority, payload) in enumerate(pushes):
        replaced = ack_index.get((replaces or {}).get(number, ""), 0)
        group_key = (priority, replaced, payload == MARK)
        at = filling.get(group_key)
        if at is None or len(groups[at][2]) >= ENTRY_MAX_REQUESTS:
            filling[group_key] = at = len(groups)
            groups.append((priority, [], [], replaced, []))
        _, slots, payloads, _, numbers = groups[at]
        numbers.append(number)
        if bucket and fingerprint is not None:
            slots.append(_SLOT_INDEX.pack(bucket_index.setdefault(bucket, len(bucket_index) + 1)) + fingerprint)
        else:
            slots.append(_UNFILTERED + blank)
        payloads.append(payload)
    if len(bucket_index) > 0xFFFF:
        raise ValueError(f"{len(bucket_index)} dupefilter buckets in one push; at most 65535")
    argv: list[Any] = [node, call_id or new_call_id(), width, *bloom, len(groups)]
    for priority, slots, payloads, replaced, _ in groups:
        packed = "" if payloads[0] == MARK else "\n" + "\n".join(payloads)
        argv += [priority, len(payloads), b"".join(slots), packed, replaced]
    argv.append(len(acks))
    now = time.time()
    for lease, page, reason in acks:
        prefix = ""
        if reason:
            prefix = json.dumps({"reason": reason, "time": now, "node": node})[:-1] + ',"payload":'
        argv += [*split_handle(lease), int(page), prefix, "\n".join((records or {}).get(lease, ()))]
    rate_hash, answers = report or (keys.budget, [0] * 8)
    argv += [*answers, int(list_filtered), after]
    frontier = [
        keys.requests,
        keys.request_data,
        keys.request_seq,
        keys.leases,
        keys.lease_owners,
        keys.budget,
        keys.dead,
        keys.calls,
        rate_hash,
        # read only for records (an unread key of the call's own slot otherwise)
        keys.items if records else keys.budget,
    ]
    added, filtered, stale, cooling, rate, unstored, behind, *listed = script(
        keys=[*frontier, *bucket_index], args=argv
    )
    # the script numbers the pushes in the order they were sent, group by group, from 1
    sent = [number for *_, numbers in groups for number in numbers]
    duplicates = tuple(sent[int(position) - 1] for position in (listed[0] if listed else ()))
    return Pushed(
        int(added),
        int(filtered),
        int(stale),
        int(cooling) / 1000,
        int(rate) / 1000,
        duplicates,
        int(unstored),
        bool(int(behind)),
    )


def new_call_id() -> str:
    """A call id no earlier call of any node used (see the scripts' call ids)."""
    return secrets.token_hex(8)


def lease_handle(request_id: str, token: str, shard: int = 0) -> str:
    """What a node holds for one lease: the request id and the token of the take, and
    ``/<shard>`` for a lease of frontier shard 1 or above (BAIKE_SHARDS)."""
    return f"{request_id}:{token}/{shard}" if shard else f"{request_id}:{token}"


def split_handle(lease: str) -> tuple[str, str]:
    """``(request id, token)`` of a lease handle; a handle without a token has token ""."""
    request_id, _, token = lease.partition(":")
    return request_id, token.partition("/")[0]


def handle_shard(lease: str) -> int:
    """The frontier shard of a lease handle (0 for one without ``/<shard>``)."""
    _, _, shard = lease.rpartition("/")
    return int(shard) if "/" in lease and shard.isdigit() else 0


def lease_args(leases: list[str]) -> list[str]:
    """Script arguments for ``leases``: request id, token, request id, token, ..."""
    return [part for lease in leases for part in split_handle(lease)]
