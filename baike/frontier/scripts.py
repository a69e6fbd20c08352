"""Lua scripts of the frontier, one named constant each, registered once per client.

Every key a script touches is passed in KEYS (so the scripts are safe to run on a
Redis Cluster slot and readable on their own); ARGV carries values only.
A request id is a decimal string from the ``request_seq`` counter; its frontier
score is ``-priority * 2^32 + seq``, so higher priority comes first and equal
priorities come out first in, first out.
"""

from __future__ import annotations

# Lua helper shared by the scripts that write many values at once: one command per key
# (in chunks that stay within Lua's stack) instead of one redis.call per value.
_CALL_CHUNKED = """
local function call_chunked(command, key, values, width)
  local chunk = 1000 * width
  for first = 1, #values, chunk do
    redis.call(command, key, unpack(values, first, math.min(first + chunk - 1, #values)))
  end
end
"""

# PUSH_AND_ACK: dedup and enqueue a batch of requests, then settle a batch of leases.
# KEYS[1] requests zset   KEYS[2] request_data hash   KEYS[3] request_seq
# KEYS[4] leases zset     KEYS[5] lease_owners hash   KEYS[6] budget hash
# KEYS[7] dead list       KEYS[8..] dupefilter buckets (hashes) or Bloom filter shards
#                         (strings), referenced by index
# ARGV[1] node id   ARGV[2] fingerprint width W
# ARGV[3] Bloom hashes k, 0 for bucket fields   ARGV[4] Bloom bits per shard m
# ARGV[5] number of priority groups G
# then G times: priority, number of requests C, slots, payloads
#   slots: C records of a 2-byte big-endian bucket index (0 = not filtered) and a
#          W-byte fingerprint: a field set with HSETNX, or for a Bloom filter (W = 8)
#          two 4-byte big-endian numbers h1, h2 whose k bits (h1 + j * h2) mod m are set
#          with SETBIT; the request is new when a bit was not set yet. Either way the
#          fingerprint is recorded in the same step that enqueues its request.
#   payloads: the C payloads, "\n" before each (JSON text never holds a raw newline)
# then number of acks A, then A times: request id, page flag, dead-letter prefix
#   page flag "1": a page was downloaded under the lease (its budget unit is spent),
#             "0": none was (the unit is handed back)
#   dead-letter prefix "": settled normally; otherwise the payload goes to the dead
#             list as <prefix> .. payload .. "}"
# Requests arrive packed, two arguments per group instead of three per request: a page
# brings dozens, and every argument costs Redis a parse and a Lua string.
# The new requests of one group become one frontier entry: a lone payload as it is,
# several as a batch in the "\n"-prefixed form above. One entry costs Redis one hash
# field and one sorted-set member instead of one of each per request; LEASE splits it.
# The budget hash also keeps the ledger: "enqueued" (requests ever added) and "settled"
# (leases ever settled or dead-lettered), so that at any moment
# enqueued == settled + queued + leased.
# Returns {added, filtered}.
PUSH_AND_ACK = _CALL_CHUNKED + """
local node = ARGV[1]
local width = tonumber(ARGV[2])
local hashes, bits = tonumber(ARGV[3]), tonumber(ARGV[4])
local n_groups = tonumber(ARGV[5])
local added, filtered = 0, 0
local i = 6
-- record the fingerprint at `at` of `slots` in `key`; true when it was new
local function record(key, slots, at)
  if hashes == 0 then
    return redis.call('HSETNX', key, string.sub(slots, at, at + width - 1), '') == 1
  end
  local a1, a2, a3, a4, b1, b2, b3, b4 = string.byte(slots, at, at + 7)
  local h1 = ((a1 * 256 + a2) * 256 + a3) * 256 + a4
  local h2 = ((b1 * 256 + b2) * 256 + b3) * 256 + b4
  local new = false
  for j = 0, hashes - 1 do
    if redis.call('SETBIT', key, (h1 + j * h2) % bits, 1) == 0 then new = true end
  end
  return new
end
-- the payloads of a group whose requests were not all new, kept ones only
local function select_payloads(payloads, kept)
  local parts, k, start, next_kept = {}, 1, 2, 1
  while start and next_kept <= #kept do
    local stop = string.find(payloads, '\\n', start, true)
    if kept[next_kept] == k then
      parts[#parts + 1] = string.sub(payloads, start, stop and stop - 1 or -1)
      next_kept = next_kept + 1
    end
    k = k + 1
    start = stop and stop + 1
  end
  return parts
end
if n_groups > 0 then
  local seq = redis.call('INCRBY', KEYS[3], n_groups) - n_groups
  local data, scores = {}, {}
  local stride = width + 2
  for _ = 1, n_groups do
    local priority, count, slots, payloads = tonumber(ARGV[i]), tonumber(ARGV[i + 1]), ARGV[i + 2], ARGV[i + 3]
    i = i + 4
    local kept = {}
    for k = 1, count do
      local at = (k - 1) * stride + 1
      local high, low = string.byte(slots, at, at + 1)
      local bucket = high * 256 + low
      if bucket == 0 or record(KEYS[7 + bucket], slots, at + 2) then
        kept[#kept + 1] = k
      end
    end
    seq = seq + 1
    if #kept > 0 then
      local entry = payloads
      if #kept < count then
        local parts = select_payloads(payloads, kept)
        entry = #parts == 1 and parts[1] or '\\n' .. table.concat(parts, '\\n')
      elseif count == 1 then
        entry = string.sub(payloads, 2)
      end
      local id = tostring(seq)
      data[#data + 1] = id
      data[#data + 1] = entry
      scores[#scores + 1] = -priority * 4294967296 + seq
      scores[#scores + 1] = id
      added = added + #kept
    end
    filtered = filtered + count - #kept
  end
  if added > 0 then
    call_chunked('HSET', KEYS[2], data, 2)
    call_chunked('ZADD', KEYS[1], scores, 2)
    redis.call('HINCRBY', KEYS[6], 'enqueued', added)
  end
end
local n_ack = tonumber(ARGV[i])
i = i + 1
local settled, pages, unreserved, late_pages = {}, 0, 0, 0
for _ = 1, n_ack do
  local id, page, dead_prefix = ARGV[i], ARGV[i+1], ARGV[i+2]
  i = i + 3
  local owner = redis.call('HGET', KEYS[5], id)
  if owner and string.sub(owner, 1, #node + 1) == node .. ' ' then
    settled[#settled + 1] = id
    if dead_prefix ~= '' then
      local payload = redis.call('HGET', KEYS[2], id)
      if payload then redis.call('RPUSH', KEYS[7], dead_prefix .. payload .. '}') end
    end
    if page == '1' then pages = pages + 1 else unreserved = unreserved + 1 end
  elseif page == '1' then
    -- the lease expired and went back to the frontier, but the page was downloaded:
    -- count it as spent so the budget stays a count of real downloads
    late_pages = late_pages + 1
  end
end
if #settled > 0 then
  call_chunked('ZREM', KEYS[4], settled, 1)
  call_chunked('HDEL', KEYS[5], settled, 1)
  call_chunked('HDEL', KEYS[2], settled, 1)
  redis.call('HINCRBY', KEYS[6], 'settled', #settled)
end
if pages + late_pages > 0 then redis.call('HINCRBY', KEYS[6], 'pages', pages + late_pages) end
if late_pages - unreserved ~= 0 then redis.call('HINCRBY', KEYS[6], 'reserved', late_pages - unreserved) end
return {added, filtered}
"""

# LEASE: admit waiting seeds, reclaim expired leases, then lease up to N requests within
# the page budget.
# KEYS[1] requests zset   KEYS[2] request_data hash   KEYS[3] leases zset
# KEYS[4] lease_owners hash   KEYS[5] budget hash   KEYS[6] request_seq
# KEYS[7] start_urls (the seeds: a list, set or sorted set)   KEYS[8] started string
# ARGV[1] node id   ARGV[2] N   ARGV[3] budget limit (0 = none)
# ARGV[4] now   ARGV[5] lease deadline   ARGV[6] most expired leases to reclaim
# ARGV[7] most seeds to admit   ARGV[8] the seed key's type ("list", "set" or "zset")
# ARGV[9] score of an admitted seed, before its sequence number
# Seeds move from KEYS[7] into the frontier in this same atomic step (LPOP for a list,
# SPOP for a set, ZPOPMAX for a sorted set, as scrapy-redis reads them), each as a lone
# entry "S" .. <the raw seed as a JSON string>, scored ahead of every request; the node
# that leases one validates it and, in the flush that settles it, enqueues its request.
# So a seed is never only in a node's memory. The first admitted seed sets KEYS[8].
# A seed key of another type is left alone and reported (-1 admitted).
# A batch entry (see PUSH_AND_ACK) is split: the requests taken from it are leased under
# new ids, with the batch's score, and the rest stays queued under the batch's id and score.
# Returns {reclaimed, budget_left (-1 = no budget), admitted seeds (-1 = wrong key type),
#          id1, payload1, id2, payload2, ...}.
LEASE = _CALL_CHUNKED + """
local node = ARGV[1]
local want = tonumber(ARGV[2])
local limit = tonumber(ARGV[3])
local admitted = 0
local seed_room = tonumber(ARGV[7])
if seed_room > 0 then
  local kind = redis.call('TYPE', KEYS[7]).ok
  if kind == ARGV[8] then
    local seeds
    if kind == 'list' then
      seeds = redis.call('LPOP', KEYS[7], seed_room)
    elseif kind == 'set' then
      seeds = redis.call('SPOP', KEYS[7], seed_room)
    else
      seeds = {}
      local popped = redis.call('ZPOPMAX', KEYS[7], seed_room)
      for j = 1, #popped, 2 do seeds[#seeds + 1] = popped[j] end
    end
    if seeds and #seeds > 0 then
      local seq = redis.call('INCRBY', KEYS[6], #seeds) - #seeds
      local data, scores = {}, {}
      for _, seed in ipairs(seeds) do
        seq = seq + 1
        data[#data + 1] = tostring(seq)
        data[#data + 1] = 'S' .. cjson.encode(seed)
        scores[#scores + 1] = tonumber(ARGV[9]) + seq
        scores[#scores + 1] = tostring(seq)
      end
      call_chunked('HSET', KEYS[2], data, 2)
      call_chunked('ZADD', KEYS[1], scores, 2)
      redis.call('HINCRBY', KEYS[5], 'enqueued', #seeds)
      redis.call('HINCRBY', KEYS[5], 'seeds', #seeds)
      local now = redis.call('TIME')
      redis.call('SET', KEYS[8], now[1] .. '.' .. string.format('%06d', tonumber(now[2])), 'NX')
      admitted = #seeds
    end
  elseif kind ~= 'none' then
    admitted = -1
  end
end
local expired = redis.call('ZRANGEBYSCORE', KEYS[3], '-inf', ARGV[4], 'LIMIT', 0, tonumber(ARGV[6]))
for _, id in ipairs(expired) do
  local owner = redis.call('HGET', KEYS[4], id)
  redis.call('ZREM', KEYS[3], id)
  redis.call('HDEL', KEYS[4], id)
  if owner and redis.call('HEXISTS', KEYS[2], id) == 1 then
    local score = string.match(owner, ' (.+)$')
    redis.call('ZADD', KEYS[1], score, id)
  end
  redis.call('HINCRBY', KEYS[5], 'reserved', -1)
end
local left = -1
if limit > 0 then
  local reserved = tonumber(redis.call('HGET', KEYS[5], 'reserved') or '0')
  left = limit - reserved
  if left < want then want = left end
end
local out = {#expired, left, admitted}
if want <= 0 then return out end
local deadlines, owners, taken = {}, {}, 0
local function lease(id, payload, owner)
  deadlines[#deadlines + 1] = ARGV[5]
  deadlines[#deadlines + 1] = id
  owners[#owners + 1] = id
  owners[#owners + 1] = owner
  out[#out + 1] = id
  out[#out + 1] = payload
  taken = taken + 1
end
while taken < want do
  local popped = redis.call('ZPOPMIN', KEYS[1])
  if #popped == 0 then break end
  local id, score = popped[1], popped[2]
  local entry = redis.call('HGET', KEYS[2], id)
  local owner = node .. ' ' .. score
  if entry and string.byte(entry, 1) ~= 10 then
    lease(id, entry, owner)
  elseif entry then
    local next_id = redis.call('INCRBY', KEYS[6], want - taken) - (want - taken)
    local parts, start = {}, 2
    while start and taken < want do
      local stop = string.find(entry, '\\n', start, true)
      local payload = string.sub(entry, start, stop and stop - 1 or -1)
      next_id = next_id + 1
      local part_id = tostring(next_id)
      parts[#parts + 1] = part_id
      parts[#parts + 1] = payload
      lease(part_id, payload, owner)
      start = stop and stop + 1
    end
    if start then
      parts[#parts + 1] = id
      parts[#parts + 1] = string.sub(entry, start - 1)
      redis.call('ZADD', KEYS[1], score, id)
    else
      redis.call('HDEL', KEYS[2], id)
    end
    call_chunked('HSET', KEYS[2], parts, 2)
  end
end
if taken > 0 then
  call_chunked('ZADD', KEYS[3], deadlines, 2)
  call_chunked('HSET', KEYS[4], owners, 2)
  redis.call('HINCRBY', KEYS[5], 'reserved', taken)
  if limit > 0 then out[2] = left - taken end
end
return out
"""

# RELEASE: hand leases back to the frontier untouched (node closing, request not downloaded).
# KEYS[1] requests zset   KEYS[2] leases zset   KEYS[3] lease_owners hash   KEYS[4] budget hash
# ARGV[1] node id, ARGV[2..] request ids. Returns the number released.
RELEASE = """
local node = ARGV[1]
local released = 0
for i = 2, #ARGV do
  local id = ARGV[i]
  local owner = redis.call('HGET', KEYS[3], id)
  if owner and string.sub(owner, 1, #node + 1) == node .. ' ' then
    redis.call('ZADD', KEYS[1], string.sub(owner, #node + 2), id)
    redis.call('ZREM', KEYS[2], id)
    redis.call('HDEL', KEYS[3], id)
    redis.call('HINCRBY', KEYS[4], 'reserved', -1)
    released = released + 1
  end
end
return released
"""

# HEARTBEAT: extend this node's leases, so a slow page is not taken from a live node.
# KEYS[1] leases zset   KEYS[2] lease_owners hash
# ARGV[1] node id   ARGV[2] new deadline   ARGV[3..] request ids
# Returns the number of leases extended (a lease taken over by another node is skipped).
HEARTBEAT = """
local node = ARGV[1]
local extended = 0
for i = 3, #ARGV do
  local owner = redis.call('HGET', KEYS[2], ARGV[i])
  if owner and string.sub(owner, 1, #node + 1) == node .. ' ' then
    redis.call('ZADD', KEYS[1], 'XX', ARGV[2], ARGV[i])
    extended = extended + 1
  end
end
return extended
"""

# DEAD_LETTER_RAW: move a payload that cannot be decoded out of a lease into the dead list.
# KEYS[1] request_data hash   KEYS[2] leases zset   KEYS[3] lease_owners hash
# KEYS[4] budget hash   KEYS[5] dead list
# ARGV[1] request id   ARGV[2] dead-letter record (JSON, built by the caller)
DEAD_LETTER_RAW = """
redis.call('RPUSH', KEYS[5], ARGV[2])
redis.call('HDEL', KEYS[1], ARGV[1])
if redis.call('ZREM', KEYS[2], ARGV[1]) == 1 then
  redis.call('HINCRBY', KEYS[4], 'reserved', -1)
  redis.call('HINCRBY', KEYS[4], 'settled', 1)
end
redis.call('HDEL', KEYS[3], ARGV[1])
return 1
"""
