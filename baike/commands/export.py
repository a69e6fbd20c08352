"""``scrapy export -o FILE``: the stored records as JSON lines, JSON, CSV or an HTML report.

Records are streamed from the hash ``baike:items`` with HSCAN into Scrapy's own item
exporters (or :class:`baike.report.HtmlReport`), so memory stays flat whatever the
size of the crawl. The file is written under a temporary name beside FILE and
renamed when complete: a failed export leaves any previous FILE as it was. Nothing
in Redis is deleted unless ``--delete`` is given.

HSCAN may return a record twice when the hash grows during the scan (Redis's
guarantee is "at least once"): export a running crawl for a look, a finished one
for an exact file.
"""

from __future__ import annotations

import json
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any

from redis.exceptions import RedisError
from scrapy.exceptions import UsageError
from scrapy.exporters import CsvItemExporter, JsonItemExporter, JsonLinesItemExporter

from baike.cli import CrawlCommand
from baike.connection import REDIS_ERRORS
from baike.pipelines import RECORD_FIELDS
from baike.report import HtmlReport, read_timeline
from baike.status import CrawlDataError, require_crawl, snapshot

if TYPE_CHECKING:
    import argparse
    from collections.abc import Iterator

    from redis import Redis

# file extension -> format
FORMATS = {".jsonl": "jsonl", ".jl": "jsonl", ".json": "json", ".csv": "csv", ".html": "html", ".htm": "html"}


def output_format(path: Path, explicit: str | None = None) -> str:
    """The format of ``path``: ``explicit`` if given, else from its extension."""
    if explicit:
        return explicit
    fmt = FORMATS.get(path.suffix.lower())
    if fmt is None:
        raise UsageError(f"cannot tell the format of {path.name!r}: use one of {', '.join(FORMATS)} or --format")
    return fmt


class Output:
    """The export file, opened at once so an unwritable path fails before Redis is read.

    A regular file is written as ``.<name>.<pid>.part`` beside it and renamed over it
    by :meth:`commit`; a device or pipe (``/dev/stdout``) is written in place.
    """

    def __init__(self, path: Path):
        self.path = path
        if path.is_dir():
            raise IsADirectoryError(21, "Is a directory", str(path))
        if path.exists() and not os.access(path, os.W_OK):
            raise PermissionError(13, "Permission denied", str(path))
        in_place = path.exists() and not path.is_file()
        self.part = path if in_place else path.with_name(f".{path.name}.{os.getpid()}.part")
        self.file: IO[bytes] = open(self.part, "wb")

    def commit(self) -> None:
        self.file.close()
        if self.part != self.path:
            os.replace(self.part, self.path)

    def discard(self) -> None:
        self.file.close()
        if self.part != self.path:
            self.part.unlink(missing_ok=True)


@dataclass
class Tally:
    exported: int = 0
    skipped: int = 0


def parse_record(field: bytes, value: bytes) -> dict[str, Any] | None:
    """One stored record with exactly the fields of RECORD_FIELDS, or None if unreadable."""
    try:
        stored = json.loads(value)
    except (ValueError, UnicodeDecodeError):
        return None
    if not isinstance(stored, dict):
        return None
    record = {name: stored.get(name) for name in RECORD_FIELDS}
    if not record["url"]:
        record["url"] = field.decode("utf-8", "replace")
    return record


def iter_records(server: Redis, key: str, tally: Tally, batch: int = 1000) -> Iterator[dict[str, Any]]:
    """Every readable record of hash ``key``, ``batch`` at a time (HSCAN)."""
    for field, value in server.hscan_iter(key, count=batch):
        record = parse_record(field, value)
        if record is None:
            tally.skipped += 1
            continue
        yield record


def make_exporter(fmt: str, file: IO[bytes], encoding: str, report: tuple[dict, list] | None = None) -> Any:
    fields = list(RECORD_FIELDS)
    if fmt == "jsonl":
        return JsonLinesItemExporter(file, encoding=encoding, fields_to_export=fields)
    if fmt == "json":
        # indent 0: one record per line, so the file can be read (and diffed) line by line
        return JsonItemExporter(file, encoding=encoding, fields_to_export=fields, indent=0)
    if fmt == "csv":
        return CsvItemExporter(file, encoding=encoding, fields_to_export=fields)
    if fmt == "html":
        snap, timeline = report or ({}, [])
        return HtmlReport(file, snap, timeline)
    raise UsageError(f"unknown format {fmt!r}")


def prepared(fmt: str, record: dict[str, Any]) -> dict[str, Any]:
    if fmt == "csv":
        # a CSV cell holds text: the infobox travels as a JSON object
        return {**record, "infobox": json.dumps(record["infobox"] or {}, ensure_ascii=False)}
    return record


def export_records(
    server: Redis,
    key: str,
    file: IO[bytes],
    fmt: str,
    *,
    encoding: str = "utf-8",
    report: tuple[dict, list] | None = None,
    batch: int = 1000,
) -> Tally:
    """Stream the records of hash ``key`` to ``file`` in format ``fmt``."""
    tally = Tally()
    exporter = make_exporter(fmt, file, encoding, report)
    exporter.start_exporting()
    for record in iter_records(server, key, tally, batch):
        exporter.export_item(prepared(fmt, record))
        tally.exported += 1
    exporter.finish_exporting()
    return tally


def restore(server: Redis, parked: str, items: str, batch: int = 1000, unreadable_only: bool = False) -> None:
    """Put records parked by ``--delete`` back, keeping any stored since (they are newer).

    With ``unreadable_only`` only the records the export skipped go back.
    """
    if not unreadable_only and server.renamenx(parked, items):
        return
    for pairs in _chunks(server.hscan_iter(parked, count=batch), batch):
        with server.pipeline(transaction=False) as pipe:
            for field, value in pairs:
                if not unreadable_only or parse_record(field, value) is None:
                    pipe.hsetnx(items, field, value)
            pipe.execute()
    server.unlink(parked)


def _chunks(pairs: Iterator[tuple[bytes, bytes]], size: int) -> Iterator[list[tuple[bytes, bytes]]]:
    chunk: list[tuple[bytes, bytes]] = []
    for pair in pairs:
        chunk.append(pair)
        if len(chunk) >= size:
            yield chunk
            chunk = []
    if chunk:
        yield chunk


class Command(CrawlCommand):
    failure_prefix = "export"

    def syntax(self) -> str:
        return "-o FILE [--format jsonl|json|csv|html] [--delete]"

    def short_desc(self) -> str:
        return "Export the stored records to .jsonl, .json, .csv or an .html report"

    def long_desc(self) -> str:
        return (
            "Streams the records of baike:items (HSCAN) to FILE; the format comes from its extension "
            "(.jsonl/.jl, .json, .csv, .html/.htm) or --format. CSV holds the infobox as a JSON object. "
            "The HTML report adds the crawl's stats, its nodes and a chart of pages over time per node. "
            "Nothing is deleted from Redis unless --delete is given: then exactly the exported records "
            "are removed, once FILE is complete."
        )

    def add_options(self, parser: argparse.ArgumentParser) -> None:
        super().add_options(parser)
        parser.add_argument("-o", "--output", metavar="FILE", help="file to write (required)")
        parser.add_argument(
            "--format", choices=sorted(set(FORMATS.values())), help="format, instead of the extension's"
        )
        parser.add_argument("--delete", action="store_true", help="delete the exported records from Redis afterwards")
        parser.add_argument("--batch", type=int, default=1000, help="records per HSCAN call (default 1000)")

    def run(self, args: list[str], opts: argparse.Namespace) -> None:
        if args:
            raise UsageError("export takes no arguments; the file goes with -o FILE")
        if not opts.output:
            raise UsageError("export needs -o FILE")
        if opts.batch < 1:
            raise UsageError("--batch must be at least 1")
        path = Path(opts.output)
        fmt = output_format(path, opts.format)
        try:
            output = Output(path)
        except OSError as exc:
            self.fail(f"cannot write {path}: {exc.strerror or exc}")
            return
        where = self.where
        try:
            message = self._export(output, fmt, where, opts)
        except BaseException as exc:
            output.discard()
            if isinstance(exc, KeyboardInterrupt):
                self.fail("interrupted; nothing written")
            elif isinstance(exc, REDIS_ERRORS):
                self.fail(f"cannot reach Redis at {where}: {exc}")
            elif isinstance(exc, (RedisError, CrawlDataError, OSError)):  # one line, not a traceback
                self.fail(str(exc))
            else:
                raise
            return
        print(message)

    def _export(self, output: Output, fmt: str, where: str, opts: argparse.Namespace) -> str:
        started = time.monotonic()
        keys = self.keys
        server = self.connect()
        require_crawl(server, keys, where)
        report = None
        if fmt == "html":
            snap = snapshot(
                server,
                keys,
                budget=self.settings.getint("CLOSESPIDER_PAGECOUNT"),
                lost_after=self.settings.getfloat("CLUSTERSTATS_LOST_AFTER", 10.0),
            )
            snap["redis"] = where
            report = (snap, read_timeline(server, keys.timeline))
        source = keys.items
        if opts.delete:
            # park the records under a private name: nodes storing meanwhile start a new
            # hash, and exactly what was exported is what gets deleted
            source = f"{keys.items}:exporting:{os.getpid()}"
            if not server.exists(keys.items) or not server.renamenx(keys.items, source):
                source = keys.items
        encoding = self.settings.get("FEED_EXPORT_ENCODING") or "utf-8"
        try:
            tally = export_records(server, source, output.file, fmt, encoding=encoding, report=report, batch=opts.batch)
            output.commit()
        except BaseException:
            if source != keys.items:
                restore(server, source, keys.items)
            raise
        elapsed = time.monotonic() - started
        message = f"Exported {tally.exported} records from {keys.items} to {output.path} ({fmt}) in {elapsed:.1f} s"
        if tally.skipped:
            message += f"; skipped {tally.skipped} unreadable records"
        if source != keys.items:
            # unreadable records were not exported, so they are not deleted either
            restore(server, source, keys.items, batch=opts.batch, unreadable_only=True)
            message += f"; deleted them from {where}"
        return message

