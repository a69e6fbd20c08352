"""The HTML report of a crawl: its stats, a chart of pages over time, every record.

Written as a stream with the item exporter interface (``start_exporting``,
``export_item``, ``finish_exporting``), so ``scrapy export`` feeds it from HSCAN like
Scrapy's own exporters and a million records take no more memory than ten. Every
value from Redis goes through :func:`html.escape`; the chart is inline SVG drawn
here from the ``baike:timeline`` samples, with no plotting library.

The records go in blocks of :data:`ROWS_PER_BLOCK` rows, each its own table (same fixed
columns) in a box with ``content-visibility: auto``: a browser lays out only the blocks
on screen, so a report of 100,000 records opens about as fast as one of a thousand
(measured by ``bench/report.py``, see bench/README.md).
"""

from __future__ import annotations

import json
import math
import time
from collections import defaultdict
from html import escape
from typing import IO, TYPE_CHECKING, Any, cast
from urllib.parse import unquote

from baike.status import (
    ALIVE,
    GONE,
    LOST,
    clock,
    cluster_rate,
    describe_freshness,
    describe_rate,
    duration,
    printable,
    read_json,
)

if TYPE_CHECKING:
    from redis import Redis

# Samples outside these bounds are not ones a node wrote (times are unix seconds).
MAX_SAMPLE_TIME = 1e11
MAX_SAMPLE_PAGES = 2**53
PALETTE = ("#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd", "#8c564b", "#e377c2", "#17becf", "#bcbd22", "#7f7f7f")
MAX_POINTS_PER_NODE = 400
# record rows per block (one table each, laid out by the browser only when on screen)
ROWS_PER_BLOCK = 500
# from this many records on, the report says how it is drawn and what to use for analysis
LARGE_REPORT = 10_000
TOTAL_COLOR = "#222"
RECORD_COLUMNS = (
    '<colgroup><col class="n"><col class="url"><col class="title"><col class="summary"><col class="infobox"></colgroup>'
)

STYLE = """
body{font:14px/1.45 system-ui,-apple-system,"Segoe UI","PingFang SC","Microsoft YaHei",sans-serif;
margin:24px;color:#222}
h1{font-size:22px;margin:0 0 4px}h2{font-size:17px;margin:28px 0 8px}
.meta{color:#666;margin:0 0 16px}
table{border-collapse:collapse}th,td{border:1px solid #ddd;padding:4px 8px;vertical-align:top;text-align:left}
th{background:#f4f4f4}.num{text-align:right;font-variant-numeric:tabular-nums}
table.stats th{width:170px}
.bar{display:inline-block;width:200px;height:10px;background:#eee;margin-right:8px;vertical-align:middle}
.bar span{display:block;height:100%;background:#1f77b4}
table.records{width:100%;table-layout:fixed}
.block{content-visibility:auto;contain-intrinsic-size:auto 40000px}
.block table.records{border-top:0}
table.records td{overflow-wrap:anywhere}
table.records col.n{width:56px}table.records col.url{width:20%}table.records col.title{width:14%}
table.records col.summary{width:36%}
.sub,.small{color:#666;font-size:12px}
dl{margin:0;display:grid;grid-template-columns:max-content auto;column-gap:8px}dt{color:#555}dd{margin:0}
.lost{color:#d62728;font-weight:600}.alive{color:#2ca02c}
"""


# -- the chart --------------------------------------------------------------------------


def read_timeline(server: Redis, key: str) -> list[dict[str, Any]]:
    """The capped ``baike:timeline`` samples; any sample that is not one a node wrote is skipped."""
    samples = []
    for raw in cast("list[bytes]", server.lrange(key, 0, -1)):
        sample = parse_sample(raw)
        if sample is not None:
            samples.append(sample)
    return samples


def parse_sample(raw: bytes) -> dict[str, Any] | None:
    """``{node, t, pages}`` of one timeline sample, or None unless it is a JSON object with
    a time in unix seconds (finite, within +-MAX_SAMPLE_TIME) and an integer page count
    (0 to MAX_SAMPLE_PAGES)."""
    sample = read_json(raw)
    if not isinstance(sample, dict) or "node" not in sample:
        return None
    t, pages = sample.get("t"), sample.get("pages")
    if isinstance(t, bool) or not isinstance(t, (int, float)) or not abs(t) < MAX_SAMPLE_TIME:
        return None
    if isinstance(pages, bool) or not isinstance(pages, int) or not 0 <= pages <= MAX_SAMPLE_PAGES:
        return None
    return {"node": printable(sample["node"]), "t": float(t), "pages": pages}


def nice_ceiling(value: float) -> float:
    """The smallest 1, 2 or 5 times a power of ten that is at least ``value``."""
    if value <= 0:
        return 1.0
    power = 10 ** math.floor(math.log10(value))
    for step in (1, 2, 5, 10):
        if step * power >= value:
            return float(step * power)
    return float(10 * power)


def thin(points: list[tuple[float, int]], most: int) -> list[tuple[float, int]]:
    """At most ``most`` points, evenly spread, the last one kept."""
    if len(points) <= most:
        return points
    step = len(points) / most
    kept = [points[int(i * step)] for i in range(most - 1)]
    return [*kept, points[-1]]


def total_series(series: dict[str, list[tuple[float, int]]]) -> list[tuple[float, int]]:
    """The crawl's pages over time: at each sample's time, the sum of every node's latest count."""
    latest: dict[str, int] = {}
    total, points = 0, []
    for t, node, pages in sorted((t, node, pages) for node, samples in series.items() for t, pages in samples):
        total += pages - latest.get(node, 0)
        latest[node] = pages
        points.append((t, total))
    return points


def svg_chart(samples: list[dict[str, Any]], width: int = 760, height: int = 280) -> str:
    """An inline SVG of each node's pages over time (one polyline per node) and of their
    total (a dashed line), with a legend of each line's last count."""
    series: dict[str, list[tuple[float, int]]] = defaultdict(list)
    for sample in samples:
        series[sample["node"]].append((sample["t"], sample["pages"]))
    if not series:
        return '<p class="small">No samples in the timeline yet (cluster stats off, or no node has reported).</p>'
    total = total_series(series)
    start = total[0][0]
    span = max(total[-1][0] - start, 1.0)
    top = nice_ceiling(max(pages for _, pages in total))
    left, right, upper, lower = 60, 16, 12, 36
    legend = 18 * (len(series) + 1)
    plot_w, plot_h = width - left - right, height - upper - lower

    def x(t: float) -> float:
        return left + (t - start) / span * plot_w

    def y(pages: float) -> float:
        return upper + plot_h - pages / top * plot_h

    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height + legend}"'
        f' viewBox="0 0 {width} {height + legend}" role="img" aria-label="Pages over time per node"'
        ' font-family="sans-serif" font-size="11">',
        f'<rect x="{left}" y="{upper}" width="{plot_w}" height="{plot_h}" fill="#fafafa" stroke="#ccc"/>',
    ]
    for i in range(5):
        value = top * i / 4
        parts.append(
            f'<line x1="{left}" x2="{left + plot_w}" y1="{y(value):.1f}" y2="{y(value):.1f}" stroke="#e5e5e5"/>'
            f'<text x="{left - 6}" y="{y(value) + 4:.1f}" text-anchor="end">{value:g}</text>'
        )
        at = span * i / 4
        parts.append(
            f'<text x="{x(start + at):.1f}" y="{upper + plot_h + 16}" text-anchor="middle">'
            f"{escape(duration(at))}</text>"
        )
    parts.append(
        f'<text x="{left + plot_w / 2:.0f}" y="{height - 4}" text-anchor="middle">time since the first sample</text>'
    )
    for index, (node, points) in enumerate(sorted(series.items())):
        color = PALETTE[index % len(PALETTE)]
        coords = " ".join(f"{x(t):.1f},{y(p):.1f}" for t, p in thin(sorted(points), MAX_POINTS_PER_NODE))
        parts.append(
            f'<polyline class="node" data-node="{escape(node)}" fill="none" stroke="{color}" stroke-width="2"'
            f' points="{coords}"><title>{escape(node)}</title></polyline>'
        )
        row = height + 18 * index + 10
        parts.append(
            f'<rect x="{left}" y="{row - 8}" width="12" height="4" fill="{color}"/>'
            f'<text x="{left + 18}" y="{row}">{escape(node)} ({max(p for _, p in points)} pages)</text>'
        )
    coords = " ".join(f"{x(t):.1f},{y(p):.1f}" for t, p in thin(total, MAX_POINTS_PER_NODE))
    parts.append(
        f'<polyline class="total" fill="none" stroke="{TOTAL_COLOR}" stroke-width="1.5" stroke-dasharray="6 3"'
        f' points="{coords}"><title>total</title></polyline>'
    )
    row = height + 18 * len(series) + 10
    parts.append(
        f'<rect x="{left}" y="{row - 8}" width="12" height="4" fill="{TOTAL_COLOR}"/>'
        f'<text x="{left + 18}" y="{row}">total ({total[-1][1]} pages)</text>'
    )
    parts.append("</svg>")
    return "".join(parts)


# -- the report -------------------------------------------------------------------------


class HtmlReport:
    """Writes the report to a binary file, one record at a time."""

    def __init__(
        self,
        file: IO[bytes],
        snap: dict[str, Any],
        timeline: list[dict[str, Any]],
        title: str = "Baidu Baike crawl report",
        rows_per_block: int = ROWS_PER_BLOCK,
    ):
        self.file = file
        self.rows_per_block = rows_per_block
        self.snap = snap
        self.timeline = timeline
        self.title = title
        self.count = 0

    def start_exporting(self) -> None:
        self._write(
            "<!DOCTYPE html>\n"
            f'<html lang="zh-CN"><head><meta charset="utf-8"><title>{escape(self.title)}</title>'
            '<meta name="viewport" content="width=device-width,initial-scale=1">'
            f"<style>{STYLE}</style></head>\n<body>\n"
            f"<h1>{escape(self.title)}</h1>\n"
            f'<p class="meta">Generated {escape(clock(time.time()))}'
            f" from {escape(str(self.snap.get('redis', 'Redis')))}</p>\n"
            f"{self._stats_table()}\n<h2>Nodes</h2>\n{self._nodes_table()}\n"
            f"<h2>Pages over time</h2>\n<figure>{svg_chart(self.timeline)}</figure>\n"
            f"<h2>Records</h2>\n{self._size_note()}"
            f'<table class="records">{RECORD_COLUMNS}\n'
            "<thead><tr><th>#</th><th>URL</th><th>Title</th><th>Summary</th><th>Infobox</th></tr></thead></table>\n"
        )

    def export_item(self, record: dict[str, Any]) -> None:
        if self.count % self.rows_per_block == 0:
            self._write(f'{self._end_block()}<div class="block"><table class="records">{RECORD_COLUMNS}<tbody>\n')
        self.count += 1
        self._write(self._row(self.count, record))

    def finish_exporting(self) -> None:
        self._write(f'{self._end_block()}<p class="meta" id="count">{self.count} records.</p>\n</body></html>\n')

    def _end_block(self) -> str:
        """The end of the block of rows being written (nothing before the first row)."""
        return "</tbody></table></div>\n" if self.count else ""

    def _size_note(self) -> str:
        """A word on a large report: how it is drawn, and what to use for analysis."""
        items = self.snap.get("items") or 0
        if items < LARGE_REPORT:
            return ""
        return (
            f'<p class="meta">{items} records: the table is drawn in blocks of {self.rows_per_block} rows as they'
            " scroll into view. For analysis, export JSON lines or CSV instead"
            " (<code>scrapy export -o items.jsonl</code>).</p>\n"
        )

    # -- parts ----------------------------------------------------------------------------

    def _write(self, text: str) -> None:
        self.file.write(text.encode("utf-8"))

    def _stats_table(self) -> str:
        snap, budget, cluster = self.snap, self.snap["budget"], self.snap["cluster"]
        fraction = budget["fraction"] or 0.0
        if budget["limit"]:
            used = (
                f'<span class="bar"><span style="width:{100 * fraction:.1f}%"></span></span>'
                f"{budget['pages']} / {budget['limit']} pages ({100 * fraction:.0f}%)"
            )
        else:
            used = f"{budget['pages']} pages (no budget set)"
        start = snap["started_at"] or cluster["start_time"]
        end = snap["ended_at"] or cluster["finish_time"]
        rows = [
            ("State", escape(snap["state"])),
            ("Page budget", used),
            ("Items stored", snap["items"]),
            ("Cluster counters", f"{cluster['pages']} pages, {cluster['items']} items, {cluster['errors']} errors"),
            ("Frontier", f"{snap['frontier']} queued, {snap['leased']} leased, {snap['seeds']} seeds waiting"),
            ("Fingerprints seen", "-" if snap["fingerprints"] is None else snap["fingerprints"]),
            ("Dead letters", snap["dead_letters"]),
            ("Started", escape(clock(start))),
            ("Ended", escape(clock(end)) if end else "-"),
            ("Duration", escape(duration((end or snap["time"]) - start)) if start else "-"),
            ("Rate now", f"{cluster_rate(snap):.1f} pages/s"),
            *(("Shared rate", escape(describe_rate(rate))) for rate in snap.get("rates", [])),
            *(
                (("Revisits", escape(describe_freshness(snap["freshness"]))),)
                if (snap.get("freshness") or {}).get("scheduled")
                else ()
            ),
        ]
        body = "".join(f"<tr><th>{name}</th><td>{value}</td></tr>" for name, value in rows)
        return f'<table class="stats">{body}</table>'

    def _nodes_table(self) -> str:
        nodes = self.snap["nodes"]
        if not nodes:
            return '<p class="small">No node has reported.</p>'
        head = "".join(
            f"<th>{name}</th>"
            for name in ("Node", "Host", "PID", "Pages", "Items", "Errors", "Pages/s", "Started", "Last seen", "Status")
        )
        rows = []
        for node in nodes:
            status = node["status"]
            if status == GONE and node["reason"]:
                status_text = f"stopped ({node['reason']})"
            else:
                status_text = status
            css = {ALIVE: "alive", LOST: "lost"}.get(status, "")
            rows.append(
                "<tr>"
                f"<td>{escape(node['node'])}</td><td>{escape(node['host'])}</td>"
                f'<td class="num">{escape(str(node["pid"] or "-"))}</td>'
                f'<td class="num">{node["pages"]}</td><td class="num">{node["items"]}</td>'
                f'<td class="num">{node["errors"]}</td><td class="num">{node["pages_per_sec"]:.1f}</td>'
                f"<td>{escape(clock(node['started']))}</td><td>{escape(clock(node['finished'] or node['seen']))}</td>"
                f'<td class="{css}">{escape(status_text)}</td>'
                "</tr>"
            )
        return f'<table class="nodes"><thead><tr>{head}</tr></thead><tbody>{"".join(rows)}</tbody></table>'

    @staticmethod
    def _row(number: int, record: dict[str, Any]) -> str:
        url = str(record.get("url") or "")
        # only web links become links: a stored value is data, never a javascript: URL; the
        # link keeps the URL as stored (percent-encoded), its text is readable (decoded)
        if url.startswith(("https://", "http://")):
            link = f'<a href="{escape(url)}">{escape(unquote(url))}</a>'
        else:
            link = escape(url)
        extra = " · ".join(
            escape(str(record[name])) for name in ("lemma_id", "crawled_at") if record.get(name) is not None
        )
        title = escape(str(record.get("title") or ""))
        if record.get("subtitle"):
            title += f'<div class="sub">{escape(str(record["subtitle"]))}</div>'
        return (
            f'<tr><td class="num">{number}</td><td>{link}<div class="small">{extra}</div></td>'
            f"<td>{title}</td><td>{escape(str(record.get('summary') or ''))}</td>"
            f"<td>{_infobox(record.get('infobox'))}</td></tr>\n"
        )


def _infobox(infobox: Any) -> str:
    if not infobox:
        return ""
    if not isinstance(infobox, dict):
        return escape(json.dumps(infobox, ensure_ascii=False))
    pairs = "".join(f"<dt>{escape(str(name))}</dt><dd>{escape(str(value))}</dd>" for name, value in infobox.items())
    return f"<dl>{pairs}</dl>"
