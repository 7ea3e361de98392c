-- Admission for one API key, shared by every process that points at this Redis.
--
-- This is sendkit_async/_budget/_admit.py again, so that each grant is one atomic
-- script call timed by one clock (Redis' own, so hosts with skewed clocks agree);
-- tests/test_admission.py runs the same traces through both. Nothing is learned
-- here: the learner (sendkit_async/_budget/_pacer.py) runs in the process that saw
-- the answer, reads its state from here and writes it back with the plan it
-- implies, guarded by a version number so that two writers never lose an update.
--
-- KEYS: state (hash: tat, seq, the plan's fields, version), flight (zset:
--       token -> expiry), members (zset: process -> expiry), learner (string)
-- ARGV[1] = operation, ARGV[2] = now ("" for Redis' TIME; tests give virtual time)
--   "acquire": lane (0 interactive, 1 bulk), token, process, ttl, keep
--              -> {granted, wait, now, seq, in flight, processes, interval, pause_until}
--   "observe": token -> {now, version, learner}
--   "learn":   version, learner, keep, then the plan: interval, cap, pause_until,
--              credit, credit_seq, credit_from, drain, hold_until, catchup, quota, period -> {1} or {0}
-- The plan's fields come in the order _pacer.Plan declares them (attrs.astuple).
-- Times are seconds; every key expires `keep` seconds after its last write.

local K_STATE, K_FLIGHT, K_MEMBERS, K_LEARNER = KEYS[1], KEYS[2], KEYS[3], KEYS[4]
local NEVER = -1e18
local PLAN = {'interval', 'cap', 'pause_until', 'credit', 'credit_seq', 'credit_from', 'drain', 'hold_until',
  'catchup', 'quota', 'period'}
local DEFAULTS = {interval = 0, cap = 1, pause_until = NEVER, credit = -1, credit_seq = 0,
  credit_from = NEVER, drain = 0, hold_until = NEVER, catchup = 0, quota = 0, period = 0, tat = NEVER, seq = 0,
  version = 0}

local function num(value)
  return string.format('%.17g', value)
end

local function clock(given)
  if given ~= '' then return tonumber(given) end
  local t = redis.call('TIME')
  return tonumber(t[1]) + tonumber(t[2]) / 1000000
end

local function load()
  local raw = redis.call('HGETALL', K_STATE)
  local s = {}
  for key, value in pairs(DEFAULTS) do s[key] = value end
  for i = 1, #raw, 2 do s[raw[i]] = tonumber(raw[i + 1]) end
  return s
end

local function refresh(keep)
  for _, key in ipairs(KEYS) do redis.call('EXPIRE', key, keep) end
end

-- _gcra.due and _gcra.booked: the generic cell rate algorithm, the one pacing rule.
local function due(tat, now, tolerance)
  return math.max(now, tat - (tolerance or 0))
end

local function booked(tat, at, interval, catchup)
  return math.max(tat, at - (catchup or 0)) + interval
end

-- _admit.decide: the earliest moment the next send may leave, or nil (wait for an answer).
local function decide(s, now, in_flight)
  if s.cap > 0 and in_flight >= s.cap then return nil end
  local slot = due(s.tat, math.max(now, s.pause_until))
  if s.credit >= 0 then
    local over = s.seq - s.credit_seq + s.drain * math.max(slot - s.credit_from, 0) - s.credit
    if over > 0 and s.quota > 0 and s.period > 0 then
      slot = math.max(slot, s.hold_until + (math.ceil(over / s.quota) - 1) * s.period)
    elseif over > 0 and slot < s.hold_until then
      slot = s.hold_until
    end
  end
  return slot
end

-- _admit.grants: interactive callers (lane 0) reserve the next slot; bulk ones (1) take only a due one.
local DUE = 0.002
local function grants(lane, slot, now)
  return lane == 0 or slot <= now + DUE
end

-- _admit.take: book a send leaving at `at`; return its sequence number.
local function take(s, at)
  s.tat = booked(s.tat, at, s.interval, s.catchup)
  local seq = s.seq
  s.seq = s.seq + 1
  return seq
end

local function acquire(now, lane, token, process, ttl, keep)
  redis.call('ZREMRANGEBYSCORE', K_FLIGHT, '-inf', num(now))
  redis.call('ZREMRANGEBYSCORE', K_MEMBERS, '-inf', num(now))
  redis.call('ZADD', K_MEMBERS, num(now + 10), process)
  local s = load()
  local in_flight = redis.call('ZCARD', K_FLIGHT)
  local members = redis.call('ZCARD', K_MEMBERS)
  local slot = decide(s, now, in_flight)
  -- Bulk callers take only a slot that is due; interactive ones reserve the next,
  -- so an interactive caller anywhere goes ahead of every waiting batch.
  local shown = {num(s.interval), num(s.pause_until)}
  if slot == nil then return {0, num(-1), num(now), -1, in_flight, members, unpack(shown)} end
  if not grants(lane, slot, now) then
    return {0, num(slot - now), num(now), -1, in_flight, members, unpack(shown)}
  end
  local at = math.max(slot, now)
  local seq = take(s, at)
  redis.call('ZADD', K_FLIGHT, num(at + ttl), token)
  redis.call('HSET', K_STATE, 'tat', num(s.tat), 'seq', s.seq)
  refresh(keep)
  return {1, num(at - now), num(now), seq, in_flight + 1, members, unpack(shown)}
end

local function observe(now, token)
  redis.call('ZREM', K_FLIGHT, token)
  local version = redis.call('HGET', K_STATE, 'version') or '0'
  return {num(now), version, redis.call('GET', K_LEARNER) or ''}
end

local function learn(version, learner, keep, plan)
  local current = tonumber(redis.call('HGET', K_STATE, 'version') or '0')
  if current ~= version then return {0} end
  local fields = {'version', current + 1}
  for i, name in ipairs(PLAN) do
    fields[#fields + 1] = name
    fields[#fields + 1] = plan[i]
  end
  redis.call('HSET', K_STATE, unpack(fields))
  redis.call('SET', K_LEARNER, learner)
  refresh(keep)
  return {1}
end

local op, now = ARGV[1], clock(ARGV[2])
if op == 'acquire' then
  return acquire(now, tonumber(ARGV[3]), ARGV[4], ARGV[5], tonumber(ARGV[6]), tonumber(ARGV[7]))
elseif op == 'observe' then
  return observe(now, ARGV[3])
end
local plan = {}
for i = 1, #PLAN do plan[i] = ARGV[5 + i] end
return learn(tonumber(ARGV[3]), ARGV[4], tonumber(ARGV[5]), plan)
