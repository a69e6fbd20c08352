"""``python -m replica``: serve the offline Baike replica until SIGTERM/SIGINT."""

from __future__ import annotations

import argparse
import asyncio
import gc
import logging
import signal
import sys
from pathlib import Path

from replica.pushback import PUSHBACK_MODES
from replica.server import Replica, serve
from replica.site import Site, default_samples_dir

logger = logging.getLogger("replica")


def _rate(text: str) -> float:
    value = float(text)
    if not 0.0 <= value <= 1.0:
        raise argparse.ArgumentTypeError("a rate is a number between 0 and 1")
    return value


def _seconds(text: str) -> float:
    value = float(text)
    if not 0.0 <= value < float("inf"):
        raise argparse.ArgumentTypeError("a duration is a finite number of seconds, at least 0")
    return value


def _positive(text: str) -> float:
    value = float(text)
    if not 0.0 < value < float("inf"):
        raise argparse.ArgumentTypeError("must be a finite number above 0")
    return value


def _burst(text: str) -> float:
    value = float(text)
    if not 1.0 <= value < float("inf"):
        raise argparse.ArgumentTypeError("a burst is a finite number of requests, at least 1")
    return value


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m replica", description="Offline, deterministic Baidu Baike replica."
    )
    parser.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1)")
    parser.add_argument("--port", type=int, default=8800, help="port; 0 picks a free one (default 8800)")
    parser.add_argument("--entries", type=int, default=100_000, help="generated entry pages (default 100000)")
    parser.add_argument("--seed", type=int, default=1, help="site seed (default 1)")
    parser.add_argument(
        "--samples",
        type=Path,
        default=None,
        help="directory of real sample pages (default $BAIKE_SAMPLES, else ../shared/baike-samples if present)",
    )
    parser.add_argument("--no-samples", action="store_true", help="do not serve real sample pages")
    parser.add_argument("--self-links", action="store_true", help="absolute links and redirects point at this server")
    parser.add_argument("--captcha-rate", type=_rate, default=0.0, help="fraction of entry requests sent to a captcha")
    parser.add_argument("--block-rate", type=_rate, default=0.0, help="fraction of entry requests answered 403/429")
    parser.add_argument("--latency-ms", type=float, default=0.0, help="delay added to every response")
    parser.add_argument("--cache-mb", type=float, default=128.0, help="rendered-page cache size (default 128 MB)")
    parser.add_argument(
        "--max-rate",
        type=_positive,
        default=None,
        help="entry requests per second allowed per client address (token bucket; default off)",
    )
    parser.add_argument(
        "--burst", type=_burst, default=None, help="token bucket size, requests (default max(1, --max-rate))"
    )
    parser.add_argument(
        "--penalty",
        type=_seconds,
        default=5.0,
        help="seconds a client over --max-rate is pushed back, restarted by each of its entry requests (default 5)",
    )
    parser.add_argument(
        "--crawl-delay", type=float, default=0.0, help="a Crawl-delay (seconds) in robots.txt (default none)"
    )
    parser.add_argument(
        "--pushback",
        choices=PUSHBACK_MODES,
        default="captcha",
        help="answer to a pushed-back entry request: 302 to the captcha page or 429 with Retry-After (default captcha)",
    )
    parser.add_argument(
        "--storm-at",
        type=_seconds,
        default=None,
        help="start a storm (every entry request pushed back) this many seconds after start (default none)",
    )
    parser.add_argument(
        "--storm-seconds", type=_positive, default=None, help="how long the --storm-at storm lasts (default 10)"
    )
    parser.add_argument(
        "--epochs",
        type=int,
        default=0,
        help="start this many epochs on: each changes --change-fraction of the entries (default 0; see /__replica__/advance)",
    )
    parser.add_argument(
        "--change-fraction",
        type=_rate,
        default=0.1,
        help="fraction of the entries each --epochs epoch changes (default 0.1)",
    )
    parser.add_argument("--log-level", default="WARNING", help="logging level on stderr (default WARNING)")
    args = parser.parse_args(argv)
    if args.storm_seconds is not None and args.storm_at is None:
        parser.error("--storm-seconds needs --storm-at")
    if args.burst is not None and args.max_rate is None:
        parser.error("--burst needs --max-rate")
    return args


async def _run(args: argparse.Namespace) -> None:
    samples = None if args.no_samples else (args.samples or default_samples_dir())
    site = Site(args.entries, args.seed, samples)
    for _ in range(max(args.epochs, 0)):
        site.advance(args.change_fraction)
    # The site tables are long-lived: keep the cyclic GC from rescanning them.
    gc.collect()
    gc.freeze()
    app = Replica(
        site,
        self_links=args.self_links,
        captcha_rate=args.captcha_rate,
        block_rate=args.block_rate,
        latency_ms=args.latency_ms,
        cache_mb=args.cache_mb,
        max_rate=args.max_rate or 0.0,
        burst=args.burst,
        penalty=args.penalty,
        pushback=args.pushback,
        crawl_delay=args.crawl_delay,
    )
    server = await serve(app, args.host, args.port)
    if args.storm_at is not None:
        app.schedule_storm(args.storm_at, args.storm_seconds or 10.0)
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    print(f"replica: serving {args.entries} entries (seed {args.seed}) on {app.origin}", flush=True)
    logger.info("sample pages: %s", site.sample_paths() or "none")
    try:
        await stop.wait()
    finally:
        await server.close()
    logger.info("stopped after %d requests", app.stats.total)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    logging.basicConfig(
        level=args.log_level.upper(), stream=sys.stderr, format="%(asctime)s %(name)s %(levelname)s %(message)s"
    )
    if args.entries < 10:
        print("replica: --entries must be at least 10", file=sys.stderr)
        return 2
    asyncio.run(_run(args))
    return 0


if __name__ == "__main__":
    sys.exit(main())
