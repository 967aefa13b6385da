"""The shared ledger of sends, as replicas pace by it: the write-ahead with a claim (`Outbox.sending`).

Each replica paces with its own `RateLimiter`, but WeCom counts every send to a person, whichever
replica made it: the same person in two receivers (two targets, held by two replicas), or one app's
daily quota. So on Redis the write-ahead itself is the pacing decision: one script checks that this
replica still holds the target's lease, counts the sends under each rate key in each of its windows,
and, only when there is room, records the send and marks the job in flight. Two replicas can then
never both take the last slot, and a replica that was paused past its lease (SIGSTOP, a long GC)
finds another owner on the lease and sends nothing.

Keys, beside those of scripts.py:
  P:rate:<rate key>  zset of "<seq>|<rate key>" by the send's time: the sends counted against that key
                     (the same members as in P:sends, which keeps the ledger for `recent_sends`); each
                     call trims what is older than a day, WeCom's longest window, and it expires when
                     no send has been counted for a day
  P:job:<id> counted the members recorded by the last claim, taken back by a `retry_later` that says
                     WeCom did not take the message (RETRY_LATER), kept by `progress`, which moves
                     them to the time WeCom answered (a send counts from when WeCom had it)
"""

from __future__ import annotations

from typing import Any

from alertmanager_wecom.outbox.base import LeaseLost, SendClaim, WriteAhead
from alertmanager_wecom.outbox.redis.scripts import LIBRARY

# SendClaim and WriteAhead too: store.py names them through this module.
__all__ = ["CLAIM", "WRITTEN", "SendClaim", "WriteAhead", "claim_args", "write_ahead"]
WRITTEN = WriteAhead()

# ARGV: prefix, job id ('' for a send that is no job's: no lease, no job to mark), now, target key, owner,
# rate key count, then per rate key: the key, its window count, and per window: limit, seconds.
# Reply: {'lost'}; {'0'} written (for a send that is no job's, then the members recorded, for SENT); or
# {'wait', seconds, then per rate key: key, n, n send times}.
# Times are formatted with %.6f: Lua's own number-to-text keeps 14 digits, a tenth of a millisecond off.
CLAIM = (
    LIBRARY
    + r"""
local DAY = 86400
local id, now = ARGV[2], tonumber(ARGV[3])
if id ~= '' then  -- a job's write-ahead; '': a send that is no job's (a chart), under no lease
  if redis.call('GET', p .. ':lease:' .. ARGV[4]) ~= ARGV[5] then return {'lost'} end
  if redis.call('EXISTS', jk(id)) == 0 then return {'0'} end
end
local keys, longest, wait, i = {}, {}, 0, 7
for _ = 1, tonumber(ARGV[6]) do
  local key, windows = ARGV[i], tonumber(ARGV[i + 1])
  local zk = p .. ':rate:' .. key
  i = i + 2
  redis.call('ZREMRANGEBYSCORE', zk, '-inf', '(' .. string.format('%.6f', now - DAY))
  keys[#keys + 1] = key
  longest[#keys] = 0
  for _ = 1, windows do
    local limit, seconds = tonumber(ARGV[i]), tonumber(ARGV[i + 1])
    i = i + 2
    if seconds > longest[#keys] then longest[#keys] = seconds end
    local from = '(' .. string.format('%.6f', now - seconds)
    local inside = redis.call('ZCOUNT', zk, from, '+inf')
    if limit <= 0 then
      wait = math.max(wait, seconds)
    elseif inside >= limit then
      -- The send that must leave the window for one slot to open (as RateLimiter.wait_time); at least
      -- a millisecond, so that a full window never reads as room.
      local oldest = redis.call('ZRANGEBYSCORE', zk, from, '+inf', 'WITHSCORES', 'LIMIT', inside - limit, 1)
      wait = math.max(wait, tonumber(oldest[2]) + seconds - now, 0.001)
    end
  end
end
if wait > 0 then
  local out = {'wait', string.format('%.6f', wait)}
  for n, key in ipairs(keys) do
    local from = '(' .. string.format('%.6f', now - longest[n])
    local rows = redis.call('ZRANGEBYSCORE', p .. ':rate:' .. key, from, '+inf', 'WITHSCORES')
    out[#out + 1] = key
    out[#out + 1] = tostring(#rows / 2)
    for r = 2, #rows, 2 do out[#out + 1] = rows[r] end
  end
  return out
end
local members = {}
for _, key in ipairs(keys) do
  local member = string.format('%020d', redis.call('INCR', p .. ':seq:send')) .. '|' .. key
  redis.call('ZADD', p .. ':sends', ARGV[3], member)
  redis.call('ZADD', p .. ':rate:' .. key, ARGV[3], member)
  redis.call('EXPIRE', p .. ':rate:' .. key, DAY + 60)
  members[#members + 1] = member
end
if id ~= '' then
  redis.call('HSET', jk(id), 'inflight', 1, 'updated_at', ARGV[3], 'counted', table.concat(members, '\n'))
  mark_started(id)
  return {'0'}
end
return {'0', unpack(members)}  -- no job to keep them: the caller hands them to SENT
"""
)


def claim_args(job_id: int | None, now: float, claim: SendClaim) -> list[object]:
    """CLAIM's arguments after the prefix; `job_id` None: a send that is no job's (`claim_send`)."""
    args: list[object] = ["" if job_id is None else job_id, repr(now), claim.target_key, claim.owner]
    args.append(len(claim.limits))
    for key, windows in claim.limits:
        args += [key, len(windows)]
        for limit, seconds in windows:
            args += [limit, repr(float(seconds))]
    return args


def write_ahead(reply: list[Any]) -> WriteAhead:
    """CLAIM's reply as `sending` answers it."""
    if reply[0] == "lost":
        raise LeaseLost("the target's lease is no longer this replica's")
    if reply[0] == "0":
        return WriteAhead(counted=tuple(reply[1:])) if len(reply) > 1 else WRITTEN
    sends: dict[str, list[float]] = {}
    at = 2
    while at < len(reply):
        count = int(reply[at + 1])
        sends[reply[at]] = [float(t) for t in reply[at + 2 : at + 2 + count]]
        at += 2 + count
    return WriteAhead(float(reply[1]), sends)
