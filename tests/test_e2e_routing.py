"""Routing, robots and mentions end to end: the real Alertmanager routes to two receivers of the service."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from tests.alertmanager import now_iso, post_alerts, run_alertmanager
from tests.helpers import wait_until
from tests.stack import Stack

pytestmark = pytest.mark.e2e

RECEIVERS = [
    {
        "name": "team",
        "targets": [
            {"app": "ops", "to_user": ["{{ labels.owner }}"], "msgtype": "text"},
            {"app": "ops", "to_party": ["2"], "msgtype": "text", "match": ['severity="critical"']},
        ],
    },
    {
        "name": "chatops",
        "targets": [
            {"robot": "sre", "msgtype": "text", "mention_from": ["labels.owner"]},
            {"robot": "sre", "msgtype": "markdown", "mention": ["zhangsan"]},
        ],
    },
]


def alert(name: str, owner: str, severity: str, **labels: str) -> dict[str, Any]:
    return {
        "labels": {
            "alertname": name,
            "owner": owner,
            "severity": severity,
            "instance": f"{name}-1",
            **labels,
        },
        "annotations": {"summary": f"{name} needs {owner}"},
        "startsAt": now_iso(),
    }


def test_alertmanager_routes_to_two_receivers_with_rules_templates_and_mentions(tmp_path: Path) -> None:
    with Stack(tmp_path, receivers=RECEIVERS) as stack:
        am_config = {
            "route": {
                "receiver": "team",
                "group_by": ["alertname"],
                "group_wait": "1s",
                "group_interval": "2s",
                "repeat_interval": "1h",
                "routes": [{"matchers": ['channel="robot"'], "receiver": "chatops"}],
            },
            "receivers": [
                {
                    "name": r["name"],
                    "webhook_configs": [{"url": f"{stack.relay}/alerts/{r['name']}", "send_resolved": True}],
                }
                for r in RECEIVERS
            ],
        }
        with run_alertmanager(tmp_path, am_config) as am:
            post_alerts(
                am,
                [
                    alert("DiskFull", "lisi", "critical"),
                    alert("SlowQueries", "wangwu", "warning"),
                    alert("Orphan", "not a user!", "warning"),
                    alert("ChatOpsAlert", "zhaoliu", "warning", channel="robot"),
                ],
            )

            def inbox_has(user: str, text: str) -> bool:
                return any(text in e["visible"] for e in stack.inbox(user) if e["dropped"] is None)

            wait_until(
                lambda: inbox_has("lisi", "DiskFull") and inbox_has("wangwu", "SlowQueries"),
                30,
                "templated recipients",
            )
            # the critical rule added party 2 (zhangsan, lisi): zhangsan sees DiskFull, not SlowQueries
            wait_until(lambda: inbox_has("zhangsan", "DiskFull"), 30, "the party rule")
            assert not inbox_has("zhangsan", "SlowQueries") and not inbox_has("lisi", "SlowQueries")
            robot = wait_until(
                lambda: [e for e in stack.inbox("robot:sre")] if len(stack.inbox("robot:sre")) >= 2 else None,
                30,
                "both robot messages",
            )
            text_msg = next(e for e in robot if e["msgtype"] == "text")
            markdown_msg = next(e for e in robot if e["msgtype"] == "markdown")
            assert text_msg["mentioned"] == ["zhaoliu"] and "ChatOpsAlert" in text_msg["visible"]
            assert "<@zhangsan>" in markdown_msg["visible"] and markdown_msg["mentioned"] == ["zhangsan"]
            # the label value that is no valid recipient is reported and kept as a dead letter
            wait_until(
                lambda: "'not a user!', which is not a valid WeCom id" in stack.relay_log(), 10, "the report"
            )
            dead = stack.cli("outbox", "list", "--state", "dead").stdout
            assert "recipients" in dead and "not a valid WeCom id" in dead
            # Everything sent (nothing pending): WeCom dropped none of it.
            wait_until(lambda: stack.pending() == 0, 30, "the outbox sent")
            assert stack.sim_stats()["dropped"] == 0
