"""Lua scripts of the frontier, one named constant each, registered once per client.

Every key a script touches is passed in KEYS (so the scripts are safe to run on a
Redis Cluster slot and readable on their own); ARGV carries values only.
A request id is a decimal string from the ``request_seq`` counter; its frontier
score is ``-priority * 2^32 + seq``, so higher priority comes first and equal
priorities come out first in, first out.
"""

from __future__ import annotations

# PUSH_AND_ACK: dedup and enqueue a batch of requests, then settle a batch of leases.
# KEYS[1] requests zset   KEYS[2] request_data hash   KEYS[3] request_seq
# KEYS[4] leases zset     KEYS[5] lease_owners hash   KEYS[6] budget hash
# KEYS[7] dead list       KEYS[8..] dupefilter buckets (hashes), referenced by index
# ARGV[1] node id         ARGV[2] number of requests P
# then P times: bucket index (0 = not filtered), fingerprint field, priority, payload
# then number of acks A, then A times: request id, page flag, dead-letter prefix
#   page flag "1": a page was downloaded under the lease (its budget unit is spent),
#             "0": none was (the unit is handed back)
#   dead-letter prefix "": settled normally; otherwise the payload goes to the dead
#             list as <prefix> .. payload .. "}"
# The budget hash also keeps the ledger: "enqueued" (requests ever added) and "settled"
# (leases ever settled or dead-lettered), so that at any moment
# enqueued == settled + queued + leased.
# Returns {added, filtered}.
PUSH_AND_ACK = """
local node = ARGV[1]
local n_push = tonumber(ARGV[2])
local added, filtered = 0, 0
local i = 3
-- Writes are gathered and sent as one command per key (in chunks that stay within
-- Lua's stack): a page brings dozens of new requests, and each redis.call costs.
local function call_chunked(command, key, values, width)
  local chunk = 1000 * width
  for first = 1, #values, chunk do
    redis.call(command, key, unpack(values, first, math.min(first + chunk - 1, #values)))
  end
end
if n_push > 0 then
  local seq = redis.call('INCRBY', KEYS[3], n_push) - n_push
  local data, scores = {}, {}
  for _ = 1, n_push do
    local bucket, field, priority, payload = tonumber(ARGV[i]), ARGV[i+1], tonumber(ARGV[i+2]), ARGV[i+3]
    i = i + 4
    if bucket == 0 or redis.call('HSETNX', KEYS[7 + bucket], field, '') == 1 then
      seq = seq + 1
      local id = tostring(seq)
      data[#data + 1] = id
      data[#data + 1] = payload
      scores[#scores + 1] = -priority * 4294967296 + seq
      scores[#scores + 1] = id
      added = added + 1
    else
      filtered = filtered + 1
    end
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

# LEASE: reclaim expired leases, then lease up to N requests within the page budget.
# KEYS[1] requests zset   KEYS[2] request_data hash   KEYS[3] leases zset
# KEYS[4] lease_owners hash   KEYS[5] budget hash
# ARGV[1] node id   ARGV[2] N   ARGV[3] budget limit (0 = none)
# ARGV[4] now   ARGV[5] lease deadline   ARGV[6] most expired leases to reclaim
# Returns {reclaimed, budget_left (-1 = no budget), id1, payload1, id2, payload2, ...}.
LEASE = """
local node = ARGV[1]
local want = tonumber(ARGV[2])
local limit = tonumber(ARGV[3])
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
local out = {#expired, left}
if want <= 0 then return out end
local popped = redis.call('ZPOPMIN', KEYS[1], want)
local taken = 0
for j = 1, #popped, 2 do
  local id, score = popped[j], popped[j+1]
  local payload = redis.call('HGET', KEYS[2], id)
  if payload then
    redis.call('ZADD', KEYS[3], ARGV[5], id)
    redis.call('HSET', KEYS[4], id, node .. ' ' .. score)
    out[#out + 1] = id
    out[#out + 1] = payload
    taken = taken + 1
  end
end
if taken > 0 then
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
