"""``python -m replica``: serve the offline Baike replica until SIGTERM/SIGINT."""

from __future__ import annotations

import argparse
import asyncio
import gc
import logging
import signal
import sys
from pathlib import Path

from replica.server import Replica, serve
from replica.site import Site, default_samples_dir

logger = logging.getLogger("replica")


def _rate(text: str) -> float:
    value = float(text)
    if not 0.0 <= value <= 1.0:
        raise argparse.ArgumentTypeError("a rate is a number between 0 and 1")
    return value


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m replica", description="Offline, deterministic Baidu Baike replica.")
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
    parser.add_argument("--log-level", default="WARNING", help="logging level on stderr (default WARNING)")
    return parser.parse_args(argv)


async def _run(args: argparse.Namespace) -> None:
    samples = None if args.no_samples else (args.samples or default_samples_dir())
    site = Site(args.entries, args.seed, samples)
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
    )
    server = await serve(app, args.host, args.port)
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    print(f"replica: serving {args.entries} entries (seed {args.seed}) on {app.origin}", flush=True)
    logger.info("sample pages: %s", site.sample_paths() or "none")
    async with server:
        await stop.wait()
    logger.info("stopped after %d requests", app.stats.total)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    logging.basicConfig(level=args.log_level.upper(), stream=sys.stderr, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    if args.entries < 10:
        print("replica: --entries must be at least 10", file=sys.stderr)
        return 2
    asyncio.run(_run(args))
    return 0


if __name__ == "__main__":
    sys.exit(main())
