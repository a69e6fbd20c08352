"""Lua scripts of the frontier, one named constant each, registered once per client.

Every key a script touches is passed in KEYS (so the scripts are safe to run on a
Redis Cluster slot and readable on their own); ARGV carries values only.
A request id is a decimal string from the ``request_seq`` counter; its frontier
score is ``-priority * 2^32 + seq``, so higher priority comes first and equal
priorities come out first in, first out.

Built for nodes on separate machines:

* **Redis time only.** Every deadline (a lease's, a heartbeat's, what is expired) is
  computed inside the scripts from the server's ``TIME``; ARGV carries durations,
  never a node's clock.
* **Fencing.** A lease is owned by ``"<node> <token> <score>"``, the token unique to
  the take that leased it. Acknowledgements, heartbeats, releases and dead letters
  name the token; one that is no longer current (the lease expired and was taken
  again) is refused and counted, and never spends the budget.
* **Safe to run twice.** A client may resend a call whose reply was lost (redis-py's
  retry on timeout, or the scheduler's own retry). LEASE and PUSH_AND_ACK take a call
  id and keep, per node, their last call's id and reply in the ``calls`` hash: a
  resent call replays that reply and changes nothing. The other scripts' effects are
  idempotent by themselves (fenced by the lease's owner and token).
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

# Lua helpers of the call ids: `replayed` gives the reply a resent call already got (nil
# for a new call), `remember` keeps a call's reply as the last of its node and script.
_CALLS = """
local function replayed(calls, field, call_id)
  local last = redis.call('HGET', calls, field)
  if last and string.sub(last, 1, #call_id + 1) == call_id .. '\\n' then
    return cjson.decode(string.sub(last, #call_id + 2))
  end
  return nil
end
local function remember(calls, field, call_id, reply)
  redis.call('HSET', calls, field, call_id .. '\\n' .. cjson.encode(reply))
  return reply
end
"""

# Lua helpers of the shared rate (a politeness key's hash, see baike.keys.RATE): its rate
# now, which backing off lowers below the configured one (itself capped by the host's
# robots.txt Crawl-delay, "cap"), and the end of its cool-down.
_RATE = """
local function current_rate(hash, configured)
  local held = redis.call('HMGET', hash, 'rate', 'current', 'cap')
  local cap = tonumber(held[3])
  if cap and cap > 0 and cap < configured then configured = cap end
  if tonumber(held[1]) ~= configured or not tonumber(held[2]) then
    redis.call('HSET', hash, 'rate', configured, 'current', configured)
    return configured
  end
  return math.min(tonumber(held[2]), configured)
end
local function cooldown_until(hash)
  return tonumber(redis.call('HGET', hash, 'cooldown_until') or '0') or 0
end
"""

# Lua helpers of the leases: the owner prefix of a node's lease taken with a token, the
# frontier score a lease keeps in its owner string, and the server's clock in seconds.
_LEASES = """
local function owner_prefix(node, token)
  return node .. ' ' .. token .. ' '
end
local function score_of(owner)
  return string.match(owner, ' ([^ ]+)$')
end
local function redis_now()
  local t = redis.call('TIME')
  return tonumber(t[1]) + tonumber(t[2]) / 1000000
end
"""

# PUSH_AND_ACK: dedup and enqueue a batch of requests, then settle a batch of leases.
# KEYS[1] requests zset   KEYS[2] request_data hash   KEYS[3] request_seq
# KEYS[4] leases zset     KEYS[5] lease_owners hash   KEYS[6] budget hash
# KEYS[7] dead list       KEYS[8] calls hash   KEYS[9] the politeness key's rate hash
# KEYS[10] items hash (the stored records)
# KEYS[11..] dupefilter buckets (hashes) or Bloom filter shards (strings), by index
# ARGV[1] node id   ARGV[2] call id   ARGV[3] fingerprint width W
# ARGV[4] Bloom hashes k, 0 for bucket fields   ARGV[5] Bloom bits per shard m
# ARGV[6] number of priority groups G
# then G times: priority, number of requests C, slots, payloads, replaced ack R
#   slots: C records of a 2-byte big-endian bucket index (0 = not filtered) and a
#          W-byte fingerprint: a field set with HSETNX, or for a Bloom filter (W = 8)
#          two 4-byte big-endian numbers h1, h2 whose k bits (h1 + j * h2) mod m are set
#          with SETBIT; the request is new when a bit was not set yet. Either way the
#          fingerprint is recorded in the same step that enqueues its request.
#   payloads: the C payloads, "\n" before each (JSON text never holds a raw newline);
#          "" for a group of marks: its fingerprints are recorded as seen and nothing is
#          queued (another URL form of a page just stored; counted neither added nor filtered,
#          but in the ledger's "marked", so that fingerprints == enqueued - seeds + marked)
#   replaced ack: 0, or the index (1-based) among this call's acks of the lease whose
#          request this group replaces (a retry or redirect of it): the group is kept
#          only if that ack is accepted, so a fenced node never re-queues a request that
#          another node has taken over
# then number of acks A, then A times: request id, lease token, page flag, dead-letter prefix,
#   records: the URLs of the records the page stored, "\n" between them ("" for none)
# then the answers the host gave since the last call, reported to the shared rate:
#   configured rate (0: no shared rate, answers ignored), healthy answers, 403/429/5xx
#   answers, captchas, the longest Retry-After (seconds, 0: none), the first cool-down,
#   the longest cool-down, the window (seconds) the 403/429/5xx share is counted over
#   page flag "1": a page was downloaded under the lease (its budget unit is spent),
#             "0": none was (the unit is handed back)
#   dead-letter prefix "": settled normally; otherwise the payload goes to the dead
#             list as <prefix> .. payload .. "}"
# then "1" to have the reply list the requests filtered as duplicates (DUPEFILTER_DEBUG), else "0"
# then the id of this node's last call of this script that Redis confirmed to it ("" for none)
# Requests arrive packed, two arguments per group instead of three per request: a page
# brings dozens, and every argument costs Redis a parse and a Lua string.
# The new requests of one group become one frontier entry: a lone payload as it is,
# several as a batch in the "\n"-prefixed form above. One entry costs Redis one hash
# field and one sorted-set member instead of one of each per request; LEASE splits it.
# The budget hash also keeps the ledger: "enqueued" (requests ever added) and "settled"
# (leases ever settled or dead-lettered), so that at any moment
# enqueued == settled + queued + leased.
# An ack whose lease is no longer this node's with this token (it expired, and was
# reclaimed or taken again) is refused: counted as stale, nothing settled or spent.
# An ack of a lease still this node's whose records are not all in the items hash (a
# failover lost them: the new master holds an earlier state than the one the node stored
# them in) is refused too: its request goes back to the frontier unspent, to be done again,
# and is counted as unstored; the lease is no longer this node's. So is every ack of a call
# made "behind": the last call of this node recorded in the calls hash is not the one the
# node names as its last confirmed (a failover lost it, and with it maybe links of the
# pages acknowledged now).
# Backing off together: a captcha when no cool-down is running pauses the whole cluster
# (LEASE hands out nothing until "cooldown_until", Redis time) for the first cool-down, or
# for twice the last one when the storm outlasted it (up to the longest), and halves the
# rate; a Retry-After longer than the cool-down sets it; 403/429/5xx making a fifth of the
# window's answers (at least 5) halve the rate; healthy answers a whole window after the
# last of those raise it by a twentieth of the configured rate per second, back to it.
# Returns {added, filtered, stale acks, ms of cool-down left, rate now in requests per
# 1000 s, unstored acks, 1 when the call was behind else 0, {positions of the filtered requests among all the groups' requests, from 1, when
# asked}}; a resent call (same call id) replays it.
PUSH_AND_ACK = (
    _CALL_CHUNKED
    + _CALLS
    + _LEASES
    + _RATE
    + """
local node = ARGV[1]
local call_id = ARGV[2]
local replay = replayed(KEYS[8], 'push ' .. node, call_id)
if replay then return replay end
local width = tonumber(ARGV[3])
local hashes, bits = tonumber(ARGV[4]), tonumber(ARGV[5])
local n_groups = tonumber(ARGV[6])
local added, filtered, marked = 0, 0, 0
local after = ARGV[#ARGV]
local recorded = redis.call('HGET', KEYS[8], 'push ' .. node)
local behind = after ~= '' and not (recorded and string.sub(recorded, 1, #after + 1) == after .. '\\n')
-- the acks first (they follow the groups in ARGV): which are stale decides which
-- replacing groups are kept
local settled, pages, unreserved, stale, unstored, refused = {}, 0, 0, 0, 0, {}
local i = 7 + 5 * n_groups
local n_ack = tonumber(ARGV[i])
i = i + 1
-- whether every record named in `records` is stored
local function all_stored(records)
  for url in string.gmatch(records, '[^\\n]+') do
    if redis.call('HEXISTS', KEYS[10], url) == 0 then return false end
  end
  return true
end
for k = 1, n_ack do
  local id, token, page, dead_prefix, records = ARGV[i], ARGV[i + 1], ARGV[i + 2], ARGV[i + 3], ARGV[i + 4]
  i = i + 5
  local owner = redis.call('HGET', KEYS[5], id)
  local prefix = owner_prefix(node, token)
  local ours = owner and string.sub(owner, 1, #prefix) == prefix
  if ours and (behind or (records ~= '' and not all_stored(records))) then
    redis.call('ZADD', KEYS[1], score_of(owner), id)
    redis.call('ZREM', KEYS[4], id)
    redis.call('HDEL', KEYS[5], id)
    unreserved = unreserved + 1
    unstored = unstored + 1
    refused[k] = true
  elseif ours then
    settled[#settled + 1] = id
    if dead_prefix ~= '' then
      local payload = redis.call('HGET', KEYS[2], id)
      if payload then redis.call('RPUSH', KEYS[7], dead_prefix .. payload .. '}') end
    end
    if page == '1' then pages = pages + 1 else unreserved = unreserved + 1 end
  else
    stale = stale + 1
    refused[k] = true
  end
end
local answers_at = i
local list_filtered = ARGV[answers_at + 8] == '1'
local duplicates, sent = {}, 0
i = 7
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
    local replaced = tonumber(ARGV[i + 4])
    i = i + 5
    local kept = {}
    if payloads == '' then
      for k = 1, count do
        local at = (k - 1) * stride + 1
        local high, low = string.byte(slots, at, at + 1)
        local bucket = high * 256 + low
        if bucket > 0 and record(KEYS[10 + bucket], slots, at + 2) then marked = marked + 1 end
      end
      sent, count = sent + count, 0
    end
    for k = 1, (replaced > 0 and refused[replaced]) and 0 or count do
      local at = (k - 1) * stride + 1
      local high, low = string.byte(slots, at, at + 1)
      local bucket = high * 256 + low
      if bucket == 0 or record(KEYS[10 + bucket], slots, at + 2) then
        kept[#kept + 1] = k
      elseif list_filtered then
        duplicates[#duplicates + 1] = sent + k
      end
    end
    sent = sent + count
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
if marked > 0 then redis.call('HINCRBY', KEYS[6], 'marked', marked) end
if #settled > 0 then
  call_chunked('ZREM', KEYS[4], settled, 1)
  call_chunked('HDEL', KEYS[5], settled, 1)
  call_chunked('HDEL', KEYS[2], settled, 1)
  redis.call('HINCRBY', KEYS[6], 'settled', #settled)
end
if pages > 0 then redis.call('HINCRBY', KEYS[6], 'pages', pages) end
if unreserved > 0 then redis.call('HINCRBY', KEYS[6], 'reserved', -unreserved) end
if stale > 0 then redis.call('HINCRBY', KEYS[6], 'stale_acks', stale) end
-- the answers
i = answers_at
local configured = tonumber(ARGV[i])
local cooling, current = 0, configured
if configured > 0 then
  local ok, bad, captcha, retry_after = tonumber(ARGV[i + 1]), tonumber(ARGV[i + 2]), tonumber(ARGV[i + 3]), tonumber(ARGV[i + 4])
  local first, longest, window = tonumber(ARGV[i + 5]), tonumber(ARGV[i + 6]), tonumber(ARGV[i + 7])
  local hash, now = KEYS[9], redis_now()
  current = current_rate(hash, configured)
  local ending = cooldown_until(hash)
  local held = redis.call('HMGET', hash, 'cooldown', 'window_start', 'window_total', 'window_bad', 'raised_at', 'failed_at')
  local last, start = tonumber(held[1]) or 0, tonumber(held[2]) or now
  local total, failed, raised = tonumber(held[3]) or 0, tonumber(held[4]) or 0, tonumber(held[5]) or 0
  local failed_at = tonumber(held[6]) or 0
  if bad + captcha > 0 then failed_at = now end
  local reason = nil
  if now - start > window then start, total, failed = now, 0, 0 end
  total, failed = total + ok + bad + captcha, failed + bad + captcha
  if captcha > 0 and now >= ending then
    last = (now < ending + last) and math.min(2 * last, longest) or first
    ending, reason = now + last, 'captcha'
    current = math.max(configured / 64, current / 2)
  end
  if retry_after > 0 and now + retry_after > ending then ending, reason = now + retry_after, 'Retry-After' end
  if failed >= 5 and failed >= 0.2 * total then
    current = math.max(configured / 64, current / 2)
    start, total, failed, reason = now, 0, 0, reason or '403/429/5xx'
  elseif ok > 0 and now - failed_at >= window and current < configured and now - raised >= 1 then
    current, raised = math.min(configured, current + configured / 20), now
  end
  redis.call('HSET', hash, 'current', current, 'cooldown_until', ending, 'cooldown', last, 'window_start', start,
    'window_total', total, 'window_bad', failed, 'raised_at', raised, 'failed_at', failed_at)
  if reason then redis.call('HSET', hash, 'reason', reason, 'reason_at', now) end
  if ending > now then cooling = math.ceil((ending - now) * 1000) end
end
return remember(KEYS[8], 'push ' .. node, call_id,
  {added, filtered, stale, cooling, math.floor(current * 1000), unstored, behind and 1 or 0, duplicates})
"""
)

# LEASE: admit waiting seeds, reclaim expired leases, then lease up to N requests within
# the page budget.
# KEYS[1] requests zset   KEYS[2] request_data hash   KEYS[3] leases zset
# KEYS[4] lease_owners hash   KEYS[5] budget hash   KEYS[6] request_seq
# KEYS[7] start_urls (the seeds: a list, set or sorted set)   KEYS[8] started string
# KEYS[9] calls hash   KEYS[10] the politeness key's rate hash (see baike.keys.CrawlKeys.rate)
# ARGV[1] node id   ARGV[2] call id   ARGV[3] N   ARGV[4] budget limit (0 = none; -1 = the
#   shard's "allowance" in KEYS[5], with BAIKE_SHARDS > 1: see ALLOWANCE_TRANSFERS)
# ARGV[5] lease seconds   ARGV[6] most expired leases to reclaim
# ARGV[7] most seeds to admit   ARGV[8] the seed key's type ("list", "set" or "zset")
# ARGV[9] score of an admitted seed, before its sequence number
# ARGV[10] the cluster's configured rate, requests per second (0 = no limit)   ARGV[11] its burst
# The rate is one GCRA bucket shared by every node of the politeness key: its
# theoretical arrival time "tat" (Redis time) is in KEYS[10]. A take leases no more
# requests than the bucket has tokens (seeds cost none: they are not downloads), so
# the cluster downloads at most rate * t + burst requests in any t seconds, whatever
# the number of nodes, without a round trip of its own. The rate drawn on is the hash's
# "current" one (lowered by backing off, see PUSH_AND_ACK), and no request is leased
# before its "cooldown_until".
# "Expired" and the new leases' deadline (now + lease seconds) are Redis's TIME. The
# leases of one take share a token, the next request_seq number; the owner of each is
# "<node> <token> <score>".
# Seeds move from KEYS[7] into the frontier in this same atomic step (LPOP for a list,
# SPOP for a set, ZPOPMAX for a sorted set, as scrapy-redis reads them), each as a lone
# entry "S" .. <the raw seed as a JSON string>, scored ahead of every request; the node
# that leases one validates it and, in the flush that settles it, enqueues its request.
# So a seed is never only in a node's memory. The first admitted seed sets KEYS[8].
# A seed key of another type is left alone and reported (-1 admitted).
# A batch entry (see PUSH_AND_ACK) is split: the requests taken from it are leased under
# new ids, with the batch's score, and the rest stays queued under the batch's id and score.
# Returns {reclaimed, budget_left (-1 = no budget), admitted seeds (-1 = wrong key type),
#          token, ms until half a take's worth of tokens (0: not rate-limited), id1, ...};
# a resent call (same call id) replays it.
LEASE = (
    _CALL_CHUNKED
    + _CALLS
    + _LEASES
    + _RATE
    + """
local node = ARGV[1]
local call_id = ARGV[2]
local replay = replayed(KEYS[9], 'lease ' .. node, call_id)
if replay then return replay end
local want = tonumber(ARGV[3])
local limit = tonumber(ARGV[4])
local capped = limit ~= 0
if limit < 0 then limit = tonumber(redis.call('HGET', KEYS[5], 'allowance') or '0') end
local now = redis_now()
local deadline = now + tonumber(ARGV[5])
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
local expired = redis.call('ZRANGEBYSCORE', KEYS[3], '-inf', now, 'LIMIT', 0, tonumber(ARGV[6]))
for _, id in ipairs(expired) do
  local owner = redis.call('HGET', KEYS[4], id)
  redis.call('ZREM', KEYS[3], id)
  redis.call('HDEL', KEYS[4], id)
  if owner and redis.call('HEXISTS', KEYS[2], id) == 1 then
    redis.call('ZADD', KEYS[1], score_of(owner), id)
  end
  redis.call('HINCRBY', KEYS[5], 'reserved', -1)
end
local left = -1
if capped then
  local reserved = tonumber(redis.call('HGET', KEYS[5], 'reserved') or '0')
  left = limit - reserved
  if left < want then want = left end
end
local out = {#expired, left, admitted, 0, 0}
if want <= 0 then return remember(KEYS[9], 'lease ' .. node, call_id, out) end
local rate, burst = tonumber(ARGV[10]), tonumber(ARGV[11])
local tokens, interval, tat, ending = math.huge, 0, now, 0
if rate > 0 then
  interval = 1 / current_rate(KEYS[10], rate)
  tat = math.max(tonumber(redis.call('HGET', KEYS[10], 'tat') or '0'), now)
  tokens = math.max(math.floor(burst - (tat - now) / interval + 1e-9), 0)
  ending = cooldown_until(KEYS[10])
  if ending > now then tokens = 0 end
end
local token = redis.call('INCR', KEYS[6])
out[4] = token
local deadlines, owners, taken, charged = {}, {}, 0, 0
local function lease(id, payload, owner)
  deadlines[#deadlines + 1] = deadline
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
  local seed = entry and string.byte(entry, 1) == 83
  if entry and not seed and charged >= tokens then
    redis.call('ZADD', KEYS[1], score, id)
    break
  end
  local owner = owner_prefix(node, token) .. score
  if entry and string.byte(entry, 1) ~= 10 then
    lease(id, entry, owner)
    if not seed then charged = charged + 1 end
  elseif entry then
    local room = math.min(want - taken, tokens - charged)
    local next_id = redis.call('INCRBY', KEYS[6], room) - room
    local parts, start = {}, 2
    while start and taken < want and charged < tokens do
      charged = charged + 1
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
  if capped then out[2] = left - taken end
end
if rate > 0 then
  tat = tat + charged * interval
  redis.call('HSET', KEYS[10], 'tat', tat, 'burst', burst)
  if charged == 0 and tokens == 0 then
    -- come back when half a take's worth of tokens can be there, not for each one (a take
    -- per page would cost a round trip per page), nor for a full bucket (a late take
    -- would find it full, and the tokens it could not hold would be lost)
    local worth = math.max(math.floor(math.min(want, burst) / 2), 1)
    out[5] = math.ceil((math.max(tat - (burst - worth) * interval, ending) - now) * 1000)
  end
end
return remember(KEYS[9], 'lease ' .. node, call_id, out)
"""
)

# RELEASE: hand leases back to the frontier untouched (node closing, request not downloaded).
# KEYS[1] requests zset   KEYS[2] leases zset   KEYS[3] lease_owners hash   KEYS[4] budget hash
# ARGV[1] node id, then pairs: request id, lease token. Only leases still this node's
# with that token are released, so a second run changes nothing. Returns the number released.
RELEASE = (
    _LEASES
    + """
local node = ARGV[1]
local released = 0
for i = 2, #ARGV, 2 do
  local id = ARGV[i]
  local owner = redis.call('HGET', KEYS[3], id)
  local prefix = owner_prefix(node, ARGV[i + 1])
  if owner and string.sub(owner, 1, #prefix) == prefix then
    redis.call('ZADD', KEYS[1], score_of(owner), id)
    redis.call('ZREM', KEYS[2], id)
    redis.call('HDEL', KEYS[3], id)
    redis.call('HINCRBY', KEYS[4], 'reserved', -1)
    released = released + 1
  end
end
return released
"""
)

# HEARTBEAT: extend this node's leases, so a slow page is not taken from a live node.
# KEYS[1] leases zset   KEYS[2] lease_owners hash
# ARGV[1] node id   ARGV[2] lease seconds, then pairs: request id, lease token
# The new deadline is Redis's TIME + lease seconds. Returns the ids of the leases that are
# no longer this node's with that token (expired, maybe taken again): the node drops
# them instead of downloading them twice.
HEARTBEAT = (
    _LEASES
    + """
local node = ARGV[1]
local deadline = redis_now() + tonumber(ARGV[2])
local lost = {}
for i = 3, #ARGV, 2 do
  local id = ARGV[i]
  local owner = redis.call('HGET', KEYS[2], id)
  local prefix = owner_prefix(node, ARGV[i + 1])
  if owner and string.sub(owner, 1, #prefix) == prefix then
    redis.call('ZADD', KEYS[1], 'XX', deadline, id)
  else
    lost[#lost + 1] = id
  end
end
return lost
"""
)

# DEAD_LETTER_RAW: move a leased payload that cannot be decoded into the dead list.
# KEYS[1] request_data hash   KEYS[2] leases zset   KEYS[3] lease_owners hash
# KEYS[4] budget hash   KEYS[5] dead list
# ARGV[1] node id   ARGV[2] request id   ARGV[3] lease token
# ARGV[4] dead-letter record (JSON, built by the caller)
# Only a lease still this node's with that token is moved, so a second run changes nothing.
# Returns 1 when the payload was moved, 0 otherwise.
DEAD_LETTER_RAW = (
    _LEASES
    + """
local owner = redis.call('HGET', KEYS[3], ARGV[2])
local prefix = owner_prefix(ARGV[1], ARGV[3])
if not owner or string.sub(owner, 1, #prefix) ~= prefix then return 0 end
redis.call('RPUSH', KEYS[5], ARGV[4])
redis.call('HDEL', KEYS[1], ARGV[2])
redis.call('ZREM', KEYS[2], ARGV[2])
redis.call('HDEL', KEYS[3], ARGV[2])
redis.call('HINCRBY', KEYS[4], 'reserved', -1)
redis.call('HINCRBY', KEYS[4], 'settled', 1)
return 1
"""
)

# Lua helpers of the revisits (see baike.revisit): an entry's freshness state (a JSON
# object, {} when absent or unreadable) and its interval after a visit, bounded.
_FRESHNESS = """
local function state_of(hash, url)
  local raw = redis.call('HGET', hash, url)
  if not raw then return nil end
  local ok, state = pcall(cjson.decode, raw)
  if ok and type(state) == 'table' then return state end
  return nil
end
local function next_interval(state, factor, default, low, high)
  local interval = tonumber(state and state.interval) or default
  return math.min(math.max(interval * factor, low), high)
end
"""

# PROMOTE_DUE: move the stored entries that are due into the frontier, as revisit requests.
# KEYS[1] revisit zset   KEYS[2] freshness hash   KEYS[3] requests zset
# KEYS[4] request_data hash   KEYS[5] request_seq   KEYS[6] budget hash
# ARGV[1] most entries to move   ARGV[2] their priority   ARGV[3] default interval (seconds)
# ARGV[4] the payload's tail: the JSON text after its "meta" value, up to its closing "}"
# "Due" is a score at or below Redis's TIME. Each due URL becomes one lone frontier entry
# {"url": <url>, "meta": {"baike_revisit": true, "handle_httpstatus_list": [304], and the
# validators the server sent: "baike_etag", "baike_modified"} .. tail}, scored at the
# priority like a request pushed by PUSH_AND_ACK (no dupefilter: the entry is known), and
# counted in the ledger's "enqueued" and "revisits" (so that fingerprints ==
# enqueued - seeds - revisits + marked). Its due time moves on by its interval in the same
# step: the visit's outcome (STORE_VERSIONS, NOT_MODIFIED) sets the adapted one; should
# the revisit end without one (a failure, a dead letter), the entry is still scheduled.
# So a second run finds nothing due twice. Returns the number of entries moved.
PROMOTE_DUE = (
    _LEASES
    + _FRESHNESS
    + """
local now = redis_now()
local due = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', now, 'LIMIT', 0, tonumber(ARGV[1]))
if #due == 0 then return 0 end
local priority, default = tonumber(ARGV[2]), tonumber(ARGV[3])
local seq = redis.call('INCRBY', KEYS[5], #due) - #due
for _, url in ipairs(due) do
  local state = state_of(KEYS[2], url)
  local meta = {baike_revisit = true, handle_httpstatus_list = {304}}
  if state and type(state.etag) == 'string' and state.etag ~= '' then meta.baike_etag = state.etag end
  if state and type(state.modified) == 'string' and state.modified ~= '' then meta.baike_modified = state.modified end
  seq = seq + 1
  local id = tostring(seq)
  redis.call('HSET', KEYS[4], id, '{"url":' .. cjson.encode(url) .. ',"meta":' .. cjson.encode(meta) .. ARGV[4])
  redis.call('ZADD', KEYS[3], -priority * 4294967296 + seq, id)
  redis.call('ZADD', KEYS[1], now + next_interval(state, 1, default, 0, math.huge), url)
end
redis.call('HINCRBY', KEYS[6], 'enqueued', #due)
redis.call('HINCRBY', KEYS[6], 'revisits', #due)
return #due
"""
)

# STORE_VERSIONS: store parsed records, keeping each entry's previous version and its schedule.
# KEYS[1] items hash   KEYS[2] aliases hash   KEYS[3] freshness hash   KEYS[4] history hash
# KEYS[5] revisit zset   KEYS[6] revisit_stats hash
# ARGV[1] default interval   ARGV[2] shortest   ARGV[3] longest (seconds)   ARGV[4] history length
# then 6 values a record: canonical URL, fingerprint of its parsed fields, record (JSON),
# alias ("" for none), ETag and Last-Modified the server sent ("" for none)
# An entry without a freshness state is new: stored, due after the default interval. One whose
# fingerprint differs from its state's changed: its stored record is pushed onto its history
# (newest first, at most ARGV[4]), the new one stored, its interval halved (not below the
# shortest). One whose fingerprint is its state's did not change: the record is not written,
# its interval grows by half (not above the longest). So a record stored again (a lease
# redone after a crash) finds its own fingerprint and writes no history entry twice.
# Every entry's state gets the validators, "checked" (Redis time), one more visit, and its
# due time: now + interval. Returns {new, changed, unchanged}.
STORE_VERSIONS = (
    _LEASES
    + _FRESHNESS
    + """
local now = redis_now()
local default, low, high, keep = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3]), tonumber(ARGV[4])
local new, changed, unchanged = 0, 0, 0
for i = 5, #ARGV, 6 do
  local url, fp, record, alias = ARGV[i], ARGV[i + 1], ARGV[i + 2], ARGV[i + 3]
  local state = state_of(KEYS[3], url)
  local interval
  if state and state.fp == fp then
    unchanged = unchanged + 1
    interval = next_interval(state, 1.5, default, low, high)
  else
    local old = redis.call('HGET', KEYS[1], url)
    if state and old and old ~= record then
      changed = changed + 1
      local past = redis.call('HGET', KEYS[4], url)
      local lines = {old}
      if past then
        for line in string.gmatch(past, '[^\\n]+') do
          if #lines >= keep then break end
          lines[#lines + 1] = line
        end
      end
      if keep > 0 then redis.call('HSET', KEYS[4], url, table.concat(lines, '\\n')) end
      interval = next_interval(state, 0.5, default, low, high)
    else
      new = new + 1
      interval = math.min(math.max(default, low), high)
    end
    redis.call('HSET', KEYS[1], url, record)
    state = state or {}
    state.changed = now
    state.fp = fp
  end
  if alias ~= '' then redis.call('HSET', KEYS[2], alias, url) end
  state.etag, state.modified = ARGV[i + 4], ARGV[i + 5]
  state.interval, state.checked = interval, now
  state.visits = (tonumber(state.visits) or 0) + 1
  redis.call('HSET', KEYS[3], url, cjson.encode(state))
  redis.call('ZADD', KEYS[5], now + interval, url)
end
if new > 0 then redis.call('HINCRBY', KEYS[6], 'new', new) end
if changed > 0 then redis.call('HINCRBY', KEYS[6], 'changed', changed) end
if unchanged > 0 then redis.call('HINCRBY', KEYS[6], 'unchanged', unchanged) end
return {new, changed, unchanged}
"""
)

# NOT_MODIFIED: a revisit answered 304: the entry did not change; its record is not touched.
# KEYS[1] freshness hash   KEYS[2] revisit zset   KEYS[3] revisit_stats hash
# ARGV[1] default interval   ARGV[2] shortest   ARGV[3] longest (seconds)
# ARGV[4] canonical URL   ARGV[5] ETag   ARGV[6] Last-Modified the 304 sent ("" keeps the stored one)
# The state gets "checked" (Redis time), one more visit, its interval grown by half (not
# above the longest) and its due time now + interval. An entry with no state (not stored)
# is left alone. Returns the due time, or 0 when the entry has no state.
NOT_MODIFIED = (
    _LEASES
    + _FRESHNESS
    + """
local state = state_of(KEYS[1], ARGV[4])
if not state then return 0 end
local now = redis_now()
local interval = next_interval(state, 1.5, tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3]))
if ARGV[5] ~= '' then state.etag = ARGV[5] end
if ARGV[6] ~= '' then state.modified = ARGV[6] end
state.interval, state.checked = interval, now
state.visits = (tonumber(state.visits) or 0) + 1
redis.call('HSET', KEYS[1], ARGV[4], cjson.encode(state))
redis.call('ZADD', KEYS[2], now + interval, ARGV[4])
redis.call('HINCRBY', KEYS[3], 'not_modified', 1)
return tostring(now + interval)
"""
)

# ALLOWANCE_TRANSFERS (BAIKE_SHARDS > 1, see baike.frontier.shards). A script touches the
# keys of one slot only, so the page budget is split: shard 0's "shards" hash keeps
# "granted", the units handed to the shards; each shard's budget hash keeps "allowance",
# the units granted to it, and LEASE (limit -1) leases no more than allowance - reserved.
# Units move in two steps, each safe to run twice and to be finished by any node:
#   grant:     GRANT on shard 0 (granted += n, pending in "grants"), CREDIT on the shard
#              (allowance += n once per id), CLEAR_GRANT on shard 0;
#   give-back: DEBIT on a shard with nothing queued (allowance -= n, pending in its
#              "returns"), RETURN on shard 0 (granted -= n once per id), CLEAR_RETURN.
# So at every moment: budget = (budget - granted) + pending grants + sum over the shards
# of (allowance + pending give-backs), and pages <= reserved <= allowance on each shard:
# the pages of all shards never exceed the budget.

# GRANT: reserve up to n units of the budget for a shard, recorded as a pending grant.
# KEYS[1] shards hash   KEYS[2] grants hash   KEYS[3] transfers sorted set (all on shard 0)
# ARGV[1] grant id   ARGV[2] shard   ARGV[3] units wanted   ARGV[4] budget (CLOSESPIDER_PAGECOUNT)
# Returns the units granted (0: none left, or this grant id was finished already); run
# again with the same id it returns the same units and grants nothing more.
GRANT = """
local held = redis.call('HGET', KEYS[2], ARGV[1])
if held then return tonumber(string.match(held, '^[^ ]+ ([^ ]+)')) end
if redis.call('ZSCORE', KEYS[3], ARGV[1]) then return 0 end
local granted = tonumber(redis.call('HGET', KEYS[1], 'granted') or '0')
local units = math.min(tonumber(ARGV[3]), tonumber(ARGV[4]) - granted)
if units <= 0 then return 0 end
redis.call('HINCRBY', KEYS[1], 'granted', units)
redis.call('HSET', KEYS[2], ARGV[1], ARGV[2] .. ' ' .. units .. ' ' .. redis.call('TIME')[1])
return units
"""

# CREDIT: add a grant's units to a shard's allowance, once per grant id.
# KEYS[1] the shard's budget hash   KEYS[2] the shard's credited sorted set
# ARGV[1] grant id   ARGV[2] units. Returns 1 when credited now, 0 when it was already.
CREDIT = """
if redis.call('ZSCORE', KEYS[2], ARGV[1]) then return 0 end
redis.call('ZADD', KEYS[2], redis.call('TIME')[1], ARGV[1])
redis.call('HINCRBY', KEYS[1], 'allowance', tonumber(ARGV[2]))
return 1
"""

# CLEAR_GRANT: a credited grant is no longer pending.
# KEYS[1] grants hash   KEYS[2] transfers sorted set (shard 0)   ARGV[1] grant id
CLEAR_GRANT = """
redis.call('HDEL', KEYS[1], ARGV[1])
redis.call('ZADD', KEYS[2], redis.call('TIME')[1], ARGV[1])
return 1
"""

# DEBIT: take up to n unused units off the allowance of a shard with nothing queued, as a
# pending give-back.
# KEYS[1] the shard's budget hash   KEYS[2] its returns hash   KEYS[3] its leases sorted set
# KEYS[4] its credited sorted set
# ARGV[1] give-back id   ARGV[2] units wanted
# Returns the units taken (0: requests are queued there, none unused, or this id was
# finished already); run again with the same id it returns the same units.
DEBIT = """
local held = redis.call('HGET', KEYS[2], ARGV[1])
if held then return tonumber(string.match(held, '^([^ ]+)')) end
if redis.call('ZSCORE', KEYS[4], ARGV[1]) then return 0 end
local ledger = redis.call('HMGET', KEYS[1], 'enqueued', 'settled', 'allowance', 'reserved')
local enqueued, settled = tonumber(ledger[1] or '0'), tonumber(ledger[2] or '0')
local allowance, reserved = tonumber(ledger[3] or '0'), tonumber(ledger[4] or '0')
if enqueued - settled - redis.call('ZCARD', KEYS[3]) > 0 then return 0 end
local units = math.min(tonumber(ARGV[2]), allowance - reserved)
if units <= 0 then return 0 end
redis.call('HINCRBY', KEYS[1], 'allowance', -units)
redis.call('HSET', KEYS[2], ARGV[1], units .. ' ' .. redis.call('TIME')[1])
return units
"""

# RETURN: add a give-back's units back to the budget, once per id.
# KEYS[1] shards hash   KEYS[2] transfers sorted set (shard 0)   ARGV[1] give-back id   ARGV[2] units
# Returns 1 when added now, 0 when it was already.
RETURN = """
if redis.call('ZSCORE', KEYS[2], ARGV[1]) then return 0 end
redis.call('ZADD', KEYS[2], redis.call('TIME')[1], ARGV[1])
redis.call('HINCRBY', KEYS[1], 'granted', -tonumber(ARGV[2]))
return 1
"""

# CLEAR_RETURN: a give-back added back is no longer pending on its shard.
# KEYS[1] the shard's returns hash   KEYS[2] its credited sorted set   ARGV[1] give-back id
CLEAR_RETURN = """
redis.call('HDEL', KEYS[1], ARGV[1])
redis.call('ZADD', KEYS[2], redis.call('TIME')[1], ARGV[1])
return 1
"""

# RECORD_SHARDS: the crawl's shard count and fingerprint split, recorded together by its
# first node with shards.
# KEYS[1] shards hash   KEYS[2] budget hash (both shard 0)
# ARGV[1] this node's BAIKE_SHARDS   ARGV[2] its split's bounds (baike.frontier.shards.ShardSplit)
# Returns {count, bounds} as recorded: {1, ''} when none is recorded and the frontier already
# holds a crawl (it was started without shards) or this node has one shard (it records
# nothing); bounds '' for a crawl whose count was recorded before its split was (its
# fingerprints keep the old split, fingerprint % count).
RECORD_SHARDS = """
local recorded = redis.call('HMGET', KEYS[1], 'count', 'bounds')
if recorded[1] then return {tonumber(recorded[1]), recorded[2] or ''} end
if ARGV[1] == '1' or redis.call('HEXISTS', KEYS[2], 'enqueued') == 1 then return {1, ''} end
redis.call('HSET', KEYS[1], 'count', ARGV[1], 'bounds', ARGV[2])
return {tonumber(ARGV[1]), ARGV[2]}
"""
