"""``scrapy export -o FILE``: the stored records as JSON lines, JSON, CSV or an HTML report.

Records are streamed from the hash ``baike:items`` with HSCAN into Scrapy's own item
exporters (or :class:`baike.report.HtmlReport`), so memory stays flat whatever the
size of the crawl. The file is written under a temporary name beside FILE and
renamed when complete: a failed export leaves any previous FILE as it was. Nothing
in Redis is deleted unless ``--delete`` is given: then, once FILE is complete, exactly
the exported records whose value is still the one exported are deleted
(:data:`DELETE_UNCHANGED`, in batches). The records stay in ``baike:items`` all the
while, so an export killed at any moment loses none: before FILE is complete nothing
is deleted, and after it every record is in FILE or still in Redis.

HSCAN may return a record twice when the hash grows during the scan (Redis's
guarantee is "at least once"): export a running crawl for a look, a finished one
for an exact file.
"""

from __future__ import annotations

import hashlib
import json
import os
import struct
import tempfile
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any, cast

from redis.exceptions import RedisError
from scrapy.exceptions import UsageError
from scrapy.exporters import CsvItemExporter, JsonItemExporter, JsonLinesItemExporter

from baike.cli import CrawlCommand
from baike.connection import REDIS_ERRORS
from baike.pipelines import RECORD_FIELDS
from baike.report import HtmlReport, read_timeline
from baike.status import CrawlDataError, check_keys, require_crawl, snapshot

if TYPE_CHECKING:
    import argparse
    from collections.abc import Iterator
    from io import BytesIO

    from redis import Redis

# file extension -> format
FORMATS = {".jsonl": "jsonl", ".jl": "jsonl", ".json": "json", ".csv": "csv", ".html": "html", ".htm": "html"}
# Where an older version's ``--delete`` parked the records while it exported:
# ``<items key>:exporting:<pid>``. Such a hash is left only by a killed export of that
# version; every export now puts its records back (:func:`recover_parked`).
PARKED = ":exporting:"

# DELETE_UNCHANGED: delete exported records, unless their value changed since they were read.
# KEYS[1] items hash
# ARGV field1, sha1 hex of the value exported for it, field2, sha1 hex 2, ...
# A record whose value now has another SHA1 was stored again after it was read (its
# new value is not in the file) and stays; a field already gone is skipped.
# Returns {deleted, changed}.
DELETE_UNCHANGED = """
local deleted, changed = 0, 0
for i = 1, #ARGV, 2 do
  local value = redis.call('HGET', KEYS[1], ARGV[i])
  if value then
    if redis.sha1hex(value) == ARGV[i + 1] then
      redis.call('HDEL', KEYS[1], ARGV[i])
      deleted = deleted + 1
    else
      changed = changed + 1
    end
  end
end
return {deleted, changed}
"""

# UNPARK: move records an older export parked back into the items hash.
# KEYS[1] parked hash   KEYS[2] items hash
# ARGV fields of the parked hash
# A record stored in the items hash since it was parked is newer and stays; the parked
# copy is dropped. The parked hash goes when its last field is moved.
# Returns {moved, superseded}.
UNPARK = """
local moved, superseded = 0, 0
for i = 1, #ARGV do
  local value = redis.call('HGET', KEYS[1], ARGV[i])
  if value then
    if redis.call('HSETNX', KEYS[2], ARGV[i], value) == 1 then
      moved = moved + 1
    else
      superseded = superseded + 1
    end
    redis.call('HDEL', KEYS[1], ARGV[i])
  end
end
return {moved, superseded}
"""


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
        self.file: IO[bytes] = open(self.part, "wb")  # noqa: SIM115 - closed by commit() or abort()

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


class ExportLog:
    """What an export wrote, for ``--delete``: each record's field and the SHA1 of the
    value read, spooled to an unnamed temporary file so memory stays flat."""

    _LENGTH = struct.Struct(">I")
    _DIGEST = 20

    def __init__(self) -> None:
        self.file: IO[bytes] = tempfile.TemporaryFile()  # noqa: SIM115 - the object owns it

    def add(self, field: bytes, value: bytes) -> None:
        self.file.write(self._LENGTH.pack(len(field)) + field + hashlib.sha1(value).digest())

    def batches(self, size: int) -> Iterator[list[tuple[bytes, str]]]:
        """Every ``(field, sha1 hex)`` written so far, ``size`` at a time."""
        self.file.flush()
        self.file.seek(0)
        batch: list[tuple[bytes, str]] = []
        while header := self.file.read(self._LENGTH.size):
            (length,) = self._LENGTH.unpack(header)
            field = self.file.read(length)
            batch.append((field, self.file.read(self._DIGEST).hex()))
            if len(batch) >= size:
                yield batch
                batch = []
        if batch:
            yield batch

    def close(self) -> None:
        self.file.close()

    def __enter__(self) -> ExportLog:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


def delete_exported(server: Redis, key: str, log: ExportLog, batch: int = 1000) -> tuple[int, int]:
    """Delete from hash ``key`` the records in ``log`` whose value is unchanged, ``batch``
    per script call (:data:`DELETE_UNCHANGED`). Returns ``(deleted, kept as changed)``.

    Each call is atomic; stopped between two, the records not reached stay.
    """
    script = server.register_script(DELETE_UNCHANGED)
    deleted = changed = 0
    for pairs in log.batches(batch):
        done, kept = script(keys=[key], args=[item for pair in pairs for item in pair])
        deleted += done
        changed += kept
    return deleted, changed


def recover_parked(server: Redis, items: str, batch: int = 1000) -> tuple[list[str], int, int]:
    """Put back the records an older version's ``--delete`` parked under ``<items>:exporting:<pid>``
    (left behind by a killed export), keeping any stored since (they are newer).

    Returns ``(parked keys emptied, records moved back, parked copies dropped as superseded)``.
    """
    script = server.register_script(UNPARK)
    keys: list[str] = []
    moved = superseded = 0
    for parked in server.scan_iter(match=_glob_escape(items + PARKED) + "*", count=batch, _type="HASH"):
        name = parked.decode("utf-8", "replace") if isinstance(parked, bytes) else parked
        keys.append(name)
        while server.exists(parked):
            for pairs in _chunks(server.hscan_iter(parked, count=batch), batch):
                back, dropped = script(keys=[parked, items], args=[field for field, _ in pairs])
                moved += back
                superseded += dropped
    return keys, moved, superseded


def _glob_escape(text: str) -> str:
    """``text`` matched literally in a SCAN pattern."""
    return "".join(f"\\{char}" if char in "*?[]\\" else char for char in text)


def parse_record(field: bytes, value: bytes) -> dict[str, Any] | None:
    """One stored record with exactly the fields of RECORD_FIELDS (and ``changed_at`` when it
    has one), or None if unreadable."""
    try:
        stored = json.loads(value)
    except (ValueError, RecursionError):  # UnicodeDecodeError is a ValueError
        return None
    if not isinstance(stored, dict):
        return None
    record = {name: stored.get(name) for name in RECORD_FIELDS}
    if "changed_at" in stored:
        # with revisits on: when the stored version was first seen (exported with --changed-since)
        record["changed_at"] = stored["changed_at"]
    if not record["url"]:
        record["url"] = field.decode("utf-8", "replace")
    return record


def iter_records(
    server: Redis, key: str, tally: Tally, batch: int = 1000, log: ExportLog | None = None
) -> Iterator[dict[str, Any]]:
    """Every readable record of hash ``key``, ``batch`` at a time (HSCAN), each one
    written to ``log`` (if given) as it is read."""
    for field, value in server.hscan_iter(key, count=batch):
        record = parse_record(field, value)
        if record is None:
            tally.skipped += 1
            continue
        if log is not None:
            log.add(field, value)
        yield record


def changed_after(record: dict[str, Any], since: datetime) -> bool:
    """Whether ``record`` changed at or after ``since`` (False without a readable ``changed_at``)."""
    try:
        return parse_time(str(record.get("changed_at") or "")) >= since
    except ValueError:
        return False


def parse_time(text: str) -> datetime:
    """An ISO 8601 time (UTC when it names no zone) or Unix seconds; ValueError otherwise."""
    try:
        return datetime.fromtimestamp(float(text), UTC)
    except (ValueError, OverflowError, OSError):
        pass
    moment = datetime.fromisoformat(text)
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def make_exporter(
    fmt: str,
    file: IO[bytes],
    encoding: str,
    report: tuple[dict[str, Any], list[dict[str, Any]]] | None = None,
    extra: tuple[str, ...] = (),
) -> Any:
    fields = [*RECORD_FIELDS, *extra]
    # Scrapy annotates its exporters' file as BytesIO; they write to any binary file
    out = cast("BytesIO", file)
    if fmt == "jsonl":
        return JsonLinesItemExporter(out, encoding=encoding, fields_to_export=fields)
    if fmt == "json":
        # indent 0: one record per line, so the file can be read (and diffed) line by line
        return JsonItemExporter(out, encoding=encoding, fields_to_export=fields, indent=0)
    if fmt == "csv":
        return CsvItemExporter(out, encoding=encoding, fields_to_export=fields)
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
    report: tuple[dict[str, Any], list[dict[str, Any]]] | None = None,
    batch: int = 1000,
    log: ExportLog | None = None,
    changed_since: datetime | None = None,
) -> Tally:
    """Stream the records of hash ``key`` to ``file`` in format ``fmt``; with ``log``,
    note each exported record's field and value there (for :func:`delete_exported`).
    With ``changed_since`` only the records whose ``changed_at`` (set with revisits on: when
    the stored version was first seen) is at or after it, with that field."""
    tally = Tally()
    exporter = make_exporter(fmt, file, encoding, report, extra=("changed_at",) if changed_since else ())
    exporter.start_exporting()
    for record in iter_records(server, key, tally, batch, log):
        if changed_since is not None and not changed_after(record, changed_since):
            continue
        exporter.export_item(prepared(fmt, record))
        tally.exported += 1
    exporter.finish_exporting()
    return tally


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
        return "-o FILE [--format jsonl|json|csv|html] [--delete] [--batch N]"

    def short_desc(self) -> str:
        return "Export the stored records to .jsonl, .json, .csv or an .html report"

    def long_desc(self) -> str:
        return (
            "Streams the records of baike:items (HSCAN) to FILE; the format comes from its extension "
            "(.jsonl/.jl, .json, .csv, .html/.htm) or --format. CSV holds the infobox as a JSON object. "
            "The HTML report adds the crawl's stats, its nodes and a chart of pages over time per node. "
            "Nothing is deleted from Redis unless --delete is given: then, once FILE is complete, the "
            "exported records are removed, except those stored again since they were read. "
            "Records an interrupted export of an older version parked under baike:items:exporting:* are "
            "put back first."
        )

    def add_options(self, parser: argparse.ArgumentParser) -> None:
        super().add_options(parser)
        parser.add_argument("-o", "--output", metavar="FILE", help="file to write (required)")
        parser.add_argument(
            "--format", choices=sorted(set(FORMATS.values())), help="format, instead of the extension's"
        )
        parser.add_argument("--delete", action="store_true", help="delete the exported records from Redis afterwards")
        parser.add_argument(
            "--changed-since",
            metavar="TIME",
            help="only records whose stored version is new since TIME (ISO 8601, UTC by default, or Unix seconds)",
        )
        parser.add_argument(
            "--batch", type=int, default=1000, help="records per HSCAN call and per deletion (default 1000)"
        )

    def run(self, args: list[str], opts: argparse.Namespace) -> None:
        if args:
            raise UsageError("export takes no arguments; the file goes with -o FILE")
        if not opts.output:
            raise UsageError("export needs -o FILE")
        if opts.batch < 1:
            raise UsageError("--batch must be at least 1")
        try:
            opts.changed_since = parse_time(opts.changed_since) if opts.changed_since else None
        except ValueError:
            raise UsageError(
                f"--changed-since takes an ISO 8601 time or Unix seconds, not {opts.changed_since!r}"
            ) from None
        if opts.changed_since is not None and opts.delete:
            raise UsageError("--changed-since exports part of the records: it does not go with --delete")
        path = Path(opts.output)
        fmt = output_format(path, opts.format)
        try:
            output = Output(path)
        except OSError as exc:
            self.fail(f"cannot write {path}: {exc.strerror or exc}")
            return
        log = ExportLog() if opts.delete else None
        try:
            self._run(output, fmt, opts, log)
        finally:
            if log is not None:
                log.close()

    def _run(self, output: Output, fmt: str, opts: argparse.Namespace, log: ExportLog | None) -> None:
        """Export to ``output``, commit it, and only then (with ``log``) delete what was exported."""
        started = time.monotonic()
        where, keys = self.where, self.keys
        try:
            server = self.connect()
            tally = self._export(server, output, fmt, where, opts, log)
            output.commit()
        except BaseException as exc:
            output.discard()
            self._failed(exc, where, "interrupted; nothing written, nothing deleted")
            return
        message = f"Exported {tally.exported} records from {keys.items} to {output.path} ({fmt})"
        if tally.skipped:
            message += f"; skipped {tally.skipped} unreadable records"
        if log is not None:
            try:
                deleted, changed = delete_exported(server, keys.items, log, opts.batch)
            except BaseException as exc:
                self._failed(
                    exc,
                    where,
                    f"interrupted after writing {output.path}: the records not deleted yet stay in {keys.items}",
                    prefix=f"{message}, but deleting them stopped: ",
                )
                return
            if deleted == tally.exported:
                message += f"; deleted them from {where}"
            else:
                message += f"; deleted {deleted} of them from {where}"
            if changed:
                message += f"; kept {changed} changed since they were read"
        print(f"{message} in {time.monotonic() - started:.1f} s")

    def _export(
        self, server: Redis, output: Output, fmt: str, where: str, opts: argparse.Namespace, log: ExportLog | None
    ) -> Tally:
        keys = self.keys
        check_keys(server, keys)  # another project's data is refused before anything is written
        self._recover(server, opts.batch)
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
        encoding = self.settings.get("FEED_EXPORT_ENCODING") or "utf-8"
        return export_records(
            server,
            keys.items,
            output.file,
            fmt,
            encoding=encoding,
            report=report,
            batch=opts.batch,
            log=log,
            changed_since=opts.changed_since,
        )

    def _recover(self, server: Redis, batch: int) -> None:
        """Put back what a killed export of an older version parked, and say so in one line."""
        items = self.keys.items
        parked, moved, superseded = recover_parked(server, items, batch)
        if parked:
            line = f"Put back {moved} records parked by an interrupted export in {', '.join(parked)} into {items}"
            if superseded:
                line += f"; kept {superseded} stored since instead of the parked copies"
            print(line, flush=True)

    def _failed(self, exc: BaseException, where: str, interrupted: str, prefix: str = "") -> None:
        """Report ``exc`` as one line on stderr (``interrupted`` for Ctrl-C); re-raise a bug."""
        if isinstance(exc, KeyboardInterrupt):
            self.fail(interrupted)
        elif isinstance(exc, REDIS_ERRORS):
            self.fail(f"{prefix}cannot reach Redis at {where}: {exc}")
        elif isinstance(exc, (RedisError, CrawlDataError, OSError)):  # one line, not a traceback
            self.fail(f"{prefix}{exc}")
        else:
            raise exc
