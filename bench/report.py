"""The HTML report at 1,000 to 100,000 records: its size, how long it takes to write, and how
long a browser takes to show it, in blocks (as written) vs one table (as before).

    .venv/bin/python bench/report.py                       # 1k, 10k and 100k records, 3 rounds
    .venv/bin/python bench/report.py --sizes 1000 --rounds 1

Records are the replica's answer key (a 3,000-entry site: real field sizes, Chinese text,
infoboxes) repeated under new URLs up to the size wanted. *write* is this process's CPU time
for ``HtmlReport`` to stream them to a file. *render* is the wall time of headless Chromium
(Debian's ``chromium``; the column is empty without it) loading the file and taking a
screenshot of the first screen, less the same for an empty page, median of the rounds; the
two layouts take turns. *one table* is the report with every row in one block, which the
browser must lay out whole before it shows anything (the report before blocks).
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from baike.report import ROWS_PER_BLOCK, HtmlReport
from bench.harness import logger, setup_logging, table, write_results
from replica.site import Site

LAYOUTS = {"blocks": ROWS_PER_BLOCK, "one table": 10**12}
CHROMIUM_FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--window-size=1280,900",
)


def sample_records(entries: int = 3000) -> list[dict[str, Any]]:
    site = Site(entries=entries, seed=1)
    return [
        {"url": url, **fields, "crawled_at": "2026-12-02T10:00:00+00:00"}
        for url, fields in site.answer_key(site.start_url()).items()
    ]


def records(sample: list[dict[str, Any]], count: int) -> Iterator[dict[str, Any]]:
    """``count`` records, the sample's repeated under new URLs."""
    for number in range(count):
        record = sample[number % len(sample)]
        yield {**record, "url": f"{record['url']}?copy={number // len(sample)}"} if number >= len(sample) else record


def snapshot(count: int) -> dict[str, Any]:
    return {
        "time": time.time(),
        "state": "finished",
        "reason": "finished",
        "started_at": None,
        "ended_at": None,
        "budget": {"limit": count, "pages": count, "reserved": count, "in_flight": 0, "fraction": 1.0},
        "frontier": 0,
        "seeds": 0,
        "leased": 0,
        "fingerprints": count,
        "dead_letters": 0,
        "items": count,
        "cluster": {"pages": count, "items": count, "errors": 0, "start_time": None, "finish_time": None},
        "nodes": [],
        "nodes_alive": 0,
        "nodes_lost": 0,
    }


def write_report(path: Path, sample: list[dict[str, Any]], count: int, rows_per_block: int) -> float:
    """Write the report; this process's CPU seconds it took."""
    started = time.process_time()
    with path.open("wb") as file:
        report = HtmlReport(file, snapshot(count), timeline=[], rows_per_block=rows_per_block)
        report.start_exporting()
        for record in records(sample, count):
            report.export_item(record)
        report.finish_exporting()
    return time.process_time() - started


def render_seconds(chromium: str, path: Path, profile: Path) -> float:
    """Wall seconds for headless Chromium to load ``path`` and screenshot its first screen."""
    started = time.monotonic()
    subprocess.run(
        [
            chromium,
            *CHROMIUM_FLAGS,
            f"--user-data-dir={profile}",
            f"--screenshot={profile / 'shot.png'}",
            path.as_uri(),
        ],
        check=True,
        capture_output=True,
        timeout=600,
    )
    return time.monotonic() - started


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[1000, 10_000, 100_000])
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    setup_logging()
    chromium = shutil.which("chromium")
    if chromium is None:
        logger.info("chromium is not installed (apt-get install chromium): no render times")
    sample = sample_records()
    logger.info("%d sample records", len(sample))
    rows = []
    with tempfile.TemporaryDirectory() as scratch:
        work = Path(scratch)
        empty = work / "empty.html"
        empty.write_text("<!DOCTYPE html><html><body></body></html>")
        for count in args.sizes:
            paths, written = {}, {}
            for name, rows_per_block in LAYOUTS.items():
                paths[name] = work / f"report-{count}-{rows_per_block}.html"
                written[name] = write_report(paths[name], sample, count, rows_per_block)
            times: dict[str, list[float]] = {name: [] for name in LAYOUTS}
            for round_index in range(args.rounds if chromium else 0):
                order = list(LAYOUTS) if round_index % 2 == 0 else list(reversed(LAYOUTS))
                for name in order:
                    base = render_seconds(chromium, empty, work / "profile-empty")
                    times[name].append(render_seconds(chromium, paths[name], work / f"profile-{name}") - base)
            for name in LAYOUTS:
                render = statistics.median(times[name]) if times[name] else None
                logger.info("%d records, %s: %.1f MB, render %s", count, name, paths[name].stat().st_size / 1e6, render)
                rows.append(
                    [
                        count,
                        name,
                        round(paths[name].stat().st_size / 1e6, 1),
                        round(paths[name].stat().st_size / count),
                        round(written[name], 2),
                        "-" if render is None else round(render, 2),
                    ]
                )
    headers = ["records", "layout", "MB", "bytes/record", "write s (CPU)", "render s (Chromium, first screen)"]
    print(table(headers, rows))
    write_results("report", {"headers": headers, "rows": rows, "rounds": args.rounds})
    return 0


if __name__ == "__main__":
    sys.exit(main())
