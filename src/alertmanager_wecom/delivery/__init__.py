"""When and how often: the dispatcher loop, pacing under WeCom's limits, coalescing backlogs into digests."""
