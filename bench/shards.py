"""Issue 15: Redis CPU per page on each master of a 3-master Redis Cluster, BAIKE_SHARDS 1 vs 3.

    .venv/bin/python bench/shards.py            # 3 rounds, budget 2000, 2 nodes
    .venv/bin/python bench/shards.py --quick    # 1 round, budget 300
    .venv/bin/python bench/shards.py --flush-interval 0.5   # both cases flush less often
    .venv/bin/python bench/shards.py --shard0-share 1       # shards-3 split evenly

The same crawl (2 nodes, the page budget, the replica) on one Redis Cluster of 3 masters
(``redis-cli --cluster create``), side by side, the order of the cases turning each round:

* ``shards-1``: every key of the crawl carries the tag ``{baike}``: one master does its work.
* ``shards-3``: ``BAIKE_SHARDS=3``: the frontier and the dupefilter are split over
  ``{baike}``, ``{baike:1}`` and ``{baike:2}``, one slot on each master.

Reported per case: pages/s, and each master's Redis CPU per page (``INFO cpu``:
``used_cpu_sys + used_cpu_user``, deltas over the window from the replica's first answer
to its budget-th, over the pages answered in it), masters sorted busiest first; the same less
what each master spends with no crawl at all (its cron and the cluster bus, measured for 2 s
before each crawl); and the busiest master's time in Lua scripts per page (``INFO
commandstats``, the whole crawl). The issue's target: the busiest master's CPU per page with
3 shards at most 0.45x that of the busiest master with one.
"""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path
from typing import Any

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.cases import BAIKE, common_settings
from bench.harness import (
    ROOT,
    Lab,
    answered,
    logger,
    node_args,
    rounds_args,
    setup_logging,
    spread,
    stop_process,
    table,
    write_results,
)
from tests.support import ClusterServers

NODES = 2
CASES = {"shards-1": ["BAIKE_SHARDS=1"], "shards-3": ["BAIKE_SHARDS=3"]}
TARGET = 0.45


def master_cpu(cluster: ClusterServers) -> list[float]:
    """CPU seconds each master has used (``INFO cpu``), in the cluster's order."""
    seconds = []
    for server in cluster.servers:
        info = server.client().info("cpu")
        seconds.append(float(info["used_cpu_sys"]) + float(info["used_cpu_user"]))
    return seconds


def script_usec(cluster: ClusterServers) -> list[int]:
    """Microseconds each master spent in Lua scripts since its last CONFIG RESETSTAT (``INFO
    commandstats``: the commands a script runs are inside its EVALSHA's time)."""
    usec = []
    for server in cluster.servers:
        stats = server.client().info("commandstats")
        usec.append(sum(int(stats.get(f"cmdstat_{name}", {}).get("usec", 0)) for name in ("evalsha", "eval")))
    return usec


def command_stats(cluster: ClusterServers) -> list[dict[str, dict[str, int]]]:
    """Per master, per command (``INFO commandstats``): calls and microseconds since the last
    CONFIG RESETSTAT, the benchmark's own INFO and CONFIG left out."""
    masters = []
    for server in cluster.servers:
        stats = server.client().info("commandstats")
        masters.append(
            {
                name.removeprefix("cmdstat_"): {"calls": int(value["calls"]), "usec": int(value["usec"])}
                for name, value in stats.items()
                if name not in ("cmdstat_info", "cmdstat_config")
            }
        )
    return masters


def idle_rates(cluster: ClusterServers, seconds: float = 2.0) -> list[float]:
    """CPU seconds per second each master spends with no crawl at all (its cron, the cluster bus)."""
    before, started = master_cpu(cluster), time.monotonic()
    time.sleep(seconds)
    after, elapsed = master_cpu(cluster), time.monotonic() - started
    return [(end - start) / elapsed for start, end in zip(before, after, strict=True)]


def shard0_master(cluster: ClusterServers) -> int:
    """The index (in ``cluster.servers``) of the master of ``{baike}``: shard 0's, which also
    holds the crawl's unsplit keys."""
    client = cluster.client()
    try:
        port = int(client.get_node_from_key("{baike}").port)
    finally:
        client.close()
    return next(index for index, server in enumerate(cluster.servers) if server.port == port)


def crawl_once(
    lab: Lab, cluster: ClusterServers, case: str, budget: int, timeout: float, extra: tuple[str, ...] = ()
) -> dict[str, Any]:
    """One crawl of ``case``: seeded, ``NODES`` nodes until all exit; the window measured."""
    cluster.flush()
    for server in cluster.servers:
        server.client().config_resetstat()
    lab.replica.reset()
    idle = idle_rates(cluster)
    client = cluster.client()
    client.lpush("{baike}:start_urls", lab.replica.start_url())
    client.close()
    processes = []
    for index in range(NODES):
        log_path = lab.directory / f"{case}-{index}.log"
        settings = [*common_settings(budget), *BAIKE, *CASES[case], *extra]
        with log_path.with_suffix(".err").open("w") as errors:
            processes.append(
                subprocess.Popen(
                    node_args(cluster.url, lab.replica.url, log_path, settings),
                    cwd=ROOT,
                    stdout=subprocess.DEVNULL,
                    stderr=errors,
                )
            )
    first = done = None
    deadline = time.monotonic() + timeout
    try:
        while any(process.poll() is None for process in processes) and time.monotonic() < deadline:
            stats = lab.replica.stats()
            if first is None and stats["total"] > 0:
                first = (time.monotonic(), answered(stats), master_cpu(cluster))
            if done is None and answered(stats) >= budget:
                done = (time.monotonic(), answered(stats), master_cpu(cluster))
            time.sleep(0.1)
    finally:
        for process in processes:
            stop_process(process)
    stats = lab.replica.stats()
    if first is None or done is None:
        raise RuntimeError(f"{case}: the crawl did not reach its budget (answered {answered(stats)})")
    pages = done[1] - first[1]
    window = done[0] - first[0]
    per_master = [1000 * (after - before) / pages for before, after in zip(first[2], done[2], strict=True)]
    net = [max(value - 1000 * rate * window / pages, 0.0) for value, rate in zip(per_master, idle, strict=True)]
    scripts = [usec / 1000 / max(answered(stats), 1) for usec in script_usec(cluster)]
    commands = command_stats(cluster)
    shard0 = shard0_master(cluster)
    return {
        "case": case,
        "pages": answered(stats),
        "pages_per_s": round(pages / (done[0] - first[0]), 2),
        "master_cpu_ms_per_page": [round(value, 4) for value in per_master],
        "busiest_cpu_ms_per_page": round(max(per_master), 4),
        "shard0_master": shard0,
        "shard0_cpu_ms_per_page": round(per_master[shard0], 4),
        "idle_cpu_ms_per_s": [round(1000 * rate, 3) for rate in idle],
        "master_net_cpu_ms_per_page": [round(value, 4) for value in net],
        "busiest_net_cpu_ms_per_page": round(max(net), 4),
        "master_script_ms_per_page": [round(value, 4) for value in scripts],
        "busiest_script_ms_per_page": round(max(scripts), 4),
        "commandstats": commands,
    }


def run_rounds(
    lab: Lab, cluster: ClusterServers, budget: int, rounds: int, timeout: float, extra: tuple[str, ...] = ()
) -> list[dict[str, Any]]:
    names = list(CASES)
    runs = []
    for round_index in range(rounds):
        shift = round_index % len(names)
        for name in names[shift:] + names[:shift]:
            run = {"round": round_index, **crawl_once(lab, cluster, name, budget, timeout, extra)}
            runs.append(run)
            logger.info(
                "round %d %-8s %5d pages  %.1f pages/s  masters %s ms/page (shard 0's %.3f)",
                round_index,
                name,
                run["pages"],
                run["pages_per_s"],
                " / ".join(f"{value:.3f}" for value in run["master_cpu_ms_per_page"]),
                run["shard0_cpu_ms_per_page"],
            )
    return runs


def summarize(runs: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """Per case: the medians, masters sorted busiest first round by round; and the busiest
    master's ratio to shards-1's, round by round."""
    reference = {run["round"]: run["busiest_cpu_ms_per_page"] for run in runs if run["case"] == "shards-1"}
    scripts = {run["round"]: run["busiest_script_ms_per_page"] for run in runs if run["case"] == "shards-1"}
    nets = {run["round"]: run["busiest_net_cpu_ms_per_page"] for run in runs if run["case"] == "shards-1"}
    summary: dict[str, dict[str, Any]] = {}
    for case in CASES:
        mine = [run for run in runs if run["case"] == case]
        ranked = [sorted(run["master_cpu_ms_per_page"], reverse=True) for run in mine]
        summary[case] = {
            "pages_per_s": spread([run["pages_per_s"] for run in mine]),
            "masters_ms_per_page": [spread([row[rank] for row in ranked])["median"] for rank in range(3)],
            "busiest": spread([run["busiest_cpu_ms_per_page"] for run in mine]),
            "shard0": spread([run["shard0_cpu_ms_per_page"] for run in mine]),
            "busiest_vs_shards_1": spread(
                [
                    run["busiest_cpu_ms_per_page"] / reference[run["round"]]
                    for run in mine
                    if reference.get(run["round"])
                ]
            ),
            "busiest_net": spread([run["busiest_net_cpu_ms_per_page"] for run in mine]),
            "busiest_net_vs_shards_1": spread(
                [run["busiest_net_cpu_ms_per_page"] / nets[run["round"]] for run in mine if nets.get(run["round"])]
            ),
            "busiest_script": spread([run["busiest_script_ms_per_page"] for run in mine]),
            "busiest_script_vs_shards_1": spread(
                [run["busiest_script_ms_per_page"] / scripts[run["round"]] for run in mine if scripts.get(run["round"])]
            ),
        }
    return summary


def cost_table(summary: dict[str, dict[str, Any]]) -> str:
    rows = []
    for name, case in summary.items():
        busiest, second, third = case["masters_ms_per_page"]
        ratio, script_ratio = case["busiest_vs_shards_1"], case["busiest_script_vs_shards_1"]
        net_ratio = case["busiest_net_vs_shards_1"]
        rows.append(
            [
                name,
                f"{case['pages_per_s']['median']:.1f}",
                f"{busiest:.3f} / {second:.3f} / {third:.3f}",
                f"{case['shard0']['median']:.3f}",
                f"{case['busiest']['median']:.3f}",
                f"{ratio['median']:.2f} (max {ratio['max']:.2f})",
                f"{case['busiest_net']['median']:.3f}",
                f"{net_ratio['median']:.2f} (max {net_ratio['max']:.2f})",
                f"{case['busiest_script']['median']:.3f}",
                f"{script_ratio['median']:.2f} (max {script_ratio['max']:.2f})",
            ]
        )
    return table(
        [
            "case",
            "pages/s (med)",
            "Redis CPU ms/page per master, busiest first (med)",
            "shard 0's master (med)",
            "busiest master CPU (med)",
            f"busiest CPU vs shards-1 (target <= {TARGET})",
            "busiest master CPU less its idle (med)",
            "the same vs shards-1",
            "busiest master's script ms/page (med)",
            "busiest script time vs shards-1",
        ],
        rows,
    )


def main(argv: list[str] | None = None) -> int:
    args = rounds_args(__doc__, argv, flush_interval=True, shard0_share=True)
    extra = (f"SCHEDULER_FLUSH_INTERVAL={args.flush_interval}",) if args.flush_interval else ()
    extra += (f"BAIKE_SHARD0_SHARE={args.shard0_share}",) if args.shard0_share else ()
    setup_logging()
    with Lab("shards", keep=args.keep) as lab:
        cluster = ClusterServers(lab.directory / "cluster")
        try:
            cluster.start()
            lab.start_replica(args.entries, 1, "--cache-mb", "0")
            runs = run_rounds(lab, cluster, args.budget, args.rounds, args.timeout, extra)
        finally:
            cluster.stop()
    summary = summarize(runs)
    flush = f", SCHEDULER_FLUSH_INTERVAL={args.flush_interval}" if args.flush_interval else ""
    flush += f", BAIKE_SHARD0_SHARE={args.shard0_share}" if args.shard0_share else ""
    print(f"\n{NODES} nodes, page budget {args.budget}, {args.rounds} rounds, Redis Cluster of 3 masters{flush}\n")
    print(cost_table(summary))
    path = write_results("shards", {"args": vars(args), "runs": runs, "summary": summary})
    print(f"results: {path.relative_to(path.parents[2])}")
    return 0 if summary["shards-3"]["busiest_vs_shards_1"]["median"] <= TARGET else 1


if __name__ == "__main__":
    sys.exit(main())
