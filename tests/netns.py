"""A virtual LAN of Linux network namespaces, for tests of nodes on separate machines.

One "server" namespace holds a bridge; each of N "host" namespaces is joined to it by
a veth pair and has an address of its own on a private /24 that exists only inside
these namespaces. Nothing is created in the root namespace: the veth pairs are made
inside the server namespace and their host ends moved straight into the host
namespaces, so the test's traffic can only travel on these links (and on loopback).
The test process itself talks to what runs in the server namespace through Unix
sockets (which are not bound to a network namespace) or ``run_in(...)``.

    with VirtualLan(hosts=3) as lan:
        redis = lan.run_in(lan.server, ["redis-server", "--bind", lan.server_ip, ...])
        node = lan.run_in(lan.host(0), ["python", "-m", "scrapy", ...])
        lan.cut(0)        # host 0's cable is pulled at the switch: its packets vanish
        lan.restore(0)

Namespace names carry the pid of the test process (``baike-lan-<pid>-<n>-...``), so
parallel runs never collide; leftovers of crashed runs (whose pid is gone) are deleted
when a new LAN is built. Teardown deletes every namespace it made, and with them every
link, and is idempotent. Needs root and iproute2: :func:`unavailable` says why not.
"""

from __future__ import annotations

import contextlib
import itertools
import logging
import os
import re
import shutil
import signal
import subprocess
import time
from collections.abc import Sequence
from typing import Any

logger = logging.getLogger(__name__)

PREFIX = "baike-lan-"
# a private /24 that only ever exists inside these namespaces
DEFAULT_SUBNET = "10.231.77"
SERVER_SUFFIX = 1
HOST_SUFFIX = 11
BRIDGE = "br0"
HOST_IFACE = "eth0"
_counter = itertools.count()


def unavailable() -> str | None:
    """Why namespaces cannot be built here (for ``pytest.skip``), or None when they can."""
    if os.geteuid() != 0:
        return "network namespaces need root (ip netns add)"
    if shutil.which("ip") is None:
        return "iproute2 is not installed (no `ip`): run scripts/setup.sh --tests as root"
    probe = f"{PREFIX}{os.getpid()}-probe"
    created = subprocess.run(["ip", "netns", "add", probe], capture_output=True, text=True)
    if created.returncode != 0:
        return f"cannot create a network namespace: {created.stderr.strip()}"
    try:
        bridge = subprocess.run(
            ["ip", "-n", probe, "link", "add", BRIDGE, "type", "bridge"], capture_output=True, text=True
        )
        if bridge.returncode != 0:
            return f"cannot create a bridge in a network namespace: {bridge.stderr.strip()}"
        veth = subprocess.run(
            ["ip", "-n", probe, "link", "add", "v0", "type", "veth", "peer", "name", "v1"],
            capture_output=True,
            text=True,
        )
        if veth.returncode != 0:
            return f"cannot create a veth pair in a network namespace: {veth.stderr.strip()}"
    finally:
        subprocess.run(["ip", "netns", "del", probe], capture_output=True)
    return None


def _ip(*args: str, check: bool = True) -> subprocess.CompletedProcess:
    done = subprocess.run(["ip", *args], capture_output=True, text=True)
    if check and done.returncode != 0:
        raise RuntimeError(f"ip {' '.join(args)} failed: {done.stderr.strip()}")
    return done


def namespaces() -> list[str]:
    """Every named network namespace on this machine."""
    listing = _ip("netns", "list", check=False).stdout
    return [line.split()[0] for line in listing.splitlines() if line.strip()]


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def delete_leftovers() -> list[str]:
    """Delete the namespaces of earlier runs whose test process is gone; returns their names.

    Processes still inside one (started by that crashed run) are not signalled, only
    named in the log: the namespace disappears with the last of them.
    """
    deleted = []
    for name in namespaces():
        match = re.fullmatch(rf"{re.escape(PREFIX)}(\d+)-.*", name)
        if not match or _pid_alive(int(match.group(1))):
            continue
        pids = _ip("netns", "pids", name, check=False).stdout.split()
        if pids:
            logger.warning("leftover namespace %s still holds processes %s", name, " ".join(pids))
        _ip("netns", "del", name, check=False)
        deleted.append(name)
    return deleted


class VirtualLan:
    """A bridge in a server namespace and ``hosts`` host namespaces, each on one veth pair."""

    def __init__(self, hosts: int = 3, subnet: str = DEFAULT_SUBNET):
        if not 1 <= hosts <= 200:
            raise ValueError(f"hosts must be 1 to 200, not {hosts}")
        self.hosts = hosts
        self.subnet = subnet
        self.name = f"{PREFIX}{os.getpid()}-{next(_counter)}"
        self.server = f"{self.name}-server"
        self._hosts = [f"{self.name}-host{i}" for i in range(hosts)]
        self._made: list[str] = []
        self._processes: list[subprocess.Popen] = []

    # -- addresses and names ----------------------------------------------------------

    @property
    def server_ip(self) -> str:
        return f"{self.subnet}.{SERVER_SUFFIX}"

    def host_ip(self, i: int) -> str:
        self._check(i)
        return f"{self.subnet}.{HOST_SUFFIX + i}"

    def host(self, i: int) -> str:
        """The name of host ``i``'s namespace."""
        self._check(i)
        return self._hosts[i]

    def port(self, i: int) -> str:
        """The bridge port (in the server namespace) of host ``i``'s veth pair."""
        self._check(i)
        return f"port{i}"

    # -- building and tearing down -------------------------------------------------------

    def __enter__(self) -> VirtualLan:
        self.up()
        return self

    def __exit__(self, *exc: object) -> None:
        self.down()

    def up(self) -> VirtualLan:
        delete_leftovers()
        try:
            self._add_namespace(self.server)
            _ip("-n", self.server, "link", "add", BRIDGE, "type", "bridge")
            _ip("-n", self.server, "addr", "add", f"{self.server_ip}/24", "dev", BRIDGE)
            _ip("-n", self.server, "link", "set", BRIDGE, "up")
            for i, host in enumerate(self._hosts):
                self._add_namespace(host)
                port = self.port(i)
                # made inside the server namespace, the host end moved straight into its host:
                # no interface of this LAN ever exists in the root namespace
                _ip("-n", self.server, "link", "add", port, "type", "veth", "peer", "name", HOST_IFACE, "netns", host)
                _ip("-n", self.server, "link", "set", port, "master", BRIDGE)
                _ip("-n", self.server, "link", "set", port, "up")
                _ip("-n", host, "addr", "add", f"{self.host_ip(i)}/24", "dev", HOST_IFACE)
                _ip("-n", host, "link", "set", HOST_IFACE, "up")
        except BaseException:
            self.down()
            raise
        return self

    def _add_namespace(self, name: str) -> None:
        _ip("netns", "add", name)
        self._made.append(name)
        _ip("-n", name, "link", "set", "lo", "up")

    def down(self) -> None:
        """Stop what ``run_in`` started and is still running (closing its pipes), and delete every namespace
        (and so every link) this LAN made. Safe to call again, and after a failed ``up``."""
        for process in self._processes:
            if process.poll() is None:
                process.kill()
        for process in self._processes:
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                logger.warning("process %d did not exit after SIGKILL", process.pid)
            for stream in (process.stdin, process.stdout, process.stderr):
                if stream is not None:
                    stream.close()
        self._processes.clear()
        for name in reversed(self._made):
            # anything still inside was started in it by this test (e.g. by run() callers
            # that forgot it): it would keep the namespace's links alive
            for pid in _ip("netns", "pids", name, check=False).stdout.split():
                with contextlib.suppress(ProcessLookupError, ValueError):
                    os.kill(int(pid), signal.SIGKILL)
            _ip("netns", "del", name, check=False)
        self._made.clear()

    # -- running things on a host ------------------------------------------------------

    def command(self, ns: str, argv: Sequence[str]) -> list[str]:
        """``argv`` run inside namespace ``ns``. ``ip netns exec`` execs the command, so
        the process keeps the pid of the ``ip`` process that was started."""
        return ["ip", "netns", "exec", ns, *argv]

    def run_in(self, ns: str, argv: Sequence[str], **popen_kwargs: Any) -> subprocess.Popen:
        """Start ``argv`` inside namespace ``ns``; it is killed at teardown if still running."""
        process = subprocess.Popen(self.command(ns, argv), **popen_kwargs)
        self._processes.append(process)
        return process

    def run(self, ns: str, argv: Sequence[str], **run_kwargs: Any) -> subprocess.CompletedProcess:
        """Run ``argv`` inside namespace ``ns`` to its end (``subprocess.run``)."""
        return subprocess.run(self.command(ns, argv), **run_kwargs)

    # -- partitions ------------------------------------------------------------------

    def cut(self, i: int) -> None:
        """Pull host ``i``'s cable at the switch: its bridge port goes down. The host's own
        interface stays up and configured (it sees no carrier), so its packets vanish
        without an error, as in a real partition; the rest of the LAN is untouched."""
        _ip("-n", self.server, "link", "set", self.port(i), "down")

    def restore(self, i: int) -> None:
        """Plug host ``i`` back in, with fresh ARP caches on both sides: an address the
        host failed to resolve during the cut would otherwise answer "No route to host"
        for up to a second more (a real network heals the same way, only less predictably)."""
        _ip("-n", self.server, "link", "set", self.port(i), "up")
        _ip("-n", self.host(i), "neigh", "flush", "dev", HOST_IFACE, check=False)
        _ip("-n", self.server, "neigh", "flush", "dev", BRIDGE, "to", self.host_ip(i), check=False)
        deadline = time.monotonic() + 5
        while "LOWER_UP" not in _ip("-n", self.host(i), "link", "show", HOST_IFACE).stdout:
            if time.monotonic() > deadline:
                raise RuntimeError(f"host {i}'s link did not come back up")
            time.sleep(0.01)

    def _check(self, i: int) -> None:
        if not 0 <= i < self.hosts:
            raise IndexError(f"host {i} is not one of 0..{self.hosts - 1}")
