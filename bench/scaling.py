"""Issue 6: Redis work per page as the cluster grows, and how many nodes one Redis serves.

    .venv/bin/python bench/scaling.py                      # 1, 2, 4, 8, 16 nodes, 2 rounds
    .venv/bin/python bench/scaling.py --nodes 1 4 --rounds 1 --budget 1000
    .venv/bin/python bench/scaling.py --whole --entries 10000 --nodes 1 2   # whole crawls

What one page costs Redis is not fixed: a node asks Redis only about the links it
has not pushed itself (its scheduler keeps the rest), so the more nodes share a
crawl, the fewer of a page's links its node has seen, and the more dedup checks
reach Redis. This benchmark measures that curve on one machine. Nodes are many
but slow here (they share the cores); Redis's work per page does not depend on
how fast the nodes are, only on what they send.

So that the number is Redis's own, redis-server runs alone on CPU 0 and
everything else (the nodes, the replica, this process) on the other CPUs: on a
shared core, preemption and cache misses inflate the Redis CPU a run reports.
Every node runs with CONCURRENT_REQUESTS 16 and the project's settings; the
crawl is the same 2000 pages from a cold start as ``bench/speed.py`` (the
stretch where a page brings the most new links). With ``--whole`` the nodes
crawl the replica site to its end instead, with no page budget: every URL is
then pushed once and crawled once, which is what a page costs Redis averaged
over a whole crawl.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
from pathlib import Path
from typing import Any

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.cases import BAIKE, common_settings
from bench.harness import Lab, crawl, logger, setup_logging, table, write_results

NODE_COUNTS = (1, 2, 4, 8, 16)
# The rate a node reaches against the replica with nothing else on its core
# (bench/speed.py, baike-1): the worst case for Redis, as no politeness slows it.
UNTHROTTLED_PAGES_PER_S = 72.0


def pin(lab_redis_pid: int) -> str:
    """Put redis-server alone on CPU 0 and this process (and so its children) on the rest."""
    cpus = sorted(os.sched_getaffinity(0))
    if len(cpus) < 2:
        return "not pinned (one CPU)"
    os.sched_setaffinity(lab_redis_pid, {cpus[0]})
    os.sched_setaffinity(0, set(cpus[1:]))
    return f"redis-server on CPU {cpus[0]}, nodes, replica and bench on CPU {','.join(map(str, cpus[1:]))}"


def measure(run: dict[str, Any]) -> dict[str, Any]:
    """The per-page Redis numbers of one crawl."""
    commands = run["commands"]
    pages = max(run["pages"], 1)
    return {
        "nodes": run["nodes"],
        "pages": run["pages"],
        "pages_per_s": run["pages_per_s"],
        "window_s": run["window_s"],
        "redis_cpu_ms_per_page": run["redis_cpu_ms_per_page"],
        "redis_script_ms_per_page": run["redis_script_ms_per_page"],
        "dedup_checks_per_page": round(commands.get("hsetnx", {}).get("calls", 0) / pages, 2),
        "scripts_per_page": round(commands.get("evalsha", {}).get("calls", 0) / pages, 3),
        "client_commands_per_page": run["client_commands_per_page"],
        "overshoot": run["overshoot"] if run["finish_reasons"][0] == "closespider_pagecount" else 0,
        "finish_reasons": run["finish_reasons"],
        "exit_codes": run["exit_codes"],
        "timed_out": run["timed_out"],
        "commands": commands,
        "client_commands": run["client_commands"],
    }


def capacity(ms_per_page: float, pages_per_node: float = UNTHROTTLED_PAGES_PER_S) -> tuple[int, int]:
    """(pages/s one Redis core serves, nodes at ``pages_per_node`` it serves)."""
    per_core = 1000.0 / ms_per_page
    return round(per_core), int(per_core // pages_per_node)


def fit_cost_model(rows: list[dict[str, Any]]) -> dict[str, float]:
    """Least-squares fit of Redis CPU = a * pages + b * node-seconds over all runs.

    Part of what Redis does is per page (scripts, items), part per node and second
    (heartbeats, stats, budget polls). Here nodes are slow, so the second part
    weighs more per page than it would with fast nodes; the fit separates them so
    that capacity can be worked out for nodes at full speed:
    nodes per core = 1 / (a * pages/s per node + b).
    """
    sums = {"pp": 0.0, "pn": 0.0, "nn": 0.0, "pc": 0.0, "nc": 0.0}
    for row in rows:
        pages = row["pages_per_s"] * row["window_s"]
        node_seconds = row["nodes"] * row["window_s"]
        cpu = row["redis_cpu_ms_per_page"] * pages / 1000.0
        sums["pp"] += pages * pages
        sums["pn"] += pages * node_seconds
        sums["nn"] += node_seconds * node_seconds
        sums["pc"] += pages * cpu
        sums["nc"] += node_seconds * cpu
    determinant = sums["pp"] * sums["nn"] - sums["pn"] ** 2
    if not determinant:
        return {}
    per_page = (sums["pc"] * sums["nn"] - sums["nc"] * sums["pn"]) / determinant
    per_node_second = (sums["pp"] * sums["nc"] - sums["pn"] * sums["pc"]) / determinant
    return {
        "redis_ms_per_page": round(1000 * per_page, 4),
        "redis_ms_per_node_second": round(1000 * per_node_second, 3),
        "nodes_per_core_at_unthrottled": int(1 / (per_page * UNTHROTTLED_PAGES_PER_S + per_node_second)),
    }


def summarise(rows: list[dict[str, Any]], counts: list[int]) -> list[dict[str, Any]]:
    out = []
    for count in counts:
        runs = [row for row in rows if row["nodes"] == count]
        median = {
            key: statistics.median(run[key] for run in runs)
            for key in (
                "pages_per_s",
                "redis_cpu_ms_per_page",
                "redis_script_ms_per_page",
                "dedup_checks_per_page",
                "scripts_per_page",
                "client_commands_per_page",
            )
        }
        worst = max(run["redis_cpu_ms_per_page"] for run in runs)
        out.append(
            {
                "nodes": count,
                "rounds": len(runs),
                **median,
                "redis_cpu_ms_per_page_max": worst,
                "overshoot_max": max(run["overshoot"] for run in runs),
            }
        )
    return out


def scaling_table(summary: list[dict[str, Any]]) -> str:
    headers = [
        "nodes",
        "pages/s (all nodes, shared cores)",
        "Redis CPU ms/page (median / max)",
        "of which in scripts",
        "dedup checks/page",
        "scripts/page",
        "client cmds/page",
        "pages/s per Redis core (max)",
        f"nodes at {UNTHROTTLED_PAGES_PER_S:.0f} pages/s per Redis core",
        "pages over budget",
    ]
    rows = []
    for row in summary:
        per_core, nodes = capacity(row["redis_cpu_ms_per_page_max"])
        rows.append(
            [
                row["nodes"],
                row["pages_per_s"],
                f"{row['redis_cpu_ms_per_page']:.3f} / {row['redis_cpu_ms_per_page_max']:.3f}",
                f"{row['redis_script_ms_per_page']:.3f}",
                row["dedup_checks_per_page"],
                row["scripts_per_page"],
                row["client_commands_per_page"],
                per_core,
                nodes,
                row["overshoot_max"],
            ]
        )
    return table(headers, rows)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--nodes", type=int, nargs="+", default=list(NODE_COUNTS), help="cluster sizes to run")
    parser.add_argument("--rounds", type=int, default=2, help="repetitions of every size (default 2)")
    parser.add_argument("--budget", type=int, default=2000, help="pages per crawl (default 2000)")
    parser.add_argument("--entries", type=int, default=100_000, help="entries of the replica site")
    parser.add_argument("--timeout", type=float, default=600.0, help="longest crawl before its nodes are stopped")
    parser.add_argument("--whole", action="store_true", help="crawl the whole site, no page budget")
    parser.add_argument("--keep", action="store_true", help="keep the node logs")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    setup_logging()
    rows: list[dict[str, Any]] = []
    with Lab("scaling", keep=args.keep) as lab:
        redis_server = lab.start_redis()
        placement = pin(redis_server.process.pid)
        logger.info("%s", placement)
        lab.start_replica(args.entries, 1, "--cache-mb", "0")
        for round_index in range(args.rounds):
            for count in args.nodes:
                # a whole crawl has no budget; its window closes when the nodes exit
                budget = 0 if args.whole else args.budget
                settings = [[*common_settings(budget), *BAIKE] for _ in range(count)]
                window = args.entries + 1 if args.whole else args.budget
                run = crawl(lab, f"baike-{count}", settings, budget=window, timeout=args.timeout)
                row = {"round": round_index, **measure(run.summary())}
                rows.append(row)
                logger.info(
                    "round %d, %2d nodes: %6.1f pages/s  Redis %.3f ms/page  %.1f dedup checks/page",
                    round_index,
                    count,
                    row["pages_per_s"],
                    row["redis_cpu_ms_per_page"],
                    row["dedup_checks_per_page"],
                )
    summary = summarise(rows, args.nodes)
    crawled = f"whole {args.entries}-entry site" if args.whole else f"{args.budget} pages"
    print(f"\nRedis work per page by cluster size: {crawled}, {args.rounds} rounds; {placement}\n")
    print(scaling_table(summary))
    model = fit_cost_model(rows)
    if model:
        print(
            f"\nFit over all runs: Redis CPU = {model['redis_ms_per_page']} ms per page"
            f" + {model['redis_ms_per_node_second']} ms per node-second;"
            f" one Redis core serves {model['nodes_per_core_at_unthrottled']} nodes"
            f" at {UNTHROTTLED_PAGES_PER_S:.0f} pages/s each"
        )
    payload = {"args": vars(args), "placement": placement, "runs": rows, "summary": summary, "model": model}
    path = write_results("scaling", payload)
    print(f"results: {path.relative_to(Path(__file__).resolve().parents[1])}")
    failed = [row for row in rows if row["timed_out"] or any(code != 0 for code in row["exit_codes"])]
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
