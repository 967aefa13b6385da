"""Escalation with the real Alertmanager and cards: a silence made from a card stops the group's
escalation (the step, due, is not taken), while Alertmanager repeats the group every few seconds."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.alertmanager import post_alerts, run_alertmanager, webhook_config
from tests.helpers import metric, wait_until
from tests.servers import free_port
from tests.test_cards import alert, card_config, card_relay, cards, click, silences

pytestmark = pytest.mark.e2e


def with_escalation(raw: dict[str, Any]) -> dict[str, Any]:
    raw["receivers"][0]["escalation"] = "sre"
    raw["server"] = {"admin_allow_loopback": True}
    raw["oncall"] = {
        "escalations": {
            "sre": {
                "steps": [
                    {"after": "6s", "targets": [{"app": "ops", "to_user": ["wangwu"], "msgtype": "text"}]}
                ]
            }
        }
    }
    return raw


def test_a_silence_from_a_card_stops_the_escalation(simulator: str, tmp_path: Path) -> None:
    relay_port = free_port()
    am_config = webhook_config(
        f"http://127.0.0.1:{relay_port}/alerts/default", group_interval="1s", repeat_interval="3s"
    )
    with (
        run_alertmanager(tmp_path, am_config) as am,
        card_relay(simulator, with_escalation(card_config(simulator, tmp_path, am)), relay_port) as relay,
    ):
        post_alerts(am, [alert("DBReplicationLag")])
        first = wait_until(lambda: cards(simulator, "zhangsan"), 30, "a card for zhangsan")[0]
        assert click(simulator, "zhangsan", first, "silence:3600")["sent"]
        wait_until(lambda: silences(am), 15, "the silence in Alertmanager")
        stopped = "alertmanager_wecom_escalations_stopped_total"
        wait_until(
            lambda: metric(relay, stopped, policy="sre", why="silenced") == 1, 30, "the step, not taken"
        )
        inbox = httpx.get(f"{simulator}/admin/inbox", params={"user": "wangwu"}, timeout=5).json()["entries"]
        assert inbox == []
        [incident] = httpx.get(f"{relay}/api/incidents", timeout=5).json()["incidents"]
        assert incident["silenced_at"] is not None and incident["stop_reason"] == "silenced"
        assert [e["kind"] for e in incident["events"]].count("silenced") == 1
