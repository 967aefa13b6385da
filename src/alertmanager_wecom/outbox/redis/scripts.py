"""The Redis outbox's writes as Lua scripts: each runs atomically on the server, so that a write of
several keys (a job, its state's index, its target's line) is all there or not at all, whichever
replica makes it and whenever one dies.

Keys, under the prefix P (ARGV[1] of every script):
  P:seq:job, P:seq:notif, P:seq:send   counters (job and notification ids, the order of sends)
  P:job:<id>         hash: the job's fields (see store.py's `_job`)
  P:notif:<id>       hash: receiver, received_at, payload, refs (jobs referring to it)
  P:jobs             zset of every job id (score: id)
  P:st:<state>       zset of the job ids in that state (score: id)
  P:q:<target key>   zset of the target's PENDING job ids (score: id): its line
  P:started:<target> set of its PENDING jobs partly sent or in flight
  P:targets          set of the target keys with a PENDING job
  P:created          zset of PENDING job ids by created_at (the oldest pending)
  P:dedup            zset of dedup keys by the time they were accepted
  P:sends            zset of "<seq>|<rate key>" by the send's time
  P:rate:<rate key>  the same, one rate key's: what pacing counts (ledger.py)
"""

from __future__ import annotations

LIBRARY = """
local p = ARGV[1]
local function jk(id) return p .. ':job:' .. id end
local function leave_line(id, tk)
  redis.call('ZREM', p .. ':q:' .. tk, id)
  redis.call('SREM', p .. ':started:' .. tk, id)
  redis.call('ZREM', p .. ':created', id)
  if redis.call('ZCARD', p .. ':q:' .. tk) == 0 then redis.call('SREM', p .. ':targets', tk) end
end
local function mark_started(id)
  local k = jk(id)
  local tk = redis.call('HGET', k, 'target_key')
  if not tk then return end
  if redis.call('HGET', k, 'state') == 'pending'
     and (tonumber(redis.call('HGET', k, 'sent_parts')) > 0 or redis.call('HGET', k, 'inflight') == '1') then
    redis.call('SADD', p .. ':started:' .. tk, id)
  else
    redis.call('SREM', p .. ':started:' .. tk, id)
  end
end
local function set_state(id, new)
  local k = jk(id)
  local old = redis.call('HGET', k, 'state')
  if not old then return false end
  if old ~= new then
    local tk = redis.call('HGET', k, 'target_key')
    redis.call('ZREM', p .. ':st:' .. old, id)
    redis.call('ZADD', p .. ':st:' .. new, id, id)
    redis.call('HSET', k, 'state', new)
    if old == 'pending' then leave_line(id, tk) end
    if new == 'pending' then
      redis.call('ZADD', p .. ':q:' .. tk, id, id)
      redis.call('SADD', p .. ':targets', tk)
      redis.call('ZADD', p .. ':created', redis.call('HGET', k, 'created_at'), id)
    end
  end
  mark_started(id)
  return true
end
local function new_job(nid, receiver, tk, target, state, created, now, digest_of)
  local id = redis.call('INCR', p .. ':seq:job')
  redis.call('HSET', jk(id), 'notification_id', nid, 'receiver', receiver, 'target_key', tk, 'target', target,
    'state', state, 'attempts', 0, 'sent_parts', 0, 'created_at', created, 'next_attempt_at', now,
    'updated_at', now, 'digest_of', digest_of, 'inflight', 0)
  redis.call('HINCRBY', p .. ':notif:' .. nid, 'refs', 1)
  redis.call('ZADD', p .. ':jobs', id, id)
  redis.call('ZADD', p .. ':st:' .. state, id, id)
  if state == 'pending' then
    redis.call('ZADD', p .. ':q:' .. tk, id, id)
    redis.call('SADD', p .. ':targets', tk)
    redis.call('ZADD', p .. ':created', created, id)
  end
  return id
end
-- A send counted by a claim (ledger.py) that WeCom did not take: it does not count against the limits.
local function uncount(k)
  local counted = redis.call('HGET', k, 'counted')
  if not counted then return end
  for member in string.gmatch(counted, '[^\\n]+') do
    redis.call('ZREM', p .. ':sends', member)
    redis.call('ZREM', p .. ':rate:' .. string.match(member, '^%d+|(.*)$'), member)
  end
  redis.call('HDEL', k, 'counted')
end
-- Sends counted by a claim (ledger.py) that WeCom took: they count from `now`, when WeCom answered, if
-- that is later than their claim (WeCom counts a send when it arrives; a replica stalled in between
-- makes that seconds later). `members`: a list of them.
local function recount(members, now)
  for _, member in ipairs(members) do
    for _, zk in ipairs({p .. ':sends', p .. ':rate:' .. string.match(member, '^%d+|(.*)$')}) do
      local at = redis.call('ZSCORE', zk, member)
      if at and tonumber(at) < tonumber(now) then redis.call('ZADD', zk, now, member) end
    end
  end
end
local function new_notification(receiver, now, payload)
  local nid = redis.call('INCR', p .. ':seq:notif')
  redis.call('HSET', p .. ':notif:' .. nid, 'receiver', receiver, 'received_at', now, 'payload', payload, 'refs', 0)
  return nid
end
"""

# Acceptances, as many as came together (batch.py): one script, one round trip and one of Redis's fsyncs
# for all of them. Each is still all or nothing and fails alone (`pcall`): a write Redis refuses (out of
# memory) is refused before the acceptance has written anything (Redis checks memory at a script's first
# write), and the others of the batch are refused or stored each on its own. The wake-up for the other
# replicas (and this one's listener) is one message for the batch: the target keys of the acceptances
# stored (not of duplicates), each once.
# ARGV: prefix, wake channel, then per acceptance: its wake-up (target keys, one a line; '' none), its
# argument count n, then its n arguments: receiver, dedup key ('' none), dedup window, now, payload count,
# payloads…, job count, then per job: target key, target, payload index (1-based), dead reason ('' none),
# traceparent ('' none), due at ('' now).
# Returns per acceptance: its first notification id (0: no job), -1 for a duplicate, or why it failed (a
# string: Redis's error).
ACCEPT = (
    LIBRARY
    + """
local function accept(o)  -- this acceptance's arguments are ARGV[o + 1], ARGV[o + 2], …
  local receiver, key, window, now = ARGV[o + 1], ARGV[o + 2], tonumber(ARGV[o + 3]), ARGV[o + 4]
  if key ~= '' then
    local seen = redis.call('ZSCORE', p .. ':dedup', key)
    if seen and tonumber(now) - tonumber(seen) < window then return -1 end
    redis.call('ZADD', p .. ':dedup', now, key)
  end
  local npay = tonumber(ARGV[o + 5])
  local nids = {}
  for i = 1, npay do nids[i] = new_notification(receiver, now, ARGV[o + 5 + i]) end
  local base = o + 5 + npay
  local first = 0
  for j = 0, tonumber(ARGV[base + 1]) - 1 do
    local at = base + 2 + j * 6
    local nid = nids[tonumber(ARGV[at + 2])]
    if first == 0 then first = nid end
    local dead = ARGV[at + 3]
    local id = new_job(nid, receiver, ARGV[at], ARGV[at + 1], dead == '' and 'pending' or 'dead', now, now, 0)
    if dead ~= '' then redis.call('HSET', jk(id), 'last_error', dead, 'reason', 'recipients') end
    if ARGV[at + 4] ~= '' then redis.call('HSET', jk(id), 'traceparent', ARGV[at + 4]) end
    if ARGV[at + 5] ~= '' then redis.call('HSET', jk(id), 'next_attempt_at', ARGV[at + 5]) end
  end
  return first
end
local results, woken, wake = {}, {}, {}
local i = 3
while i <= #ARGV do
  local ok, result = pcall(accept, i + 1)
  if not ok then
    result = type(result) == 'table' and result.err or tostring(result)
  elseif result ~= -1 then
    for tk in string.gmatch(ARGV[i], '[^\\n]+') do
      if not woken[tk] then woken[tk] = true; wake[#wake + 1] = tk end
    end
  end
  results[#results + 1] = result
  i = i + 2 + tonumber(ARGV[i + 1])
end
-- Never the acceptances' failure: a replica that misses it finds the targets in its next round.
if #wake > 0 then pcall(redis.call, 'PUBLISH', ARGV[2], table.concat(wake, '\\n')) end
return results
"""
)

# Reads jobs with their payloads in one round trip (store.py's `_read`), either jobs by id or a target's
# pending ones (its started jobs, then its line after an id): one command, not one per job and per payload,
# which the relay's event loop pays for in packing and parsing. Reads only.
# ARGV: prefix, field count, fields…, then "ids", job ids…, or "pending", target key, after id, limit.
# Returns {started rows, rows, payloads}: a row is a job's id then its fields (false where absent); the
# payloads are notification id, payload, … for the notifications of those rows, each once.
JOBS = """
local p = ARGV[1]
local nf = tonumber(ARGV[2])
local fields = {}
for i = 1, nf do fields[i] = ARGV[2 + i] end
local started, ids = {}, {}
if ARGV[3 + nf] == 'pending' then
  local tk, after = ARGV[4 + nf], ARGV[5 + nf]
  if after == '0' then started = redis.call('SMEMBERS', p .. ':started:' .. tk) end
  ids = redis.call('ZRANGEBYSCORE', p .. ':q:' .. tk, '(' .. after, '+inf', 'LIMIT', 0, ARGV[6 + nf])
else
  for i = 4 + nf, #ARGV do ids[#ids + 1] = ARGV[i] end
end
local payloads, seen = {}, {}
local function rows_of(list)
  local rows = {}
  for _, id in ipairs(list) do
    local row = redis.call('HMGET', p .. ':job:' .. id, unpack(fields))
    table.insert(row, 1, id)
    rows[#rows + 1] = row
    local nid = row[2]
    if nid and not seen[nid] then
      seen[nid] = true
      payloads[#payloads + 1] = nid
      payloads[#payloads + 1] = redis.call('HGET', p .. ':notif:' .. nid, 'payload')
    end
  end
  return rows
end
return {rows_of(started), rows_of(ids), payloads}
"""

# ARGV: prefix, probe value
PROBE = """
redis.call('SET', ARGV[1] .. ':probe', ARGV[2])
return 1
"""

# ARGV: prefix, job id, now
SENDING = (
    LIBRARY
    + """
if redis.call('EXISTS', jk(ARGV[2])) == 0 then return 0 end
redis.call('HSET', jk(ARGV[2]), 'inflight', 1, 'updated_at', ARGV[3])
mark_started(ARGV[2])
return 1
"""
)

# ARGV: prefix, job id, sent parts, now
# WeCom took the part: its send counts (a later retry_later keeps it), and from when WeCom answered, not
# from the claim (ledger.py): WeCom counts it when it arrives, which a replica stalled between the two
# (a loaded machine, a long GC) makes seconds later, and every replica paces by the ledger's time.
PROGRESS = (
    LIBRARY
    + """
local k = jk(ARGV[2])
if redis.call('EXISTS', k) == 0 then return 0 end
local counted, members = redis.call('HGET', k, 'counted'), {}
if counted then
  for member in string.gmatch(counted, '[^\\n]+') do members[#members + 1] = member end
  recount(members, ARGV[4])
end
redis.call('HSET', k, 'sent_parts', ARGV[3], 'inflight', 0, 'updated_at', ARGV[4])
redis.call('HDEL', k, 'counted')
mark_started(ARGV[2])
return 1
"""
)

# A send that is no job's (a chart), counted by `claim_send`, that WeCom took: as PROGRESS does for a job's.
# ARGV: prefix, now, the members CLAIM returned (one an argument)
SENT = (
    LIBRARY
    + """
recount({unpack(ARGV, 3)}, ARGV[2])
return 1
"""
)

# ARGV: prefix, job id, now
DONE = (
    LIBRARY
    + """
if not set_state(ARGV[2], 'done') then return 0 end
redis.call('HSET', jk(ARGV[2]), 'updated_at', ARGV[3])
redis.call('HDEL', jk(ARGV[2]), 'last_error')
return 1
"""
)

# ARGV: prefix, job id, error, reason, now
DEAD = (
    LIBRARY
    + """
if not set_state(ARGV[2], 'dead') then return 0 end
redis.call('HSET', jk(ARGV[2]), 'last_error', ARGV[3], 'reason', ARGV[4], 'updated_at', ARGV[5])
if ARGV[6] == '1' then uncount(jk(ARGV[2])) end  -- WeCom refused it: the send does not count
return 1
"""
)

# ARGV: prefix, job id, attempts, next attempt at, error, reason, now, inflight (0/1)
RETRY_LATER = (
    LIBRARY
    + """
local k = jk(ARGV[2])
if redis.call('EXISTS', k) == 0 then return 0 end
redis.call('HSET', k, 'attempts', ARGV[3], 'next_attempt_at', ARGV[4], 'last_error', ARGV[5], 'reason', ARGV[6],
  'updated_at', ARGV[7], 'inflight', ARGV[8])
if ARGV[8] == '0' then uncount(k) end
mark_started(ARGV[2])
local later = tonumber(ARGV[4])
local tk = redis.call('HGET', k, 'target_key')
for _, id in ipairs(redis.call('ZRANGE', p .. ':q:' .. tk, 0, -1)) do
  local other = jk(id)
  if tonumber(redis.call('HGET', other, 'next_attempt_at')) < later then
    redis.call('HSET', other, 'next_attempt_at', ARGV[4])
  end
end
return 1
"""
)

# ARGV: prefix, payload, digest_of, now, job ids…
MERGE = (
    LIBRARY
    + """
local now = ARGV[4]
local first = jk(ARGV[5])
local receiver = redis.call('HGET', first, 'receiver')
local tk = redis.call('HGET', first, 'target_key')
local target = redis.call('HGET', first, 'target')
-- The smallest created_at, kept as the text it was stored as: a Lua number written back would be cut
-- to 14 significant digits.
local created, oldest, traceparent = nil, nil, false
for i = 5, #ARGV do
  local text = redis.call('HGET', jk(ARGV[i]), 'created_at')
  local c = tonumber(text)
  if c and (oldest == nil or c < oldest) then oldest, created = c, text end
  if not traceparent then traceparent = redis.call('HGET', jk(ARGV[i]), 'traceparent') end
end
local nid = new_notification(receiver, now, ARGV[2])
local digest = new_job(nid, receiver, tk, target, 'pending', created or now, now, ARGV[3])
if traceparent then redis.call('HSET', jk(digest), 'traceparent', traceparent) end
for i = 5, #ARGV do
  if set_state(ARGV[i], 'merged') then
    redis.call('HSET', jk(ARGV[i]), 'merged_into', digest, 'updated_at', now)
  end
end
return digest
"""
)

# ARGV: prefix, now, job ids… (none: every dead job)
REQUEUE = (
    LIBRARY
    + """
local now = ARGV[2]
local ids = {}
if #ARGV == 2 then ids = redis.call('ZRANGE', p .. ':st:dead', 0, -1) else for i = 3, #ARGV do ids[#ids + 1] = ARGV[i] end end
local count = 0
for _, id in ipairs(ids) do
  local k = jk(id)
  if redis.call('HGET', k, 'state') == 'dead' then
    redis.call('HSET', k, 'attempts', 0, 'next_attempt_at', now, 'updated_at', now, 'created_at', now)
    set_state(id, 'pending')
    count = count + 1
  end
end
return count
"""
)

# One batch (store.py's `purge` makes the batches: a script blocks Redis while it runs).
# ARGV: prefix, older than, then either "ids", job ids…, "states", states…
#   or "all", after id, batch size, "states", states…: up to that many jobs of the states' sets with ids
#   above that one, looked at in id order.
# Returns {jobs deleted, the last id looked at ("all"; 0 when the sets had no more)}.
PURGE = (
    LIBRARY
    + """
local older = tonumber(ARGV[2])
local states, candidates, i, last = {}, {}, 4, 0
if ARGV[3] == 'ids' then
  while ARGV[i] ~= 'states' do candidates[#candidates + 1] = ARGV[i]; i = i + 1 end
else
  i = 6
end
for s = i + 1, #ARGV do states[ARGV[s]] = true end
if ARGV[3] == 'all' then
  local after, size = tonumber(ARGV[4]), tonumber(ARGV[5])
  for state, _ in pairs(states) do
    local found = redis.call('ZRANGEBYSCORE', p .. ':st:' .. state, '(' .. after, '+inf', 'LIMIT', 0, size)
    for _, id in ipairs(found) do candidates[#candidates + 1] = id end
    if #found == size then last = math.max(last, tonumber(found[#found])) end
  end
end
local count = 0
for _, id in ipairs(candidates) do
  local k = jk(id)
  local state = redis.call('HGET', k, 'state')
  if state and states[state] and tonumber(redis.call('HGET', k, 'updated_at')) < older then
    local nid = redis.call('HGET', k, 'notification_id')
    if state == 'pending' then leave_line(id, redis.call('HGET', k, 'target_key')) end
    redis.call('ZREM', p .. ':st:' .. state, id)
    redis.call('ZREM', p .. ':jobs', id)
    redis.call('DEL', k)
    if redis.call('HINCRBY', p .. ':notif:' .. nid, 'refs', -1) <= 0 then redis.call('DEL', p .. ':notif:' .. nid) end
    count = count + 1
  end
end
return {count, last}
"""
)

# ARGV: prefix, at, rate keys…
RECORD_SEND = """
-- Also counted where claims look (ledger.py): a send recorded this way (a chart, a look-up) paces too.
for i = 3, #ARGV do
  local member = string.format('%020d', redis.call('INCR', ARGV[1] .. ':seq:send')) .. '|' .. ARGV[i]
  redis.call('ZADD', ARGV[1] .. ':sends', ARGV[2], member)
  redis.call('ZADD', ARGV[1] .. ':rate:' .. ARGV[i], ARGV[2], member)
  redis.call('ZREMRANGEBYSCORE', ARGV[1] .. ':rate:' .. ARGV[i], '-inf', '(' .. string.format('%.6f', ARGV[2] - 86400))
  redis.call('EXPIRE', ARGV[1] .. ':rate:' .. ARGV[i], 86460)
end
return 1
"""

# ARGV: prefix, target key, owner, milliseconds
LEASE = """
local key = ARGV[1] .. ':lease:' .. ARGV[2]
local holder = redis.call('GET', key)
if holder and holder ~= ARGV[3] then return 0 end
redis.call('SET', key, ARGV[3], 'PX', ARGV[4])
return 1
"""

# ARGV: prefix, target key, owner
RELEASE = """
local key = ARGV[1] .. ':lease:' .. ARGV[2]
if redis.call('GET', key) == ARGV[3] then redis.call('DEL', key) end
return 1
"""
