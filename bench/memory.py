"""Issue 18: a node's memory over a long crawl (RSS at page milestones, up to 100,000 pages).

    .venv/bin/python bench/memory.py                         # 1 baike node, 100,000 pages
    .venv/bin/python bench/memory.py --pages 20000 50000     # a shorter curve

One node (``--case``, one of bench/speed.py's) crawls a replica big enough for the last milestone (``--entries``, by
default 1.5 x the pages: a crawl reaches about 99% of a site's entries and the
rest are lists, redirects and errors); its resident set (``VmRSS``) and high-water
mark (``VmHWM``) are read from /proc each time the replica has answered another
milestone's worth of pages. Settings as bench/speed.py's baike case (16 concurrent
requests, no throttle). A milestone not reached before ``--timeout`` is reported as
such, never extrapolated.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import Any

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.cases import common_settings
from bench.harness import CrawlRun, Lab, answered, crawl, logger, setup_logging, table, write_results
from bench.speed import BASELINE_CASES, BASELINE_COMMIT, CASES

MB = 1024 * 1024


def memory_of(pid: int) -> dict[str, float]:
    """VmRSS and VmHWM of ``pid`` in MB (empty once it is gone)."""
    found: dict[str, float] = {}
    try:
        with open(f"/proc/{pid}/status", encoding="ascii") as status:
            for line in status:
                name, _, value = line.partition(":")
                if name in ("VmRSS", "VmHWM"):
                    found[name] = int(value.split()[0]) * 1024 / MB
    except (FileNotFoundError, ProcessLookupError, ValueError):
        return {}
    return found


def run(
    lab: Lab, milestones: list[int], timeout: float, case: str = "baike-1", baseline: str = ""
) -> list[dict[str, Any]]:
    # past the last milestone: a node whose budget is the milestone itself has exited by the
    # time the poll sees the replica's count reach it, and /proc has nothing left to read
    budget = milestones[-1] + max(500, milestones[-1] // 50)
    points: list[dict[str, Any]] = []
    pending = list(milestones)
    started = time.monotonic()

    def on_poll(run: CrawlRun, stats: dict[str, Any]) -> None:
        pages = answered(stats)
        while pending and pages >= pending[0]:
            # the largest node (one node, or the larger of two)
            memories = [(memory_of(node.pid), node) for node in run.nodes]
            memory, _ = max(memories, key=lambda pair: pair[0].get("VmRSS", 0.0))
            point = {
                "milestone": pending.pop(0),
                "pages": pages,
                "seconds": round(time.monotonic() - started, 1),
                "rss_mb": round(memory.get("VmRSS", 0.0), 1),
                "hwm_mb": round(memory.get("VmHWM", 0.0), 1),
                "cpu_s": round(sum(node.cpu_seconds() for _, node in memories), 1),
            }
            points.append(point)
            logger.info("%(pages)d pages after %(seconds).0f s: RSS %(rss_mb).1f MB (peak %(hwm_mb).1f MB)", point)

    count, case_settings = CASES[case]
    settings = [[*common_settings(budget, 16), *case_settings] for _ in range(count)]
    root = lab.export_tree(baseline) if case in BASELINE_CASES and baseline else None
    crawled = crawl(lab, case, settings, budget=budget, timeout=timeout, on_poll=on_poll, root=root)
    for milestone in pending:
        points.append({"milestone": milestone, "pages": None, "reached": False})
        logger.warning("%d pages not reached within %.0f s", milestone, timeout)
    points.append({"summary": crawled.summary()})
    return points


def memory_table(points: list[dict[str, Any]]) -> str:
    rows = []
    for point in points:
        if "milestone" not in point:
            continue
        if point.get("pages") is None:
            rows.append([f"{point['milestone']:,}", "not reached", "-", "-", "-", "-"])
            continue
        rows.append(
            [
                f"{point['milestone']:,}",
                f"{point['pages']:,}",
                point["seconds"],
                point["rss_mb"],
                point["hwm_mb"],
                round(1000 * point["cpu_s"] / point["pages"], 2),
            ]
        )
    return table(
        [
            "milestone (pages)",
            "pages answered",
            "s since seed",
            "node RSS MB",
            "node peak RSS MB",
            "nodes' CPU ms/page (whole run so far)",
        ],
        rows,
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument(
        "--pages",
        type=int,
        nargs="+",
        default=[10_000, 20_000, 50_000, 100_000],
        help="milestones; the crawl's budget is the last (default 10k 20k 50k 100k)",
    )
    parser.add_argument("--entries", type=int, default=0, help="replica entries (default 1.5 x the last milestone)")
    parser.add_argument("--timeout", type=float, default=3600.0, help="longest crawl (s)")
    parser.add_argument(
        "--case", choices=list(CASES), default="baike-1", help="bench/speed.py's cases (default baike-1)"
    )
    parser.add_argument("--baseline", default=BASELINE_COMMIT, help="commit whose project the 'scrapy' case runs")
    parser.add_argument("--keep", action="store_true", help="keep the node logs")
    args = parser.parse_args(argv)
    milestones = sorted(set(args.pages))
    entries = args.entries or int(1.5 * milestones[-1])
    setup_logging()
    with Lab("memory", keep=args.keep) as lab:
        lab.start_redis()
        lab.start_replica(entries, 1, "--cache-mb", "0")
        points = run(lab, milestones, args.timeout, args.case, args.baseline)
    print(f"\nNode memory, {args.case} (the larger node's RSS), replica of {entries:,} entries\n")
    print(memory_table(points))
    path = write_results(f"memory-{args.case}", {"args": vars(args), "entries": entries, "points": points})
    print(f"results: {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
