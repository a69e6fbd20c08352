"""Real parts for the tests: a private redis-server, the replica over HTTP, real nodes.

The redis-server is started by the suite on a free loopback port in a temporary
directory; it is the only Redis the suite ever flushes. Nodes are real
``scrapy crawl baike`` processes.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
import urllib.parse
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import redis

from tests.support import NodeLog, RedisServer, free_port, node_settings, setting_args

ROOT = Path(__file__).resolve().parents[1]
# A node's log must not show these: Scrapy deprecations fail the tests.
NODE_WARNING_MARKERS = ("ScrapyDeprecationWarning", "DeprecationWarning")


def samples_dir() -> Path | None:
    """The real Baike pages, read in place, or None where this checkout has none."""
    configured = os.environ.get("BAIKE_SAMPLES")
    candidate = Path(configured) if configured else ROOT.parent / "shared" / "baike-samples"
    return candidate if candidate.is_dir() else None


@pytest.fixture(scope="session")
def redis_server(tmp_path_factory: pytest.TempPathFactory):
    server = RedisServer(port=free_port(), directory=tmp_path_factory.mktemp("redis"))
    server.start()
    yield server
    server.stop()


@pytest.fixture()
def redis_db(redis_server: RedisServer) -> redis.Redis:
    """The suite's own Redis, emptied for this test."""
    client = redis_server.client()
    client.flushdb()
    return client


@dataclass
class Replica:
    url: str
    process: subprocess.Popen
    entries: int
    seed: int

    def stats(self) -> dict:
        with urllib.request.urlopen(f"{self.url}/__replica__/stats", timeout=10) as answer:
            return json.load(answer)

    def reset(self) -> None:
        urllib.request.urlopen(f"{self.url}/__replica__/reset", timeout=10).read()

    def answer_key(self, start: str) -> dict:
        query = urllib.parse.urlencode({"start": start})
        with urllib.request.urlopen(f"{self.url}/__replica__/answer?{query}", timeout=60) as answer:
            return json.load(answer)

    def start_url(self) -> str:
        from replica.site import Site

        return Site(entries=self.entries, seed=self.seed).start_url()

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            self.process.wait(timeout=10)
        self.process.stdout.close()


def replica_process(
    entries: int, seed: int, options: tuple[str, ...], host: str = "127.0.0.1", popen=subprocess.Popen
) -> tuple[subprocess.Popen, str]:
    """Start the replica on ``host`` (with ``popen``: e.g. inside a network namespace);
    returns ``(process, url)`` once it printed where it listens."""
    process = popen(
        [
            sys.executable,
            "-m",
            "replica",
            "--host",
            host,
            "--port",
            "0",
            "--entries",
            str(entries),
            "--seed",
            str(seed),
            *options,
        ],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    line = process.stdout.readline()
    match = re.search(rf"(http://{re.escape(host)}:\d+)", line)
    if not match:
        process.kill()
        raise RuntimeError(f"the replica did not start: {line!r}")
    return process, match.group(1)


def start_replica(entries: int = 300, seed: int = 1, *options: str) -> Replica:
    process, url = replica_process(entries, seed, options)
    return Replica(url=url, process=process, entries=entries, seed=seed)


@pytest.fixture()
def replica_factory():
    started: list[Replica] = []

    def factory(entries: int = 300, seed: int = 1, *options: str) -> Replica:
        replica = start_replica(entries, seed, *options)
        started.append(replica)
        return replica

    yield factory
    for replica in started:
        replica.stop()


@pytest.fixture(scope="session")
def small_replica():
    """One 300-entry replica shared by tests that reset its counters first."""
    replica = start_replica(300, 1)
    yield replica
    replica.stop()


@dataclass
class Node(NodeLog):
    """One real ``scrapy crawl baike`` process."""

    process: subprocess.Popen
    log_path: Path
    started: float = field(default_factory=time.time)

    def wait(self, timeout: float = 120) -> int:
        """Wait for the node to exit; fails the test if it logged a deprecation warning."""
        code = self.process.wait(timeout=timeout)
        errors = self.log_path.with_suffix(".err")
        output = self.log + (errors.read_text(errors="replace") if errors.exists() else "")
        warned = [line for line in output.splitlines() if any(marker in line for marker in NODE_WARNING_MARKERS)]
        assert not warned, f"node logged deprecation warnings: {warned[:5]}"
        return code

    def kill(self, sig: int = signal.SIGKILL) -> None:
        if self.process.poll() is None:
            self.process.send_signal(sig)


def node_command(redis_url: str, mirror: str, log_path: Path, *settings: str) -> list[str]:
    """The command line of one test node against ``redis_url`` downloading from ``mirror``."""
    return [
        sys.executable,
        "-m",
        "scrapy",
        "crawl",
        "baike",
        # the replica is ours: no cluster rate unless a test sets one
        *setting_args(
            *node_settings(redis_url, mirror, log_path), "CLOSESPIDER_FINISHED_GRACE=1.5", "BAIKE_CLUSTER_RATE=0"
        ),
        *setting_args(*settings),
    ]


def node_env() -> dict[str, str]:
    """This process's environment without what a node must take from its settings only."""
    return {key: value for key, value in os.environ.items() if key not in ("REDIS_URL", "BAIKE_MIRROR")}


def start_node(redis_url: str, mirror: str, log_path: Path, *settings: str) -> Node:
    """Start one node against ``redis_url`` downloading from ``mirror``."""
    args = node_command(redis_url, mirror, log_path, *settings)
    with log_path.with_suffix(".err").open("w") as errors:
        process = subprocess.Popen(args, cwd=ROOT, env=node_env(), stdout=subprocess.DEVNULL, stderr=errors)
    return Node(process=process, log_path=log_path)


@pytest.fixture()
def node_factory(tmp_path: Path):
    nodes: list[Node] = []

    def factory(redis_url: str, mirror: str, *settings: str) -> Node:
        node = start_node(redis_url, mirror, tmp_path / f"node{len(nodes)}.log", *settings)
        nodes.append(node)
        return node

    yield factory
    for node in nodes:
        node.kill()
        node.process.wait(timeout=10)
