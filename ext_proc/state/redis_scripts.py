"""Lua scripts of the Redis ledger. Each runs atomically inside Redis.

Key layout under a prefix carrying one hash tag (default ``switchboard:{ledger}:``), so every
key lives in one slot and the scripts may touch keys they compute (reservations to sweep):

- ``<p>c:<counter>``   hash {s: settled, r: reserved}, expires after its window + grace
- ``<p>r:<id>``        hash {state: active|expired, charges: JSON [[counter, amount, unit, exp]]}
- ``<p>rexp``          sorted set of active reservation ids by expiry (clock ms)
- ``<p>usage``         stream of usage records
- ``<p>u:<id>:<n>``    marks attempt n of request id as charged (a retried write charges once)

Times come from the caller's clock (ARGV), not Redis' TIME, so tests can move time and all
replicas agree with the windows they computed.
"""

from __future__ import annotations

# Shared by every script: expire overdue reservations (bounded batch per call).
_SWEEP = """
local function sweep(prefix, zset, now, tomb_ttl)
  local ids = redis.call('ZRANGEBYSCORE', zset, '-inf', now, 'LIMIT', 0, 100)
  for _, rid in ipairs(ids) do
    local rkey = prefix .. 'r:' .. rid
    if redis.call('HGET', rkey, 'state') == 'active' then
      for _, c in ipairs(cjson.decode(redis.call('HGET', rkey, 'charges'))) do
        redis.call('HINCRBY', prefix .. 'c:' .. c[1], 'r', -tonumber(c[2]))
      end
      redis.call('HSET', rkey, 'state', 'expired')
      redis.call('PEXPIRE', rkey, tomb_ttl)
    end
    redis.call('ZREM', zset, rid)
  end
  return #ids
end
"""

# KEYS: zset, reservation key, counter keys...
# ARGV: prefix, id, now, reservation_expiry, reservation_key_ttl, tomb_ttl, n,
#       then per charge: counter, limit, amount, enforce, refundable, counter_ttl, unit, exp
# Returns {admitted (1/0, or -1 if the id exists), used_1, ..., used_n}.
RESERVE = (
    _SWEEP
    + """
local prefix, rid, now = ARGV[1], ARGV[2], tonumber(ARGV[3])
sweep(prefix, KEYS[1], now, tonumber(ARGV[6]))
if redis.call('EXISTS', KEYS[2]) == 1 then return {-1} end
local n = tonumber(ARGV[7])
local used, blocked = {}, false
for i = 1, n do
  local b = 7 + (i - 1) * 8
  local v = redis.call('HMGET', KEYS[2 + i], 's', 'r')
  local u = (tonumber(v[1]) or 0) + (tonumber(v[2]) or 0)
  used[i] = u
  if ARGV[b + 4] == '1' and u + tonumber(ARGV[b + 3]) > tonumber(ARGV[b + 2]) then
    blocked = true
  end
end
if blocked then return {0, unpack(used)} end
local stored = {}
for i = 1, n do
  local b = 7 + (i - 1) * 8
  local ckey = KEYS[2 + i]
  if ARGV[b + 5] == '1' then
    redis.call('HINCRBY', ckey, 'r', ARGV[b + 3])
    stored[#stored + 1] = {ARGV[b + 1], ARGV[b + 3], ARGV[b + 7], ARGV[b + 8]}
  else
    redis.call('HINCRBY', ckey, 's', ARGV[b + 3])
  end
  redis.call('PEXPIRE', ckey, ARGV[b + 6])
end
redis.call('HSET', KEYS[2], 'state', 'active', 'charges', cjson.encode(stored))
redis.call('PEXPIRE', KEYS[2], ARGV[5])
redis.call('ZADD', KEYS[1], ARGV[4], rid)
return {1, unpack(used)}
"""
)

# KEYS: zset, reservation key, then the charged markers of usage records that must exist first
# ARGV: prefix, id, now, tomb_ttl, usd_actual ('' = keep reserved), tokens_actual ('' = keep),
#       release ('1' = charge nothing)
# Returns 1 if the reservation was finished here, 0 if unknown or already finished, -1 if a
# required usage record is not stored yet.
FINISH = (
    _SWEEP
    + """
local prefix, rid, now = ARGV[1], ARGV[2], tonumber(ARGV[3])
for i = 3, #KEYS do
  if redis.call('EXISTS', KEYS[i]) == 0 then return -1 end
end
local state = redis.call('HGET', KEYS[2], 'state')
if not state then return 0 end
for _, c in ipairs(cjson.decode(redis.call('HGET', KEYS[2], 'charges'))) do
  local ckey, reserved, unit = prefix .. 'c:' .. c[1], tonumber(c[2]), c[3]
  local actual = reserved
  if ARGV[7] == '1' then actual = 0
  elseif unit == 'usd' and ARGV[5] ~= '' then actual = tonumber(ARGV[5])
  elseif unit == 'tok' and ARGV[6] ~= '' then actual = tonumber(ARGV[6]) end
  if state == 'active' then redis.call('HINCRBY', ckey, 'r', -reserved) end
  redis.call('HINCRBY', ckey, 's', actual)
  if redis.call('PTTL', ckey) == -1 then
    redis.call('PEXPIRE', ckey, math.max(tonumber(c[4]) - now, 1000))
  end
end
redis.call('DEL', KEYS[2])
redis.call('ZREM', KEYS[1], rid)
return 1
"""
)

# KEYS: zset.  ARGV: prefix, now, tomb_ttl.  Returns how many reservations were expired.
SWEEP = (
    _SWEEP
    + """
return sweep(ARGV[1], KEYS[1], tonumber(ARGV[2]), tonumber(ARGV[3]))
"""
)

# KEYS: usage stream, then per record its charged marker and its counters' keys.
# ARGV: maxlen, marker_ttl_ms, then the batch as JSON: per record [its fields as name, value
#       pairs, [[amount, counter_ttl_ms] per charge]] (one argument: Redis reads each
#       argument of a call, and a client builds it, at a cost per argument).
# Appends each record; the first time an attempt is written, adds its spend to the counters.
RECORD = """
local key = 2
for _, record in ipairs(cjson.decode(ARGV[3])) do
  redis.call('XADD', KEYS[1], 'MAXLEN', '~', ARGV[1], '*', unpack(record[1]))
  local charges = record[2]
  if redis.call('SET', KEYS[key], '1', 'NX', 'PX', ARGV[2]) then
    for i, charge in ipairs(charges) do
      local ckey = KEYS[key + i]
      redis.call('HINCRBY', ckey, 's', charge[1])
      if redis.call('PTTL', ckey) == -1 then redis.call('PEXPIRE', ckey, charge[2]) end
    end
  end
  key = key + 1 + #charges
end
return 1
"""
