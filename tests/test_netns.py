"""The virtual LAN of tests/netns.py: addresses reachable, a cut host unreachable, nothing left."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from tests import netns
from tests.netns import VirtualLan

# A TCP listener on argv[1]:argv[2] that accepts connections until killed; prints "ready".
LISTEN = """
import socket, sys
server = socket.create_server((sys.argv[1], int(sys.argv[2])))
print("ready", flush=True)
while True:
    connection, _ = server.accept()
    connection.sendall(b"hello")
    connection.close()
"""
# Connects to argv[1]:argv[2] within argv[3] seconds; exit 0 and "hello" when it got the greeting.
CONNECT = """
import socket, sys
try:
    with socket.create_connection((sys.argv[1], int(sys.argv[2])), timeout=float(sys.argv[3])) as connection:
        print(connection.recv(5).decode())
except OSError as exc:
    print(type(exc).__name__, exc)
    sys.exit(1)
"""
PORT = 7000


@pytest.fixture(scope="module", autouse=True)
def namespaces_available() -> None:
    reason = netns.unavailable()
    if reason:
        pytest.skip(reason)


def listen(lan: VirtualLan, ns: str, ip: str) -> subprocess.Popen:
    process = lan.run_in(ns, [sys.executable, "-c", LISTEN, ip, str(PORT)], stdout=subprocess.PIPE, text=True)
    assert process.stdout.readline().strip() == "ready"
    return process


def reachable(lan: VirtualLan, ns: str, ip: str, timeout: float = 2.0) -> bool:
    done = lan.run(ns, [sys.executable, "-c", CONNECT, ip, str(PORT), str(timeout)], capture_output=True, text=True)
    print(f"{ns} -> {ip}: {done.stdout.strip()} {done.stderr.strip()[-300:]}")  # shown when a test fails
    return done.returncode == 0 and done.stdout.strip() == "hello"


def root_links() -> str:
    return subprocess.run(["ip", "-o", "link", "show"], capture_output=True, text=True, check=True).stdout


def test_hosts_reach_the_server_and_each_other_and_a_cut_host_is_unreachable() -> None:
    links_before = root_links()
    with VirtualLan(hosts=2) as lan:
        assert set(netns.namespaces()) >= {lan.server, lan.host(0), lan.host(1)}
        assert lan.server_ip != lan.host_ip(0) != lan.host_ip(1)
        assert root_links() == links_before, "nothing of the LAN is in the root namespace"
        listen(lan, lan.server, lan.server_ip)
        listen(lan, lan.host(1), lan.host_ip(1))
        assert reachable(lan, lan.host(0), lan.server_ip)
        assert reachable(lan, lan.host(1), lan.server_ip)
        assert reachable(lan, lan.host(0), lan.host_ip(1)), "hosts talk through the bridge"
        assert reachable(lan, lan.host(1), "127.0.0.1") is False, "each namespace has its own loopback"

        lan.cut(0)
        assert not reachable(lan, lan.host(0), lan.server_ip, timeout=1.0)
        assert not reachable(lan, lan.host(0), lan.host_ip(1), timeout=1.0)
        assert reachable(lan, lan.host(1), lan.server_ip), "only host 0 is cut off"
        lan.restore(0)
        assert reachable(lan, lan.host(0), lan.server_ip)
    assert not [name for name in netns.namespaces() if name.startswith(lan.name)]
    assert root_links() == links_before
    lan.down()  # idempotent


def test_the_server_has_no_route_out_and_the_root_namespace_no_route_in() -> None:
    with VirtualLan(hosts=1) as lan:
        routes = lan.run(lan.host(0), ["ip", "-4", "route"], capture_output=True, text=True, check=True).stdout
        assert routes.split() == f"{lan.subnet}.0/24 dev eth0 proto kernel scope link src {lan.host_ip(0)}".split()
        assert "default" not in lan.run(lan.server, ["ip", "-4", "route"], capture_output=True, text=True).stdout
        root = subprocess.run(["ip", "-4", "route"], capture_output=True, text=True, check=True).stdout
        assert lan.subnet not in root


def test_teardown_removes_everything_even_when_processes_run_inside() -> None:
    lan = VirtualLan(hosts=2).up()
    sleeper = lan.run_in(lan.host(1), ["sleep", "600"])
    lan.down()
    assert sleeper.poll() is not None
    assert not [name for name in netns.namespaces() if name.startswith(lan.name)]
    lan.down()


def test_leftovers_of_a_crashed_run_are_deleted_and_live_runs_kept() -> None:
    gone = subprocess.Popen(["true"])
    gone.wait()  # its pid is gone: like a test run that crashed without tearing down
    leftover = f"{netns.PREFIX}{gone.pid}-0-server"
    live = f"{netns.PREFIX}{os.getpid()}-999-server"  # this process is alive
    subprocess.run(["ip", "netns", "add", leftover], check=True)
    subprocess.run(["ip", "netns", "add", live], check=True)
    try:
        with VirtualLan(hosts=1):
            names = netns.namespaces()
            assert leftover not in names
            assert live in names
    finally:
        subprocess.run(["ip", "netns", "del", leftover], capture_output=True)
        subprocess.run(["ip", "netns", "del", live], capture_output=True)


def test_a_failed_build_leaves_nothing() -> None:
    lan = VirtualLan(hosts=1, subnet="not-an-address")
    with pytest.raises(RuntimeError):
        lan.up()
    assert not [name for name in netns.namespaces() if name.startswith(lan.name)]
