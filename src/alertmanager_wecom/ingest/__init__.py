"""What comes in: the webhook schema and its pieces, the dedup key, routing to targets, matchers, and
recipients taken from alert data."""
