"""The fleet's metrics, read from Redis whenever Prometheus scrapes (``scrapy metrics``).

:class:`FleetCollector` is a prometheus_client collector: each ``collect()`` takes one
:func:`baike.status.snapshot` with SCAN off (at most three round trips, whatever the
size of the crawl) and reads on in the dead list (at most
:attr:`DeadLetterTally.chunks` LRANGE round trips), and turns them into the metric
families of :data:`METRICS`. Nothing is kept between scrapes but the dead letters'
counts, so several exporters may watch one crawl.

When Redis cannot be reached the answer is ``baike_redis_up 0`` (and the exporter's
own gauges), never an error page; when it is reachable but the crawl cannot be read
(a key of another type, an ACL refusal) ``baike_exporter_read_ok`` is 0. Either is
logged once when it starts and once when it ends.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import Counter
from typing import TYPE_CHECKING, Any, NamedTuple, TypeVar

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.registry import Collector
from redis.exceptions import RedisError

from baike.connection import REDIS_ERRORS
from baike.metrics.deadletters import DeadLetterTally
from baike.status import ALIVE, FINISHED, GONE, LOST, RUNNING, STOPPED, WAITING, snapshot

if TYPE_CHECKING:
    from collections.abc import Iterator, Mapping

    from prometheus_client.metrics_core import Metric
    from redis import Redis

    from baike.keys import CrawlKeys

logger = logging.getLogger(__name__)
# the label values of one sample: a tuple of as many strings as the metric has labels
Labels = TypeVar("Labels", bound=tuple[str, ...])

# The crawl's state as the value of the "status" label of baike_crawl_state.
STATES = {WAITING: "waiting", RUNNING: "running", STOPPED: "stopped", FINISHED: "finished"}


class Spec(NamedTuple):
    """One metric family: its type, labels and help text (also docs/monitoring.md's table)."""

    kind: str
    labels: tuple[str, ...]
    help: str


METRICS: dict[str, Spec] = {
    "baike_redis_up": Spec("gauge", (), "1 when Redis answered this scrape, 0 when it could not be reached"),
    "baike_exporter_read_ok": Spec("gauge", (), "1 when the whole crawl was read from Redis for this scrape"),
    "baike_exporter_read_seconds": Spec("gauge", (), "Seconds this scrape's reads from Redis took"),
    "baike_crawl_state": Spec(
        "gauge", ("status",), "1 for the crawl's state: waiting (for seeds), running, stopped (at budget), finished"
    ),
    "baike_crawl_start_time_seconds": Spec("gauge", (), "Unix time the crawl's first seed was admitted"),
    "baike_pages_total": Spec("counter", (), "Pages downloaded by every node"),
    "baike_items_total": Spec("counter", (), "Items scraped by every node"),
    "baike_errors_total": Spec("counter", (), "Errors of every node (CLUSTERSTATS_ERROR_STATS)"),
    "baike_node_pages_total": Spec("counter", ("node",), "Pages downloaded by one node"),
    "baike_node_items_total": Spec("counter", ("node",), "Items scraped by one node"),
    "baike_node_errors_total": Spec("counter", ("node",), "Errors of one node"),
    "baike_node_pages_per_second": Spec("gauge", ("node",), "One node's pages per second over its last minute"),
    "baike_node_last_seen_age_seconds": Spec("gauge", ("node",), "Seconds since the node last wrote its record"),
    "baike_node_status": Spec("gauge", ("node", "status"), "1 for the node's status: alive, lost or stopped"),
    "baike_nodes_alive": Spec("gauge", (), "Nodes writing their record"),
    "baike_nodes_lost": Spec("gauge", (), "Nodes silent for CLUSTERSTATS_LOST_AFTER seconds that did not close"),
    "baike_nodes_stopped": Spec("gauge", (), "Nodes that closed"),
    "baike_budget_limit_pages": Spec("gauge", (), "The page budget (0: none)"),
    "baike_budget_spent_pages": Spec("gauge", (), "Pages spent of the budget"),
    "baike_budget_in_flight_pages": Spec("gauge", (), "Budget units reserved by downloads under way"),
    "baike_frontier_queued_requests": Spec("gauge", (), "Requests waiting in the frontier"),
    "baike_seeds_waiting": Spec("gauge", (), "Seeds pushed and not admitted yet"),
    "baike_leases_held": Spec("gauge", (), "Requests leased to nodes"),
    "baike_items_stored": Spec("gauge", (), "Records in the items hash"),
    "baike_fingerprints": Spec("gauge", (), "URL fingerprints recorded by the shared dupefilter (from the ledger)"),
    "baike_dead_letters": Spec(
        "gauge", ("reason", "status"), "Dead letters by kind of reason (and HTTP status); pending: not read yet"
    ),
    "baike_rate_limit_requests_per_second": Spec(
        "gauge", (), "Configured shared rate, summed over the politeness keys the nodes use"
    ),
    "baike_rate_current_requests_per_second": Spec(
        "gauge", (), "Current shared rate (lowered by cool-downs), summed over the politeness keys"
    ),
    "baike_rate_cooldown_seconds": Spec("gauge", (), "Seconds left of the longest cool-down (0: none)"),
    "baike_rate_cooldowns": Spec("gauge", ("reason",), "Politeness keys cooling down now, by reason"),
}
# The reasons a cool-down is recorded with (see baike.frontier.scripts), as label values.
COOLDOWN_REASONS = {"captcha": "captcha", "Retry-After": "retry_after", "403/429/5xx": "http_errors"}


class FleetCollector(Collector):
    """The crawl's metrics, read from ``server`` at every ``collect()`` (thread-safe)."""

    def __init__(self, server: Redis, keys: CrawlKeys, *, budget: int = 0, lost_after: float = 10.0):
        self.server = server
        self.keys = keys
        self.budget = budget
        self.lost_after = lost_after
        # one tally per frontier shard's dead list (BAIKE_SHARDS), made when first seen
        self.tallies = {0: DeadLetterTally(keys.dead)}
        self._lock = threading.Lock()
        self._trouble: str | None = None

    def describe(self) -> list[Metric]:
        """Nothing: the families depend on what Redis holds (no collect() at registration)."""
        return []

    def collect(self) -> Iterator[Metric]:
        with self._lock:
            started = time.monotonic()
            up, read_ok, snap, dead = 1, 1, None, {}
            try:
                snap = snapshot(self.server, self.keys, budget=self.budget, lost_after=self.lost_after, scan=False)
                dead = self._dead_letters(snap["dead_by_shard"])
            except REDIS_ERRORS as exc:
                up, read_ok = 0, 0
                self._note(f"Redis cannot be reached ({exc}); answering baike_redis_up 0")
            except RedisError as exc:
                read_ok = 0
                self._note(f"the crawl cannot be read from Redis ({exc}); answering baike_exporter_read_ok 0")
            else:
                self._note(None)
            elapsed = time.monotonic() - started
        yield self._gauge("baike_redis_up", up)
        yield self._gauge("baike_exporter_read_ok", read_ok)
        yield self._gauge("baike_exporter_read_seconds", round(elapsed, 6))
        if snap is not None and read_ok:
            yield from self._crawl(snap, dead)

    def _dead_letters(self, lengths: list[int]) -> dict[tuple[str, str], int]:
        """The dead letters of every shard counted by reason, given each dead list's length."""
        counts: Counter[tuple[str, str]] = Counter()
        for shard, length in enumerate(lengths):
            tally = self.tallies.get(shard)
            if tally is None:
                tally = self.tallies[shard] = DeadLetterTally(self.keys.in_shard(shard).dead)
            counts.update(tally.read(self.server, length))
        return dict(counts)

    def _note(self, trouble: str | None) -> None:
        """Log a change of trouble once: when it starts (or changes) and when it ends."""
        if trouble == self._trouble:
            return
        if trouble is None:
            logger.warning("Redis answers again; the crawl is read in full")
        else:
            logger.warning("%s", trouble)
        self._trouble = trouble

    # -- the families ---------------------------------------------------------------

    def _crawl(self, snap: dict[str, Any], dead: dict[tuple[str, str], int]) -> Iterator[Metric]:
        states = {(name,): float(snap["state"] == state) for state, name in STATES.items()}
        yield self._labelled("baike_crawl_state", states)
        if snap["started_at"]:
            yield self._gauge("baike_crawl_start_time_seconds", snap["started_at"])
        cluster, budget = snap["cluster"], snap["budget"]
        yield self._counter("baike_pages_total", cluster["pages"])
        yield self._counter("baike_items_total", cluster["items"])
        yield self._counter("baike_errors_total", cluster["errors"])
        yield from self._nodes(snap["nodes"], snap["time"])
        yield self._gauge("baike_nodes_alive", snap["nodes_alive"])
        yield self._gauge("baike_nodes_lost", snap["nodes_lost"])
        yield self._gauge("baike_nodes_stopped", sum(node["status"] == GONE for node in snap["nodes"]))
        yield self._gauge("baike_budget_limit_pages", budget["limit"])
        yield self._gauge("baike_budget_spent_pages", budget["pages"])
        yield self._gauge("baike_budget_in_flight_pages", budget["in_flight"])
        yield self._gauge("baike_frontier_queued_requests", snap["frontier"])
        yield self._gauge("baike_seeds_waiting", snap["seeds"])
        yield self._gauge("baike_leases_held", snap["leased"])
        yield self._gauge("baike_items_stored", snap["items"])
        yield self._gauge("baike_fingerprints", snap["fingerprints"] or 0)
        yield self._labelled("baike_dead_letters", dead)
        yield from self._rates(snap["rates"])

    def _nodes(self, nodes: list[dict[str, Any]], now: float) -> Iterator[Metric]:
        """Per-node families; one series per node name (a name twice in the records: its first)."""
        unique: dict[str, dict[str, Any]] = {}
        for node in nodes:
            unique.setdefault(node["node"], node)
        for counter in ("pages", "items", "errors"):
            name = f"baike_node_{counter}_total"
            yield self._labelled(name, {(node,): record[counter] for node, record in unique.items()})
        yield self._labelled(
            "baike_node_pages_per_second", {(node,): record["pages_per_sec"] for node, record in unique.items()}
        )
        yield self._labelled(
            "baike_node_last_seen_age_seconds",
            {(node,): round(max(now - record["seen"], 0.0), 3) for node, record in unique.items()},
        )
        yield self._labelled(
            "baike_node_status",
            {
                (node, status): float(record["status"] == status)
                for node, record in unique.items()
                for status in (ALIVE, LOST, GONE)
            },
        )

    def _rates(self, rates: list[dict[str, Any]]) -> Iterator[Metric]:
        yield self._gauge("baike_rate_limit_requests_per_second", sum(rate["rate"] or 0.0 for rate in rates))
        yield self._gauge("baike_rate_current_requests_per_second", sum(rate["current"] or 0.0 for rate in rates))
        cooling = [rate for rate in rates if rate["cooling_until"]]
        yield self._gauge("baike_rate_cooldown_seconds", max((rate["cooling_for"] for rate in cooling), default=0.0))
        reasons = dict.fromkeys(((reason,) for reason in COOLDOWN_REASONS.values()), 0.0)
        for rate in cooling:
            key = (COOLDOWN_REASONS.get(rate["reason"] or "", "other"),)
            reasons[key] = reasons.get(key, 0.0) + 1
        yield self._labelled("baike_rate_cooldowns", reasons)

    @staticmethod
    def _gauge(name: str, value: float) -> Metric:
        return GaugeMetricFamily(name, METRICS[name].help, value=value)

    @staticmethod
    def _counter(name: str, value: float) -> Metric:
        return CounterMetricFamily(name, METRICS[name].help, value=value)

    @staticmethod
    def _labelled(name: str, values: Mapping[Labels, float]) -> Metric:
        spec = METRICS[name]
        family_type = CounterMetricFamily if spec.kind == "counter" else GaugeMetricFamily
        family = family_type(name, spec.help, labels=spec.labels)
        for labels, value in values.items():
            family.add_metric(labels, value)
        return family
