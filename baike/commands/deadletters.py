"""``scrapy deadletters``: list the requests that failed for good, and put them back."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import TYPE_CHECKING

from scrapy.exceptions import UsageError

from baike.cli import CrawlCommand
from baike.frontier import scripts, serializer
from baike.frontier.queue import push_and_ack
from baike.keys import CrawlKeys
from baike.urls import canonicalize

if TYPE_CHECKING:
    import argparse


class Command(CrawlCommand):
    failure_prefix = "deadletters failed"

    def syntax(self) -> str:
        return "[--requeue] [--json]"

    def short_desc(self) -> str:
        return "List dead letters (requests that failed for good); --requeue puts them back in the frontier"

    def add_options(self, parser: argparse.ArgumentParser) -> None:
        super().add_options(parser)
        parser.add_argument("--requeue", action="store_true", help="move requeueable dead letters back to the frontier")
        parser.add_argument("--json", action="store_true", help="print one JSON record per line")

    def run(self, args: list[str], opts: argparse.Namespace) -> None:
        if args:
            raise UsageError("deadletters takes no arguments")
        keys = self.keys
        try:
            server = self.connect()
            if opts.requeue:
                self._requeue(server, keys)
            else:
                self._list(server, keys, opts.json)
        except Exception as exc:  # one line, not a traceback: this is a user-facing command
            self.fail(str(exc))

    def _list(self, server, keys: CrawlKeys, as_json: bool) -> None:
        count = 0
        for raw in server.lrange(keys.dead, 0, -1):
            count += 1
            record = _parse(raw)
            if as_json:
                print(json.dumps(record, ensure_ascii=False))
                continue
            when = datetime.fromtimestamp(record.get("time", 0), UTC).strftime("%Y-%m-%d %H:%M:%S")
            url = (record.get("payload") or {}).get("url") or record.get("raw", "")[:80]
            print(f"{when}  {record.get('reason', '?')}  {url}")
        if not as_json:
            print(f"{count} dead letters in {keys.dead}")

    def _requeue(self, server, keys: CrawlKeys) -> None:
        push = server.register_script(scripts.PUSH_AND_ACK)
        requeued = kept = 0
        for _ in range(server.llen(keys.dead)):
            raw = server.lpop(keys.dead)
            if raw is None:
                break
            payload = _parse(raw).get("payload")
            if not isinstance(payload, dict) or canonicalize(payload.get("url", "")) != payload.get("url"):
                server.rpush(keys.dead, raw)
                kept += 1
                continue
            payload.pop("meta", None)
            text = serializer.dumps(payload)
            push_and_ack(push, keys, "", [(None, None, payload.get("priority", 0), text)], [])
            requeued += 1
        print(f"Requeued {requeued} requests into {keys.requests}; kept {kept} that are not requests.")


def _parse(raw: bytes) -> dict:
    try:
        record = json.loads(raw)
    except (ValueError, UnicodeDecodeError):
        return {"reason": "unreadable dead letter", "raw": raw[:200].decode("utf-8", "replace")}
    return record if isinstance(record, dict) else {"reason": "unreadable dead letter", "raw": str(record)[:200]}
