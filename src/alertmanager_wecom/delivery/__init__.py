"""When and how often: from the outbox to a channel.

- `dispatcher`: the loop (rounds over targets with due jobs, one task per busy target, wake, idle, stop)
- `backlog`: a target's backlog, sent one by one or coalesced into a digest (`digest`: the merge)
- `deliver`: one job's stages: render → wait for room → write ahead → send → record
- `retry`: backoff of a target after a transient failure; dead letters
- `render`: a stored notification → the target's messages; `pacing`: WeCom's limits (`RateLimiter`)
- `routes`: a stored target → its renderer, channel and rate keys; `context`: what the stages share
"""
