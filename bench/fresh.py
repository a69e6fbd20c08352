"""Issue 16: what a revisit pass costs with and without conditional requests.

    .venv/bin/python bench/fresh.py                 # 2 rounds, 2000-entry replica, 2 nodes
    .venv/bin/python bench/fresh.py --quick         # 1 round, 300 entries

Each case crawls a fresh replica to the end (2 nodes), advances it by one epoch that
changes 10% of the entries, makes every stored entry due (``scrapy recrawl --all``'s
:func:`baike.revisit.make_due`) and runs the revisit pass with 2 nodes:

* ``conditional``: as built: revisits send ``If-None-Match`` / ``If-Modified-Since``; an
  unchanged entry is answered 304 without a body.
* ``unconditional``: the same pass with the stored validators removed from every freshness
  state first: every entry is downloaded whole, parsed and fingerprinted (an unchanged one
  is still not written).
* ``nothing-due``: the same 2 nodes started with nothing due: what starting and stopping a
  node costs, subtracted from the others' CPU.

Reported per revisited entry: bytes the nodes downloaded (Scrapy's
``downloader/response_bytes``: status line, headers and body), body bytes the replica sent,
and node CPU (user + system, from wait4) above ``nothing-due``.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import urllib.request
from pathlib import Path
from typing import Any

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from baike.connection import redis_time
from baike.keys import CrawlKeys
from baike.revisit import make_due
from bench.harness import Lab, logger, setup_logging, table, write_results

KEYS = CrawlKeys.for_spider("baike")
NODES = 2
CASES = ("nothing-due", "conditional", "unconditional")
SETTINGS = ["CLOSESPIDER_PAGECOUNT=0", "CONCURRENT_REQUESTS=16"]


def run_nodes(lab: Lab, tag: str, timeout: float) -> tuple[float, int, list[str]]:
    """Start NODES nodes, wait for them all: (their CPU seconds, bytes downloaded, finish reasons)."""
    nodes = [lab.start_node(SETTINGS, tag=tag) for _ in range(NODES)]
    for node in nodes:
        if not node.wait(timeout):
            node.stop()
    return (
        sum(node.cpu_seconds() for node in nodes),
        sum(node.stat("downloader/response_bytes") for node in nodes),
        [node.finish_reason or "?" for node in nodes],
    )


def strip_validators(client: Any) -> None:
    """Forget every entry's ETag and Last-Modified: its revisit sends no conditional header."""
    for url, raw in client.hscan_iter(KEYS.freshness, count=1000):
        state = json.loads(raw)
        state["etag"] = state["modified"] = ""
        client.hset(KEYS.freshness, url, json.dumps(state))


def one_case(lab: Lab, case: str, args: argparse.Namespace) -> dict[str, Any]:
    """A whole crawl, an epoch, and the revisit pass of ``case``."""
    if lab.replica is not None:
        lab.replica.stop()
    replica = lab.start_replica(args.entries, 1, "--no-samples")
    lab.redis.fresh()
    client = lab.redis.client()
    client.lpush(KEYS.start_urls, replica.start_url())
    run_nodes(lab, f"-{case}-first", args.timeout)
    stored = client.hlen(KEYS.items)
    with urllib.request.urlopen(f"{replica.url}/__replica__/advance?fraction={args.fraction}", timeout=30) as answer:
        changed = len(set(json.load(answer)["changed"]) & {url.decode() for url in client.hkeys(KEYS.items)})
    replica.reset()
    due = 0
    if case != "nothing-due":
        if case == "unconditional":
            strip_validators(client)
        due = make_due(client, KEYS, None, redis_time(client))
    cpu, downloaded, reasons = run_nodes(lab, f"-{case}-revisit", args.timeout)
    stats = replica.stats()
    revisit = {key.decode(): int(value) for key, value in client.hgetall(KEYS.revisit_stats).items()}
    return {
        "case": case,
        "stored": stored,
        "changed": changed,
        "due": due,
        "node_cpu_s": round(cpu, 3),
        "downloaded_bytes": downloaded,
        "body_bytes": stats["body_bytes"],
        "full_bodies": sum(stats["full_bodies"].values()),
        "not_modified": sum(stats["not_modified"].values()),
        "found_changed": revisit.get("changed", 0),
        "finish_reasons": reasons,
    }


def summarise(runs: list[dict[str, Any]]) -> list[list[Any]]:
    """One row a case: medians over rounds, per revisited entry, CPU above nothing-due."""
    baseline = statistics.median(run["node_cpu_s"] for run in runs if run["case"] == "nothing-due")
    rows = []
    for case in CASES[1:]:
        mine = [run for run in runs if run["case"] == case]
        per = [max(run["due"], 1) for run in mine]

        def median(values: list[float]) -> float:
            return statistics.median(values)

        rows.append(
            [
                case,
                int(median([run["due"] for run in mine])),
                int(median([run["changed"] for run in mine])),
                f"{median([run['full_bodies'] for run in mine]):.0f} / {median([run['not_modified'] for run in mine]):.0f}",
                f"{median([run['downloaded_bytes'] / n for run, n in zip(mine, per, strict=True)]) / 1024:.2f}",
                f"{median([run['body_bytes'] / n for run, n in zip(mine, per, strict=True)]) / 1024:.2f}",
                f"{median([1000 * (run['node_cpu_s'] - baseline) / n for run, n in zip(mine, per, strict=True)]):.2f}",
            ]
        )
    return rows


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--entries", type=int, default=2000)
    parser.add_argument("--fraction", type=float, default=0.1)
    parser.add_argument("--timeout", type=float, default=300.0)
    parser.add_argument("--quick", action="store_true", help="1 round, 300 entries")
    parser.add_argument("--keep", action="store_true", help="keep the logs")
    args = parser.parse_args(argv)
    if args.quick:
        args.rounds, args.entries = 1, 300
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    setup_logging()
    runs = []
    with Lab("fresh", keep=args.keep) as lab:
        lab.start_redis()
        for round_index in range(args.rounds):
            for case in CASES:
                run = {"round": round_index, **one_case(lab, case, args)}
                runs.append(run)
                logger.info("round %d %-13s %s", round_index, case, run)
    print(
        f"\n{NODES} nodes, {args.entries}-entry replica, {args.fraction:.0%} changed, {args.rounds} rounds (medians)\n"
    )
    print(
        table(
            [
                "case",
                "revisited",
                "changed",
                "full / 304",
                "KiB downloaded per entry",
                "KiB of body per entry",
                "node CPU ms per entry",
            ],
            summarise(runs),
        )
    )
    path = write_results("fresh", {"args": vars(args), "runs": runs})
    print(f"results: {path.relative_to(path.parents[2])}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
