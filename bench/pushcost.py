"""Redis CPU per pushed request of the frontier's PUSH_AND_ACK script, as shipped and batched.

    .venv/bin/python bench/pushcost.py                 # 5 alternating rounds of 3000 calls x 36 pushes

The shipped script writes each new request with its own ``HSET`` and ``ZADD``;
``BATCHED_PUSH`` (below, a prototype for the lead) collects them and writes them
with one ``HSET`` and one ``ZADD`` per call. Both run the same pushes (fresh
fingerprints, payloads like a crawl's) against an empty frontier; the table shows
redis-server CPU and the script's time (commandstats) per pushed request.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import statistics
import sys
from pathlib import Path
from typing import Any

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from baike.frontier import scripts
from baike.frontier.dupefilter import BucketLayout
from baike.keys import CrawlKeys
from bench.harness import Lab, setup_logging, table, write_results

KEYS = CrawlKeys.for_spider("baike")
LAYOUT = BucketLayout.for_size()

# PUSH_AND_ACK with the new requests written in one HSET and one ZADD per call
# (unpack() in chunks, to stay under Lua's C stack limit). KEYS and ARGV as PUSH_AND_ACK.
BATCHED_PUSH = """
local node = ARGV[1]
local n_push = tonumber(ARGV[2])
local added, filtered = 0, 0
local i = 3
local data, index = {}, {}
local function flush(command, key, values)
  for start = 1, #values, 4000 do
    redis.call(command, key, unpack(values, start, math.min(start + 3999, #values)))
  end
end
if n_push > 0 then
  local seq = redis.call('INCRBY', KEYS[3], n_push) - n_push
  for _ = 1, n_push do
    local bucket, field, priority, payload = tonumber(ARGV[i]), ARGV[i+1], tonumber(ARGV[i+2]), ARGV[i+3]
    i = i + 4
    if bucket == 0 or redis.call('HSETNX', KEYS[7 + bucket], field, '') == 1 then
      seq = seq + 1
      local id = tostring(seq)
      data[#data + 1] = id
      data[#data + 1] = payload
      index[#index + 1] = -priority * 4294967296 + seq
      index[#index + 1] = id
      added = added + 1
    else
      filtered = filtered + 1
    end
  end
  if added > 0 then
    flush('HSET', KEYS[2], data)
    flush('ZADD', KEYS[1], index)
    redis.call('HINCRBY', KEYS[6], 'enqueued', added)
  end
end
local n_ack = tonumber(ARGV[i])
if n_ack > 0 then return redis.error_reply('acks are not part of this prototype') end
return {added, filtered}
"""

FIXED_KEYS = [
    KEYS.requests, KEYS.request_data, KEYS.request_seq, KEYS.leases, KEYS.lease_owners, KEYS.budget, KEYS.dead,
]


def pushes(start: int, count: int) -> tuple[list[str], list[Any]]:
    """KEYS and ARGV of one call pushing ``count`` new requests."""
    buckets: dict[str, int] = {}
    argv: list[Any] = ["bench-node", count]
    for n in range(start, start + count):
        fingerprint = hashlib.sha1(b"%d" % n).digest()
        index, field = LAYOUT.cut(fingerprint)
        position = buckets.setdefault(f"{KEYS.dupefilter}:{index:x}", len(buckets) + 1)
        payload = json.dumps(
            {"url": f"https://baike.baidu.com/item/%E5%90%8D%E5%AD%97{n}/{n}", "callback": "parse",
             "errback": "errback", "meta": {"depth": 3}},
            separators=(",", ":"),
        )
        argv += [position, field, 0, payload]
    argv.append(0)
    return FIXED_KEYS + list(buckets), argv


def measure(lab: Lab, source: str, calls: int, per_call: int) -> dict[str, float]:
    client = lab.redis.client()
    client.flushall()
    script = client.register_script(source)
    script(keys=FIXED_KEYS, args=["warm-up", 0, 0])
    client.config_resetstat()
    before = lab.redis.cpu_seconds()
    for call in range(calls):
        keys, argv = pushes(call * per_call, per_call)
        script(keys=keys, args=argv)
    cpu = lab.redis.cpu_seconds() - before
    stats = client.info("commandstats")
    requests = calls * per_call
    return {
        "redis_cpu_us": 1e6 * cpu / requests,
        "script_us": stats["cmdstat_evalsha"]["usec"] / requests,
        "queued": client.zcard(KEYS.requests),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--calls", type=int, default=3000)
    parser.add_argument("--per-call", type=int, default=36, help="pushes per call (a crawl flushes about 36)")
    args = parser.parse_args(argv)
    setup_logging()
    results: dict[str, list[dict[str, float]]] = {"shipped": [], "batched": []}
    with Lab("pushcost") as lab:
        lab.start_redis()
        for _ in range(args.rounds):
            for name, source in (("shipped", scripts.PUSH_AND_ACK), ("batched", BATCHED_PUSH)):
                results[name].append(measure(lab, source, args.calls, args.per_call))
    rows = []
    for name, runs in results.items():
        cpu = [run["redis_cpu_us"] for run in runs]
        script_time = [run["script_us"] for run in runs]
        rows.append([name, min(cpu), statistics.median(cpu), min(script_time), statistics.median(script_time)])
    print(table(["PUSH_AND_ACK", "Redis CPU us/request min", "median", "script us/request min", "median"], rows))
    path = write_results("pushcost", {"args": vars(args), "results": results})
    print(f"results: {path.relative_to(path.parents[2])}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
