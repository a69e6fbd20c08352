"""What a finished ``scrapy crawl`` node wrote in its log: reason, stats, finish time.

Shared by the benchmarks and the end-to-end tests, which both run real nodes with
``LOG_FILE`` and read Scrapy's final stats dump back.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime
from pathlib import Path

_FINISH_TIME = re.compile(
    r"'finish_time': datetime\.datetime\((\d+), (\d+), (\d+), (\d+), (\d+), (\d+)(?:, (\d+))?"
)


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
