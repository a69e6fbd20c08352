"""Issue 5: what leases cost (pages/s, Redis commands) and how fast a dead node's work comes back.

    .venv/bin/python bench/leases.py            # 3 rounds of the throughput cases, 3 kills
    .venv/bin/python bench/leases.py --quick    # 1 round of 300 pages, 1 kill

Throughput, 1 and 2 nodes, same run, alternating:

* ``leases-N``: baike as configured (leased scheduler, batched Lua push, cluster budget).
* ``no-leases-N``: the lease-free baseline: scrapy-redis's own scheduler and
  priority queue with baike's JSON serializer and bucket dupefilter, Scrapy's
  per-process CloseSpider (budget split evenly). A request popped from it is
  gone from Redis: a node that dies loses it. Note that it also lacks baike's
  batching: every link costs one dupefilter round trip and every request one ZADD.

Recovery: two baike nodes with ``SCHEDULER_LEASE_SECONDS`` (default 5); one is
killed with SIGKILL once the replica has answered ``--kill-at`` pages. From the
kill, ``baike:leases:owners`` is polled every 50 ms until none of its values
("<node id> <score>") names the dead node: that is when all its leases have been
put back in the frontier (by the survivor's next take after they expire).
"""

from __future__ import annotations

import argparse
import math
import signal
import sys
import time
from pathlib import Path
from typing import Any

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from baike.keys import CrawlKeys
from bench.cases import BAIKE, NO_LEASES, common_settings
from bench.harness import CrawlRun, Lab, aggregate, answered, crawl, logger, setup_logging, table, write_results

KEYS = CrawlKeys.for_spider("baike")
NODE_COUNTS = (1, 2)


def throughput_cases(budget: int) -> dict[str, list[list[str]]]:
    out: dict[str, list[list[str]]] = {}
    for count in NODE_COUNTS:
        out[f"leases-{count}"] = [[*common_settings(budget), *BAIKE] for _ in range(count)]
        share = math.ceil(budget / count)
        out[f"no-leases-{count}"] = [[*common_settings(share), *NO_LEASES] for _ in range(count)]
    return out


def run_throughput(lab: Lab, args: argparse.Namespace) -> list[dict[str, Any]]:
    all_cases = throughput_cases(args.budget)
    names = list(all_cases)
    runs = []
    for round_index in range(args.rounds):
        shift = round_index % len(names)
        for name in names[shift:] + names[:shift]:
            run = crawl(lab, name, all_cases[name], budget=args.budget, timeout=args.timeout)
            summary = {"round": round_index, **run.summary()}
            runs.append(summary)
            logger.info(
                "round %d %-12s %6.1f pages/s  %.1f Redis commands/page, %.2f round trips/page  %s",
                round_index,
                name,
                summary["pages_per_s"],
                summary["server_commands_per_page"],
                summary["client_commands_per_page"],
                summary["finish_reasons"],
            )
    return runs


class KillWatch:
    """Kills the first node mid-crawl, then times until its leases are all reclaimed."""

    def __init__(self, lab: Lab, kill_at: int):
        self.client = lab.redis.client()
        self.kill_at = kill_at
        self.killed_at: float | None = None
        self.dead_node: str | None = None
        self.leases_at_kill = 0
        self.reclaimed_at: float | None = None
        self.answered_at_kill = 0

    def owned_by_dead(self) -> int:
        prefix = f"{self.dead_node} ".encode()
        return sum(1 for owner in self.client.hvals(KEYS.lease_owners) if owner.startswith(prefix))

    def __call__(self, run: CrawlRun, stats: dict[str, Any]) -> None:
        victim = run.nodes[0]
        if self.killed_at is None:
            if answered(stats) >= self.kill_at and victim.node_id:
                self.dead_node = victim.node_id
                victim.kill(signal.SIGKILL)
                self.killed_at = time.monotonic()
                self.answered_at_kill = answered(stats)
                self.leases_at_kill = self.owned_by_dead()
            return
        if self.reclaimed_at is None and self.owned_by_dead() == 0:
            self.reclaimed_at = time.monotonic()

    def result(self) -> dict[str, Any]:
        return {
            "dead_node": self.dead_node,
            "answered_at_kill": self.answered_at_kill,
            "leases_at_kill": self.leases_at_kill,
            "reclaimed_after_s": (
                round(self.reclaimed_at - self.killed_at, 3) if self.reclaimed_at and self.killed_at else None
            ),
        }


def run_kills(lab: Lab, args: argparse.Namespace) -> list[dict[str, Any]]:
    settings = [
        *common_settings(args.budget),
        f"SCHEDULER_LEASE_SECONDS={args.lease_seconds}",
        *BAIKE,
    ]
    results = []
    for index in range(args.kills):
        watch = KillWatch(lab, kill_at=args.kill_at)
        run = crawl(
            lab, "kill", [settings, settings], budget=args.budget, timeout=args.timeout, on_poll=watch, poll=0.05
        )
        survivor = run.nodes[1]
        result = {
            "kill": index,
            "lease_seconds": args.lease_seconds,
            "heartbeat_s": round(min(5.0, args.lease_seconds / 3), 3),
            **watch.result(),
            "pages": run.pages,
            "downloaded_twice": run.summary()["downloaded_twice"],
            "survivor_reclaimed": survivor.stat("baike/frontier/reclaimed"),
            "survivor_finish_reason": survivor.finish_reason,
            "timed_out": run.timed_out,
        }
        results.append(result)
        logger.info(
            "kill %d: %d leases held by the dead node, all reclaimed %.2f s after SIGKILL (lease %.1f s);"
            " %d pages, %d downloaded twice",
            index,
            result["leases_at_kill"],
            result["reclaimed_after_s"] if result["reclaimed_after_s"] is not None else float("nan"),
            args.lease_seconds,
            result["pages"],
            result["downloaded_twice"],
        )
    return results


def throughput_table(summary: dict[str, dict[str, Any]]) -> str:
    rows = []
    for name, case in summary.items():
        ratio = case.get("ratio_to_no-leases-1") if name.endswith("-1") else case.get("ratio_to_no-leases-2")
        rows.append(
            [
                name,
                int(case["nodes"]["median"]),
                case["pages_per_s"]["min"],
                case["pages_per_s"]["median"],
                f"{ratio['min']:.2f} / {ratio['median']:.2f}" if ratio else "-",
                case["node_cpu_ms_per_page"]["median"],
                case["redis_cpu_ms_per_page"]["median"],
                case["server_commands_per_page"]["median"],
                case["client_commands_per_page"]["median"],
                case["network_round_trips_per_page"]["median"],
                f"{case['overshoot']['min']}..{case['overshoot']['max']}",
            ]
        )
    return table(
        [
            "case",
            "nodes",
            "pages/s min",
            "pages/s median",
            "x no-leases, same nodes (min / med)",
            "node CPU ms/page",
            "Redis CPU ms/page",
            "Redis cmds/page (server)",
            "round trips/page (client cmds)",
            "network writes/page",
            "pages over budget",
        ],
        rows,
    )


def kill_table(kills: list[dict[str, Any]]) -> str:
    return table(
        [
            "kill",
            "lease s",
            "heartbeat s",
            "pages answered at kill",
            "leases held by the dead node",
            "all reclaimed after s",
            "pages",
            "downloaded twice",
            "survivor",
        ],
        [
            [
                k["kill"],
                k["lease_seconds"],
                k["heartbeat_s"],
                k["answered_at_kill"],
                k["leases_at_kill"],
                k["reclaimed_after_s"],
                k["pages"],
                k["downloaded_twice"],
                k["survivor_finish_reason"],
            ]
            for k in kills
        ],
    )


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="1 round of 300 pages, 1 kill")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--budget", type=int, default=2000)
    parser.add_argument("--kills", type=int, default=3)
    parser.add_argument("--kill-at", type=int, default=None, help="pages answered when a node is killed (budget/3)")
    parser.add_argument("--lease-seconds", type=float, default=5.0)
    parser.add_argument("--entries", type=int, default=100_000)
    parser.add_argument("--timeout", type=float, default=300.0)
    parser.add_argument("--keep", action="store_true", help="keep the node logs")
    args = parser.parse_args(argv)
    if args.quick:
        args.rounds, args.budget, args.kills = 1, 300, 1
    args.kill_at = args.kill_at or args.budget // 3
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    setup_logging()
    with Lab("leases", keep=args.keep) as lab:
        lab.start_redis()
        lab.start_replica(args.entries, 1, "--cache-mb", "0")
        runs = run_throughput(lab, args)
        kills = run_kills(lab, args)
    names = list(throughput_cases(args.budget))
    summary = aggregate(runs, names, references=("no-leases-1", "no-leases-2"))
    print(f"\nLeases vs none: {args.budget} pages, {args.rounds} rounds\n")
    print(throughput_table(summary))
    print(f"\nA node killed with SIGKILL, lease {args.lease_seconds} s\n")
    print(kill_table(kills))
    path = write_results("leases", {"args": vars(args), "runs": runs, "summary": summary, "kills": kills})
    print(f"results: {path.relative_to(path.parents[2])}")
    return 1 if any(run["timed_out"] for run in runs) or any(k["timed_out"] for k in kills) else 0


if __name__ == "__main__":
    sys.exit(main())
