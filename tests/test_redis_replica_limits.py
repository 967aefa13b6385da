"""Replicas share WeCom's limits all the time, and a stalled replica sends nothing twice (issue 22 items 3
and 4), with real parts: a real redis-server, the service as real `serve` processes (each with its own
`storage.path`, as pods have), the simulator applying WeCom's limits and dropping, silently, what is
over them.

- Four receivers paging one person (four targets, four rate windows keyed by the same member), a storm
  posted across three replicas: nothing over 30 a minute reaches that person.
- The replica sending to a person is stopped (SIGSTOP) while it waits for room, past its lease: another
  takes the target over; continued, the stopped one sends nothing (the write-ahead finds the lease is
  no longer its own): every alert once, no copy for WeCom's duplicate check to drop.
"""

from __future__ import annotations

import asyncio
import re
import signal
import time
from collections.abc import Iterator
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import httpx
import pytest
import redis
import yaml

from alertmanager_wecom import samples
from alertmanager_wecom.channels import kind_of
from alertmanager_wecom.loading import load_config
from alertmanager_wecom.outbox.redis import RedisOutbox
from alertmanager_wecom.simulator.model import SANDBOX_AGENT_ID, SANDBOX_CORP_ID, SANDBOX_SECRET
from tests.helpers import wait_until
from tests.redis_server import run_redis
from tests.servers import cli_process, free_port, simulator_process, wait_http

pytestmark = pytest.mark.e2e
PREFIX = "amw-limits"


@pytest.fixture
def sim(tmp_path: Path) -> Iterator[str]:
    with simulator_process(tmp_path, "--inbox-per-recipient", "100000") as url:
        yield url


def _replica(
    stack: ExitStack,
    tmp_path: Path,
    sim: str,
    redis_url: str,
    receivers: list[str],
    i: int,
    headroom: float = 0.1,
    max_messages: int = 5,
) -> Any:
    """One `serve` process on its own disk, at the default lease; returns (url, process, log path)."""
    home = tmp_path / f"replica-{i}"
    home.mkdir()
    config = home / "relay.yaml"
    config.write_text(
        yaml.safe_dump(
            {
                "wecom": {"api_url": f"{sim}/cgi-bin/", "timeout_seconds": 5},
                "apps": {
                    "ops": {
                        "corp_id": SANDBOX_CORP_ID,
                        "agent_id": SANDBOX_AGENT_ID,
                        "secret": SANDBOX_SECRET,
                    }
                },
                "receivers": [
                    {
                        "name": name,
                        "targets": [{"app": "ops", "to_user": ["zhangsan"], "max_messages": max_messages}],
                    }
                    for name in receivers
                ],
                "storage": {
                    "backend": "redis",
                    "url": redis_url,
                    "key_prefix": PREFIX,
                    "path": str(home / "outbox.db"),
                },
                "delivery": {"poll_interval": "200ms", "headroom": headroom},
                "server": {"admin_allow_loopback": True},
            }
        ),
        encoding="utf-8",
    )
    port = free_port()
    log = home / "relay.log"
    proc = stack.enter_context(
        cli_process(["serve", "--config", str(config), "--listen", f"127.0.0.1:{port}"], log)
    )
    url = f"http://127.0.0.1:{port}"
    wait_http(f"{url}/healthz", proc=proc)
    return url, proc, log


def _notification(receiver: str, i: int) -> dict[str, Any]:
    body = samples.node_down(1, cluster=f"{receiver}-{i:02d}")
    body["receiver"] = receiver
    body["groupKey"] = f'{{}}:{{cluster="{receiver}-{i:02d}"}}'
    body["alerts"][0]["labels"]["instance"] = f"{receiver}-host-{i:02d}:9100"
    return body


def _entries(sim: str) -> list[dict[str, Any]]:
    return list(httpx.get(f"{sim}/admin/inbox", params={"user": "zhangsan"}, timeout=10).json()["entries"])


def _shown(sim: str) -> str:
    return "\n".join(e["visible"] for e in _entries(sim) if e["dropped"] is None)


def _busiest_minute(times: list[float]) -> int:
    times = sorted(times)
    return max((sum(1 for t in times[i:] if t - start < 60) for i, start in enumerate(times)), default=0)


def test_four_receivers_paging_one_person_stay_under_30_a_minute_across_three_replicas(
    tmp_path: Path, sim: str
) -> None:
    receivers = ["r0", "r1", "r2", "r3"]
    with ExitStack() as stack:
        redis_url = stack.enter_context(run_redis(tmp_path / "redis"))
        # The default headroom (10 %): a send counts from when WeCom answered (PROGRESS moves it there
        # from its write-ahead), so a replica the loaded machine stalls for seconds between the two does
        # not land it later in WeCom's minute than the ledger has it (one CI run had WeCom drop one when
        # sends counted from the write-ahead).
        urls = [_replica(stack, tmp_path, sim, redis_url, receivers, i)[0] for i in range(3)]
        # 48 notifications for one person, each receiver's spread over the three replicas: more than
        # the 30 a minute WeCom lets through, so that replicas pacing each on its own would go over.
        names = []
        with httpx.Client(timeout=10) as client:
            for i in range(12):
                for n, receiver in enumerate(receivers):
                    url = urls[(i + n) % 3]
                    assert client.post(f"{url}/alerts/{receiver}", json=_notification(receiver, i)).is_success
                    names.append(f"{receiver}-host-{i:02d}:9100")

        # The rest waits for the minute to pass (as digests): every alert is shown in the end, unless
        # something went over WeCom's limits (dropped: then it never will be).
        def finished() -> bool:
            entries = _entries(sim)
            text = "\n".join(e["visible"] for e in entries if e["dropped"] is None)
            return any(e["dropped"] for e in entries) or all(name in text for name in names)

        wait_until(finished, 150, "every alert in zhangsan's inbox")
        entries = _entries(sim)
        assert [e for e in entries if e["dropped"] is not None] == []  # nothing over WeCom's limits
        assert all(name in _shown(sim) for name in names)
        assert _busiest_minute([e["at"] for e in entries]) <= 30
        text = _shown(sim)
        assert all(len(re.findall(re.escape(name), text)) == 1 for name in names)


def _holder(client: redis.Redis, pids: dict[int, int]) -> int | None:
    """The replica (index) holding the person's target now, from its lease in Redis."""
    for key in client.scan_iter(f"{PREFIX}:lease:*"):
        owner = client.get(key)
        if owner is not None:
            pid = int(str(owner).rsplit("-", 2)[1])
            return pids.get(pid)
    return None


async def _fill_the_persons_minute(redis_url: str, config: Path, at: float) -> None:
    """Another sender's 27 messages to the person at `at`, in the shared ledger (as any replica records
    them): the minute is full until `at` + 60."""
    loaded = load_config(config)
    target = loaded.receivers[0].targets[0]
    [(key, windows), *_] = kind_of(target).rate_windows(target, loaded, loaded.delivery)
    outbox = RedisOutbox(redis_url, key_prefix=PREFIX)
    try:
        for _ in range(windows[0].limit):
            await outbox.record_send([key], at)
    finally:
        await outbox.close()


def test_a_replica_stopped_past_its_lease_and_continued_sends_nothing_twice(tmp_path: Path, sim: str) -> None:
    with ExitStack() as stack:
        redis_url = stack.enter_context(run_redis(tmp_path / "redis"))
        replicas = [
            _replica(stack, tmp_path, sim, redis_url, ["default"], i, max_messages=6) for i in range(2)
        ]
        pids = {proc.pid: i for i, (_url, proc, _log) in enumerate(replicas)}
        store = stack.enter_context(redis.Redis.from_url(redis_url, decode_responses=True))
        # One notification of six messages; WeCom slow (2 s) for the first.
        body = samples.node_down(6, receiver="default")
        for alert in body["alerts"]:
            alert["annotations"]["description"] = "磁盘" * 1500  # a message each
        faults = {"rate": 1.0, "kinds": ["slow"], "slow_seconds": 2}
        assert httpx.post(f"{sim}/admin/faults", json=faults, timeout=10).is_success
        assert httpx.post(f"{replicas[0][0]}/alerts/default", json=body, timeout=10).is_success
        # While the first message is on its way, others fill the person's minute (for 15 s more), in
        # the shared ledger: the replica sending learns of it only at its next write-ahead.
        wait_until(
            lambda: store.hget(f"{PREFIX}:job:1", "inflight") == "1", 30, "the first message written ahead"
        )
        asyncio.run(
            _fill_the_persons_minute(redis_url, tmp_path / "replica-0" / "relay.yaml", time.time() - 45)
        )
        assert httpx.post(f"{sim}/admin/faults", json={"rate": 0.0}, timeout=10).is_success

        def pacing() -> tuple[int] | None:
            index = _holder(store, pids)
            if index is None:
                return None
            text = replicas[index][2].read_text(encoding="utf-8", errors="replace")
            return (index,) if "(sends by other replicas)" in text else None

        [stopped] = wait_until(pacing, 30, "the target's holder waiting for room at its write-ahead")
        other = replicas[1 - stopped]
        replicas[stopped][1].send_signal(signal.SIGSTOP)
        try:
            # Past its lease (3 s): the other replica takes the target over.
            wait_until(
                lambda: _holder(store, pids) == 1 - stopped, 15, "the other replica holding the target"
            )
        finally:
            replicas[stopped][1].send_signal(signal.SIGCONT)
        # Continued, in the middle of the job, it writes ahead again and finds the lease another's.
        log = replicas[stopped][2]
        wait_until(
            lambda: (
                "not sending, leaving it to its holder" in log.read_text(encoding="utf-8", errors="replace")
            ),
            60,
            "the continued replica refused at its write-ahead",
        )
        # Once the minute has room, the other replica sends the rest of the job.
        wait_until(
            lambda: "delivered receiver=default" in other[2].read_text(encoding="utf-8", errors="replace"),
            60,
            "the other replica finishing the job",
        )
        shown = [e["visible"] for e in _entries(sim) if e["dropped"] is None]
        assert len(shown) == 6 and len(set(shown)) == 6, "a message shown twice, or one missing"
        stats = httpx.get(f"{sim}/admin/stats", timeout=10).json()
        assert stats["suppressed_duplicates"] == 0  # no byte-identical copy sent either
        assert stats["dropped"] == 0
