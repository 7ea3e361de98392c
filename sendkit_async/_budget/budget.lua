-- The rate budget of one API key, shared by every process that points at this Redis.
--
-- The same rules as sendkit_async/_budget/_pacer.py (read its docstring first), kept
-- here so that each change of state is one atomic script call, timed by Redis' own
-- clock (hosts with skewed clocks agree). Callers send durations, never their
-- clock's times.
--
-- KEYS: state (hash), samples (list), sends (zset: token -> send time),
--       flight (zset: token -> expiry), members (zset: process -> expiry)
-- ARGV[1] = "acquire": lane (0 interactive, 1 bulk), token, process, ttl, keep
-- ARGV[1] = "observe": token, status (-1: no answer), limit, remaining, reset
--                      (seconds from the send, or ""), resolution, window,
--                      retry (seconds from now, or ""), max pause, keep
-- Times are seconds; every key expires `keep` seconds after its last write.

local K_STATE, K_SAMPLES, K_SENDS, K_FLIGHT, K_MEMBERS = KEYS[1], KEYS[2], KEYS[3], KEYS[4], KEYS[5]

local GUARD, DEFAULT_PAUSE, PROBE_PAUSE, MARGIN, SAMPLES = 0.003, 1.0, 1.0, 0.015, 9
local BLIND_START_CAP, QUIET = 2, 1.0
local BACKOFF, NUDGE, MAX_PENALTY, PENALTY_DECAY = 1.1, 1.0, 4.0, 0.995
local MIN_LAG, MAX_LAG_SHARE, LAG_DECAY = 0.002, 0.2, 0.99
local CLIMB, SETTLE, CEILING, CREEP, LONG_QUIET = 1.1, 0.93, 0.97, 1.01, 30.0
local FOREIGN_DECAY, NEVER = 0.9, -1e18
local UNKNOWN, HEADERS, BLIND = 0, 1, 2

local function num(value)
  return string.format('%.17g', value)
end

local function clock()
  local t = redis.call('TIME')
  return tonumber(t[1]) + tonumber(t[2]) / 1000000
end

local function load()
  local raw = redis.call('HGETALL', K_STATE)
  local s = {}
  for i = 1, #raw, 2 do s[raw[i]] = tonumber(raw[i + 1]) end
  return s
end

local function get(s, key, default)
  local value = s[key]
  if value == nil then return default end
  return value
end

local function save(s, keep)
  local args = {}
  for key, value in pairs(s) do
    args[#args + 1] = key
    args[#args + 1] = num(value)
  end
  if #args > 0 then redis.call('HSET', K_STATE, unpack(args)) end
  for _, key in ipairs(KEYS) do redis.call('EXPIRE', key, keep) end
end

local function median(values)
  table.sort(values)
  local n = #values
  if n % 2 == 1 then return values[(n + 1) / 2] end
  return (values[n / 2] + values[n / 2 + 1]) / 2
end

local function foreign_rate(s)
  local elapsed = get(s, 'f_time', 0)
  if elapsed > 0 then return get(s, 'f_count', 0) / elapsed end
  return 0
end

-- The interval the server sustains, with the penalty but before the margin.
local function base_interval(s)
  if get(s, 'shape', UNKNOWN) == BLIND then return get(s, 'blind_iv', 0) end
  local base = 0
  if get(s, 'policy', 0) > 0 then
    base = s.policy
  else
    local raw = redis.call('LRANGE', K_SAMPLES, 0, -1)
    if #raw > 0 then
      local values = {}
      for i, value in ipairs(raw) do values[i] = tonumber(value) end
      base = median(values)
      if get(s, 'limit', 0) > 0 then base = math.max(base, get(s, 'longest', 0) / s.limit) end
    end
  end
  return base * get(s, 'penalty', 1)
end

local function sends_after(moment)
  return redis.call('ZCOUNT', K_SENDS, '(' .. num(moment), '+inf')
end

-- The earliest moment the next send may leave, or nil: wait for an answer first.
-- A request granted before the statement's own but still unanswered may have
-- reached the server after it (grant order across processes is not arrival
-- order), so it counts as unseen too.
local function slot_for(s, now, in_flight, ttl)
  local base = base_interval(s)
  local interval = base * (1 + MARGIN)
  local slot = math.max(now, get(s, 'pause', NEVER), get(s, 'last_send', NEVER) + interval)
  local shape = get(s, 'shape', UNKNOWN)
  if shape == UNKNOWN and in_flight >= 1 then return nil end
  if shape == BLIND and get(s, 'blind_iv', 0) == 0 and in_flight >= get(s, 'blind_cap', BLIND_START_CAP) then
    return nil
  end
  if get(s, 'st_precise', 0) == 1 and s.st_rem ~= nil and s.st_reset ~= nil then
    local earlier = redis.call('ZCOUNT', K_FLIGHT, '-inf', '(' .. num(s.st_sent + ttl))
    local unseen = sends_after(s.st_sent) + earlier
    local foreign = foreign_rate(s) * math.max(math.min(slot, s.st_reset) - s.st_sent, 0)
    if slot >= s.st_reset or s.st_rem - unseen - foreign < 1 then
      local beyond, owed = {}, math.max(math.min(earlier - s.st_rem, earlier), 0)
      if unseen > s.st_rem then
        local skip = math.max(s.st_rem - earlier, 0)
        beyond = redis.call('ZRANGEBYSCORE', K_SENDS, '(' .. num(s.st_sent), '+inf', 'WITHSCORES',
          'LIMIT', skip, unseen - earlier - skip)
      end
      if (#beyond > 0 or owed > 0) and interval == 0 then return nil end
      local moment, lag = s.st_reset + owed * base, get(s, 'lag', 0)
      for i = 2, #beyond, 2 do moment = math.max(moment, tonumber(beyond[i]) + lag) + base end
      local guard = GUARD
      if interval > 0 then guard = math.min(GUARD, MARGIN * interval) end
      slot = math.max(slot, moment + guard)
    end
  end
  return slot
end

-- What a snapshot shows: interval, limit, remaining, pause left, in flight, processes, shape.
local function facts(s, now)
  local remaining = -1
  if s.st_rem ~= nil then remaining = math.max(s.st_rem - sends_after(get(s, 'st_sent', NEVER)), 0) end
  return {num(base_interval(s) * (1 + MARGIN)), get(s, 'limit', -1), remaining,
    num(math.max(get(s, 'pause', NEVER) - now, 0)), redis.call('ZCARD', K_FLIGHT),
    redis.call('ZCARD', K_MEMBERS), get(s, 'shape', UNKNOWN)}
end

local function acquire(lane, token, process, ttl, keep)
  local now = clock()
  redis.call('ZREMRANGEBYSCORE', K_FLIGHT, '-inf', num(now))
  redis.call('ZREMRANGEBYSCORE', K_MEMBERS, '-inf', num(now))
  redis.call('ZADD', K_MEMBERS, num(now + 10), process)
  local s = load()
  local slot = slot_for(s, now, redis.call('ZCARD', K_FLIGHT), ttl)
  local known = facts(s, now)
  -- Bulk callers take only a slot that is due; interactive ones reserve the next,
  -- so an interactive caller anywhere goes ahead of every waiting batch.
  if slot == nil then return {0, num(-1), unpack(known)} end
  if lane == 1 and slot > now + 0.002 then return {0, num(slot - now), unpack(known)} end
  local at = math.max(slot, now)
  redis.call('ZADD', K_SENDS, num(at), token)
  redis.call('ZADD', K_FLIGHT, num(at + ttl), token)
  redis.call('ZREMRANGEBYSCORE', K_SENDS, '-inf', num(now - 600))
  if redis.call('ZCARD', K_SENDS) > 8192 then redis.call('ZREMRANGEBYRANK', K_SENDS, 0, -4097) end
  -- The next slot counts from this one, catching up at most half an interval.
  s.last_send = math.max(slot, now - base_interval(s) * (1 + MARGIN) / 2)
  if s.cycle == nil then
    s.cycle = at
    s.quiet = at
  end
  save(s, keep)
  return {1, num(at - now), unpack(known)}
end

local function update_foreign(s, sent, remaining, reset, precise)
  if s.st_rem == nil or s.st_reset == nil or not (precise and get(s, 'st_precise', 0) == 1) then return end
  if math.abs(reset - s.st_reset) > 2 * GUARD + 0.001 or sent < s.st_sent + GUARD then return end
  local ours = redis.call('ZCOUNT', K_SENDS, '(' .. num(s.st_sent), num(sent))
  local others = s.st_rem - remaining - ours
  s.f_count = get(s, 'f_count', 0) * FOREIGN_DECAY + math.max(others, 0)
  s.f_time = get(s, 'f_time', 0) * FOREIGN_DECAY + (sent - s.st_sent)
end

local function statement(s, sent, status, limit, remaining, reset, resolution, window)
  s.shape = HEADERS
  if limit > 0 then
    if limit ~= get(s, 'limit', 0) then s.longest = 0 end
    s.limit = limit
    if window > 0 then s.policy = window / limit end
  end
  local precise = resolution == 0
  local newer = sent >= get(s, 'st_sent', NEVER)
  if newer then update_foreign(s, sent, remaining, reset, precise) end
  if status ~= 429 and reset > sent + GUARD and (precise or get(s, 'policy', 0) == 0) then
    local span = reset - sent
    local ours = remaining + 1 - foreign_rate(s) * span
    if ours >= 1 then
      redis.call('LPUSH', K_SAMPLES, num(span / ours))
      redis.call('LTRIM', K_SAMPLES, 0, SAMPLES - 1)
    end
    s.longest = math.max(get(s, 'longest', 0), span)
  end
  if newer then
    s.st_sent, s.st_rem, s.st_reset = sent, remaining, reset
    s.st_precise = precise and 1 or 0
  end
end

local function learn_blind(s, now, retry, max_pause)
  if get(s, 'blind_iv', 0) == 0 then
    local window_end = now + DEFAULT_PAUSE
    if retry ~= nil then
      window_end = retry
      local wait = retry - now
      if wait >= 1 and math.abs(wait - math.floor(wait + 0.5)) < 1e-6 then window_end = window_end - 0.5 end
    end
    local start = get(s, 'cycle', now)
    s.blind_iv = math.min(math.max(window_end - start, 0.001) / math.max(get(s, 'admitted', 0), 1), max_pause)
  else
    s.blind_fail = 1 / s.blind_iv
    s.blind_iv = 1 / (SETTLE * s.blind_fail)
  end
  s.admitted = 0
  s.cycle = get(s, 'pause', now)
  s.quiet = s.cycle
end

local function rate_limited(s, now, sent, reset, retry, max_pause)
  local precise = get(s, 'st_precise', 0) == 1
  local finish
  if retry ~= nil then
    finish = retry
    local decided = retry - (now - sent)
    if precise and reset ~= nil and reset - GUARD <= decided and decided <= reset + 1 + GUARD then
      finish = math.max(reset + GUARD, now)
    end
  elseif reset ~= nil then
    finish = reset + GUARD
  else
    finish = now + DEFAULT_PAUSE
  end
  local wait = finish - now
  local usable = wait <= max_pause
  if not usable then wait = math.min(PROBE_PAUSE, max_pause) end
  s.pause = math.max(get(s, 'pause', NEVER), now + wait)
  if sent <= get(s, 'last_429', NEVER) or not usable then return end
  s.last_429 = now
  if get(s, 'shape', UNKNOWN) == BLIND then
    learn_blind(s, now, retry, max_pause)
  elseif precise and reset ~= nil then
    local ceiling = MAX_LAG_SHARE * base_interval(s) * (1 + MARGIN)
    s.lag = math.min(math.max(get(s, 'lag', 0), math.max(reset - sent, 0) + GUARD, MIN_LAG), ceiling)
    s.penalty = math.min(get(s, 'penalty', 1) * NUDGE, MAX_PENALTY)
  else
    s.penalty = math.min(get(s, 'penalty', 1) * BACKOFF, MAX_PENALTY)
  end
end

local function admitted(s, now)
  s.admitted = get(s, 'admitted', 0) + 1
  s.penalty = math.max(get(s, 'penalty', 1) * PENALTY_DECAY, 1)
  s.lag = get(s, 'lag', 0) * LAG_DECAY
  if get(s, 'shape', UNKNOWN) == BLIND and now - get(s, 'quiet', NEVER) >= QUIET then
    s.quiet = now
    if get(s, 'blind_iv', 0) > 0 then
      local rate = 1 / s.blind_iv
      local fail = get(s, 'blind_fail', 0)
      if fail == 0 then
        rate = rate * CLIMB
      elseif rate < CEILING * fail then
        rate = math.min(rate * CREEP, CEILING * fail)
      elseif now - get(s, 'last_429', NEVER) >= LONG_QUIET then
        rate = rate * CREEP
      end
      s.blind_iv = 1 / rate
    else
      s.blind_cap = get(s, 'blind_cap', BLIND_START_CAP) + 1
    end
  end
end

local function observe(token, status, limit, remaining, reset_after, resolution, window, retry_after,
    max_pause, keep)
  redis.call('ZREM', K_FLIGHT, token)
  local sent = redis.call('ZSCORE', K_SENDS, token)
  if not sent or status < 0 then return {0} end
  sent = tonumber(sent)
  local now = clock()
  local s = load()
  local reset, retry = nil, nil
  if reset_after ~= '' then reset = sent + tonumber(reset_after) end
  if retry_after ~= '' then retry = now + tonumber(retry_after) end
  if remaining >= 0 and reset ~= nil then
    statement(s, sent, status, limit, remaining, reset, resolution, window)
  elseif get(s, 'shape', UNKNOWN) == UNKNOWN then
    s.shape = BLIND
  end
  if status == 429 then
    rate_limited(s, now, sent, reset, retry, max_pause)
  else
    admitted(s, now)
  end
  save(s, keep)
  return {1, unpack(facts(s, now))}
end

if ARGV[1] == 'acquire' then
  return acquire(tonumber(ARGV[2]), ARGV[3], ARGV[4], tonumber(ARGV[5]), tonumber(ARGV[6]))
end
return observe(ARGV[2], tonumber(ARGV[3]), tonumber(ARGV[4]), tonumber(ARGV[5]), ARGV[6],
  tonumber(ARGV[7]), tonumber(ARGV[8]), ARGV[9], tonumber(ARGV[10]), tonumber(ARGV[11]))
