"""Profile real nodes with cProfile: where a page's CPU goes, case by case.

    .venv/bin/python bench/profile.py                      # baike-1 and scrapy, 2000 pages
    .venv/bin/python bench/profile.py --cases baike-1 --budget 500 --top 40

Each node runs as ``python -m cProfile -o <file> -m bench.node crawl baike ...``;
the profiles land in bench/results/ (open them with ``python -m pstats``) and the
top functions by own time are printed, in milliseconds per page.
"""

from __future__ import annotations

import argparse
import io
import pstats
import shutil
import sys
from pathlib import Path

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.cases import common_settings
from bench.harness import RESULTS, Lab, crawl, logger, setup_logging
from bench.speed import BASELINE_CASES, BASELINE_COMMIT, CASES


def top_functions(profile: Path, pages: int, top: int, sort: str) -> str:
    out = io.StringIO()
    stats = pstats.Stats(str(profile), stream=out)
    stats.strip_dirs().sort_stats(sort).print_stats(top)
    text = out.getvalue()
    total = stats.total_tt  # type: ignore[attr-defined]
    return f"{profile.name}: {total:.1f} s CPU in the profile, {1000 * total / max(pages, 1):.2f} ms per page\n{text}"


def flame_table(profile: Path, pages: int, top: int = 10, skip_above: float = 0.5) -> str:
    """The top functions by cumulative CPU as a Markdown table (ms per page, share of the
    profile), leaving out the frames that merely run everything else: the event loop,
    the crawl command, imports (a cumulative share above ``skip_above``, or the runners)."""
    stats = pstats.Stats(str(profile))
    total = stats.total_tt  # type: ignore[attr-defined]
    rows = []
    for (filename, line, name), (_, calls, _, cumulative, _) in stats.stats.items():  # type: ignore[attr-defined]
        if cumulative > skip_above * total or "importlib" in filename or name in RUNNERS:
            continue
        where = f"{Path(filename).parent.name}/{Path(filename).name}:{line}({name})"
        rows.append((cumulative, where, calls))
    rows.sort(reverse=True)
    lines = ["| function | calls/page | cumulative ms/page | share of the node's CPU |", "|---|---|---|---|"]
    for cumulative, where, calls in rows[:top]:
        lines.append(
            f"| `{where}` | {calls / max(pages, 1):.1f} | {1000 * cumulative / max(pages, 1):.2f} | {cumulative / total:.0%} |"
        )
    return "\n".join(lines)


# Frames that only run others (event loop callbacks, async wrappers): never "where the time goes".
RUNNERS = frozenset(
    {
        "_run",
        "run",
        "_run_once",
        "run_forever",
        "<module>",
        "exec",
        "as_async_generator",
        "aiter_errback",
        "__anext__",
        "_async_chain",
        "_evaluate_iterable",
        "asyncgen_inner",
        "process_spider_output_async",
        "worker",
        "sync_inner",
        "callWithLogger",
        "callWithContext",
        "_readOrWrite",
        "_inlineCallbacks",
        "_runCallbacks",
        "_startRunCallbacks",
        "callback",
        "_gotResultInlineCallbacks",
        "__call__",
    }
)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--cases", nargs="+", choices=list(CASES), default=["baike-1", "scrapy"])
    parser.add_argument("--budget", type=int, default=2000)
    parser.add_argument("--entries", type=int, default=100_000)
    parser.add_argument("--top", type=int, default=30)
    parser.add_argument("--sort", default="tottime", help="pstats sort key (default tottime)")
    parser.add_argument("--baseline", default=BASELINE_COMMIT, help="commit whose project the 'scrapy' case runs")
    args = parser.parse_args(argv)
    setup_logging()
    RESULTS.mkdir(parents=True, exist_ok=True)
    with Lab("profile") as lab:
        lab.start_redis()
        lab.start_replica(args.entries, 1, "--cache-mb", "0")
        for name in args.cases:
            count, settings = CASES[name]
            per_node = [[*common_settings(args.budget, 16), *settings] for _ in range(count)]
            root = lab.export_tree(args.baseline) if name in BASELINE_CASES and args.baseline else None
            run = crawl(lab, name, per_node, budget=args.budget, profile_dir=lab.directory, root=root)
            summary = run.summary()
            logger.info("%s: %.1f pages/s under the profiler", name, summary["pages_per_s"])
            for index in range(count):
                source = lab.directory / f"{name}-{index}.prof"
                target = RESULTS / f"profile-{name}-{index}.prof"
                shutil.copyfile(source, target)
                pages = run.nodes[index].stat("response_received_count")
                print(top_functions(target, pages, args.top, args.sort))
                print(f"Top 10 by cumulative CPU, {name} node {index} ({pages} pages):\n")
                print(flame_table(target, pages))
    return 0


if __name__ == "__main__":
    sys.exit(main())
