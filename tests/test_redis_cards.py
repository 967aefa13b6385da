"""Replicas share the cards (issue 22): with `storage.backend: redis` the card store is the outbox's
Redis, so a click that reaches another replica than the one that sent the card works, and a click that
WeCom retries to two replicas acts once.

Real parts: redis-server, the simulator and two `serve` processes (each with its own storage.path, as
pods have their own disks), the real Alertmanager for the silence.
"""

from __future__ import annotations

import signal
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from functools import partial
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from alertmanager_wecom import samples
from alertmanager_wecom.simulator.model import SANDBOX_AGENT_ID, SANDBOX_CORP_ID, SANDBOX_SECRET
from alertmanager_wecom.wecom.callback_crypto import CallbackCrypto
from tests.alertmanager import run_alertmanager, webhook_config
from tests.helpers import signed_event, wait_until
from tests.redis_server import run_redis
from tests.servers import cli_process, free_port, simulator_process, wait_http
from tests.test_card_security import event
from tests.test_cards import AES_KEY, TOKEN, cards, save_callback

pytestmark = pytest.mark.e2e


@contextmanager
def replica(tmp_path: Path, name: str, sim: str, redis_url: str, am: str) -> Iterator[tuple[str, Any]]:
    config = {
        "wecom": {"api_url": f"{sim}/cgi-bin/", "timeout_seconds": 5},
        "apps": {
            "ops": {
                "corp_id": SANDBOX_CORP_ID,
                "agent_id": SANDBOX_AGENT_ID,
                "secret": SANDBOX_SECRET,
                "callback": {"token": TOKEN, "encoding_aes_key": AES_KEY},
            }
        },
        "alertmanager": {"url": am, "timeout": "2s"},
        "receivers": [
            {
                "name": "default",
                "targets": [{"app": "ops", "to_user": ["zhangsan", "lisi"], "msgtype": "template_card"}],
            }
        ],
        "storage": {
            "backend": "redis",
            "url": redis_url,
            "key_prefix": "amw-cards",
            "lease": "3s",
            "path": str(tmp_path / name / "outbox.db"),  # its own disk: nothing of the cards is here
        },
        "delivery": {"retry_initial": "200ms", "retry_max": "1s", "poll_interval": "200ms"},
        "server": {"admin_allow_loopback": True},
    }
    path = tmp_path / f"{name}.yaml"
    path.write_text(yaml.safe_dump(config), encoding="utf-8")
    port = free_port()
    with cli_process(
        ["serve", "--config", str(path), "--listen", f"127.0.0.1:{port}"],
        tmp_path / f"{name}-{time.monotonic_ns()}.log",
    ) as proc:
        url = f"http://127.0.0.1:{port}"
        wait_http(f"{url}/healthz", timeout=60, proc=proc)
        yield url, proc


def notification(instances: int) -> dict[str, Any]:
    body = samples.node_down(instances, cluster="db")
    body["groupKey"] = '{}:{alertname="NodeDown"}'
    body["groupLabels"] = {"alertname": "NodeDown"}
    return body


def acked_cards(sim: str, user: str, by: str) -> list[dict[str, Any]]:
    return [c for c in cards(sim, user) if f"已认领 · {by}" in c["visible"]]


@pytest.fixture
def sim(tmp_path: Path) -> Iterator[str]:
    with simulator_process(tmp_path) as url:
        yield url


def test_a_card_sent_by_a_replica_that_died_is_acted_on_by_another(tmp_path: Path, sim: str) -> None:
    with ExitStack() as stack:
        redis_url = stack.enter_context(run_redis(tmp_path / "redis"))
        am = stack.enter_context(run_alertmanager(tmp_path, webhook_config("http://127.0.0.1:9/")))
        a_url, a_proc = stack.enter_context(replica(tmp_path, "a", sim, redis_url, am))
        b_url, _ = stack.enter_context(replica(tmp_path, "b", sim, redis_url, am))
        save_callback(sim, a_url)
        assert httpx.post(f"{a_url}/alerts/default", json=notification(1), timeout=10).status_code == 200
        first = wait_until(lambda: cards(sim, "zhangsan"), 30, "A's card for zhangsan")[0]
        wait_until(lambda: cards(sim, "lisi"), 30, "A's card for lisi")
        # A is replaced (a rolling update): WeCom's next call reaches B.
        a_proc.send_signal(signal.SIGKILL)
        a_proc.wait(10)
        save_callback(sim, b_url)
        pressed = httpx.post(
            f"{sim}/admin/click",
            json={
                "agent_id": SANDBOX_AGENT_ID,
                "userid": "zhangsan",
                "event_key": "ack",
                "task_id": first["card"]["task_id"],
            },
            timeout=30,
        )
        assert pressed.json()["sent"], pressed.text
        # Every recipient's card redrawn, by B, from what A stored.
        for user in ("zhangsan", "lisi"):
            wait_until(partial(acked_cards, sim, user, "zhangsan"), 20, f"{user}'s card redrawn")
        # The group's next card, sent by B, shows the acknowledgement from the start.
        assert httpx.post(f"{b_url}/alerts/default", json=notification(2), timeout=10).status_code == 200
        wait_until(
            lambda: [
                c
                for c in acked_cards(sim, "lisi", "zhangsan")
                if c["card"]["task_id"] != first["card"]["task_id"]
            ],
            30,
            "the next card showing zhangsan's acknowledgement",
        )
        actions = httpx.get(f"{b_url}/api/actions", timeout=10).json()
        assert [(a["user"], a["action"], a["outcome"]) for a in actions["actions"]] == [
            ("zhangsan", "ack", "ok")
        ]


def test_a_silence_click_retried_to_two_replicas_makes_one_silence(tmp_path: Path, sim: str) -> None:
    with ExitStack() as stack:
        redis_url = stack.enter_context(run_redis(tmp_path / "redis"))
        am = stack.enter_context(run_alertmanager(tmp_path, webhook_config("http://127.0.0.1:9/")))
        a_url, _ = stack.enter_context(replica(tmp_path, "a", sim, redis_url, am))
        b_url, _ = stack.enter_context(replica(tmp_path, "b", sim, redis_url, am))
        save_callback(sim, a_url)
        assert httpx.post(f"{a_url}/alerts/default", json=notification(1), timeout=10).status_code == 200
        card = wait_until(lambda: cards(sim, "zhangsan"), 30, "a card")[0]
        crypto = CallbackCrypto(TOKEN, AES_KEY, SANDBOX_CORP_ID)
        now = int(time.time())
        query, body = signed_event(
            crypto, event("zhangsan", card["card"]["task_id"], "silence:3600", now, "r1"), now, "5"
        )
        # WeCom got no answer in time and tried again; the Service sent the retries to both replicas.
        for relay in (a_url, b_url, b_url):
            answer = httpx.post(f"{relay}/wecom/callback/ops", params=query, content=body, timeout=10)
            assert answer.status_code == 200

        def duplicates(relay: str) -> float:
            metrics = httpx.get(f"{relay}/metrics", timeout=10).text
            line = 'alertmanager_wecom_callbacks_received_total{app="ops",outcome="duplicate"} '
            return sum(float(m.split()[-1]) for m in metrics.splitlines() if m.startswith(line))

        wait_until(lambda: duplicates(a_url) + duplicates(b_url) == 2, 20, "two retries recognised")
        silences = wait_until(lambda: httpx.get(f"{am}/api/v2/silences", timeout=5).json(), 20, "the silence")
        wait_until(
            lambda: any(
                a["outcome"] == "ok" for a in httpx.get(f"{b_url}/api/actions", timeout=5).json()["actions"]
            ),
            20,
            "the audit of the silence",
        )
        silences = httpx.get(f"{am}/api/v2/silences", timeout=5).json()
        assert len(silences) == 1 and silences[0]["createdBy"] == "zhangsan"
