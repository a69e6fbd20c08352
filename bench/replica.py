"""Issue 19: the replica's throughput, its hand-written HTTP server against aiohttp's.

    .venv/bin/python bench/replica.py                      # 3 rounds against 97bb78b's server
    .venv/bin/python bench/replica.py --baseline <commit> --rounds 5

Side by side in one run: the replica of ``--baseline`` (``git archive``, the last commit with
the hand-written HTTP/1.1 server) and the replica of this tree (aiohttp), each started fresh
every round, the order of the two turning each round. The server runs on CPU 0 and
``python -m replica.loadtest`` on CPU 1 (the issue's "on one core"): first ``--requests``
distinct generated pages (``--mode unique``, a new order each round, so the cache cannot
help), then as many requests over a cached few (``--mode repeat``). Reported per case:
distinct pages/s (the issue's target: at least 2,000), cached pages/s, the server's CPU per
response, and the ratios to the baseline taken round by round.
"""

from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.harness import PYTHON, ROOT, Lab, Replica, logger, setup_logging, spread, table, write_results

BASELINE = "97bb78b"
CASES = ("hand-written", "aiohttp")
TARGET = 2000.0
SERVER_CPU, LOAD_CPU = 0, 1
PAGES_PER_S = re.compile(r": (\d+) pages/s")
US_PER_RESPONSE = re.compile(r"(\d+) us per response")


def load(replica: Replica, mode: str, requests: int, order_seed: int) -> dict[str, float]:
    """One ``replica.loadtest`` run on CPU 1 against ``replica``: pages/s and server µs per response."""
    command = ["-m", "replica.loadtest", "--url", replica.url, "--mode", mode, "--requests", str(requests)]
    command += ["--order-seed", str(order_seed), "--server-pid", str(replica.process.pid)]
    process = subprocess.run(
        [PYTHON, *command],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=600,
        preexec_fn=lambda: os.sched_setaffinity(0, {LOAD_CPU}),
    )
    pages, cpu = PAGES_PER_S.search(process.stdout), US_PER_RESPONSE.search(process.stdout)
    if process.returncode or not pages or not cpu:
        raise RuntimeError(f"loadtest failed ({process.returncode}): {process.stdout}{process.stderr}")
    return {f"{mode}_pages_per_s": float(pages.group(1)), f"{mode}_us_per_response": float(cpu.group(1))}


def one_run(lab: Lab, case: str, root: Path, args: argparse.Namespace, round_: int) -> dict[str, Any]:
    replica = Replica(entries=args.entries, seed=1, options=("--no-samples",), root=root).start()
    try:
        os.sched_setaffinity(replica.process.pid, {SERVER_CPU})
        run: dict[str, Any] = {"case": case, "round": round_}
        run.update(load(replica, "unique", args.requests, round_ + 1))
        run.update(load(replica, "repeat", args.requests, round_ + 1))
    finally:
        replica.stop()
    logger.info("round %d %s: %s", round_, case, run)
    return run


def summarize(runs: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    summary: dict[str, dict[str, Any]] = {}
    base = {run["round"]: run for run in runs if run["case"] == CASES[0]}
    for case in CASES:
        mine = [run for run in runs if run["case"] == case]
        summary[case] = {key: spread([run[key] for run in mine]) for key in mine[0] if key not in ("case", "round")}
        for mode in ("unique", "repeat"):
            key = f"{mode}_pages_per_s"
            summary[case][f"{mode}_ratio"] = spread([run[key] / base[run["round"]][key] for run in mine])
    return summary


def report(summary: dict[str, dict[str, Any]]) -> str:
    rows = []
    for case, numbers in summary.items():
        unique, repeat = numbers["unique_pages_per_s"], numbers["repeat_pages_per_s"]
        rows.append(
            [
                case,
                f"{unique['median']:,.0f} ({unique['min']:,.0f}-{unique['max']:,.0f})",
                f"{numbers['unique_us_per_response']['median']:.0f}",
                f"{numbers['unique_ratio']['median']:.2f} (min {numbers['unique_ratio']['min']:.2f})",
                f"{repeat['median']:,.0f}",
                f"{numbers['repeat_us_per_response']['median']:.0f}",
                f"{numbers['repeat_ratio']['median']:.2f}",
                "yes" if unique["median"] >= TARGET else "no",
            ]
        )
    headers = [
        "server",
        "distinct pages/s, median (min-max)",
        "server µs/response",
        "x hand-written (by round: min)",
        "cached pages/s, median",
        "server µs/cached response",
        "x hand-written",
        f">= {TARGET:,.0f} distinct pages/s",
    ]
    return table(headers, rows)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--baseline", default=BASELINE, help=f"commit with the hand-written server ({BASELINE})")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--requests", type=int, default=20_000)
    parser.add_argument("--entries", type=int, default=100_000)
    args = parser.parse_args(argv)
    setup_logging()
    with Lab("replica") as lab:
        roots = {CASES[0]: lab.export_tree(args.baseline), CASES[1]: ROOT}
        runs = []
        for round_ in range(args.rounds):
            order = CASES if round_ % 2 == 0 else CASES[::-1]
            runs.extend(one_run(lab, case, roots[case], args, round_) for case in order)
    summary = summarize(runs)
    print(f"\nreplica of {args.entries:,} entries, {args.requests:,} requests per mode, {args.rounds} rounds\n")
    print(report(summary))
    path = write_results("replica", {"args": vars(args), "runs": runs, "summary": summary})
    print(f"results: {path.relative_to(path.parents[2])}")
    return 0 if summary[CASES[1]]["unique_pages_per_s"]["median"] >= TARGET else 1


if __name__ == "__main__":
    sys.exit(main())
