"""One node's own Scrapy stats as Prometheus metrics (``BAIKE_METRICS_PORT``).

Every numeric stat becomes ``baike_scrapy_<name>``, its name's ``/`` and other
characters Prometheus does not allow turned into ``_`` and lower-cased: a counter
(``..._total``) when the name holds ``count`` (Scrapy's counts only grow), else a
gauge. Stats that end in an HTTP status (``downloader/response_status_count/200``)
carry it as the ``status`` label, and those of Scrapy's by-reason families
(:data:`REASON_FAMILIES`) their reason as the ``reason`` label (a dotted exception
name cut to its last part), so a stat name never makes a new metric per status or
exception. Times (``start_time``) are Unix seconds, ``..._seconds``. Every series
carries the ``node`` label.
"""

from __future__ import annotations

import re
from collections import defaultdict
from datetime import datetime
from typing import TYPE_CHECKING

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.registry import Collector

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator

    from prometheus_client.metrics_core import Metric
    from scrapy.statscollectors import StatsCollector

PREFIX = "baike_scrapy_"
# Stat name prefixes whose last part is a reason (an exception's name, a retry reason).
REASON_FAMILIES = (
    "downloader/exception_type_count/",
    "retry/reason_count/",
    "spider_exceptions/",
    "item_dropped_reasons_count/",
)
_NOT_ALLOWED = re.compile(r"[^a-zA-Z0-9_]+")
_STATUS = re.compile(r"\d{3}")
MAX_LABEL = 64


def stat_series(name: str) -> tuple[str, dict[str, str]]:
    """The metric name (before any ``_total``) and labels of stat ``name``."""
    base, labels = name, {}
    head, _, last = name.rpartition("/")
    family = next((prefix for prefix in REASON_FAMILIES if name.startswith(prefix)), None)
    if family:
        base, labels = family, {"reason": name[len(family) :].rpartition(".")[2][:MAX_LABEL]}
    elif head and _STATUS.fullmatch(last):
        base, labels = head, {"status": last}
    return PREFIX + _NOT_ALLOWED.sub("_", base).strip("_").lower(), labels


class NodeStatsCollector(Collector):
    """The Scrapy stats of ``stats``, read at every ``collect()`` (from any thread)."""

    def __init__(self, stats: StatsCollector, node: Callable[[], str]):
        self.stats = stats
        self.node = node

    def describe(self) -> list[Metric]:
        return []

    def collect(self) -> Iterator[Metric]:
        # dict.copy() runs under the GIL in one step: the reactor cannot change it meanwhile
        values = self.stats.get_stats().copy()
        kinds: dict[str, str] = {}
        series: dict[str, dict[tuple[str, str], float]] = defaultdict(lambda: defaultdict(float))
        for name, value in values.items():
            labels: dict[str, str]
            if isinstance(value, datetime):
                metric, labels, kind, value = stat_series(name)[0] + "_seconds", {}, "gauge", value.timestamp()
            elif isinstance(value, (int, float)):
                metric, labels = stat_series(name)
                kind = "counter" if "count" in name else "gauge"
            else:
                continue
            kinds.setdefault(metric, kind)
            series[metric][(labels.get("reason", ""), labels.get("status", ""))] += value
        node = self.node()
        for metric in sorted(series):
            yield self._family(metric, kinds[metric], series[metric], node)

    @staticmethod
    def _family(metric: str, kind: str, samples: dict[tuple[str, str], float], node: str) -> Metric:
        """One family; its labels are ``node`` and whichever of reason and status a sample has."""
        reasons = any(reason for reason, _ in samples)
        statuses = any(status for _, status in samples)
        labels = ["node", *(["reason"] if reasons else []), *(["status"] if statuses else [])]
        family_type = CounterMetricFamily if kind == "counter" else GaugeMetricFamily
        family = family_type(metric, f"Scrapy stat {metric[len(PREFIX) :]} of this node", labels=labels)
        for (reason, status), value in sorted(samples.items()):
            family.add_metric([node, *([reason] if reasons else []), *([status] if statuses else [])], value)
        return family
