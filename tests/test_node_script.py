"""scripts/node.sh: one crawler node on a machine in one command."""

from __future__ import annotations

import os
import subprocess
import time
from pathlib import Path

import pytest

from baike.keys import CrawlKeys
from tests.conftest import ROOT
from tests.support import NodeLog, node_settings, setting_args

KEYS = CrawlKeys.for_spider("baike")
SCRIPT = ROOT / "scripts" / "node.sh"


def environment() -> dict[str, str]:
    """This process's environment without the crawl's variables: the script must set them."""
    return {key: value for key, value in os.environ.items() if key not in ("REDIS_URL", "BAIKE_MIRROR")}


def command_line(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
    except OSError:
        return ""


class ScriptLog(NodeLog):
    def __init__(self, log_path: Path):
        self.log_path = log_path


@pytest.mark.e2e
def test_a_node_crawls_the_crawl_at_the_url_with_the_other_arguments(
    redis_db, redis_server, small_replica, tmp_path
) -> None:
    small_replica.reset()
    redis_db.lpush(KEYS.start_urls, small_replica.start_url())
    log = ScriptLog(tmp_path / "node.log")
    process = subprocess.Popen(
        [
            "bash",
            str(SCRIPT),
            redis_server.url,
            # the script takes the URL as its argument: REDIS_URL is not passed as a setting
            *setting_args(*node_settings(redis_server.url, small_replica.url, log.log_path)[1:]),
            *setting_args("CLOSESPIDER_PAGECOUNT=20"),
        ],
        cwd=tmp_path,
        env=environment(),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    seen_command = ""
    deadline = time.monotonic() + 5
    while process.poll() is None and time.monotonic() < deadline and "crawl baike" not in seen_command:
        seen_command = command_line(process.pid)
        time.sleep(0.05)
    _out, err = process.communicate(timeout=120)
    assert process.returncode == 0, log.log[-3000:] + err[-3000:]
    assert "crawl baike" in seen_command and redis_server.url not in seen_command, (
        "the URL travels in the environment, not on the command line"
    )
    assert f"joined the crawl at {redis_server.url}" in log.log
    assert log.finish_reason == "closespider_pagecount"
    assert log.stat("response_received_count") == 20
    assert int(redis_db.hget(KEYS.budget, "pages")) == 20
    assert redis_db.hlen(KEYS.items) > 0
    assert "Traceback" not in log.log + err


@pytest.mark.parametrize(
    ("args", "message"),
    [
        ([], ""),
        (["-s", "CLOSESPIDER_PAGECOUNT=20"], "node.sh: the first argument must be the crawl's Redis URL"),
        (["reddis://user:s3cr3t@host:6379/0"], "node.sh: the first argument must be the crawl's Redis URL"),
    ],
)
def test_without_a_redis_url_it_prints_its_usage_and_exits_2(args: list[str], message: str) -> None:
    result = subprocess.run(["bash", str(SCRIPT), *args], env=environment(), capture_output=True, text=True, timeout=30)
    assert result.returncode == 2
    assert result.stdout == ""
    assert "usage: bash scripts/node.sh REDIS_URL [-s NAME=value ...]" in result.stderr
    assert message in result.stderr
    assert "s3cr3t" not in result.stderr, "a mistyped URL is not echoed: it may hold a password"
