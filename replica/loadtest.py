"""Loopback load test: N concurrent connections fetching replica entry pages.

    python -m replica.loadtest --url http://127.0.0.1:8800 --concurrency 32 --requests 20000

``--mode unique`` (default) asks for distinct entry pages in a shuffled order,
so the server renders every page (a crawl); ``--mode repeat`` cycles over a few
hundred pages, which the server answers from its cache. Prints pages/s.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import sys
import time
import urllib.request
from collections import Counter
from pathlib import Path
from urllib.parse import urlsplit

from replica.site import Site


class Client(asyncio.Protocol):
    """One keep-alive connection that fetches paths one after another."""

    def __init__(
        self,
        host: str,
        paths: list[str],
        results: Counter[int],
        latencies: list[float],
        done: asyncio.Future[None],
        deadline: float,
    ):
        self.request_prefix = b"GET "
        self.request_suffix = (
            f" HTTP/1.1\r\nHost: {host}\r\nUser-Agent: replica-loadtest\r\nAccept-Encoding: identity\r\n\r\n".encode()
        )
        self.paths = paths
        self.results = results
        self.latencies = latencies
        self.done = done
        self.buffer = bytearray()
        self.transport: asyncio.Transport | None = None
        self.started = 0.0
        self.bytes = 0
        self.remaining = 0
        self.status = 0
        self.deadline = deadline

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]
        self._next()

    def _next(self) -> None:
        if not self.paths or time.perf_counter() > self.deadline:
            assert self.transport is not None
            self.transport.close()
            return
        path = self.paths.pop()
        self.started = time.perf_counter()
        assert self.transport is not None
        self.transport.write(self.request_prefix + path.encode("ascii") + self.request_suffix)

    def data_received(self, data: bytes) -> None:
        view = memoryview(data)
        while view:
            if self.remaining:
                # Body bytes are only counted, never buffered: the client must
                # stay cheaper than the server it measures.
                taken = min(self.remaining, len(view))
                self.remaining -= taken
                view = view[taken:]
                if not self.remaining:
                    self._complete()
                continue
            self.buffer += view
            view = memoryview(b"")
            end = self.buffer.find(b"\r\n\r\n")
            if end < 0:
                return
            head = bytes(self.buffer[:end]).decode("latin-1")
            rest = bytes(self.buffer[end + 4 :])
            self.buffer.clear()
            self.status = int(head.split(" ", 2)[1])
            self.remaining = 0
            for line in head.split("\r\n")[1:]:
                name, _, value = line.partition(":")
                if name.lower() == "content-length":
                    self.remaining = int(value)
            self.bytes += self.remaining
            if not self.remaining:
                self._complete()
            view = memoryview(rest)

    def _complete(self) -> None:
        self.results[self.status] += 1
        self.latencies.append(time.perf_counter() - self.started)
        self._next()

    def connection_lost(self, exc: Exception | None) -> None:
        if not self.done.done():
            self.done.set_result(None)


def entry_paths(url: str, mode: str, count: int, order_seed: int) -> list[str]:
    with urllib.request.urlopen(url + "/__replica__/info", timeout=30) as answer:
        info = json.load(answer)
    site = Site(info["entries"], info["seed"])
    indexes = list(range(site.entry_count))
    random.Random(order_seed).shuffle(indexes)
    if mode == "repeat":
        indexes = indexes[:300]
    paths = [site.entry_path(index) for index in indexes]
    return [paths[i % len(paths)] for i in range(count)]


async def run(
    url: str, concurrency: int, paths: list[str], seconds: float | None = None
) -> tuple[float, Counter[int], list[float], int]:
    parts = urlsplit(url)
    loop = asyncio.get_running_loop()
    results: Counter[int] = Counter()
    latencies: list[float] = []
    shares = [paths[i::concurrency][::-1] for i in range(concurrency)]
    clients = []
    started = time.perf_counter()
    deadline = started + seconds if seconds else float("inf")
    for share in shares:
        done: asyncio.Future[None] = loop.create_future()
        client = Client(parts.netloc, share, results, latencies, done, deadline)
        await loop.create_connection(lambda c=client: c, parts.hostname, parts.port)
        clients.append((client, done))
    await asyncio.gather(*(done for _client, done in clients))
    elapsed = time.perf_counter() - started
    return elapsed, results, latencies, sum(client.bytes for client, _done in clients)


def cpu_seconds(pid: int) -> float | None:
    """User+system CPU time of process ``pid`` (Linux /proc), None elsewhere."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return None
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m replica.loadtest", description=__doc__.split("\n\n")[0])
    parser.add_argument("--url", default="http://127.0.0.1:8800", help="replica origin")
    parser.add_argument("--concurrency", type=int, default=32, help="keep-alive connections (default 32)")
    parser.add_argument("--requests", type=int, default=20_000, help="requests in total (default 20000)")
    parser.add_argument("--seconds", type=float, default=None, help="also stop issuing requests after this long")
    parser.add_argument("--mode", choices=("unique", "repeat"), default="unique", help="distinct pages or a cached few")
    parser.add_argument("--server-pid", type=int, help="also report the server's CPU time per page (Linux)")
    parser.add_argument(
        "--order-seed",
        type=int,
        default=0,
        help="shuffles the page order; change it between unique runs so the server's cache cannot help",
    )
    args = parser.parse_args(argv)
    url = args.url.rstrip("/")
    paths = entry_paths(url, args.mode, args.requests, args.order_seed)
    cpu_before = cpu_seconds(args.server_pid) if args.server_pid else None
    elapsed, results, latencies, body_bytes = asyncio.run(run(url, args.concurrency, paths, args.seconds))
    cpu_after = cpu_seconds(args.server_pid) if args.server_pid else None
    latencies.sort()
    done = sum(results.values())
    pct = (
        {p: latencies[min(len(latencies) - 1, int(len(latencies) * p / 100))] * 1000 for p in (50, 90, 99)}
        if latencies
        else {}
    )
    print(
        f"{args.mode}: {done} responses in {elapsed:.2f}s with {args.concurrency} connections: "
        f"{results.get(200, 0) / elapsed:.0f} pages/s, {body_bytes / elapsed / 1e6:.1f} MB/s, "
        f"avg page {body_bytes / max(done, 1) / 1024:.1f} KiB, statuses {dict(sorted(results.items()))}, "
        + ", ".join(f"p{p} {ms:.1f} ms" for p, ms in pct.items())
    )
    if cpu_before is not None and cpu_after is not None and done:
        used = cpu_after - cpu_before
        print(
            f"server CPU: {used:.2f}s ({100 * used / elapsed:.0f}% of one core), "
            f"{1e6 * used / done:.0f} us per response => {done / used:.0f} responses per CPU-second"
        )
    return 0 if results.get(200, 0) == done else 1


if __name__ == "__main__":
    sys.exit(main())
