"""What the tests and the benchmarks share: private Redis services and a node's log.

* :class:`RedisServer`: a private redis-server on a free loopback port (never 6379), a
  directory of its own, no RDB snapshots; stopped by whoever started it.
* :class:`ClusterServers`: a Redis Cluster of such servers; :class:`SentinelSet`: a master,
  replicas and Sentinels watching them (plain or TLS only, with passwords).
* :class:`NodeLog`: what a finished ``scrapy crawl`` node wrote in its log (reason, stats,
  finish time), read back from Scrapy's final stats dump.

The tests own this module; the benchmarks import it (never the other way round).
"""

from __future__ import annotations

import re
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import redis
from redis.cluster import RedisCluster


def free_port() -> int:
    """A loopback TCP port nobody listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def setting_args(*settings: str) -> list[str]:
    """``-s NAME=value`` for each of ``settings``, as ``scrapy crawl`` takes them."""
    return [arg for setting in settings for arg in ("-s", setting)]


def node_settings(redis_url: str, mirror: str, log_path: Path | str) -> list[str]:
    """What every test or benchmark node runs with: its Redis, the replica, no AutoThrottle
    or robots.txt (the replica is ours), INFO logging into ``log_path``."""
    return [
        f"REDIS_URL={redis_url}",
        f"BAIKE_MIRROR={mirror}",
        "AUTOTHROTTLE_ENABLED=False",
        "ROBOTSTXT_OBEY=False",
        "LOG_LEVEL=INFO",
        f"LOG_FILE={log_path}",
    ]


@dataclass
class RedisServer:
    directory: Path
    port: int = field(default_factory=free_port)
    extra: Sequence[str] = ()
    process: subprocess.Popen | None = None
    # what every client of this server needs (a password, TLS files), the readiness probe's too
    client_options: dict[str, Any] = field(default_factory=dict)

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def client(self, **kwargs: Any) -> redis.Redis:
        return redis.Redis(host="127.0.0.1", port=self.port, db=0, **{**self.client_options, **kwargs})

    def start(self) -> RedisServer:
        """Start it (again, after a stop: same port and directory) and wait until it answers.

        Raises FileNotFoundError when redis-server is not installed.
        """
        binary = shutil.which("redis-server")
        if binary is None:
            raise FileNotFoundError("redis-server is not installed: run the README's setup, which installs it")
        self.process = subprocess.Popen(
            [
                binary,
                "--port",
                str(self.port),
                "--bind",
                "127.0.0.1",
                "--dir",
                str(self.directory),
                "--save",
                "",
                "--protected-mode",
                "yes",
                *self.extra,
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                if self.client().ping():
                    return self
            except redis.ConnectionError:
                time.sleep(0.05)
        raise RuntimeError(f"redis-server did not start on port {self.port}")

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 20) -> None:
        """Send ``sig`` and wait for the exit; SIGKILL if it takes longer than ``timeout``."""
        if self.process is None or self.process.poll() is not None:
            return
        self.process.send_signal(sig)
        try:
            self.process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(timeout=10)


@dataclass
class ClusterServers:
    """A private Redis Cluster: ``masters`` redis-servers in cluster mode (no replicas), each
    on a free loopback port with a directory of its own, joined by ``redis-cli --cluster create``."""

    directory: Path
    masters: int = 3
    servers: list[RedisServer] = field(default_factory=list)

    @property
    def url(self) -> str:
        """The ``redis+cluster://`` URL naming every master (baike's REDIS_URL for a cluster)."""
        return "redis+cluster://" + ",".join(f"127.0.0.1:{server.port}" for server in self.servers)

    def client(self, **kwargs: Any) -> RedisCluster:
        return RedisCluster(host="127.0.0.1", port=self.servers[0].port, **kwargs)

    def start(self) -> ClusterServers:
        """Start the masters, create the cluster and wait until every slot is served.

        Raises FileNotFoundError when redis-server or redis-cli is not installed, and
        RuntimeError when the cluster does not come up.
        """
        cli = shutil.which("redis-cli")
        if cli is None:
            raise FileNotFoundError("redis-cli is not installed: run the README's setup, which installs it")
        for number in range(self.masters):
            directory = self.directory / f"master{number}"
            directory.mkdir(parents=True, exist_ok=True)
            # the bus port is chosen too: the default, port + 10000, may be above 65535
            extra = (
                "--cluster-enabled",
                "yes",
                "--cluster-config-file",
                "nodes.conf",
                "--cluster-port",
                str(free_port()),
            )
            server = RedisServer(directory, extra=extra)
            self.servers.append(server.start())
        nodes = [f"127.0.0.1:{server.port}" for server in self.servers]
        created = subprocess.run(
            [cli, "--cluster", "create", *nodes, "--cluster-replicas", "0", "--cluster-yes"],
            capture_output=True,
            text=True,
            timeout=60,
        )
        if created.returncode != 0:
            raise RuntimeError(f"redis-cli --cluster create failed: {created.stdout[-500:]} {created.stderr[-500:]}")
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            if all(
                b"cluster_state:ok" in server.client().execute_command("CLUSTER", "INFO") for server in self.servers
            ):
                return self
            time.sleep(0.1)
        raise RuntimeError("the Redis Cluster did not reach cluster_state:ok")

    def flush(self) -> None:
        """Empty every master."""
        for server in self.servers:
            server.client().flushall()

    def stop(self) -> None:
        for server in self.servers:
            server.stop()


SERVICE = "baike-master"


@dataclass
class SentinelSet:
    """A master, ``replicas`` replicas (``replicaof``) and ``sentinels`` Sentinels watching
    them as the service :data:`SERVICE`, on free loopback ports under ``directory``.

    The Sentinels judge the master down after ``down_after_ms`` of silence, with a
    quorum of ``quorum``. Raises FileNotFoundError when redis-server is not installed and
    RuntimeError when it cannot run in Sentinel mode or the set does not come up.
    """

    directory: Path
    replicas: int = 1
    sentinels: int = 3
    quorum: int = 2
    down_after_ms: int = 1000
    failover_timeout_ms: int = 3000
    # the Sentinels' own password (requirepass), empty for none
    sentinel_password: str = ""
    # the servers' password (requirepass, masterauth, the Sentinels' auth-pass), empty for none
    password: str = ""
    # TLS only, everywhere (servers, replication, Sentinels), when given: the directory of
    # ca.crt, server.crt/.key and client.crt/.key (clients show the client certificate)
    tls: Path | None = None
    servers: list[RedisServer] = field(default_factory=list)
    sentinel_processes: list[tuple[int, subprocess.Popen]] = field(default_factory=list)

    @property
    def url(self) -> str:
        """The ``redis+sentinel://`` URL of the service, database 0."""
        hosts = ",".join(f"127.0.0.1:{port}" for port, _ in self.sentinel_processes)
        return f"{'rediss' if self.tls else 'redis'}+sentinel://{hosts}/{SERVICE}/0"

    def tls_options(self) -> dict[str, Any]:
        """redis-py's TLS arguments of a client of this set (none without TLS)."""
        if self.tls is None:
            return {}
        return {
            "ssl": True,
            "ssl_ca_certs": str(self.tls / "ca.crt"),
            "ssl_certfile": str(self.tls / "client.crt"),
            "ssl_keyfile": str(self.tls / "client.key"),
        }

    def _tls_config(self) -> list[tuple[str, str]]:
        """The servers' and Sentinels' TLS configuration: client certificates required,
        replication and the Sentinels' own links over TLS too (with the client certificate)."""
        if self.tls is None:
            return []
        return [
            ("tls-cert-file", str(self.tls / "server.crt")),
            ("tls-key-file", str(self.tls / "server.key")),
            ("tls-client-cert-file", str(self.tls / "client.crt")),
            ("tls-client-key-file", str(self.tls / "client.key")),
            ("tls-ca-cert-file", str(self.tls / "ca.crt")),
            ("tls-auth-clients", "yes"),
            ("tls-replication", "yes"),
        ]

    @property
    def master(self) -> RedisServer:
        return self.servers[0]

    def start(self) -> SentinelSet:
        """Start the servers and the Sentinels; wait until every Sentinel knows the replicas
        and the other Sentinels (without that, no failover can be agreed on)."""
        for number in range(1 + self.replicas):
            directory = self.directory / f"server{number}"
            directory.mkdir(parents=True, exist_ok=True)
            # no 5 s pause before the first sync of a replica (Redis 7's default for diskless sync)
            tls = (arg for name, value in self._tls_config() for arg in (f"--{name}", value))
            extra = ("--repl-diskless-sync-delay", "0", *tls)
            if self.password:
                extra += ("--requirepass", self.password, "--masterauth", self.password)
            if number:
                extra += ("--replicaof", "127.0.0.1", str(self.master.port))
            options = {"password": self.password or None, **self.tls_options()}
            server = RedisServer(directory=directory, extra=extra, client_options=options)
            if self.tls:
                server.extra = (*extra, "--port", "0", "--tls-port", str(server.port))
            self.servers.append(server.start())
        for number in range(self.sentinels):
            self.sentinel_processes.append(self._start_sentinel(number))
        self._wait_until_known()
        return self

    def _start_sentinel(self, number: int) -> tuple[int, subprocess.Popen]:
        port = free_port()
        directory = self.directory / f"sentinel{number}"
        directory.mkdir(parents=True, exist_ok=True)
        conf = directory / "sentinel.conf"
        listen = f"port 0\ntls-port {port}\n" if self.tls else f"port {port}\n"
        tls = "".join(f"{name} {value}\n" for name, value in self._tls_config())
        conf.write_text(
            f"{listen}bind 127.0.0.1\ndir {directory}\n{tls}"
            f"sentinel monitor {SERVICE} 127.0.0.1 {self.master.port} {self.quorum}\n"
            f"sentinel down-after-milliseconds {SERVICE} {self.down_after_ms}\n"
            f"sentinel failover-timeout {SERVICE} {self.failover_timeout_ms}\n"
            f"sentinel parallel-syncs {SERVICE} 1\n"
        )
        if self.password:
            with conf.open("a") as config:
                config.write(f"sentinel auth-pass {SERVICE} {self.password}\n")
        if self.sentinel_password:
            with conf.open("a") as config:
                config.write(f"requirepass {self.sentinel_password}\nsentinel sentinel-pass {self.sentinel_password}\n")
        binary = shutil.which("redis-server")
        if binary is None:
            raise FileNotFoundError("redis-server is not installed: run the README's setup, which installs it")
        process = subprocess.Popen(
            [binary, str(conf), "--sentinel"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            if process.poll() is not None:
                raise RuntimeError(f"redis-server cannot run in Sentinel mode (exit code {process.returncode})")
            try:
                probe = redis.Redis(
                    host="127.0.0.1",
                    port=port,
                    socket_timeout=1,
                    password=self.sentinel_password or None,
                    **self.tls_options(),
                )
                if probe.ping():
                    return port, process
            except redis.ConnectionError:
                time.sleep(0.05)
        process.kill()
        raise RuntimeError(f"the Sentinel on port {port} did not start")

    def sentinel_client(self, number: int = 0) -> redis.Redis:
        return redis.Redis(
            host="127.0.0.1",
            port=self.sentinel_processes[number][0],
            socket_timeout=2,
            password=self.sentinel_password or None,
            **self.tls_options(),
        )

    def _wait_until_known(self, timeout: float = 30.0) -> None:
        """Until every replica holds the master's data (its link is up) and every Sentinel
        knows the replicas and the other Sentinels."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            links = [server.client().info("replication").get("master_link_status") for server in self.servers[1:]]
            if any(link != "up" for link in links):
                time.sleep(0.05)
                continue
            states = [self.sentinel_client(n).sentinel_master(SERVICE) for n in range(len(self.sentinel_processes))]
            if all(
                state["num-slaves"] == self.replicas and state["num-other-sentinels"] == self.sentinels - 1
                for state in states
            ):
                return
            time.sleep(0.1)
        raise RuntimeError("the Sentinels did not learn the replicas and each other in time")

    def master_port(self) -> int:
        """The port of the master the Sentinels name now."""
        return int(self.sentinel_client().sentinel_get_master_addr_by_name(SERVICE)[1])

    def wait_for_failover(self, old_port: int, timeout: float = 30.0) -> float:
        """Wait until every Sentinel names a master other than ``old_port`` and that server
        answers as a master; returns the seconds it took."""
        started = time.monotonic()
        while time.monotonic() < started + timeout:
            ports = {
                int(self.sentinel_client(n).sentinel_get_master_addr_by_name(SERVICE)[1])
                for n in range(len(self.sentinel_processes))
            }
            if len(ports) == 1 and old_port not in ports:
                port = ports.pop()
                server = next(server for server in self.servers if server.port == port)
                if server.client().execute_command("ROLE")[0] == b"master":
                    return time.monotonic() - started
            time.sleep(0.05)
        raise RuntimeError("no failover within the timeout")

    def stop(self) -> None:
        for _, process in self.sentinel_processes:
            if process.poll() is None:
                process.terminate()
                process.wait(timeout=10)
        for server in self.servers:
            server.stop()


# -- a node's log ---------------------------------------------------------------------------

_FINISH_TIME = re.compile(r"'finish_time': datetime\.datetime\((\d+), (\d+), (\d+), (\d+), (\d+), (\d+)(?:, (\d+))?")


class NodeLog:
    """Mixin for anything with a ``log_path`` of a node's Scrapy log."""

    log_path: Path

    @property
    def log(self) -> str:
        try:
            return self.log_path.read_text(encoding="utf-8", errors="replace")
        except FileNotFoundError:
            return ""

    @property
    def finish_reason(self) -> str | None:
        match = re.search(r"'finish_reason': '([^']+)'", self.log)
        return match.group(1) if match else None

    def stat(self, name: str) -> int:
        match = re.search(rf"'{re.escape(name)}': (\d+)", self.log)
        return int(match.group(1)) if match else 0

    @property
    def finish_time(self) -> float | None:
        """When the spider closed (Scrapy's ``finish_time`` stat, to the microsecond), Unix time."""
        match = _FINISH_TIME.search(self.log)
        if not match:
            return None
        parts = [int(part or 0) for part in match.groups()]
        return datetime(*parts[:6], parts[6], tzinfo=UTC).timestamp()
