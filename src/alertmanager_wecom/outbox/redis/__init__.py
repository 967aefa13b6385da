"""The outbox on Redis: several replicas share one store (storage.backend: redis)."""

from alertmanager_wecom.outbox.redis.store import RedisOutbox

__all__ = ["RedisOutbox"]
