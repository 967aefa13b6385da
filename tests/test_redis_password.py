"""A Redis that asks for a password (`requirepass`): the outbox, the card store and the on-call store all
open with `storage.password`, from the one place that reveals it (StorageSettings.redis_connection);
a wrong one is an outage with Redis's reason, and the password appears in no error and no log line."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis

from alertmanager_wecom.actions.opening import open_card_store
from alertmanager_wecom.config import StorageSettings
from alertmanager_wecom.oncall.opening import open_oncall_store
from alertmanager_wecom.outbox import NewJob, OutboxUnavailable
from alertmanager_wecom.outbox.opening import open_outbox
from tests.redis_server import run_redis

pytestmark = pytest.mark.anyio
PASSWORD = "redis-pass-6f1e0c"
TARGET = '{"app": "ops", "to_user": ["zhangsan"]}'


@pytest.fixture
def redis_url(tmp_path: Path) -> Iterator[str]:
    with run_redis(tmp_path / "redis") as url:
        redis.Redis.from_url(url).config_set("requirepass", PASSWORD)
        yield url


def storage(url: str, password: str) -> StorageSettings:
    return StorageSettings.model_validate({"backend": "redis", "url": url, "password": password})


async def test_every_redis_store_opens_with_the_password(redis_url: str) -> None:
    settings = storage(redis_url, PASSWORD)
    outbox, cards, oncall = open_outbox(settings), open_card_store(settings), open_oncall_store(settings)
    try:
        accepted = await outbox.accept("default", [NewJob("t", TARGET, "{}")], "k", 300, 1.0)
        assert accepted.notification_id is not None
        assert await cards.first_time("event-1", 1.0, 60) and not await cards.first_time("event-1", 2.0, 60)
        assert await oncall.incidents(10) == []
    finally:
        await outbox.close()
        await cards.close()
        await oncall.close()


async def test_a_wrong_password_is_an_outage_that_names_no_password(
    redis_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    wrong = "wrong-pass-93ad27"
    outbox = open_outbox(storage(redis_url, wrong))
    try:
        with caplog.at_level(logging.DEBUG), pytest.raises(OutboxUnavailable) as failed:
            await outbox.accept("default", [NewJob("t", TARGET, "{}")], "k", 300, 1.0)
    finally:
        await outbox.close()
    said = str(failed.value) + "\n" + "\n".join(r.getMessage() for r in caplog.records)
    assert "Redis" in str(failed.value)
    assert wrong not in said and PASSWORD not in said
    assert wrong not in repr(storage(redis_url, wrong))
