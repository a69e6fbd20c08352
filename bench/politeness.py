"""Issue 13: one shared crawl rate for the fleet, and what it costs Redis.

    .venv/bin/python bench/politeness.py                      # 1, 2, 4 nodes at 20/s; limiter off vs on
    .venv/bin/python bench/politeness.py --nodes 1 2 --rate 10

Two tables:

* **Configured vs measured rate.** 1, 2 and 4 nodes crawl the replica (100 ms of
  latency, so one node alone could go far faster) with ``BAIKE_CLUSTER_RATE``; the
  replica counts the entry requests it receives per second on its own clock, and
  the aggregate rate is taken over the seconds after the first one.
* **What the limiter costs.** One node crawls 2000 pages with no cluster rate and
  with one far above what it reaches (so the bucket is drawn on at every take but
  never binds): Redis CPU and client round trips per page side by side.
"""

from __future__ import annotations

import argparse
import statistics
import sys
from pathlib import Path
from typing import Any

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.cases import BAIKE, common_settings
from bench.harness import Lab, crawl, logger, setup_logging, table, write_results

NODE_COUNTS = (1, 2, 4)
# A rate no node reaches here: the limiter is drawn on at every take, and never binds.
UNBINDING_RATE = 100_000.0


def aggregate_rate(per_second: dict[str, dict[str, int]], skip: int = 1) -> tuple[float, int]:
    """Entry requests per second over all clients, and the seconds measured: every whole
    second of the replica's clock after the first ``skip`` ones, up to the last full one."""
    counts: dict[int, int] = {}
    for seconds in per_second.values():
        for second, count in seconds.items():
            counts[int(second)] = counts.get(int(second), 0) + count
    if not counts:
        return 0.0, 0
    window = range(min(counts) + skip, max(counts))
    if not window:
        return 0.0, 0
    return sum(counts.get(second, 0) for second in window) / len(window), len(window)


def rate_rows(lab: Lab, args: argparse.Namespace) -> list[dict[str, Any]]:
    rows = []
    budget = int(args.rate * args.seconds)
    for count in args.nodes:
        settings = [[*common_settings(budget), *BAIKE, f"BAIKE_CLUSTER_RATE={args.rate:g}"] for _ in range(count)]
        run = crawl(lab, f"rate-{count}", settings, budget=budget, timeout=args.seconds * 4 + 60)
        measured, seconds = aggregate_rate(run.final_stats.get("per_second", {}))
        rows.append(
            {
                "nodes": count,
                "configured": args.rate,
                "measured": round(measured, 2),
                "seconds": seconds,
                "pushbacks": run.final_stats.get("captchas", 0) + run.final_stats.get("too_many_requests", 0),
                "round_trips": run.summary()["client_commands_per_page"],
            }
        )
        logger.info(
            "%d nodes at %g/s: the replica measured %.2f requests/s over %d s", count, args.rate, measured, seconds
        )
    return rows


def cost_rows(lab: Lab, args: argparse.Namespace) -> list[dict[str, Any]]:
    runs: dict[str, list[dict[str, Any]]] = {"off": [], "on": []}
    for round_index in range(args.rounds):
        for case, rate in (("off", 0.0), ("on", UNBINDING_RATE)):
            settings = [[*common_settings(args.budget), *BAIKE, f"BAIKE_CLUSTER_RATE={rate:g}"]]
            run = crawl(lab, f"limiter-{case}", settings, budget=args.budget).summary()
            runs[case].append(run)
            logger.info(
                "round %d, limiter %s: %.1f pages/s, Redis %.3f ms/page, %.3f round trips/page",
                round_index,
                case,
                run["pages_per_s"],
                run["redis_cpu_ms_per_page"],
                run["client_commands_per_page"],
            )
    return [
        {
            "limiter": case,
            "pages_per_s": statistics.median(run["pages_per_s"] for run in case_runs),
            "redis_cpu_ms_per_page": statistics.median(run["redis_cpu_ms_per_page"] for run in case_runs),
            "client_commands_per_page": statistics.median(run["client_commands_per_page"] for run in case_runs),
        }
        for case, case_runs in runs.items()
    ]


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--nodes", type=int, nargs="+", default=list(NODE_COUNTS), help="cluster sizes")
    parser.add_argument("--rate", type=float, default=20.0, help="BAIKE_CLUSTER_RATE of the rate table")
    parser.add_argument("--seconds", type=float, default=15.0, help="length of each rate crawl at that rate")
    parser.add_argument("--budget", type=int, default=2000, help="pages of each cost crawl (default 2000)")
    parser.add_argument("--rounds", type=int, default=2, help="rounds of the cost table (default 2)")
    parser.add_argument("--entries", type=int, default=100_000, help="entries of the replica site")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    setup_logging()
    with Lab("politeness") as lab:
        lab.start_redis()
        lab.start_replica(args.entries, 1, "--latency-ms", "100")
        rates = rate_rows(lab, args)
        lab.replica.stop()
        lab.start_replica(args.entries, 1)
        costs = cost_rows(lab, args)
    print(f"\nConfigured vs measured aggregate rate (replica with 100 ms latency, {args.seconds:g} s crawls)\n")
    print(
        table(
            [
                "nodes",
                "BAIKE_CLUSTER_RATE",
                "measured requests/s",
                "x configured",
                "seconds measured",
                "pushbacks",
                "client round trips/page",
            ],
            [
                [
                    row["nodes"],
                    row["configured"],
                    row["measured"],
                    round(row["measured"] / row["configured"], 3),
                    row["seconds"],
                    row["pushbacks"],
                    row["round_trips"],
                ]
                for row in rates
            ],
        )
    )
    print(f"\nWhat the limiter costs: 1 node, {args.budget} pages, medians of {args.rounds} rounds\n")
    print(
        table(
            ["limiter", "pages/s", "Redis CPU ms/page", "client round trips/page"],
            [
                [row["limiter"], row["pages_per_s"], row["redis_cpu_ms_per_page"], row["client_commands_per_page"]]
                for row in costs
            ],
        )
    )
    path = write_results("politeness", {"args": vars(args), "rates": rates, "costs": costs})
    print(f"results: {path.relative_to(Path(__file__).resolve().parents[1])}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
