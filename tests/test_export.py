"""`scrapy export`: every format parsed back, the HTML report, bad input, --delete, memory."""

from __future__ import annotations

import csv
import io
import json
import os
import subprocess
import sys
import tracemalloc
import xml.etree.ElementTree as ET
from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import unquote

import pytest

from baike.commands.export import ExportLog, delete_exported, export_records
from baike.keys import CrawlKeys
from baike.pipelines import RECORD_FIELDS
from baike.report import LARGE_REPORT, ROWS_PER_BLOCK, HtmlReport, nice_ceiling, svg_chart, thin, total_series
from tests.conftest import ROOT, free_port

KEYS = CrawlKeys.for_spider("baike")
SCRIPT_TITLE = "<script>alert('x')</script> & \"friends\""


def scrapy(redis_url: str, *args: str, timeout: float = 120) -> subprocess.CompletedProcess:
    env = {key: value for key, value in os.environ.items() if key != "REDIS_URL"}
    return subprocess.run(
        [sys.executable, "-m", "scrapy", *args, "-s", f"REDIS_URL={redis_url}"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def make_record(n: int) -> dict:
    return {
        "url": f"https://baike.baidu.com/item/%E8%AF%8D%E6%9D%A1{n}/{1000 + n}",
        "title": f"词条{n}",
        "subtitle": None if n % 2 else f"副标题 {n}",
        "summary": f"第{n}个词条，含“引号”, commas, and\na newline.",
        "infobox": {"中文名": f"词条{n}", 'quote"d, key': 'a,b\n"c"', "年份": str(1900 + n)},
        "lemma_id": 1000 + n,
        "old_lemma_id": None if n % 3 else 500 + n,
        "sub_lemma_id": None if n % 3 else 700 + n,
        "crawled_at": "2025-01-02T03:04:05+00:00",
    }


@pytest.fixture()
def records(redis_db) -> dict[str, dict]:
    """40 stored records, one of them with a hostile title and URL, plus one unreadable value."""
    stored = {record["url"]: record for record in (make_record(n) for n in range(40))}
    hostile = make_record(99)
    hostile.update(title=SCRIPT_TITLE, summary="<img src=x onerror=alert(1)>", infobox={"<b>": "</td></tr>"})
    stored[hostile["url"]] = hostile
    redis_db.hset(KEYS.items, mapping={url: json.dumps(record, ensure_ascii=False) for url, record in stored.items()})
    redis_db.hset(KEYS.items, "https://baike.baidu.com/item/broken/1", b"{not json")
    redis_db.hset(KEYS.state, mapping={"budget": 50, "reason": "closespider_pagecount", "ended_at": 1_700_000_005})
    redis_db.set(KEYS.started, 1_700_000_000)
    redis_db.hset(KEYS.budget, mapping={"pages": 45, "reserved": 45})
    for node, pages in (("a:1:0001", (0, 10, 25)), ("b:2:0002", (0, 8, 20))):
        for step, count in enumerate(pages):
            redis_db.rpush(KEYS.timeline, json.dumps({"node": node, "t": 1_700_000_000 + 2 * step, "pages": count}))
        redis_db.hset(
            KEYS.nodes,
            node,
            json.dumps(
                {
                    "node": node,
                    "host": node[0],
                    "pid": int(node[2]),
                    "started": 1_700_000_000,
                    "seen": 1_700_000_004,
                    "pages": pages[-1],
                    "items": pages[-1],
                    "errors": 0,
                    "pages_per_min": 600.0,
                    "finished": 1_700_000_004,
                    "reason": "closespider_pagecount",
                }
            ),
        )
    return stored


class ReportParser(HTMLParser):
    """Collects the report's record rows (cell texts and links) and every element seen."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.tags: list[str] = []
        self.rows: list[list[str]] = []
        self.row_links: list[str | None] = []
        self.links: list[str] = []
        self.polylines: list[dict] = []
        self.totals: list[dict] = []
        self._table: str | None = None
        self._cell: list[str] | None = None

    def handle_starttag(self, tag: str, attrs: list) -> None:
        self.tags.append(tag)
        attributes = dict(attrs)
        if tag == "table":
            self._table = attributes.get("class")
        elif tag == "tr" and self._table == "records":
            self.rows.append([])
            self.row_links.append(None)
        elif tag == "td" and self._table == "records":
            self._cell = []
        elif tag == "a" and self._table == "records":
            self.links.append(attributes["href"])
            self.row_links[-1] = attributes["href"]
        elif tag == "polyline" and attributes.get("class") == "node":
            self.polylines.append(attributes)
        elif tag == "polyline":
            self.totals.append(attributes)

    def handle_endtag(self, tag: str) -> None:
        if tag == "td" and self._cell is not None and self.rows:
            self.rows[-1].append("".join(self._cell))
            self._cell = None
        elif tag == "table":
            self._table = None

    def handle_data(self, data: str) -> None:
        if self._cell is not None:
            self._cell.append(data)


def parse_report(path: Path) -> ReportParser:
    parser = ReportParser()
    parser.feed(path.read_text(encoding="utf-8"))
    parser.close()
    return parser


# -- every format, through the real command ----------------------------------------------


@pytest.mark.parametrize("name", ["out.jsonl", "out.json", "out.csv"])
def test_export_formats_parse_back(records, redis_server, tmp_path: Path, name: str) -> None:
    path = tmp_path / name
    result = scrapy(redis_server.url, "export", "-o", str(path))
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith(f"Exported {len(records)} records from baike:items to {path}")
    assert "skipped 1 unreadable records" in result.stdout
    text = path.read_text(encoding="utf-8")
    if name.endswith(".jsonl"):
        exported = [json.loads(line) for line in text.splitlines()]
    elif name.endswith(".json"):
        exported = json.loads(text)
    else:
        exported = list(csv.DictReader(io.StringIO(text, newline="")))
        assert list(exported[0]) == list(RECORD_FIELDS)
        for row in exported:
            row["infobox"] = json.loads(row["infobox"])
            row["lemma_id"] = int(row["lemma_id"])
            for name in ("old_lemma_id", "sub_lemma_id"):
                row[name] = int(row[name]) if row[name] else None
            row["subtitle"] = row["subtitle"] or None
    assert {row["url"]: row for row in exported} == records
    assert all(list(row) == list(RECORD_FIELDS) for row in exported)


def test_html_report_escapes_and_charts(records, redis_server, tmp_path: Path) -> None:
    path = tmp_path / "report.html"
    result = scrapy(redis_server.url, "export", "-o", str(path))
    assert result.returncode == 0, result.stderr
    report = parse_report(path)
    assert "script" not in report.tags and "img" not in report.tags and "b" not in report.tags
    _header, *rows = report.rows
    assert len(rows) == len(records)
    by_url = dict(zip(report.row_links[1:], rows, strict=True))
    for url, record in records.items():
        _number, link, title, summary, infobox = by_url[url]
        assert link.startswith(unquote(url)), "the URL shown is readable; the link keeps it as stored"
        assert title == record["title"] + (record["subtitle"] or "")
        assert summary == record["summary"]
        assert all(name in infobox and value in infobox for name, value in record["infobox"].items())
    hostile = next(row for row in rows if row[2].startswith("<script>"))
    assert hostile[2] == SCRIPT_TITLE
    assert "<b>" in hostile[4] and "</td></tr>" in hostile[4]
    assert all(link.startswith("https://baike.baidu.com/item/") for link in report.links)
    assert {line["data-node"] for line in report.polylines} == {"a:1:0001", "b:2:0002"}
    assert len(report.totals) == 1
    html = path.read_text(encoding="utf-8")
    svg = html[html.index("<svg") : html.index("</svg>") + len("</svg>")]
    ET.fromstring(svg)  # well-formed SVG
    assert "stopped at budget" in html and "45 / 50 pages" in html
    assert f'id="count">{len(records)} records.' in html


def test_report_never_links_a_non_web_url(tmp_path: Path) -> None:
    out = io.BytesIO()
    report = HtmlReport(out, snap=_empty_snapshot(), timeline=[])
    report.start_exporting()
    report.export_item({"url": "javascript:alert(1)", "title": "t", "summary": None, "infobox": None})
    report.finish_exporting()
    parser = ReportParser()
    parser.feed(out.getvalue().decode())
    assert parser.links == [] and parser.rows[-1][1].startswith("javascript:alert(1)")


def test_the_records_go_in_blocks_and_a_large_report_says_so() -> None:
    count = 2 * ROWS_PER_BLOCK + 3
    out = io.BytesIO()
    report = HtmlReport(out, snap={**_empty_snapshot(), "items": LARGE_REPORT}, timeline=[])
    report.start_exporting()
    for number in range(count):
        report.export_item({"url": f"https://baike.baidu.com/item/%E8%AF%8D{number}/{number}", "title": "t"})
    report.finish_exporting()
    html = out.getvalue().decode()
    parser = ReportParser()
    parser.feed(html)
    assert len(parser.rows) == 1 + count and parser.rows[-1][0] == str(count)
    assert html.count('<div class="block">') == 3 and html.count("</div>") >= 3
    assert f"{LARGE_REPORT} records: the table is drawn in blocks" in html
    assert parser.links[0] == "https://baike.baidu.com/item/%E8%AF%8D0/0"
    assert parser.rows[1][1].startswith("https://baike.baidu.com/item/词0/0")
    small = io.BytesIO()
    report = HtmlReport(small, snap=_empty_snapshot(), timeline=[])
    report.start_exporting()
    report.finish_exporting()
    assert "drawn in blocks" not in small.getvalue().decode() and '<div class="block">' not in small.getvalue().decode()


def test_the_total_line_adds_every_nodes_latest_count() -> None:
    series = {"a": [(0.0, 0), (2.0, 10), (4.0, 30)], "b": [(1.0, 5), (3.0, 20)]}
    assert total_series(series) == [(0.0, 0), (1.0, 5), (2.0, 15), (3.0, 30), (4.0, 50)]
    svg = svg_chart([{"node": node, "t": t, "pages": p} for node, points in series.items() for t, p in points])
    assert "total (50 pages)" in svg and svg.count('class="total"') == 1


def test_chart_helpers() -> None:
    assert [nice_ceiling(v) for v in (0, 1, 3, 7, 12, 150, 999)] == [1, 1, 5, 10, 20, 200, 1000]
    points = [(float(t), t) for t in range(1000)]
    kept = thin(points, 50)
    assert len(kept) == 50 and kept[0] == points[0] and kept[-1] == points[-1]
    assert "No samples" in svg_chart([])
    svg = svg_chart([{"node": "<n>", "t": 0.0, "pages": 0}, {"node": "<n>", "t": 5.0, "pages": 3}])
    root = ET.fromstring(svg)
    assert root.find("{http://www.w3.org/2000/svg}polyline").get("data-node") == "<n>"


# -- bad input ------------------------------------------------------------------------------


def test_an_unwritable_path_fails_before_redis_is_read(redis_server, tmp_path: Path) -> None:
    unreachable = f"redis://127.0.0.1:{free_port()}/0"
    for target in (tmp_path / "missing" / "out.csv", tmp_path):
        result = scrapy(unreachable, "export", "-o", str(target), "--format", "csv")
        assert result.returncode == 1
        assert result.stderr.startswith(f"export: cannot write {target}: ")
        assert len(result.stderr.splitlines()) == 1 and "Redis" not in result.stderr


def test_a_failed_export_keeps_the_previous_file(tmp_path: Path) -> None:
    previous = tmp_path / "out.jsonl"
    previous.write_text("previous export\n")
    result = scrapy(f"redis://127.0.0.1:{free_port()}/0", "export", "-o", str(previous))
    assert result.returncode == 1 and "export: cannot reach Redis at" in result.stderr
    assert previous.read_text() == "previous export\n"
    assert [p.name for p in tmp_path.iterdir()] == ["out.jsonl"], "no partial file is left behind"


@pytest.mark.parametrize(
    ("setup", "expected"),
    [
        ("empty", "export: no baike crawl at "),
        ("foreign", "export: baike:items is a Redis set, not the hash baike writes"),
    ],
)
def test_empty_or_foreign_redis_gives_one_line(
    redis_db, redis_server, tmp_path: Path, setup: str, expected: str
) -> None:
    if setup == "foreign":
        redis_db.sadd(KEYS.items, "x")
    result = scrapy(redis_server.url, "export", "-o", str(tmp_path / "out.json"))
    assert result.returncode == 1 and result.stderr.startswith(expected)
    assert len(result.stderr.splitlines()) == 1 and "Traceback" not in result.stderr
    assert not list(tmp_path.iterdir())


def test_unknown_extension_is_a_usage_error(redis_server, tmp_path: Path) -> None:
    result = scrapy(redis_server.url, "export", "-o", str(tmp_path / "out.txt"))
    assert result.returncode == 2 and "cannot tell the format of 'out.txt'" in result.stderr


# -- deleting ---------------------------------------------------------------------------------


def test_nothing_is_deleted_without_the_flag_and_only_items_with_it(records, redis_db, redis_server, tmp_path) -> None:
    before = {key: redis_db.type(key) for key in redis_db.keys("*")}
    assert scrapy(redis_server.url, "export", "-o", str(tmp_path / "a.jsonl")).returncode == 0
    assert {key: redis_db.type(key) for key in redis_db.keys("*")} == before
    assert redis_db.hlen(KEYS.items) == len(records) + 1

    result = scrapy(redis_server.url, "export", "-o", str(tmp_path / "b.jsonl"), "--delete")
    assert result.returncode == 0 and "deleted them from" in result.stdout
    assert len((tmp_path / "b.jsonl").read_text().splitlines()) == len(records)
    assert redis_db.hkeys(KEYS.items) == [b"https://baike.baidu.com/item/broken/1"], "the unreadable record is kept"
    assert set(redis_db.keys()) == set(before), "no other key is touched"


def store_records(client, count: int) -> dict[bytes, bytes]:
    """``count`` stored records, as the raw hash fields and values."""
    mapping = {}
    for n in range(count):
        record = make_record(n)
        mapping[record["url"].encode()] = json.dumps(record, ensure_ascii=False).encode()
    client.hset(KEYS.items, mapping=mapping)
    return mapping


def export_to_pipe(redis_url: str, *args: str) -> subprocess.Popen:
    """`scrapy export` writing into a pipe this test reads (or not: then it blocks)."""
    env = {key: value for key, value in os.environ.items() if key != "REDIS_URL"}
    return subprocess.Popen(
        [
            sys.executable,
            "-m",
            "scrapy",
            "export",
            "-o",
            "/dev/stdout",
            "--format",
            "jsonl",
            *args,
            "-s",
            f"REDIS_URL={redis_url}",
        ],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )


def test_a_delete_export_killed_midway_loses_nothing(redis_db, redis_server) -> None:
    stored = store_records(redis_db, 3000)
    export = export_to_pipe(redis_server.url, "--delete", "--batch", "100")
    try:
        assert export.stdout.readline().startswith(b"{"), "the export has begun (and blocks on the full pipe)"
    finally:
        export.kill()
        export.wait(timeout=30)
        export.stdout.close()
        export.stderr.close()
    assert redis_db.hgetall(KEYS.items) == stored, "every record is where every command reads it"
    assert not list(redis_db.scan_iter(match=f"{KEYS.items}:*"))


def test_a_delete_export_keeps_what_changed_or_arrived_meanwhile(redis_db, redis_server) -> None:
    stored = store_records(redis_db, 3000)
    export = export_to_pipe(redis_server.url, "--delete", "--batch", "100")
    first = export.stdout.readline()
    changed = json.loads(first)
    changed_value = json.dumps({**changed, "title": "changed meanwhile"}, ensure_ascii=False).encode()
    redis_db.hset(KEYS.items, changed["url"], changed_value)
    arrived = make_record(100_000)
    redis_db.hset(KEYS.items, arrived["url"], json.dumps(arrived, ensure_ascii=False))
    # read on through the same buffered reader (communicate() would skip what it holds)
    rest = export.stdout.read()
    errors = export.stderr.read()
    export.stdout.close()
    export.stderr.close()
    assert export.wait(timeout=60) == 0, errors
    *lines, message = (first + rest).decode().splitlines()
    exported = {json.loads(line)["url"] for line in lines}
    assert exported >= {url.decode() for url in stored}
    assert f"deleted {len(exported) - 1} of them from" in message, "all but the changed record"
    assert "kept 1 changed since they were read" in message
    left = redis_db.hgetall(KEYS.items)
    assert left.pop(changed["url"].encode()) == changed_value, "a record changed after it was read stays"
    assert set(left) == ({arrived["url"].encode()} - {url.encode() for url in exported}), (
        "a record stored meanwhile is either in the file or still in Redis"
    )


def test_deleting_stops_cleanly_midway(redis_db, tmp_path: Path) -> None:
    stored = store_records(redis_db, 40)

    class KilledAfterOneBatch(ExportLog):
        def batches(self, size: int):
            batches = super().batches(size)
            yield next(batches)
            raise KeyboardInterrupt

    with KilledAfterOneBatch() as log, (tmp_path / "out.jsonl").open("wb") as file:
        tally = export_records(redis_db, KEYS.items, file, "jsonl", log=log)
        assert tally.exported == 40
        with pytest.raises(KeyboardInterrupt):
            delete_exported(redis_db, KEYS.items, log, batch=10)
    assert redis_db.hlen(KEYS.items) == 30, "one batch went, the rest stays"
    assert set(redis_db.hkeys(KEYS.items)) < set(stored)


def test_export_puts_back_records_parked_by_an_older_version(records, redis_db, redis_server, tmp_path) -> None:
    parked = f"{KEYS.items}:exporting:4242"
    older = {f"https://baike.baidu.com/item/parked{n}/{n}": json.dumps(make_record(n)) for n in range(5)}
    newer_url = next(iter(records))
    redis_db.hset(parked, mapping={**older, newer_url: json.dumps({"url": newer_url, "title": "older copy"})})
    redis_db.hset(f"{KEYS.items}:exporting:4343", "https://baike.baidu.com/item/z/9", json.dumps(make_record(9)))

    result = scrapy(redis_server.url, "export", "-o", str(tmp_path / "out.jsonl"))
    assert result.returncode == 0, result.stderr
    recovered, summary = result.stdout.splitlines()
    assert recovered.startswith("Put back 6 records parked by an interrupted export")
    assert "kept 1 stored since" in recovered
    assert summary.startswith(f"Exported {len(records) + 6} records")
    assert not list(redis_db.scan_iter(match=f"{KEYS.items}:exporting:*"))
    assert json.loads(redis_db.hget(KEYS.items, newer_url))["title"] == records[newer_url]["title"]
    assert all(redis_db.hget(KEYS.items, url) == value.encode() for url, value in older.items())


# -- memory -----------------------------------------------------------------------------------


def test_export_of_100k_records_runs_in_bounded_memory(redis_db, tmp_path: Path) -> None:
    count = 100_000
    filler = "百科" * 150  # ~900 bytes of UTF-8 per record: ~90 MB in all
    with redis_db.pipeline(transaction=False) as pipe:
        for start in range(0, count, 2000):
            mapping = {}
            for n in range(start, start + 2000):
                record = make_record(n)
                record["summary"] = filler
                mapping[record["url"]] = json.dumps(record, ensure_ascii=False)
            pipe.hset(KEYS.items, mapping=mapping)
        pipe.execute()
    assert redis_db.memory_usage(KEYS.items) > 80_000_000

    # the last run also logs what it exported and then deletes it, as --delete does
    for fmt, report, delete in (("html", (_empty_snapshot(), []), False), ("jsonl", None, True)):
        path = tmp_path / f"big.{fmt}"
        tracemalloc.start()
        try:
            with path.open("wb") as file, ExportLog() as log:
                tally = export_records(redis_db, KEYS.items, file, fmt, report=report, log=log if delete else None)
                deleted = delete_exported(redis_db, KEYS.items, log) if delete else None
            _, peak = tracemalloc.get_traced_memory()
        finally:
            tracemalloc.stop()
        assert tally.exported == count and tally.skipped == 0
        assert path.stat().st_size > 80_000_000
        # loading the hash at once (HGETALL) would hold all ~90 MB of values in this process
        assert peak < 16_000_000, f"{fmt}: peak {peak / 1e6:.1f} MB"
        if delete:
            assert deleted == (count, 0) and not redis_db.exists(KEYS.items)


def _empty_snapshot() -> dict:
    return {
        "time": 1_700_000_010.0,
        "state": "finished",
        "reason": "finished",
        "started_at": None,
        "ended_at": None,
        "budget": {"limit": 0, "pages": 0, "reserved": 0, "in_flight": 0, "fraction": None},
        "frontier": 0,
        "seeds": 0,
        "leased": 0,
        "fingerprints": 0,
        "dead_letters": 0,
        "items": 0,
        "cluster": {"pages": 0, "items": 0, "errors": 0, "start_time": None, "finish_time": None},
        "nodes": [],
        "nodes_alive": 0,
        "nodes_lost": 0,
    }


# -- end to end -------------------------------------------------------------------------------


@pytest.mark.e2e
def test_report_of_a_real_two_node_crawl(redis_db, redis_server, replica_factory, node_factory, tmp_path) -> None:
    replica = replica_factory(300, 8, "--latency-ms", "30")
    redis_db.lpush(KEYS.start_urls, replica.start_url())
    settings = ("CLOSESPIDER_PAGECOUNT=100", "CLUSTERSTATS_INTERVAL=0.3")
    nodes = [node_factory(redis_server.url, replica.url, *settings) for _ in range(2)]
    for node in nodes:
        assert node.wait(timeout=60) == 0, node.log[-3000:]

    path = tmp_path / "report.html"
    result = scrapy(redis_server.url, "export", "-o", str(path))
    assert result.returncode == 0, result.stderr
    report = parse_report(path)
    assert len(report.rows) - 1 == redis_db.hlen(KEYS.items) > 0
    node_ids = {key.decode() for key in redis_db.hkeys(KEYS.nodes)}
    assert {line["data-node"] for line in report.polylines} == node_ids and len(node_ids) == 2
    html = path.read_text(encoding="utf-8")
    assert "stopped at budget" in html and "100 / 100 pages" in html
    for url, row in zip(report.row_links[1:], report.rows[1:], strict=True):
        stored = json.loads(redis_db.hget(KEYS.items, url))
        assert row[2].startswith(stored["title"]) and row[3] == (stored["summary"] or "")
