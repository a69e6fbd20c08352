"""Nodes on separate machines: real nodes, each in its own network namespace ("host"),
crawling through a virtual LAN to a password-protected Redis and the replica, which run
in a "server" namespace (tests/netns.py). Clocks can be skewed per host (libfaketime)
and a host can be cut off the LAN and plugged back in. With ``tls_fleet`` Redis speaks
TLS only (certificates the test makes, client certificates required) and the nodes log
in as the ``baike-node`` ACL user of docs/redis.md.

The test process reads Redis through a Unix socket (not bound to any network
namespace) and asks the replica for its statistics from inside the server namespace,
so no traffic ever leaves these namespaces but for loopback.
"""

from __future__ import annotations

import contextlib
import glob
import json
import re
import secrets
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.parse
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import pytest
import redis

from tests import netns
from tests.conftest import ROOT, Node, Replica, node_command, node_env, replica_process
from tests.netns import VirtualLan
from tests.test_crash_safety import KEYS, assert_crawled_exactly, stored_urls
from tests.test_redis_auth import TlsFiles, set_documented_user

pytestmark = pytest.mark.e2e

REDIS_PORT = 6390  # inside the server namespace, where nothing else listens
LEASE_SECONDS = 3
PARTITION_SECONDS = 2 * LEASE_SECONDS
# A cluster run with 3-second leases. Its Redis calls must give up well within a lease:
# with the default socket_timeout (10 s) a node cut off for 6 s just hangs in one call
# for the whole partition (its reactor with it), then carries on without ever seeing
# the connection fail.
PARTITION_SETTINGS = (
    f"SCHEDULER_LEASE_SECONDS={LEASE_SECONDS}",
    "SCHEDULER_HEARTBEAT_INTERVAL=0.5",
    'REDIS_PARAMS={"socket_timeout": 1, "socket_connect_timeout": 1, "retry_on_timeout": true,'
    ' "health_check_interval": 30}',
    # downloads cut off by the partition fail fast and are retried: the retries of a
    # fenced lease must not be queued again
    "DOWNLOAD_TIMEOUT=2",
)
# Reads a URL from inside a namespace and writes the body to stdout.
FETCH = "import sys, urllib.request; sys.stdout.buffer.write(urllib.request.urlopen(sys.argv[1], timeout=60).read())"
LIBFAKETIME = (
    "/usr/lib/*/faketime/libfaketime.so.1",
    "/usr/lib/faketime/libfaketime.so.1",
    "/usr/local/lib/faketime/libfaketime.so.1",
)


def libfaketime() -> str | None:
    for pattern in LIBFAKETIME:
        found = sorted(glob.glob(pattern))
        if found:
            return found[0]
    return None


def skewed(offset: str) -> list[str]:
    """The prefix that runs a command with its clock ``offset`` (e.g. "+90s") off, running.

    Not the ``faketime`` wrapper: it forks and waits for its child, so the process we
    start would not be the node (nor killed with it). ``env`` execs, the pid stays.
    libfaketime 0.9.10 also fakes CLOCK_MONOTONIC here (as the base of the skewed
    realtime clock, at the normal rate), which is harmless to a node; the opposite,
    FAKETIME_DONT_FAKE_MONOTONIC=1, makes every time.sleep() fail with EINVAL (its
    clock_nanosleep converts absolute monotonic deadlines anyway). What it does break is
    a timed wait on a lock (sem_clockwait is not intercepted: the deadline is never
    reached); nothing a node runs waits on a lock with a timeout.
    """
    library = libfaketime()
    if library is None:
        pytest.skip("libfaketime is not installed (Debian: apt-get install faketime; scripts/setup.sh --tests does it)")
    return ["env", f"LD_PRELOAD={library}", f"FAKETIME={offset}"]


@dataclass
class LanReplica(Replica):
    """The replica in the server namespace; its debug endpoints are read from in there."""

    lan: VirtualLan | None = None

    def _get(self, path: str) -> bytes:
        done = self.lan.run(
            self.lan.server, [sys.executable, "-c", FETCH, f"{self.url}{path}"], capture_output=True, timeout=90
        )
        assert done.returncode == 0, done.stderr[-2000:].decode(errors="replace")
        return done.stdout

    def stats(self) -> dict:
        return json.loads(self._get("/__replica__/stats"))

    def reset(self) -> None:
        self._get("/__replica__/reset")

    def answer_key(self, start: str) -> dict:
        return json.loads(self._get(f"/__replica__/answer?{urllib.parse.urlencode({'start': start})}"))


class Fleet:
    """A virtual LAN with Redis (bound to the server's address) and the replica in the
    server namespace, and nodes started on its hosts.

    Without ``tls`` Redis listens on plain TCP and nodes log in as the ``default`` user
    with its password (``requirepass``). With ``tls`` it listens with TLS only
    (``port 0``, client certificates required, the server's certificate naming its IP
    address), the ``default`` user is off, and nodes log in as ``baike-node`` with exactly
    the rule of docs/redis.md. Either way the test reads Redis through a Unix socket:
    as the ``default`` user, or as an ``admin`` user of its own with TLS.
    """

    def __init__(self, lan: VirtualLan, directory: Path, tls: bool = False):
        self.lan = lan
        self.directory = directory
        self.password = "pw-" + secrets.token_hex(12)  # the nodes'
        self.nodes: list[Node] = []
        self.replica: LanReplica | None = None
        # a short directory of its own: a Unix socket path has at most 107 bytes
        self.socket_dir = Path(tempfile.mkdtemp(prefix="baike-fleet-"))
        self.redis_process: subprocess.Popen | None = None
        self.tls: TlsFiles | None = None
        self.admin_password: str | None = None
        socket_path = str(self.socket_dir / "redis.sock")
        if tls:
            tls_dir = directory / "tls"
            tls_dir.mkdir()
            self.tls = TlsFiles(tls_dir, server_ips=(lan.server_ip,))
            self.admin_password = "admin-" + secrets.token_hex(12)
            self.client = redis.Redis(unix_socket_path=socket_path, username="admin", password=self.admin_password)
        else:
            self.client = redis.Redis(unix_socket_path=socket_path, password=self.password)

    def start(self) -> Fleet:
        """Start Redis in the server namespace, wait until it answers and, with TLS,
        create the nodes' user from docs/redis.md (then empty ``ACL LOG``)."""
        self.redis_process = self._start_redis()
        deadline = time.monotonic() + 10
        while True:
            try:
                self.client.ping()
                break
            except redis.ConnectionError:
                if time.monotonic() > deadline or self.redis_process.poll() is not None:
                    raise RuntimeError("redis-server did not start in the server namespace") from None
                time.sleep(0.05)
        if self.tls is not None:
            set_documented_user(self.client, "baike-node", self.password)
            self.client.acl_log_reset()
        return self

    @property
    def redis_url(self) -> str:
        if self.tls is not None:
            return f"rediss://baike-node:{self.password}@{self.lan.server_ip}:{REDIS_PORT}/0"
        return f"redis://:{self.password}@{self.lan.server_ip}:{REDIS_PORT}/0"

    def node_settings(self) -> tuple[str, ...]:
        """The ``-s`` settings a node needs to reach this Redis besides REDIS_URL."""
        return self.tls.client_settings() if self.tls is not None else ()

    def _start_redis(self) -> subprocess.Popen:
        binary = shutil.which("redis-server")
        if binary is None:
            pytest.skip("redis-server is not installed: run scripts/setup.sh")
        config = self.socket_dir / "redis.conf"
        if self.tls is None:
            access = [f"port {REDIS_PORT}", f"requirepass {self.password}"]
        else:
            # TLS only; the nodes' user is made from the docs once Redis runs (start)
            access = [
                "port 0",
                f"tls-port {REDIS_PORT}",
                f"tls-cert-file {self.tls.path('server.crt')}",
                f"tls-key-file {self.tls.path('server.key')}",
                f"tls-ca-cert-file {self.tls.path('ca.crt')}",
                "tls-auth-clients yes",
                "user default off",
                f"user admin on >{self.admin_password} ~* &* +@all",
            ]
        # passwords in a file of the test's, not on a command line
        config.write_text(
            "\n".join(
                [
                    *access,
                    f"bind {self.lan.server_ip}",
                    "protected-mode no",
                    f"unixsocket {self.socket_dir / 'redis.sock'}",
                    "unixsocketperm 700",
                    f"dir {self.directory}",
                    'save ""',
                    "appendonly no",
                    "",
                ]
            )
        )
        config.chmod(0o600)
        return self.lan.run_in(
            self.lan.server, [binary, str(config)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )

    def start_replica(self, entries: int = 300, seed: int = 1, *options: str) -> LanReplica:
        def in_server(argv: list[str], **popen) -> subprocess.Popen:
            return self.lan.run_in(self.lan.server, argv, **popen)

        process, url = replica_process(entries, seed, options, self.lan.server_ip, in_server)
        self.replica = LanReplica(url=url, process=process, entries=entries, seed=seed, lan=self.lan)
        return self.replica

    def start_node(self, host: int, *settings: str, clock: str | None = None) -> Node:
        """One ``scrapy crawl baike`` on host ``host`` (the settings of conftest's start_node),
        its clock ``clock`` off (e.g. "+90s") when given."""
        log_path = self.directory / f"node{len(self.nodes)}-host{host}.log"
        args = node_command(self.redis_url, self.replica.url, log_path, *self.node_settings(), *settings)
        if clock is not None:
            args = skewed(clock) + args
        with log_path.with_suffix(".err").open("w") as errors:
            process = self.lan.run_in(
                self.lan.host(host), args, cwd=ROOT, env=node_env(), stdout=subprocess.DEVNULL, stderr=errors
            )
        node = Node(process=process, log_path=log_path)
        self.nodes.append(node)
        return node

    def stop(self) -> None:
        for node in self.nodes:
            node.kill()
        for node in self.nodes:
            with contextlib.suppress(subprocess.TimeoutExpired):
                node.process.wait(timeout=10)
        if self.replica is not None and self.replica.process.poll() is None:
            self.replica.process.terminate()
            try:
                self.replica.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.replica.process.kill()
        self.client.close()
        if self.redis_process is not None and self.redis_process.poll() is None:
            self.redis_process.terminate()
            try:
                self.redis_process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.redis_process.kill()
        shutil.rmtree(self.socket_dir, ignore_errors=True)


def running_fleet(directory: Path, tls: bool = False):
    reason = netns.unavailable()
    if reason:
        pytest.skip(reason)
    with VirtualLan(hosts=3) as lan:
        built = Fleet(lan, directory, tls=tls)
        try:
            yield built.start()
        finally:
            built.stop()


@pytest.fixture()
def fleet(tmp_path: Path):
    yield from running_fleet(tmp_path)


@pytest.fixture()
def tls_fleet(tmp_path: Path):
    """A fleet whose Redis speaks TLS only and knows the nodes as ``baike-node``."""
    yield from running_fleet(tmp_path, tls=True)


def node_output(node: Node) -> str:
    return node.log + node.log_path.with_suffix(".err").read_text(errors="replace")


def lease_owner_prefix(node: Node) -> bytes:
    """What the node's lease owners start with: its scheduler's id is ``host:pid:random``,
    and ``ip netns exec`` (and ``env``) exec, so the pid is the started process's."""
    return f"{socket.gethostname()}:{node.process.pid}:".encode()


def leases_held(client: redis.Redis, node: Node) -> set[bytes]:
    prefix = lease_owner_prefix(node)
    return {lease for lease, owner in client.hgetall(KEYS.lease_owners).items() if owner.startswith(prefix)}


def budget_pages(client: redis.Redis) -> int:
    return int(client.hget(KEYS.budget, "pages") or 0)


def responses(replica: Replica) -> int:
    """Answers the replica sent that a crawler receives as pages (redirects are followed)."""
    return sum(count for status, count in replica.stats()["by_status"].items() if not status.startswith("3"))


def log_clock_offset(node: Node, started: float) -> float:
    """How far ahead of the real clock the node's first log line is stamped, in seconds."""
    first = re.search(r"^(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d)", node.log, re.MULTILINE)
    assert first, node.log[:2000]
    return datetime.strptime(first.group(1), "%Y-%m-%d %H:%M:%S").timestamp() - started


def test_three_hosts_as_the_acl_user_over_tls_crawl_exactly_once(tls_fleet: Fleet) -> None:
    """3 nodes on 3 hosts, logged in as ``baike-node`` with only the documented rights,
    over TLS with certificates the test made: every entry stored once, the exact budget,
    no password shown and no command refused."""
    fleet = tls_fleet
    client = fleet.client
    assert client.config_get("port") == {"port": "0"}, "Redis takes no plain TCP connection"
    replica = fleet.start_replica(300, 1)
    client.lpush(KEYS.start_urls, replica.start_url())
    nodes = [fleet.start_node(host, "CLOSESPIDER_PAGECOUNT=120") for host in range(3)]
    for node in nodes:
        assert node.wait(timeout=60) == 0, node_output(node)[-3000:]

    assert [node.finish_reason for node in nodes] == ["closespider_pagecount"] * 3
    assert all(node.stat("response_received_count") > 0 for node in nodes), "every host crawled"
    assert budget_pages(client) == 120
    stats = replica.stats()
    assert responses(replica) == 120
    assert max(stats["page_paths"].values()) == 1, "no entry page is downloaded twice"
    records = [json.loads(value) for value in client.hvals(KEYS.items)]
    urls = [record["url"] for record in records]
    assert records and len(urls) == len(set(urls)) == stats["pages"]
    assert sorted(urls) == sorted(stored_urls(client)), "each record is stored under its own URL"
    for node in nodes:
        output = node_output(node)
        for password in (fleet.password, fleet.admin_password):
            assert password not in output, "a Redis password leaked into a node's log or stderr"
        # the node's id (host:pid:...) has the pid we started: `ip netns exec` execs the node
        assert f"Node {lease_owner_prefix(node).decode()}" in node.log, node.log[-3000:]
        joined = f"joined the crawl at rediss://baike-node:***@{fleet.lan.server_ip}:{REDIS_PORT}/0"
        assert joined in node.log, "it joined the Redis across the LAN, over TLS, as baike-node"
    assert client.acl_log() == [], "Redis refused a command: the documented rule misses it"


def test_skewed_clocks_change_nothing(fleet: Fleet) -> None:
    """Lease deadlines must not come from the nodes' clocks: machines disagree by seconds
    to minutes. A node 90 s behind would hand out leases that have already expired; one
    90 s ahead would take every other node's leases for expired ones."""
    replica = fleet.start_replica(300, 1)
    fleet.client.lpush(KEYS.start_urls, replica.start_url())
    started = time.time()
    clocks = ["+90s", "-90s", None]
    nodes = [fleet.start_node(host, "CLOSESPIDER_PAGECOUNT=120", clock=clock) for host, clock in enumerate(clocks)]
    for node in nodes:
        assert node.wait(timeout=60) == 0, node_output(node)[-3000:]

    offsets = [log_clock_offset(node, started) for node in nodes]
    assert 80 < offsets[0] < 100 and -100 < offsets[1] < -80 and -10 < offsets[2] < 10, offsets
    pages = budget_pages(fleet.client)
    stats = replica.stats()
    received = responses(replica)
    twice = {path: count for path, count in stats["page_paths"].items() if count > 1}
    summary = (
        f"budget pages {pages}, {received} pages downloaded for a budget of 120,"
        f" {len(twice)} entry pages more than once ({sum(twice.values()) - len(twice)} extra downloads)"
    )
    assert [node.finish_reason for node in nodes] == ["closespider_pagecount"] * 3, summary
    assert pages == 120, summary
    assert fleet.client.hlen(KEYS.items) > 0
    assert not twice and received == 120, f"{summary}, e.g. {sorted(twice.items())[:3]}"


def test_a_partitioned_node_is_fenced_and_nothing_is_lost(fleet: Fleet) -> None:
    """Host 0 is cut off for twice the lease time while it holds leases, then plugged back
    in: the others take its leases over, its late acknowledgements are refused (fenced),
    and the crawl still ends with every entry stored once and the ledger whole."""
    replica = fleet.start_replica(300, 5, "--latency-ms", "40")
    answer = replica.answer_key(replica.start_url())
    client = fleet.client
    client.lpush(KEYS.start_urls, replica.start_url())
    nodes = [fleet.start_node(host, "CLOSESPIDER_PAGECOUNT=0", *PARTITION_SETTINGS) for host in range(3)]
    victim = nodes[0]

    # cut while the crawl is under way and host 0 holds leases of pages in flight
    deadline = time.monotonic() + 30
    while not ((held := leases_held(client, victim)) and budget_pages(client) >= 30):
        assert time.monotonic() < deadline and victim.process.poll() is None, node_output(victim)[-3000:]
        time.sleep(0.005)
    fleet.lan.cut(0)
    cut_at = time.monotonic()
    reclaimed_after = None  # until none of the leases it held at the cut is its own any more
    prefix = lease_owner_prefix(victim)
    while time.monotonic() - cut_at < PARTITION_SECONDS:
        if reclaimed_after is None:
            owners = client.hmget(KEYS.lease_owners, sorted(held))
            if not any(owner and owner.startswith(prefix) for owner in owners):
                reclaimed_after = time.monotonic() - cut_at
        time.sleep(0.01)
    fleet.lan.restore(0)

    for node in nodes:
        assert node.wait(timeout=60) == 0, node_output(node)[-3000:]
    stale = [node.stat("baike/leases/stale_acks") for node in nodes]
    twice = sum(1 for count in replica.stats()["page_paths"].values() if count > 1)
    retried = [node.stat("retry/count") for node in nodes]
    print(
        f"\npartition: host 0 held {len(held)} leases at the cut; the others had them"
        f" {'never' if reclaimed_after is None else f'{reclaimed_after:.2f} s'} after it"
        f" (lease {LEASE_SECONDS} s, link restored after {PARTITION_SECONDS} s);"
        f" stale acks per node {stale}; retries per node {retried}; {twice} entry pages downloaded twice"
    )
    assert [node.finish_reason for node in nodes] == ["finished"] * 3
    assert reclaimed_after is not None, "the partitioned node's leases went to the others"
    try:
        assert_crawled_exactly(client, answer)
    except AssertionError as exc:
        # a download that failed during the cut is retried (dont_filter): that retry is
        # enqueued even though its lease was fenced and reclaimed, so the page is
        # downloaded twice and enqueued twice for one fingerprint
        raise AssertionError(f"{exc}\nretries per node {retried} (the partitioned node's first)") from None
    assert "Lost Redis" in victim.log and "Redis is back" in victim.log, victim.log[-3000:]
    assert sum(stale) > 0, "the cut-off node's acknowledgements of leases it had lost are refused (fenced)"
