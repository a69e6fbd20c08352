"""Issue 4: page-budget overshoot and stop latency, baike's cluster budget vs per-process budgets.

    .venv/bin/python bench/budget.py            # 3 rounds, budget 2000, 1-3 nodes
    .venv/bin/python bench/budget.py --quick    # 1 round, budget 300

Cases, for 1, 2 and 3 nodes sharing one crawl:

* ``baike-N``: baike's cluster-wide ``CLOSESPIDER_PAGECOUNT`` (every node gets the
  whole budget; the nodes share it through Redis).
* ``scrapy-redis-N``: stock scrapy-redis frontier shared by the N nodes, Scrapy's
  own per-process CloseSpider with the budget split evenly (``ceil(budget / N)``
  per node): the best one can do without a shared counter.
* ``scrapy-1``: plain Scrapy (in-memory scheduler), one node, Scrapy's CloseSpider.

Overshoot is the replica's count of answers that are not redirects, minus the
budget. "Last exit after budget" runs from the moment the replica has answered
the budget's last page (polled every 50 ms) to the exit of the last node process;
"close spread" is between the first and the last node's spider close (Scrapy's
``finish_time`` stat, to the microsecond). Targets: overshoot 0, every node
stopped within 1 s.
"""

from __future__ import annotations

import argparse
import math
import sys
from pathlib import Path
from typing import Any

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.cases import BAIKE, PLAIN_SCRAPY, STOCK_SCRAPY_REDIS, common_settings
from bench.harness import Lab, aggregate, crawl, logger, rounds_args, setup_logging, table, write_results

NODE_COUNTS = (1, 2, 3)


def cases(budget: int) -> dict[str, list[list[str]]]:
    """name -> settings of each node."""
    out: dict[str, list[list[str]]] = {"scrapy-1": [[*common_settings(budget), *PLAIN_SCRAPY]]}
    for count in NODE_COUNTS:
        share = math.ceil(budget / count)
        out[f"scrapy-redis-{count}"] = [[*common_settings(share), *STOCK_SCRAPY_REDIS] for _ in range(count)]
        out[f"baike-{count}"] = [[*common_settings(budget), *BAIKE] for _ in range(count)]
    return out


def run_rounds(lab: Lab, args: argparse.Namespace) -> list[dict[str, Any]]:
    all_cases = cases(args.budget)
    names = list(all_cases)
    runs = []
    for round_index in range(args.rounds):
        shift = round_index % len(names)
        for name in names[shift:] + names[:shift]:
            run = crawl(lab, name, all_cases[name], budget=args.budget, timeout=args.timeout, poll=0.05)
            summary = {"round": round_index, **run.summary()}
            runs.append(summary)
            logger.info(
                "round %d %-15s %5d pages (%+d)  last exit %.2f s after the budget, close spread %.2f s  %s",
                round_index,
                name,
                summary["pages"],
                summary["overshoot"],
                summary["stop_after_budget_s"] or float("nan"),
                summary["finish_spread_s"] or 0.0,
                summary["finish_reasons"],
            )
    return runs


def budget_table(summary: dict[str, dict[str, Any]], budget: int) -> str:
    rows = []
    for name, case in summary.items():
        nodes = int(case["nodes"]["median"])
        per_process = budget if name.startswith(("baike", "scrapy-1")) else math.ceil(budget / nodes)
        overshoot, stop, spread = case["overshoot"], case.get("stop_after_budget_s"), case.get("finish_spread_s")
        met = overshoot["max"] == 0 and stop is not None and stop["max"] <= 1.0
        rows.append(
            [
                name,
                nodes,
                "cluster" if name.startswith("baike") else f"{per_process} per process",
                f"{overshoot['min']} / {overshoot['median']:g} / {overshoot['max']}",
                f"{case['downloaded_twice']['max']}",
                f"{spread['median']:.2f} / {spread['max']:.2f}" if spread else "-",
                f"{stop['median']:.2f} / {stop['max']:.2f}" if stop else "-",
                "yes" if met else "no",
            ]
        )
    return table(
        [
            "case",
            "nodes",
            "budget",
            "pages over budget (min / med / max)",
            "pages downloaded twice (max)",
            "close spread s (med / max)",
            "last exit after budget s (med / max)",
            "overshoot 0 and stop <= 1 s",
        ],
        rows,
    )


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    return rounds_args(__doc__, argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    setup_logging()
    with Lab("budget", keep=args.keep) as lab:
        lab.start_redis()
        lab.start_replica(args.entries, 1, "--cache-mb", "0")
        runs = run_rounds(lab, args)
    summary = aggregate(runs, list(cases(args.budget)))
    print(f"\nPage budget {args.budget}, {args.rounds} rounds\n")
    print(budget_table(summary, args.budget))
    path = write_results("budget", {"args": vars(args), "runs": runs, "summary": summary})
    print(f"results: {path.relative_to(path.parents[2])}")
    return 1 if any(run["timed_out"] for run in runs) else 0


if __name__ == "__main__":
    sys.exit(main())
