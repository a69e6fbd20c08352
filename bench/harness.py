"""What every benchmark needs: a private redis-server, the replica, real nodes, numbers.

Everything a benchmark starts is registered with a :class:`Lab` and stopped by it
(also on Ctrl-C); the redis-server runs on a free loopback port in a temporary
directory, never on 6379. Nodes are real ``scrapy crawl baike`` processes (run
through :mod:`bench.node`, which counts their Redis traffic); their CPU time and
peak RSS come from the kernel (``wait4``) when they exit.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import logging
import os
import platform
import re
import shutil
import signal
import statistics
import subprocess
import sys
import tarfile
import tempfile
import time
import urllib.request
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psutil
import redis

from tests.support import NodeLog, RedisServer, node_settings, setting_args

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "bench" / "results"
PYTHON = sys.executable

# Commands the benchmark itself sends to Redis, left out of the nodes' counts.
BENCH_COMMANDS = frozenset({"info", "config|resetstat", "config|get", "config|set", "flushall", "ping"})
# Lua script calls: their time includes the commands they run.
SCRIPT_COMMANDS = frozenset({"evalsha", "eval", "evalsha_ro", "eval_ro"})

logger = logging.getLogger("bench")


def rounds_args(
    doc: str | None, argv: list[str] | None = None, flush_interval: bool = False, shard0_share: bool = False
) -> argparse.Namespace:
    """The options of a bench of rounds of crawls (``--quick``: 1 round of 300 pages; with
    ``flush_interval``, ``--flush-interval`` for SCHEDULER_FLUSH_INTERVAL in every case; with
    ``shard0_share``, ``--shard0-share`` for BAIKE_SHARD0_SHARE)."""
    parser = argparse.ArgumentParser(description=doc, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="1 round with a budget of 300 pages")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--budget", type=int, default=2000)
    parser.add_argument("--entries", type=int, default=100_000)
    parser.add_argument("--timeout", type=float, default=300.0)
    parser.add_argument("--keep", action="store_true", help="keep the node logs")
    if flush_interval:
        parser.add_argument("--flush-interval", type=float, default=0.0, help="SCHEDULER_FLUSH_INTERVAL of every node")
    if shard0_share:
        parser.add_argument(
            "--shard0-share", type=float, default=0.0, help="BAIKE_SHARD0_SHARE of every node (0: the default)"
        )
    args = parser.parse_args(argv)
    if args.quick:
        args.rounds, args.budget = 1, 300
    return args


def machine() -> dict[str, Any]:
    """What the numbers were measured on."""
    return {
        "cpus": os.cpu_count(),
        "python": platform.python_version(),
        "platform": platform.platform(),
        "memory_gib": round(psutil.virtual_memory().total / 2**30, 1),
        "redis": redis_version(),
    }


def redis_version() -> str:
    binary = shutil.which("redis-server")
    if binary is None:
        return "missing"
    output = subprocess.run([binary, "--version"], capture_output=True, text=True, check=False).stdout
    match = re.search(r"v=(\S+)", output)
    return match.group(1) if match else output.strip()


def process_cpu(pid: int) -> float:
    """CPU seconds (user + system) of a live process, 0 when it is gone."""
    try:
        times = psutil.Process(pid).cpu_times()
    except psutil.Error:
        return 0.0
    return times.user + times.system


# -- redis-server ------------------------------------------------------------------------


class MeasuredRedis(RedisServer):
    """The benchmarks' redis-server: no persistence at all, and its CPU and commands measured."""

    def __init__(self, directory: Path, extra: Sequence[str] = ()):
        super().__init__(directory=directory, extra=("--appendonly", "no", *extra))

    def client(self, **kwargs: Any) -> redis.Redis:
        return super().client(socket_timeout=600, **kwargs)

    def cpu_seconds(self) -> float:
        return process_cpu(self.process.pid) if self.process else 0.0

    def command_stats(self) -> dict[str, dict[str, int]]:
        """Calls and microseconds per command since the last CONFIG RESETSTAT.

        Commands run inside Lua scripts are counted under their own names and also
        in their EVALSHA's time.
        """
        stats = self.client().info("commandstats")
        return {
            name.removeprefix("cmdstat_"): {"calls": int(value["calls"]), "usec": int(value["usec"])}
            for name, value in stats.items()
        }

    def fresh(self) -> None:
        """Empty the database and zero the command counters before a run."""
        client = self.client()
        client.flushall()
        client.config_resetstat()


# -- the replica -------------------------------------------------------------------------


@dataclass
class Replica:
    entries: int = 100_000
    seed: int = 1
    options: Sequence[str] = ()
    process: subprocess.Popen | None = None
    url: str = ""
    _start_url: str = ""
    # the project tree the replica is run from (another commit's: Lab.export_tree)
    root: Path = ROOT

    def start(self) -> Replica:
        self.process = subprocess.Popen(
            [
                PYTHON,
                "-m",
                "replica",
                "--port",
                "0",
                "--entries",
                str(self.entries),
                "--seed",
                str(self.seed),
                *self.options,
            ],
            cwd=self.root,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            text=True,
        )
        line = self.process.stdout.readline()
        match = re.search(r"(http://127\.0\.0\.1:\d+)", line)
        if not match:
            self.stop()
            raise RuntimeError(f"the replica did not start: {line!r}")
        self.url = match.group(1)
        return self

    def _get(self, path: str) -> bytes:
        with urllib.request.urlopen(f"{self.url}/__replica__/{path}", timeout=30) as answer:
            return answer.read()

    def stats(self) -> dict[str, Any]:
        return json.loads(self._get("stats"))

    def reset(self) -> None:
        self._get("reset")

    def start_url(self) -> str:
        """The site's start URL, worked out in a child process: building the site
        takes this process's memory up by 200 MB, which every node it starts would
        then report as its own peak RSS (the kernel carries it over exec)."""
        if not self._start_url:
            code = (
                "import sys; from replica.site import Site; print(Site(int(sys.argv[1]), int(sys.argv[2])).start_url())"
            )
            self._start_url = subprocess.run(
                [PYTHON, "-c", code, str(self.entries), str(self.seed)],
                cwd=ROOT,
                capture_output=True,
                text=True,
                check=True,
                timeout=120,
            ).stdout.strip()
        return self._start_url

    def cpu_seconds(self) -> float:
        return process_cpu(self.process.pid) if self.process else 0.0

    def stop(self) -> None:
        stop_process(self.process)
        if self.process and self.process.stdout:
            self.process.stdout.close()


def answered(stats: dict[str, Any]) -> int:
    """Answers a crawler receives as pages: every status but redirects (those are followed)."""
    return sum(count for status, count in stats["by_status"].items() if not status.startswith("3"))


def downloaded_twice(stats: dict[str, Any]) -> int:
    """Entry pages the replica served more than once."""
    return sum(count - 1 for count in stats["page_paths"].values() if count > 1)


# -- nodes -------------------------------------------------------------------------------


@dataclass
class Node(NodeLog):
    """One real ``scrapy crawl baike`` process."""

    name: str
    process: subprocess.Popen
    log_path: Path
    counts_path: Path
    started: float = field(default_factory=time.monotonic)
    exited_at: float | None = None
    returncode: int | None = None
    user_cpu: float = 0.0
    system_cpu: float = 0.0
    peak_rss: int = 0  # bytes, the largest VmHWM seen while it ran

    @property
    def pid(self) -> int:
        return self.process.pid

    def poll(self) -> bool:
        """True once the node has exited (its rusage is then recorded)."""
        if self.exited_at is not None:
            return True
        pid, status, usage = os.wait4(self.pid, os.WNOHANG)
        if pid == 0:
            return False
        self._record(status, usage)
        return True

    def wait(self, timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        while not self.poll():
            if time.monotonic() >= deadline:
                return False
            time.sleep(0.01)
        return True

    def _record(self, status: int, usage: Any) -> None:
        self.exited_at = time.monotonic()
        self.returncode = os.waitstatus_to_exitcode(status)
        # Popen must not wait for a pid that is already reaped
        self.process.returncode = self.returncode
        self.user_cpu, self.system_cpu = usage.ru_utime, usage.ru_stime

    def sample_memory(self) -> None:
        """Note the node's resident high-water mark (wait4's ru_maxrss would include
        the parent's, which a child inherits across fork and exec)."""
        if self.exited_at is not None:
            return
        try:
            with open(f"/proc/{self.pid}/status", encoding="ascii") as status:
                for line in status:
                    if line.startswith("VmHWM:"):
                        self.peak_rss = max(self.peak_rss, int(line.split()[1]) * 1024)
                        return
        except (FileNotFoundError, ProcessLookupError, ValueError):
            return

    def cpu_seconds(self) -> float:
        if self.exited_at is not None:
            return self.user_cpu + self.system_cpu
        return process_cpu(self.pid)

    def kill(self, sig: int = signal.SIGKILL) -> None:
        if self.exited_at is None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(self.pid, sig)

    def stop(self, timeout: float = 15) -> None:
        """SIGTERM, then SIGKILL; always reaps."""
        if self.poll():
            return
        self.kill(signal.SIGTERM)
        if not self.wait(timeout):
            self.kill(signal.SIGKILL)
            self.wait(10)

    @property
    def node_id(self) -> str | None:
        match = re.search(r"Node (\S+) joined the crawl", self.log)
        return match.group(1) if match else None

    def redis_counts(self) -> dict[str, int]:
        """Client-side Redis counts written by :mod:`bench.node` at exit (empty if killed)."""
        try:
            return json.loads(self.counts_path.read_text())
        except (FileNotFoundError, json.JSONDecodeError):
            return {}


def node_args(
    redis_url: str, mirror: str, log_path: Path, settings: Iterable[str], profile: Path | None = None
) -> list[str]:
    profiler = ["-m", "cProfile", "-o", str(profile)] if profile else []
    node = node_settings(redis_url, mirror, log_path)
    return [
        PYTHON,
        *profiler,
        "-m",
        "bench.node",
        "crawl",
        "baike",
        *setting_args(*node, "BAIKE_CLUSTER_RATE=0", *settings),
    ]


# -- the lab: owns everything a benchmark starts ------------------------------------------


class Lab:
    """Starts and always stops a benchmark's processes; a context manager."""

    def __init__(self, name: str, keep: bool = False):
        self.name = name
        self.keep = keep
        self.directory = Path(tempfile.mkdtemp(prefix=f"baike-bench-{name}-"))
        self.redis: MeasuredRedis | None = None
        self.replica: Replica | None = None
        self.nodes: list[Node] = []
        self._previous_handlers: dict[int, Any] = {}

    def __enter__(self) -> Lab:
        for signum in (signal.SIGINT, signal.SIGTERM):
            self._previous_handlers[signum] = signal.signal(signum, self._interrupted)
        return self

    def __exit__(self, *exc_info: Any) -> None:
        self.close()
        for signum, handler in self._previous_handlers.items():
            signal.signal(signum, handler)

    def _interrupted(self, signum: int, frame: Any) -> None:
        raise KeyboardInterrupt(f"signal {signum}")

    def start_redis(self, *extra: str) -> MeasuredRedis:
        directory = self.directory / "redis"
        directory.mkdir(exist_ok=True)
        self.redis = MeasuredRedis(directory=directory, extra=extra).start()
        return self.redis

    def start_replica(self, entries: int, seed: int = 1, *options: str) -> Replica:
        self.replica = Replica(entries=entries, seed=seed, options=options).start()
        return self.replica

    def export_tree(self, commit: str) -> Path:
        """The project as of ``commit`` (``git archive``), unpacked in the lab's directory:
        a baseline case runs its nodes there. Read-only for the repository."""
        target = self.directory / f"tree-{commit}"
        if not target.exists():
            target.mkdir()
            archive = subprocess.run(
                ["git", "-C", str(ROOT), "archive", "--format=tar", commit], check=True, capture_output=True
            ).stdout
            with tarfile.open(fileobj=io.BytesIO(archive)) as tar:
                tar.extractall(target, filter="data")
        return target

    def start_node(
        self, settings: Iterable[str], tag: str = "", profile: Path | None = None, root: Path | None = None
    ) -> Node:
        index = len(self.nodes)
        name = f"node{index:03d}{tag}"
        log_path = self.directory / f"{name}.log"
        counts_path = self.directory / f"{name}.redis.json"
        env = {key: value for key, value in os.environ.items() if key not in ("REDIS_URL", "BAIKE_MIRROR")}
        env["BENCH_REDIS_COUNTS"] = str(counts_path)
        with log_path.with_suffix(".err").open("w") as errors:
            process = subprocess.Popen(
                node_args(self.redis.url, self.replica.url, log_path, settings, profile),
                cwd=root or ROOT,
                env=env,
                stdout=subprocess.DEVNULL,
                stderr=errors,
            )
        node = Node(name=name, process=process, log_path=log_path, counts_path=counts_path)
        self.nodes.append(node)
        return node

    def close(self) -> None:
        for node in self.nodes:
            node.stop()
        if self.replica:
            self.replica.stop()
        if self.redis:
            self.redis.stop()
        if self.keep:
            print(f"kept logs in {self.directory}")
        else:
            shutil.rmtree(self.directory, ignore_errors=True)


def stop_process(process: subprocess.Popen | None, timeout: float = 15) -> None:
    if process is None or process.poll() is not None:
        return
    process.terminate()
    try:
        process.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait(timeout=10)


# -- one crawl, measured -----------------------------------------------------------------


@dataclass
class Snapshot:
    """CPU seconds of every process, and the replica's answers, at one moment."""

    at: float
    answered: int
    nodes: list[float]
    redis: float
    replica: float
    bench: float
    machine_busy: float

    @classmethod
    def take(cls, lab: Lab, nodes: list[Node], stats: dict[str, Any]) -> Snapshot:
        return cls(
            at=time.monotonic(),
            answered=answered(stats),
            nodes=[node.cpu_seconds() for node in nodes],
            redis=lab.redis.cpu_seconds(),
            replica=lab.replica.cpu_seconds(),
            bench=process_cpu(os.getpid()),
            machine_busy=machine_busy(),
        )


def machine_busy() -> float:
    """CPU seconds every core of the machine spent busy since boot."""
    times = psutil.cpu_times()
    return sum(times) - times.idle - getattr(times, "iowait", 0.0)


@dataclass
class CrawlRun:
    """What one crawl of one case measured."""

    case: str
    nodes: list[Node]
    budget: int
    seeded_at: float
    first: Snapshot | None = None
    done: Snapshot | None = None
    budget_reached_at: float | None = None
    final_stats: dict[str, Any] = field(default_factory=dict)
    commands: dict[str, dict[str, int]] = field(default_factory=dict)
    timed_out: bool = False

    @property
    def pages(self) -> int:
        return answered(self.final_stats) if self.final_stats else 0

    def window(self) -> float:
        return self.done.at - self.first.at

    def pages_per_second(self) -> float:
        return (self.done.answered - self.first.answered) / self.window()

    def summary(self) -> dict[str, Any]:
        """The per-run numbers every benchmark reports."""
        window_pages = self.done.answered - self.first.answered
        node_cpu = sum(after - before for before, after in zip(self.first.nodes, self.done.nodes, strict=True))
        ours = (
            node_cpu
            + (self.done.redis - self.first.redis)
            + (self.done.replica - self.first.replica)
            + (self.done.bench - self.first.bench)
        )
        other = (self.done.machine_busy - self.first.machine_busy) - ours
        server_commands = sum(stat["calls"] for name, stat in self.commands.items() if name not in BENCH_COMMANDS)
        script_usec = sum(stat["usec"] for name, stat in self.commands.items() if name in SCRIPT_COMMANDS)
        counts = [node.redis_counts() for node in self.nodes]
        replies = sum(count.get("replies", 0) for count in counts)
        sent: dict[str, int] = {}
        for count in counts:
            for name, calls in count.get("sent", {}).items():
                sent[name] = sent.get(name, 0) + calls
        writes = sum(count.get("writes", 0) for count in counts)
        pages = max(self.pages, 1)
        exits = [node.exited_at for node in self.nodes if node.exited_at is not None]
        closes = [node.finish_time for node in self.nodes]
        return {
            "case": self.case,
            "nodes": len(self.nodes),
            "pages": self.pages,
            "overshoot": self.pages - self.budget,
            "window_s": round(self.window(), 3),
            "pages_per_s": round(self.pages_per_second(), 2),
            "node_cpu_ms_per_page": round(1000 * node_cpu / window_pages, 3),
            "redis_cpu_ms_per_page": round(1000 * (self.done.redis - self.first.redis) / window_pages, 4),
            "replica_cpu_share": round((self.done.replica - self.first.replica) / self.window(), 3),
            "node_cpu_share": round(node_cpu / self.window(), 3),
            "redis_cpu_share": round((self.done.redis - self.first.redis) / self.window(), 3),
            "bench_cpu_share": round((self.done.bench - self.first.bench) / self.window(), 3),
            "other_cpu_share": round(max(other, 0.0) / self.window(), 3),
            "server_commands_per_page": round(server_commands / pages, 3),
            "client_commands_per_page": round(replies / pages, 3),
            "network_round_trips_per_page": round(writes / pages, 3),
            "script_commands_per_page": round(max(server_commands - replies, 0) / pages, 3),
            "redis_script_ms_per_page": round(script_usec / 1000 / pages, 4),
            "peak_rss_mb": round(max(node.peak_rss for node in self.nodes) / 2**20, 1),
            "node_total_cpu_s": round(sum(node.cpu_seconds() for node in self.nodes), 2),
            "finish_reasons": [node.finish_reason for node in self.nodes],
            "exit_codes": [node.returncode for node in self.nodes],
            "stop_after_budget_s": (
                round(max(exits) - self.budget_reached_at, 3) if exits and self.budget_reached_at else None
            ),
            "exit_spread_s": round(max(exits) - min(exits), 3) if len(exits) == len(self.nodes) else None,
            "finish_spread_s": round(max(closes) - min(closes), 3) if None not in closes else None,
            "downloaded_twice": downloaded_twice(self.final_stats) if self.final_stats else 0,
            "timed_out": self.timed_out,
            "commands": self.commands,
            "client_commands": dict(sorted(sent.items(), key=lambda item: -item[1])),
        }


def crawl(
    lab: Lab,
    case: str,
    settings_per_node: Sequence[Sequence[str]],
    budget: int,
    timeout: float = 300.0,
    poll: float = 0.1,
    on_poll: Callable[[CrawlRun, dict[str, Any]], None] | None = None,
    profile_dir: Path | None = None,
    root: Path | None = None,
) -> CrawlRun:
    """Seed a fresh crawl, run one node per settings list until all exit, measure.

    The seed is pushed before the nodes start, so every case starts crawling the
    moment its node is up. The measuring window opens at the replica's first
    answer and closes when it has answered ``budget`` pages: start-up and shutdown
    are left out of pages/s and CPU per page, not out of the command counts.
    """
    lab.redis.fresh()
    lab.replica.reset()
    client = lab.redis.client()
    client.lpush("baike:start_urls", lab.replica.start_url())
    nodes = [
        lab.start_node(
            settings,
            tag=f"-{case}",
            profile=profile_dir / f"{case}-{index}.prof" if profile_dir else None,
            root=root,
        )
        for index, settings in enumerate(settings_per_node)
    ]
    run = CrawlRun(case=case, nodes=nodes, budget=budget, seeded_at=time.monotonic())
    deadline = run.seeded_at + timeout
    while True:
        stats = lab.replica.stats()
        if run.first is None and stats["total"] > 0:
            run.first = Snapshot.take(lab, nodes, stats)
        if run.done is None and answered(stats) >= budget:
            run.done = Snapshot.take(lab, nodes, stats)
            run.budget_reached_at = run.done.at
        if on_poll is not None:
            on_poll(run, stats)
        for node in nodes:
            node.sample_memory()
        if all(node.poll() for node in nodes):
            break
        if time.monotonic() > deadline:
            run.timed_out = True
            logger.warning("%s: still running after %.0f s; stopping its nodes", case, timeout)
            break
        time.sleep(poll)
    for node in nodes:
        node.stop()
    run.final_stats = lab.replica.stats()
    run.commands = lab.redis.command_stats()
    if run.first is None:
        run.first = Snapshot.take(lab, nodes, run.final_stats)
    if run.done is None:
        run.done = Snapshot.take(lab, nodes, run.final_stats)
    return run


# -- reporting ---------------------------------------------------------------------------


def spread(values: Sequence[float]) -> dict[str, float]:
    return {"min": min(values), "median": statistics.median(values), "max": max(values)}


def aggregate(
    runs: list[dict[str, Any]], names: list[str], references: Sequence[str] = ()
) -> dict[str, dict[str, Any]]:
    """Per case: min/median/max of every number, and pages/s ratios to the ``references``
    cases, paired round by round (the cases of a round ran side by side)."""
    by_case = {name: [run for run in runs if run["case"] == name] for name in names}
    out: dict[str, dict[str, Any]] = {}
    for name, case_runs in by_case.items():
        if not case_runs:
            continue
        numbers: dict[str, list[float]] = {}
        for run in case_runs:
            for key, value in run.items():
                if isinstance(value, (int, float)) and not isinstance(value, bool) and key != "round":
                    numbers.setdefault(key, []).append(value)
        out[name] = {"runs": len(case_runs), **{key: spread(values) for key, values in numbers.items()}}
        for reference in references:
            ratios = paired_ratios(by_case.get(reference, []), case_runs)
            if ratios:
                out[name][f"ratio_to_{reference}"] = spread(ratios)
        out[name]["finish_reasons"] = sorted(
            {reason for run in case_runs for reason in run["finish_reasons"] if reason}
        )
    return out


def paired_ratios(reference: list[dict[str, Any]], runs: list[dict[str, Any]]) -> list[float]:
    """pages/s of ``runs`` over ``reference``, round by round (side by side)."""
    by_round = {run["round"]: run["pages_per_s"] for run in reference}
    return [run["pages_per_s"] / by_round[run["round"]] for run in runs if by_round.get(run["round"])]


def table(headers: Sequence[str], rows: Iterable[Sequence[Any]]) -> str:
    """A Markdown table (what the README shows is what the benchmark printed)."""
    lines = ["| " + " | ".join(headers) + " |", "|" + "|".join("---" for _ in headers) + "|"]
    for row in rows:
        lines.append("| " + " | ".join(_cell(value) for value in row) + " |")
    return "\n".join(lines)


def _cell(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.3g}" if abs(value) < 10 else f"{value:,.1f}"
    return str(value)


def write_results(name: str, payload: dict[str, Any]) -> Path:
    RESULTS.mkdir(parents=True, exist_ok=True)
    stamp = time.strftime("%Y%m%d-%H%M%S")
    path = RESULTS / f"{name}-{stamp}.json"
    payload = {"benchmark": name, "date": time.strftime("%Y-%m-%d %H:%M:%S"), "machine": machine(), **payload}
    path.write_text(json.dumps(payload, indent=2, default=str))
    (RESULTS / f"{name}-latest.json").write_text(path.read_text())
    return path


def setup_logging(verbose: bool = False) -> None:
    logging.basicConfig(
        level=logging.DEBUG if verbose else logging.INFO,
        format="%(asctime)s %(message)s",
        datefmt="%H:%M:%S",
    )
