"""Issue 6: crawl speed and cost, plain Scrapy vs stock scrapy-redis vs baike; dedup memory.

    .venv/bin/python bench/speed.py            # 5 rounds of 4 cases, 2000 pages each, then dedup memory
    .venv/bin/python bench/speed.py --quick    # 1 round of 300 pages, dedup at 100k and 1M

Every case crawls the same replica site with the same spider and settings
(CONCURRENT_REQUESTS 16, no throttle, no robots.txt) for the same page budget;
the cases run alternately, in a rotating order, so that any drift of the machine
hits them all alike. See bench/README.md for the method and the results.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench import dedup
from bench.cases import BAIKE, PLAIN_SCRAPY, STOCK_SCRAPY_REDIS, common_settings
from bench.chart import Bar, bar_chart_png, bar_chart_svg
from bench.harness import RESULTS, Lab, aggregate, crawl, logger, setup_logging, table, write_results

# name -> (nodes, settings per node)
CASES: dict[str, tuple[int, list[str]]] = {
    "scrapy": (1, PLAIN_SCRAPY),
    "scrapy-redis": (1, STOCK_SCRAPY_REDIS),
    "baike-1": (1, BAIKE),
    "baike-2": (2, BAIKE),
    # plain Scrapy with today's spider and components (the bar of issue 18 is "scrapy")
    "scrapy-now": (1, PLAIN_SCRAPY),
}
# Issue 18 measures against plain Scrapy running the spider as it was before the issue:
# the "scrapy" case runs its node in the project as of this commit (git archive), the
# last one before the node's per-page work was cut (BASELINE_COMMIT, --baseline).
BASELINE_COMMIT = "d79109f"
BASELINE_CASES = frozenset({"scrapy"})


def run_rounds(lab: Lab, args: argparse.Namespace) -> list[dict[str, Any]]:
    names = list(args.cases)
    runs: list[dict[str, Any]] = []
    for round_index in range(args.rounds):
        shift = round_index % len(names)
        for name in names[shift:] + names[:shift]:
            count, settings = CASES[name]
            per_node = [[*common_settings(args.budget, args.concurrency), *settings] for _ in range(count)]
            root = lab.export_tree(args.baseline) if name in BASELINE_CASES and args.baseline else None
            run = crawl(lab, name, per_node, budget=args.budget, timeout=args.timeout, root=root)
            summary = {"round": round_index, **run.summary()}
            runs.append(summary)
            if set(summary["finish_reasons"]) != {"closespider_pagecount"}:
                logger.warning("%s did not stop on its page budget: %s", name, summary["finish_reasons"])
            logger.info(
                "round %d %-12s %6.1f pages/s  node %.2f ms/page  redis %.3f ms/page  %s",
                round_index,
                name,
                summary["pages_per_s"],
                summary["node_cpu_ms_per_page"],
                summary["redis_cpu_ms_per_page"],
                summary["finish_reasons"],
            )
    return runs


def speed_table(summary: dict[str, dict[str, Any]]) -> str:
    rows = []
    for name, case in summary.items():
        rows.append(
            [
                name,
                int(case["nodes"]["median"]),
                case["pages_per_s"]["min"],
                case["pages_per_s"]["median"],
                _ratio(case, "ratio_to_scrapy"),
                _ratio(case, "ratio_to_baike-1"),
                case["node_cpu_ms_per_page"]["median"],
                case["redis_cpu_ms_per_page"]["median"],
                case["server_commands_per_page"]["median"],
                case["client_commands_per_page"]["median"],
                case["network_round_trips_per_page"]["median"],
                case["peak_rss_mb"]["median"],
                " / ".join(f"{case[key]['median']:.2f}" for key in SHARES),
                f"{case['overshoot']['min']}..{case['overshoot']['max']}",
            ]
        )
    return table(
        [
            "case",
            "nodes",
            "pages/s min",
            "pages/s median",
            "x scrapy (min / med)",
            "x baike-1 (min / med)",
            "node CPU ms/page",
            "Redis CPU ms/page",
            "Redis cmds/page (server)",
            "round trips/page (client cmds)",
            "network writes/page",
            "peak RSS MB (per node)",
            "cores busy: nodes / Redis / replica / bench / other",
            "pages over budget",
        ],
        rows,
    )


SHARES = ("node_cpu_share", "redis_cpu_share", "replica_cpu_share", "bench_cpu_share", "other_cpu_share")


def _ratio(case: dict[str, Any], key: str) -> str:
    ratio = case.get(key)
    return f"{ratio['min']:.2f} / {ratio['median']:.2f}" if ratio else "-"


def draw(summary: dict[str, dict[str, Any]], args: argparse.Namespace, stamp_name: str) -> list[Path]:
    bars = [
        Bar(name, case["pages_per_s"]["median"], case["pages_per_s"]["min"], case["pages_per_s"]["max"])
        for name, case in summary.items()
    ]
    title = f"Pages/s, {args.budget}-page crawl, median of {args.rounds} (min-max)"
    note = f"{args.concurrency} concurrent requests per node, replica of {args.entries} entries"
    png, svg = RESULTS / f"{stamp_name}.png", RESULTS / f"{stamp_name}.svg"
    bar_chart_png(png, title, bars, note)
    bar_chart_svg(svg, title, bars, note)
    return [png, svg]


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="1 round of 300 pages; dedup at 100k and 1M URLs")
    parser.add_argument("--rounds", type=int, default=5, help="repetitions of every case (default 5)")
    parser.add_argument("--budget", type=int, default=2000, help="pages per crawl (default 2000)")
    parser.add_argument("--concurrency", type=int, default=16, help="CONCURRENT_REQUESTS (default 16)")
    parser.add_argument("--entries", type=int, default=100_000, help="entries of the replica site (default 100000)")
    parser.add_argument(
        "--cases", nargs="+", choices=list(CASES), default=[name for name in CASES if name != "scrapy-now"]
    )
    parser.add_argument(
        "--baseline",
        default=BASELINE_COMMIT,
        help=f"commit whose project the 'scrapy' case runs (default {BASELINE_COMMIT}; '' runs today's)",
    )
    parser.add_argument("--timeout", type=float, default=300.0, help="longest crawl before its nodes are stopped")
    parser.add_argument("--no-crawl", action="store_true", help="only the dedup memory part")
    parser.add_argument("--no-dedup", action="store_true", help="only the crawl part")
    parser.add_argument("--dedup-sizes", type=int, nargs="+", default=None, help="URL counts (default 1M 10M)")
    parser.add_argument("--keep", action="store_true", help="keep the node logs")
    args = parser.parse_args(argv)
    if args.quick:
        args.rounds, args.budget = 1, 300
        args.dedup_sizes = args.dedup_sizes or [100_000, 1_000_000]
    args.dedup_sizes = args.dedup_sizes or [1_000_000, 10_000_000]
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    setup_logging()
    payload: dict[str, Any] = {"args": vars(args)}
    if not args.no_crawl:
        with Lab("speed", keep=args.keep) as lab:
            lab.start_redis()
            # no page cache: every run renders every page, so rounds are alike
            lab.start_replica(args.entries, 1, "--cache-mb", "0")
            runs = run_rounds(lab, args)
        summary = aggregate(runs, list(args.cases), references=("scrapy", "baike-1"))
        payload.update(runs=runs, summary=summary)
        print(f"\nCrawl speed: {args.budget} pages, {args.rounds} rounds (min / median)\n")
        print(speed_table(summary))
    if not args.no_dedup:
        with Lab("dedup", keep=args.keep) as lab:
            memory = dedup.run(lab, args.dedup_sizes)
        payload["dedup"] = memory
        print(f"\nDedup memory (Redis {memory['server']['hash-max-listpack-entries']} listpack entries)\n")
        print(dedup.memory_table(memory))
    path = write_results("speed", payload)
    if "summary" in payload:
        for chart in draw(payload["summary"], args, path.stem):
            print(f"chart: {chart.relative_to(RESULTS.parent.parent)}")
    print(f"results: {path.relative_to(RESULTS.parent.parent)}")
    failed = [
        run for run in payload.get("runs", []) if run["timed_out"] or any(code != 0 for code in run["exit_codes"])
    ]
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
