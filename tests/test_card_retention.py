"""The card store's retention (issue 22): the dispatcher's maintenance round purges cards past WeCom's
72 h plus `storage.card_retention`, and audit entries past `storage.audit_retention`, through the
hooks delivery defines (actions never imported by delivery)."""

from __future__ import annotations

import asyncio
from pathlib import Path

import httpx
import pytest

from alertmanager_wecom.actions.cards import CardActions
from alertmanager_wecom.actions.sqlite_store import SQLiteCardStore
from alertmanager_wecom.actions.store import CODE_LIFETIME, CardRecord
from alertmanager_wecom.delivery.dispatcher import Dispatcher
from alertmanager_wecom.loading import parse_config
from alertmanager_wecom.metrics import Metrics
from alertmanager_wecom.outbox import SQLiteOutbox
from alertmanager_wecom.rendering.card import CardState
from tests.helpers import raw_config
from tests.test_dispatcher import START, FakeTime

pytestmark = pytest.mark.anyio


def _card(task_id: str, at: float) -> CardRecord:
    return CardRecord(task_id, "ops", "default", "{}", "g", 1, "{}", {}, CardState(), False, at)


async def test_the_maintenance_round_purges_cards_and_audit_past_their_retention(tmp_path: Path) -> None:
    raw = raw_config("http://sim", tmp_path, {"app": "ops", "to_user": ["zhangsan"]})
    raw["storage"].update(card_retention="1d", audit_retention="30d")
    config = parse_config(raw)
    time = FakeTime()
    store = SQLiteCardStore(tmp_path / "outbox-actions.db")
    await store.add_card(_card("old", START - CODE_LIFETIME - 86400 - 1))
    await store.add_card(_card("kept", START - CODE_LIFETIME - 86400 + 60))
    await store.record(START - 31 * 86400, "ops", "u", "ack", "old", "ok", "")
    await store.record(START - 29 * 86400, "ops", "u", "ack", "kept", "ok", "")
    metrics = Metrics()
    cards = CardActions(store, lambda: config, lambda app: None, metrics, time)  # type: ignore[arg-type, return-value]
    outbox = SQLiteOutbox(config.storage.path, synchronous="normal")
    client = httpx.AsyncClient()
    dispatcher = Dispatcher(
        config, outbox, client, clock=time, sleep=time.sleep, metrics=metrics, cards=cards
    )
    try:
        await dispatcher.start()  # its first round is a maintenance round
        for _ in range(500):
            if await store.card("old") is None:
                break
            await asyncio.sleep(0.01)
        assert await store.card("old") is None
        assert await store.card("kept") is not None
        assert [a.task_id for a in await store.actions()] == ["kept"]
    finally:
        await dispatcher.stop(grace=0)
        await client.aclose()
        await outbox.close()
        await store.close()
