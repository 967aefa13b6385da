"""The `OncallStore` contract (oncall/store.py), checked for every backend through the interface only, as
tests/test_card_store_contract.py does for the card store. Two instances on the same storage are two
replicas (or one replica before and after a restart). Adding a backend is one entry in BACKENDS."""

from __future__ import annotations

import asyncio
import os
import stat
import uuid
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import pytest
import redis.asyncio as aioredis

from alertmanager_wecom.oncall.redis_store import RedisOncallStore
from alertmanager_wecom.oncall.sqlite_store import SQLiteOncallStore, oncall_path
from alertmanager_wecom.oncall.store import MOST_EVENTS, IncidentEvent, OncallStore, Override, group_id

pytestmark = pytest.mark.anyio
Opener = Callable[[], OncallStore]
NOW = 1_764_859_200.123456  # a time with more digits than Lua keeps (it would write 14)
GROUP = '{}/{alertname="DiskFull"}:{instance="db-1"}'
GID = group_id(GROUP)


def _sqlite(tmp_path: Path, redis_url: str) -> Opener:
    return lambda: SQLiteOncallStore(tmp_path / "outbox-oncall.db")


def _redis(tmp_path: Path, redis_url: str) -> Opener:
    prefix = f"t{uuid.uuid4().hex[:12]}"
    return lambda: RedisOncallStore(redis_url, prefix)


BACKENDS: dict[str, Callable[[Path, str], Opener]] = {"sqlite": _sqlite, "redis": _redis}


@pytest.fixture(params=sorted(BACKENDS))
def opener(request: pytest.FixtureRequest, tmp_path: Path) -> Opener:
    redis_url = request.getfixturevalue("redis_url") if request.param == "redis" else ""
    return BACKENDS[request.param](tmp_path, redis_url)


@pytest.fixture
async def store(opener: Opener) -> AsyncIterator[OncallStore]:
    opened = opener()
    yield opened
    await opened.close()


@pytest.fixture
async def replicas(opener: Opener) -> AsyncIterator[tuple[OncallStore, OncallStore]]:
    first, second = opener(), opener()
    yield first, second
    await first.close()
    await second.close()


def override(id_: str, start: float, end: float, schedule: str = "sre", user: str = "zhangsan") -> Override:
    return Override(id_, schedule, user, start, end, created_by="lisi", created_at=NOW - 1.25)


async def test_overrides_that_overlap_a_range_by_start(store: OncallStore) -> None:
    await store.add_override(override("late", NOW + 100, NOW + 200))
    await store.add_override(override("early", NOW, NOW + 50, user="王五"))
    await store.add_override(override("before", NOW - 100, NOW + 1))  # ends just inside
    await store.add_override(override("ended", NOW - 100, NOW))  # ends where the range starts
    await store.add_override(override("after", NOW + 300, NOW + 400))  # starts where the range ends
    await store.add_override(override("dba", NOW + 10, NOW + 20, schedule="dba"))
    found = await store.overrides("sre", NOW, NOW + 300)
    assert [o.id for o in found] == ["before", "early", "late"]
    assert found[1] == override("early", NOW, NOW + 50, user="王五")  # every field, to the last digit
    every = await store.overrides(None, NOW, NOW + 300)
    assert [o.id for o in every] == ["before", "early", "dba", "late"]
    assert await store.overrides("sre", NOW + 250, NOW + 260) == []
    assert await store.overrides("nobody", NOW, NOW + 300) == []


async def test_an_override_is_replaced_by_its_id_and_removed(
    replicas: tuple[OncallStore, OncallStore],
) -> None:
    first, second = replicas
    await first.add_override(override("o1", NOW, NOW + 60))
    await second.add_override(override("o1", NOW + 600, NOW + 660, user="lisi"))
    assert await first.overrides(None, NOW, NOW + 60) == []  # moved: not where it was
    assert await first.overrides(None, NOW, NOW + 3600) == [override("o1", NOW + 600, NOW + 660, user="lisi")]
    assert await first.remove_override("o1")
    assert not await second.remove_override("o1")
    assert await second.overrides(None, NOW - 3600, NOW + 3600) == []


async def test_a_groups_open_incident_is_one_for_every_replica(
    replicas: tuple[OncallStore, OncallStore],
) -> None:
    first, second = replicas
    opened, new = await first.open_incident("default", GROUP, "DiskFull db-1", "sre", NOW)
    assert new
    assert (opened.receiver, opened.group_key, opened.group_id, opened.title, opened.policy) == (
        "default",
        GROUP,
        GID,
        "DiskFull db-1",
        "sre",
    )
    assert (opened.started_at, opened.open, opened.scheduled, opened.stop_reason()) == (
        NOW,
        True,
        False,
        None,
    )
    assert opened.events == [IncidentEvent(at=NOW, kind="opened")]
    again, new = await second.open_incident("default", GROUP, "another title", None, NOW + 5)
    assert not new
    assert again == opened  # the first one, as it was opened
    assert await second.incident(opened.id) == opened
    other_receiver, new = await second.open_incident("other", GROUP, "DiskFull db-1", None, NOW)
    other_group, new_too = await second.open_incident("default", GROUP + "x", "DiskFull", None, NOW)
    assert new and new_too and len({opened.id, other_receiver.id, other_group.id}) == 3
    assert other_receiver.policy is None
    assert await first.incident("nope") is None


async def test_two_replicas_opening_at_once_open_one_incident(
    replicas: tuple[OncallStore, OncallStore],
) -> None:
    first, second = replicas
    for attempt in range(5):
        group = f"{GROUP}{attempt}"
        opened = await asyncio.gather(
            *((first, second)[i % 2].open_incident("default", group, "t", None, NOW) for i in range(6))
        )
        assert [new for _, new in opened].count(True) == 1
        assert len({incident.id for incident, _ in opened}) == 1


async def test_mark_scheduled_is_seen_by_another_replica(replicas: tuple[OncallStore, OncallStore]) -> None:
    first, second = replicas
    opened, _ = await first.open_incident("default", GROUP, "t", "sre", NOW)
    await second.mark_scheduled(opened.id)
    marked = await first.incident(opened.id)
    assert marked is not None and marked.scheduled
    again, _ = await first.open_incident("default", GROUP, "t", "sre", NOW + 1)
    assert again.scheduled
    await first.mark_scheduled("nope")  # nothing is made
    assert await first.incident("nope") is None


async def test_after_resolving_the_next_firing_opens_a_new_incident(store: OncallStore) -> None:
    assert await store.resolve("default", GID, NOW) is None  # none was open
    opened, _ = await store.open_incident("default", GROUP, "t", None, NOW)
    resolved = await store.resolve("default", GID, NOW + 60)
    assert resolved is not None and resolved.id == opened.id
    assert (resolved.resolved_at, resolved.open, resolved.stop_reason()) == (NOW + 60, False, "resolved")
    assert [e.kind for e in resolved.events] == ["opened", "resolved"]
    assert resolved.events[-1].at == NOW + 60
    assert await store.incident(opened.id) == resolved
    assert await store.resolve("default", GID, NOW + 61) is None  # resolved once
    assert await store.resolve("other", GID, NOW + 61) is None
    second, new = await store.open_incident("default", GROUP, "t", None, NOW + 120)
    assert new and second.id != opened.id and second.open


async def test_current_is_the_open_incident_else_the_latest(store: OncallStore) -> None:
    assert await store.current("default", GID) is None
    first, _ = await store.open_incident("default", GROUP, "t", None, NOW)
    assert await store.current("default", GID) == first
    await store.resolve("default", GID, NOW + 10)
    latest = await store.current("default", GID)
    assert latest is not None and latest.id == first.id and latest.resolved_at == NOW + 10
    second, _ = await store.open_incident("default", GROUP, "t", None, NOW + 20)
    assert await store.current("default", GID) == second
    await store.resolve("default", GID, NOW + 30)
    latest = await store.current("default", GID)
    assert latest is not None and latest.id == second.id
    # Times are the callers' clocks: a replica's clock behind opens one that started "earlier".
    third, _ = await store.open_incident("default", GROUP, "t", None, NOW - 100)
    assert await store.current("default", GID) == third
    assert await store.current("other", GID) is None
    assert await store.current("default", group_id("another group")) is None


async def test_the_first_acknowledgement_wins(replicas: tuple[OncallStore, OncallStore]) -> None:
    first, second = replicas
    opened, _ = await first.open_incident("default", GROUP, "t", "sre", NOW)
    assert await second.acknowledge(opened.id, "zhangsan", "card", NOW + 5)
    assert not await first.acknowledge(opened.id, "lisi", "link", NOW + 6)
    acked = await first.incident(opened.id)
    assert acked is not None
    assert (acked.acknowledged_by, acked.acknowledged_at, acked.acknowledged_how) == (
        "zhangsan",
        NOW + 5,
        "card",
    )
    assert acked.stop_reason() == "acknowledged by zhangsan (card)"
    assert acked.events[1:] == [IncidentEvent(at=NOW + 5, kind="acknowledged", who=["zhangsan"], how="card")]
    assert not await first.acknowledge("nope", "lisi", "api", NOW)


async def test_acknowledgements_at_once_one_wins(replicas: tuple[OncallStore, OncallStore]) -> None:
    first, second = replicas
    opened, _ = await first.open_incident("default", GROUP, "t", "sre", NOW)
    taken = await asyncio.gather(
        *((first, second)[i % 2].acknowledge(opened.id, f"user{i}", "api", NOW + i) for i in range(6))
    )
    assert taken.count(True) == 1
    acked = await first.incident(opened.id)
    assert acked is not None and acked.acknowledged_by == f"user{taken.index(True)}"
    assert [e.kind for e in acked.events] == ["opened", "acknowledged"]


async def test_a_resolved_incident_is_not_acknowledged(store: OncallStore) -> None:
    opened, _ = await store.open_incident("default", GROUP, "t", "sre", NOW)
    resolved = await store.resolve("default", GID, NOW + 10)
    assert not await store.acknowledge(opened.id, "zhangsan", "link", NOW + 20)
    assert await store.incident(opened.id) == resolved  # nothing changed, no event


async def test_a_silence_stops_escalation(store: OncallStore) -> None:
    opened, _ = await store.open_incident("default", GROUP, "t", "sre", NOW)
    await store.silenced(opened.id, "zhangsan", NOW + 5, "2h, silence abc")
    silenced = await store.incident(opened.id)
    assert silenced is not None
    assert (silenced.silenced_at, silenced.stop_reason(), silenced.acknowledged_at) == (
        NOW + 5,
        "silenced",
        None,
    )
    assert silenced.events[-1] == IncidentEvent(
        at=NOW + 5, kind="silenced", who=["zhangsan"], detail="2h, silence abc"
    )
    # A second silence is in the timeline; escalation stopped at the first.
    await store.silenced(opened.id, "lisi", NOW + 9, "4h")
    again = await store.incident(opened.id)
    assert again is not None and again.silenced_at == NOW + 5
    assert [(e.kind, e.who) for e in again.events] == [
        ("opened", []),
        ("silenced", ["zhangsan"]),
        ("silenced", ["lisi"]),
    ]
    await store.silenced("nope", "lisi", NOW, "")  # nothing is made
    assert await store.incident("nope") is None


async def test_a_silence_after_resolving_is_in_the_timeline_only(store: OncallStore) -> None:
    opened, _ = await store.open_incident("default", GROUP, "t", "sre", NOW)
    await store.resolve("default", GID, NOW + 5)
    await store.silenced(opened.id, "zhangsan", NOW + 9, "1h")
    resolved = await store.incident(opened.id)
    assert resolved is not None
    assert (resolved.silenced_at, resolved.stop_reason()) == (None, "resolved")
    assert [e.kind for e in resolved.events] == ["opened", "resolved", "silenced"]
    assert await store.incident("nope") is None


async def test_a_step_is_taken_once(replicas: tuple[OncallStore, OncallStore]) -> None:
    first, second = replicas
    opened, _ = await first.open_incident("default", GROUP, "t", "sre", NOW)
    other, _ = await first.open_incident("default", GROUP + "x", "t", "sre", NOW)
    assert await first.take_step(opened.id, 0, 1, "job-7")
    assert not await second.take_step(opened.id, 0, 1, "job-9")  # a copy of the step, or a replica
    assert not await first.take_step(opened.id, 0, 1, "job-8")
    assert await second.take_step(opened.id, 0, 1, "job-7")  # the same job again, after a restart
    assert await second.take_step(opened.id, 0, 2, "job-9")
    assert await second.take_step(opened.id, 1, 1, "job-9")  # the next round's
    assert await second.take_step(other.id, 0, 1, "job-9")
    assert not await first.take_step("nope", 0, 1, "job-1")  # no incident (purged): nothing to escalate


async def test_two_replicas_taking_a_step_at_once_take_it_once(
    replicas: tuple[OncallStore, OncallStore],
) -> None:
    first, second = replicas
    opened, _ = await first.open_incident("default", GROUP, "t", "sre", NOW)
    for step in range(5):
        taken = await asyncio.gather(
            *((first, second)[i % 2].take_step(opened.id, 0, step, f"job-{i}") for i in range(6))
        )
        assert taken.count(True) == 1


async def test_the_timeline_keeps_opened_and_the_newest_events(store: OncallStore) -> None:
    opened, _ = await store.open_incident("default", GROUP, "t", "sre", NOW)
    event = IncidentEvent(at=NOW + 1, kind="escalated", who=["张三", "webhook:ops"], how="step 2", detail="d")
    await store.add_event(opened.id, event)
    kept = await store.incident(opened.id)
    assert kept is not None and kept.events == [IncidentEvent(at=NOW, kind="opened"), event]
    for i in range(MOST_EVENTS + 20):
        await store.add_event(opened.id, IncidentEvent(at=NOW + 2 + i, kind="notified", who=[f"u{i}"]))
    capped = await store.incident(opened.id)
    assert capped is not None and len(capped.events) == MOST_EVENTS
    assert capped.events[0] == IncidentEvent(at=NOW, kind="opened")
    # The oldest after "opened" went: the escalation and the first 20 notifications.
    assert [e.who for e in capped.events[1:3]] == [["u21"], ["u22"]]
    assert capped.events[-1].who == [f"u{MOST_EVENTS + 19}"]
    await store.add_event(opened.id, IncidentEvent(at=NOW + 999, kind="skipped", how="step 3"))
    again = await store.incident(opened.id)
    assert again is not None and len(again.events) == MOST_EVENTS  # one in, one out
    assert (again.events[0].kind, again.events[1].who, again.events[-1].kind) == (
        "opened",
        ["u22"],
        "skipped",
    )
    await store.add_event("nope", event)  # nothing is made
    assert await store.incident("nope") is None


async def test_incidents_newest_first_and_the_open_ones(store: OncallStore) -> None:
    for i in range(5):
        await store.open_incident("default", f"{GROUP}{i}", f"t{i}", None, NOW + i)
    await store.resolve("default", group_id(f"{GROUP}4"), NOW + 10)
    await store.resolve("default", group_id(f"{GROUP}1"), NOW + 10)
    assert [i.title for i in await store.incidents()] == ["t4", "t3", "t2", "t1", "t0"]
    assert [i.title for i in await store.incidents(limit=2)] == ["t4", "t3"]
    open_ones = await store.incidents(open_only=True)
    assert [i.title for i in open_ones] == ["t3", "t2", "t0"]
    assert all(i.open and i.events[0].kind == "opened" for i in open_ones)
    assert [i.title for i in await store.incidents(limit=1, open_only=True)] == ["t3"]
    # Pages: past the newest, in the same order, nothing past the end.
    assert [i.title for i in await store.incidents(limit=2, offset=2)] == ["t2", "t1"]
    assert [i.title for i in await store.incidents(limit=2, offset=4)] == ["t0"]
    assert await store.incidents(limit=2, offset=5) == []
    assert [i.title for i in await store.incidents(limit=2, open_only=True, offset=1)] == ["t2", "t0"]
    assert await store.incidents(limit=0) == []


async def test_purge_forgets_what_ended_before_the_retention(store: OncallStore) -> None:
    keep = 30 * 86400.0
    now = NOW + 100 * 86400
    old, _ = await store.open_incident("default", GROUP, "old", None, NOW + 1)  # the newest
    await store.take_step(old.id, 0, 1, "job-1")
    await store.resolve("default", GID, now - keep - 1)
    recent, _ = await store.open_incident("default", GROUP + "r", "recent", None, NOW)
    await store.resolve("default", group_id(GROUP + "r"), now - keep + 1)
    still_open, _ = await store.open_incident("default", GROUP + "o", "open", None, NOW - 1)  # the oldest
    await store.add_override(override("ended", NOW, now - keep - 1))
    await store.add_override(override("ending", NOW, now - keep + 1))
    assert await store.purge(now, keep) == 1
    assert await store.incident(old.id) is None
    assert await store.current("default", GID) is None  # the group's only incident went
    assert not await store.take_step(old.id, 0, 2, "job-2")
    assert [i.id for i in await store.incidents()] == [recent.id, still_open.id]
    assert [i.id for i in await store.incidents(limit=1)] == [recent.id]  # none left where old was
    assert [o.id for o in await store.overrides(None, 0, now)] == ["ending"]
    assert await store.purge(now, keep) == 0


async def test_everything_survives_a_restart(opener: Opener) -> None:
    before = opener()
    try:
        await before.add_override(override("o1", NOW, NOW + 60))
        opened, _ = await before.open_incident("default", GROUP, "t", "sre", NOW)
        await before.mark_scheduled(opened.id)
        await before.acknowledge(opened.id, "zhangsan", "console", NOW + 1)
        await before.take_step(opened.id, 0, 1, "job-1")
        kept = await before.incident(opened.id)
    finally:
        await before.close()
    after = opener()
    try:
        assert await after.incident(opened.id) == kept
        assert await after.current("default", GID) == kept
        assert await after.overrides("sre", NOW, NOW + 1) == [override("o1", NOW, NOW + 60)]
        assert not await after.take_step(opened.id, 0, 1, "job-2")
        assert await after.take_step(opened.id, 0, 1, "job-1")  # its taker is remembered
        assert not await after.acknowledge(opened.id, "lisi", "cli", NOW + 2)
        assert (await after.open_incident("default", GROUP, "t", "sre", NOW + 3)) == (kept, False)
    finally:
        await after.close()


# -- the SQLite backend's own file ----------------------------------------------------------------------


async def test_the_sqlite_files_are_0600_beside_the_outbox_in_a_directory_made_0700(tmp_path: Path) -> None:
    db = oncall_path(tmp_path / "data" / "outbox.db")
    assert db == tmp_path / "data" / "outbox-oncall.db"
    before = os.umask(0o002)  # one that lets others read: the modes must come from the store
    try:
        store = SQLiteOncallStore(db)
    finally:
        os.umask(before)
    try:
        await store.open_incident("default", GROUP, "t", None, NOW)
        files = [db, db.with_name(db.name + "-wal"), db.with_name(db.name + "-shm")]
        assert [stat.S_IMODE(os.stat(f).st_mode) for f in files] == [0o600, 0o600, 0o600]
        assert stat.S_IMODE(os.stat(db.parent).st_mode) == 0o700
    finally:
        await store.close()


# -- the Redis backend's own keys -----------------------------------------------------------------------


async def test_redis_keys_name_groups_by_id_and_purge_leaves_none_behind(redis_url: str) -> None:
    prefix = f"t{uuid.uuid4().hex[:12]}"
    store = RedisOncallStore(redis_url, prefix)
    raw = aioredis.Redis.from_url(redis_url, decode_responses=True)
    try:
        long_group = GROUP + "x" * 5000  # alert data: never in a key's name
        old, _ = await store.open_incident("default", long_group, "t", "sre", NOW)
        await store.add_event(old.id, IncidentEvent(at=NOW + 1, kind="notified", who=["zhangsan"]))
        await store.acknowledge(old.id, "zhangsan", "card", NOW + 2)
        await store.take_step(old.id, 0, 1, "job-1")
        await store.resolve("default", group_id(long_group), NOW + 3)
        still_open, _ = await store.open_incident("default", GROUP, "t", None, NOW + 4)
        await store.add_override(override("o1", NOW, NOW + 5))
        await store.add_event("nope", IncidentEvent(at=NOW, kind="notified"))  # makes nothing
        await store.silenced("nope", "zhangsan", NOW, "")
        await store.mark_scheduled("nope")
        keys = {k async for k in raw.scan_iter(f"{prefix}:*")}
        assert all(k.startswith(f"{prefix}:oncall:") and len(k) < 120 for k in keys), keys
        assert await store.purge(NOW + 100, 10) == 1
        left = {k async for k in raw.scan_iter(f"{prefix}:*")}
        base = f"{prefix}:oncall"
        assert left == {
            f"{base}:incident:{still_open.id}",
            f"{base}:events:{still_open.id}",
            f"{base}:open:default:{GID}",
            f"{base}:latest:default:{GID}",
            f"{base}:incidents",
            f"{base}:incidents:open",
        }
    finally:
        await raw.aclose()
        await store.close()
