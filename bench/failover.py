"""Issue 15: what the failover-safety option costs (``REDIS_WAIT_REPLICAS``).

    .venv/bin/python bench/failover.py            # 3 rounds, budget 2000, 2 nodes
    .venv/bin/python bench/failover.py --quick    # 1 round, budget 300

The same crawl on a master with one replica (``replicaof``, in sync before each run),
two nodes, side by side:

* ``wait-0``: the default, no ``WAIT`` (replication is asynchronous: a failover may lose
  the last writes the old master acknowledged).
* ``wait-1``: ``REDIS_WAIT_REPLICAS=1`` with ``REDIS_WAIT_TIMEOUT=100``: every flush of
  the scheduler (leases settled, requests pushed) and every batch of stored items waits
  until the replica holds it (see docs/redis.md, "What a failover may lose").

Reported: pages/s (and its ratio to ``wait-0``, round by round), node and Redis CPU per
page, the ``WAIT`` calls per page.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import Any

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.cases import BAIKE, common_settings
from bench.harness import Lab, aggregate, crawl, logger, rounds_args, setup_logging, table, write_results
from tests.support import RedisServer

NODES = 2
CASES = {"wait-0": [], "wait-1": ["REDIS_WAIT_REPLICAS=1", "REDIS_WAIT_TIMEOUT=100"]}


def start_replica_server(lab: Lab) -> RedisServer:
    """A replica of the lab's Redis, started and waited for until its link is up."""
    directory = lab.directory / "redis-replica"
    directory.mkdir(exist_ok=True)
    server = RedisServer(directory=directory, extra=("--replicaof", "127.0.0.1", str(lab.redis.port))).start()
    deadline = time.monotonic() + 30
    while server.client().info("replication").get("master_link_status") != "up":
        if time.monotonic() > deadline:
            raise RuntimeError("the replica did not sync")
        time.sleep(0.05)
    return server


def run_rounds(lab: Lab, args: argparse.Namespace) -> list[dict[str, Any]]:
    names = list(CASES)
    runs = []
    for round_index in range(args.rounds):
        shift = round_index % len(names)
        for name in names[shift:] + names[:shift]:
            settings = [[*common_settings(args.budget), *BAIKE, *CASES[name]] for _ in range(NODES)]
            run = crawl(lab, name, settings, budget=args.budget, timeout=args.timeout)
            summary = {"round": round_index, **run.summary()}
            summary["wait_per_page"] = round(summary["client_commands"].get("wait", 0) / max(summary["pages"], 1), 3)
            runs.append(summary)
            logger.info(
                "round %d %-7s %5d pages  %.1f pages/s", round_index, name, summary["pages"], summary["pages_per_s"]
            )
    return runs


def cost_table(summary: dict[str, dict[str, Any]]) -> str:
    rows = []
    for name, case in summary.items():
        ratio = case.get("ratio_to_wait-0")
        rows.append(
            [
                name,
                f"{case['pages_per_s']['min']:.1f} / {case['pages_per_s']['median']:.1f} / {case['pages_per_s']['max']:.1f}",
                f"{ratio['min']:.2f} / {ratio['median']:.2f}" if ratio else "1",
                f"{case['node_cpu_ms_per_page']['median']:.2f}",
                f"{case['redis_cpu_ms_per_page']['median']:.3f}",
                f"{case['wait_per_page']['median']:.2f}",
            ]
        )
    return table(
        [
            "case",
            "pages/s (min / med / max)",
            "pages/s vs wait-0 (min / med)",
            "node CPU ms/page (med)",
            "Redis CPU ms/page (med)",
            "WAIT per page (med)",
        ],
        rows,
    )


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    return rounds_args(__doc__, argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    setup_logging()
    replica = None
    with Lab("failover", keep=args.keep) as lab:
        try:
            lab.start_redis("--repl-diskless-sync-delay", "0")
            replica = start_replica_server(lab)
            lab.start_replica(args.entries, 1, "--cache-mb", "0")
            runs = run_rounds(lab, args)
        finally:
            if replica is not None:
                replica.stop()
    summary = aggregate(runs, list(CASES), references=["wait-0"])
    print(f"\n{NODES} nodes, page budget {args.budget}, {args.rounds} rounds, master + 1 replica\n")
    print(cost_table(summary))
    path = write_results("failover", {"args": vars(args), "runs": runs, "summary": summary})
    print(f"results: {path.relative_to(path.parents[2])}")
    return 1 if any(run["timed_out"] for run in runs) else 0


if __name__ == "__main__":
    sys.exit(main())
