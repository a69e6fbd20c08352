"""A private redis-server for the tests and the benchmarks: a free loopback port (never
6379), a directory of its own, no RDB snapshots; stopped by whoever started it."""

from __future__ import annotations

import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import redis
from redis.cluster import RedisCluster


def free_port() -> int:
    """A loopback TCP port nobody listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@dataclass
class RedisServer:
    directory: Path
    port: int = field(default_factory=free_port)
    extra: Sequence[str] = ()
    process: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def client(self, **kwargs: Any) -> redis.Redis:
        return redis.Redis(host="127.0.0.1", port=self.port, db=0, **kwargs)

    def start(self) -> RedisServer:
        """Start it (again, after a stop: same port and directory) and wait until it answers.

        Raises FileNotFoundError when redis-server is not installed.
        """
        binary = shutil.which("redis-server")
        if binary is None:
            raise FileNotFoundError("redis-server is not installed: run the README's setup, which installs it")
        self.process = subprocess.Popen(
            [binary, "--port", str(self.port), "--bind", "127.0.0.1", "--dir", str(self.directory),
             "--save", "", "--protected-mode", "yes", *self.extra],
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
            extra = ("--cluster-enabled", "yes", "--cluster-config-file", "nodes.conf", "--cluster-port", str(free_port()))
            server = RedisServer(directory, extra=extra)
            self.servers.append(server.start())
        nodes = [f"127.0.0.1:{server.port}" for server in self.servers]
        created = subprocess.run(
            [cli, "--cluster", "create", *nodes, "--cluster-replicas", "0", "--cluster-yes"],
            capture_output=True, text=True, timeout=60,
        )
        if created.returncode != 0:
            raise RuntimeError(f"redis-cli --cluster create failed: {created.stdout[-500:]} {created.stderr[-500:]}")
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            if all(b"cluster_state:ok" in server.client().execute_command("CLUSTER", "INFO") for server in self.servers):
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
