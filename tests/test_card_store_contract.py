"""The `CardStore` contract (actions/store.py), checked for every backend through the interface only, as
tests/test_outbox_contract.py does for the outbox. Two instances on the same storage are two replicas
(or one replica before and after a restart). Adding a backend is one entry in BACKENDS."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import pytest

from alertmanager_wecom.actions.redis_store import RedisCardStore
from alertmanager_wecom.actions.sqlite_store import SQLiteCardStore
from alertmanager_wecom.actions.store import CODE_LIFETIME, CardRecord, CardStore
from alertmanager_wecom.rendering.card import CardState

pytestmark = pytest.mark.anyio
Opener = Callable[[], CardStore]
NOW = 1_764_859_200.123456  # a time with more digits than Lua keeps (it would write 14)


def _sqlite(tmp_path: Path, redis_url: str) -> Opener:
    return lambda: SQLiteCardStore(tmp_path / "outbox-actions.db")


def _redis(tmp_path: Path, redis_url: str) -> Opener:
    prefix = f"t{uuid.uuid4().hex[:12]}"
    return lambda: RedisCardStore(redis_url, prefix)


BACKENDS: dict[str, Callable[[Path, str], Opener]] = {"sqlite": _sqlite, "redis": _redis}


@pytest.fixture(params=sorted(BACKENDS))
def opener(request: pytest.FixtureRequest, tmp_path: Path, redis_url: str) -> Opener:
    return BACKENDS[request.param](tmp_path, redis_url)


@pytest.fixture
async def store(opener: Opener) -> AsyncIterator[CardStore]:
    opened = opener()
    yield opened
    await opened.close()


def card(task_id: str, at: float = NOW, group: str = "g1", target: str = '{"app":"ops"}') -> CardRecord:
    return CardRecord(
        task_id=task_id,
        app="ops",
        receiver="default",
        target=target,
        group_key=group,
        job_id=7,
        payload='{"alerts": []}',
        card={"task_id": task_id, "button_list": [{"key": "ack"}], "title": "磁盘满了"},
        state=CardState(),
        resolved=False,
        created_at=at,
    )


async def test_a_card_is_kept_exactly_redrawn_and_seen_by_another_replica(opener: Opener) -> None:
    first, second = opener(), opener()
    try:
        await first.add_card(card("c1"))
        assert await second.card("c1") == card("c1")  # every field, the time to the last digit
        state = CardState(acked_by="zhangsan", acked_at=NOW + 1.5)
        await second.redrawn("c1", {"task_id": "c1", "button_list": []}, state, True)
        again = await first.card("c1")
        assert again is not None
        assert (again.card, again.state, again.resolved, again.created_at) == (
            {"task_id": "c1", "button_list": []},
            state,
            True,
            NOW,
        )
        assert await first.card("nope") is None
        await first.redrawn("nope", {}, state, False)  # a card purged meanwhile: nothing is made
        assert await first.card("nope") is None
    finally:
        await first.close()
        await second.close()


async def test_open_cards_are_the_groups_unresolved_on_one_target_oldest_first(store: CardStore) -> None:
    await store.add_card(card("late", NOW + 10))
    await store.add_card(card("early", NOW))
    await store.add_card(card("other-group", NOW, group="g2"))
    await store.add_card(card("other-target", NOW, target='{"app":"x"}'))
    await store.add_card(card("done", NOW + 5))
    await store.redrawn("done", {}, CardState(), True)
    found = await store.open_cards("default", "g1", '{"app":"ops"}')
    assert [c.task_id for c in found] == ["early", "late"]
    assert [c.task_id for c in await store.list_cards(2)] == ["late", "done"]


async def test_a_code_is_taken_once_newest_first_never_when_too_old(store: CardStore) -> None:
    await store.add_code("c1", "old", NOW - CODE_LIFETIME - 1)
    await store.add_code("c1", "a", NOW)
    await store.add_code("c1", "b", NOW + 1)
    assert await store.take_code("c1", NOW + 2) == "b"
    assert await store.take_code("c1", NOW + 2) == "a"
    assert await store.take_code("c1", NOW + 2) is None  # "old" is past WeCom's 72 h
    await store.add_code("c1", "a", NOW + 3)  # WeCom's retry of a click brings its code again
    assert await store.take_code("c1", NOW + 3) is None  # spent is spent
    assert await store.take_code("other", NOW) is None


async def test_two_replicas_never_take_the_same_code(opener: Opener) -> None:
    replicas = [opener(), opener()]
    try:
        for i in range(10):
            await replicas[0].add_code("c1", f"code-{i}", NOW + i)
        taken = await asyncio.gather(*(replicas[i % 2].take_code("c1", NOW + 20) for i in range(20)))
        codes = [c for c in taken if c is not None]
        assert sorted(codes) == sorted(f"code-{i}" for i in range(10))  # each once, none twice
    finally:
        for replica in replicas:
            await replica.close()


async def test_acknowledgements(store: CardStore) -> None:
    assert await store.ack_of("default", "g1") is None
    await store.ack("default", "g1", "zhangsan", NOW)
    await store.ack("default", "g1", "lisi", NOW + 1)
    assert await store.ack_of("default", "g1") == ("lisi", NOW + 1)
    assert await store.ack_of("other", "g1") is None
    await store.clear_ack("default", "g1")
    assert await store.ack_of("default", "g1") is None


async def test_an_event_is_new_once_across_replicas_and_restarts(opener: Opener) -> None:
    replicas = [opener(), opener()]
    try:
        firsts = await asyncio.gather(*(replicas[i % 2].first_time("e1", NOW, 600) for i in range(10)))
        assert firsts.count(True) == 1
        assert await replicas[1].first_time("e2", NOW, 600)
    finally:
        for replica in replicas:
            await replica.close()
    restarted = opener()
    try:
        assert not await restarted.first_time("e1", NOW + 1, 600)
    finally:
        await restarted.close()


async def test_a_lock_is_one_owners_until_given_up_or_expired(opener: Opener) -> None:
    first, second = opener(), opener()
    try:
        assert await first.lock("g", "a", 30)
        assert not await second.lock("g", "b", 30)
        await second.unlock("g", "b")  # not b's: a keeps it
        assert not await second.lock("g", "b", 30)
        await first.unlock("g", "a")
        assert await second.lock("g", "b", 0.2)
        await asyncio.sleep(0.4)  # the lock's own expiry is what is tested here
        assert await first.lock("g", "a", 30)
    finally:
        await first.close()
        await second.close()


async def test_the_audit_log_newest_first(store: CardStore) -> None:
    for i in range(5):
        await store.record(NOW + i, "ops", "zhangsan", "ack", f"c{i}", "ok", f"detail {i}")
    await store.record(NOW + 4, "ops", "lisi", "silence:3600", "c4", "refused", "same instant")
    newest = await store.actions(3)
    assert [(a.task_id, a.outcome) for a in newest] == [("c4", "refused"), ("c4", "ok"), ("c3", "ok")]
    assert newest[0].id > newest[1].id and newest[0].at == NOW + 4


async def test_purge_keeps_what_retention_keeps(store: CardStore) -> None:
    keep_cards, keep_audit = 7 * 86400.0, 90 * 86400.0
    now = NOW + 200 * 86400
    expired = now - CODE_LIFETIME - keep_cards - 1
    await store.add_card(card("old", expired))
    await store.add_code("old", "x", expired)
    await store.ack("default", "old-group", "zhangsan", expired)
    await store.add_card(card("new", now - CODE_LIFETIME - keep_cards + 60))
    await store.ack("default", "g1", "lisi", now - 60)
    await store.record(now - keep_audit - 1, "ops", "u", "ack", "old", "ok", "")
    await store.record(now - 60, "ops", "u", "ack", "new", "ok", "")
    assert await store.purge(now, keep_cards, keep_audit) == 1
    assert await store.card("old") is None and await store.card("new") is not None
    assert await store.take_code("old", expired + 1) is None
    assert await store.ack_of("default", "old-group") is None
    assert await store.ack_of("default", "g1") == ("lisi", now - 60)
    assert [a.task_id for a in await store.actions()] == ["new"]
    assert [c.task_id for c in await store.list_cards()] == ["new"]
    assert await store.purge(now, keep_cards, keep_audit) == 0
