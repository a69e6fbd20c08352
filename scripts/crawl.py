"""The main job: a whole multi-node crawl, with its own Redis, against the replica.

Started by scripts/crawl.sh (which installs what is missing). It starts a private
redis-server (data in .run/redis, AOF on) and the replica, starts a fresh crawl,
seeds it, runs the nodes until they stop, prints a summary and writes the HTML
report; then it stops its own services. With a seed URL it crawls the real site.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import redis

ROOT = Path(__file__).resolve().parents[1]
# run as a script, the project itself is not on the import path
sys.path.insert(0, str(ROOT))

from baike import status  # noqa: E402
from baike.keys import CrawlKeys  # noqa: E402

KEYS = CrawlKeys.for_spider("baike")

RUN = ROOT / ".run"
# The main job's cluster rate against the replica, requests/s: above what 2 nodes reach here.
REPLICA_RATE = 200.0


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def start_redis(port: int) -> subprocess.Popen:
    data = RUN / "redis"
    data.mkdir(parents=True, exist_ok=True)
    process = subprocess.Popen(
        [
            shutil.which("redis-server") or "redis-server",
            "--port",
            str(port),
            "--bind",
            "127.0.0.1",
            "--dir",
            str(data),
            "--appendonly",
            "yes",
            "--save",
            "",
        ],
        stdout=(RUN / "redis.log").open("w"),
        stderr=subprocess.STDOUT,
    )
    client = redis.Redis(port=port)
    for _ in range(100):
        try:
            client.ping()
            return process
        except redis.ConnectionError:
            time.sleep(0.05)
    raise SystemExit(f"redis-server did not start on port {port}; see {RUN / 'redis.log'}")


def start_replica(entries: int, seed: int) -> tuple[subprocess.Popen, str]:
    process = subprocess.Popen(
        [sys.executable, "-m", "replica", "--port", "0", "--entries", str(entries), "--seed", str(seed)],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=(RUN / "replica.err").open("w"),
        text=True,
    )
    line = process.stdout.readline()
    match = re.search(r"(http://127\.0\.0\.1:\d+)", line)
    if not match:
        raise SystemExit(f"the replica did not start: {line!r}; see {RUN / 'replica.err'}")
    return process, match.group(1)


def replica_start_url(replica_url: str) -> str:
    with urllib.request.urlopen(f"{replica_url}/__replica__/info", timeout=30) as answer:
        return json.load(answer)["start_url"]


def scrapy(*args: str, env: dict[str, str], log: Path | None = None) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "scrapy", *args],
        cwd=ROOT,
        env=env,
        stdout=subprocess.DEVNULL if log else None,
        stderr=log.open("w") if log else None,
    )


def progress_line(client: redis.Redis, budget: int, started: float) -> str:
    """The live line while the nodes run: budget bar, items, frontier, nodes, rate, state."""
    snap = status.snapshot(client, KEYS, budget=budget, fingerprints=False)
    return f"{status.progress_line(snap)}  {status.duration(time.time() - started)}"


def show_progress(line: str, final: bool = False) -> None:
    """Redraw one line on a terminal; elsewhere (a log, CI) print a line now and then."""
    if sys.stdout.isatty():
        width = shutil.get_terminal_size().columns - 1
        print("\r" + line[:width].ljust(width), end="\n" if final else "", flush=True)
    else:
        print(line, flush=True)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("seed_url", nargs="?", help="crawl the real site from this entry instead of the replica")
    parser.add_argument("--nodes", type=int, default=2)
    parser.add_argument("--pages", type=int, default=2000, help="cluster-wide page budget")
    parser.add_argument("--entries", type=int, default=100_000, help="size of the replica")
    parser.add_argument("--redis-port", type=int, default=int(os.environ.get("REDIS_PORT", 0)) or None)
    parser.add_argument(
        "--rate",
        type=float,
        default=None,
        help="the cluster's rate, requests/s (default: 200 against the replica, BAIKE_CLUSTER_RATE on the real site)",
    )
    options = parser.parse_args()

    RUN.mkdir(exist_ok=True)
    port = options.redis_port or free_port()
    services: list[subprocess.Popen] = [start_redis(port)]
    redis_url = f"redis://127.0.0.1:{port}/0"
    env = {**os.environ, "REDIS_URL": redis_url}
    try:
        settings = ["-s", f"CLOSESPIDER_PAGECOUNT={options.pages}"]
        if options.seed_url:
            seed = options.seed_url
        else:
            replica, mirror = start_replica(options.entries, seed=1)
            services.append(replica)
            seed = replica_start_url(mirror)
            settings += ["-s", f"BAIKE_MIRROR={mirror}", "-s", "AUTOTHROTTLE_ENABLED=False"]
            # the replica is ours: a rate above what the nodes reach, still shared by all of them
            options.rate = REPLICA_RATE if options.rate is None else options.rate
        if options.rate is not None:
            settings += ["-s", f"BAIKE_CLUSTER_RATE={options.rate}"]
            print(f"replica of {options.entries} entries at {mirror}")
        print(f"redis-server at {redis_url} (data in {(RUN / 'redis').relative_to(ROOT)})")
        if scrapy("reset", "--yes", "--force", env=env).wait() != 0:
            raise SystemExit("could not reset the crawl")
        client = redis.Redis.from_url(redis_url)
        client.lpush("baike:start_urls", seed)
        print(f"seeded {seed}; starting {options.nodes} nodes")
        started = time.time()
        logs = [RUN / f"node{n}.log" for n in range(options.nodes)]
        nodes = [scrapy("crawl", "baike", *settings, env=env, log=log) for log in logs]
        while any(node.poll() is None for node in nodes):
            show_progress(progress_line(client, options.pages, started))
            time.sleep(0.5 if sys.stdout.isatty() else 5)
        show_progress(progress_line(client, options.pages, started), final=True)
        elapsed = time.time() - started
        report = RUN / "report.html"
        scrapy("export", "-o", str(report), env=env).wait()
        print_summary(list(zip(nodes, logs, strict=True)), elapsed, client, report, redis_url)
        return 0 if all(node.returncode == 0 for node in nodes) else 1
    finally:
        for service in reversed(services):
            service.send_signal(signal.SIGTERM)
            service.wait(timeout=30)


def print_summary(
    started: list[tuple[subprocess.Popen, Path]], elapsed: float, client: redis.Redis, report: Path, redis_url: str
) -> None:
    """Per node and in total, from the node records and cluster stats in Redis (``baike:nodes``,
    a node found by the pid this script started it with); the report's path last."""
    snap = status.snapshot(client, KEYS, fingerprints=False)
    records = {node["pid"]: node for node in snap["nodes"] if node["host"] == socket.gethostname()}
    print(f"\n{'node':<6} {'pages':>7} {'items':>7} {'errors':>6}  {'stopped because':<24} log")
    for number, (process, log) in enumerate(started):
        node = records.get(process.pid)
        if node is None:
            print(f"{number:<6} {'-':>7} {'-':>7} {'-':>6}  {'never joined the crawl':<24} {log.relative_to(ROOT)}")
            continue
        reason = node["reason"] or node["status"]
        print(
            f"{number:<6} {node['pages']:>7} {node['items']:>7} {node['errors']:>6}  {reason:<24} {log.relative_to(ROOT)}"
        )
    cluster = snap["cluster"]
    pages = cluster["pages"]
    items = snap["items"]
    print(
        f"{'total':<6} {pages:>7} {items:>7} {cluster['errors']:>6}  in {elapsed:.1f} s"
        f" ({pages / max(elapsed, 1e-6):.0f} pages/s); crawl {snap['state']},"
        f" budget {snap['budget']['pages']}/{snap['budget']['limit'] or '-'} pages"
    )
    print(f"\nitems: Redis hash baike:items at {redis_url} (saved in {(RUN / 'redis').relative_to(ROOT)})")
    if snap["dead_letters"]:
        print(f"dead letters: {snap['dead_letters']} (see `scrapy deadletters`)")
    print(json.dumps({"pages": pages, "items": items, "errors": cluster["errors"], "seconds": round(elapsed, 1)}))
    if report.exists():
        print(f"report: {report.relative_to(ROOT)}")
    else:
        print(f"report: not written (run `scrapy export -o {report.relative_to(ROOT)}` with REDIS_URL={redis_url})")


if __name__ == "__main__":
    sys.exit(main())
