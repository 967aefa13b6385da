"""Realistic Alertmanager payloads for `demo`, `render` and tests, shaped like Alertmanager 0.25's."""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime, timedelta
from typing import Any

_ZERO = "0001-01-01T00:00:00Z"


def fingerprint(labels: dict[str, str]) -> str:
    """Like Alertmanager's: a hash of the label set (not the same hash function)."""
    material = "\x00".join(f"{k}\x00{v}" for k, v in sorted(labels.items()))
    return hashlib.sha256(material.encode()).hexdigest()[:16]


def _iso(at: datetime) -> str:
    return at.strftime("%Y-%m-%dT%H:%M:%S.%f") + "000Z"


def node_down(
    count: int = 2,
    status: str = "firing",
    receiver: str = "wecom",
    started: datetime | None = None,
    cluster: str = "prod-bj",
) -> dict[str, Any]:
    """`count` NodeDown alerts of one group, firing or resolved (10 minutes later)."""
    started = started or datetime(2026, 11, 28, 9, 2, 9, tzinfo=UTC)
    ended = started + timedelta(minutes=10)
    alerts = []
    for i in range(count):
        ip = f"10.0.{i // 256}.{i % 256}"
        labels = {
            "alertname": "NodeDown",
            "cluster": cluster,
            "instance": f"{ip}:9100",
            "job": "node",
            "severity": "critical",
        }
        alerts.append(
            {
                "status": status,
                "labels": labels,
                "fingerprint": fingerprint(labels),
                "annotations": {
                    "description": "Node has been unreachable for more than 2 minutes.",
                    "runbook_url": "https://runbooks.example.com/NodeDown",
                    "summary": f"节点 {ip} 宕机",
                },
                "startsAt": _iso(started),
                "endsAt": _iso(ended) if status == "resolved" else _ZERO,
                "generatorURL": "http://prometheus:9090/graph?g0.expr=up%7Bjob%3D%22node%22%7D+%3D%3D+0&g0.tab=1",
            }
        )
    return {
        "receiver": receiver,
        "status": status,
        "alerts": alerts,
        "groupLabels": {"alertname": "NodeDown"},
        "commonLabels": {"alertname": "NodeDown", "cluster": cluster, "job": "node", "severity": "critical"},
        "commonAnnotations": {
            "description": "Node has been unreachable for more than 2 minutes.",
            "runbook_url": "https://runbooks.example.com/NodeDown",
        },
        "externalURL": "http://alertmanager:9093",
        "version": "4",
        "groupKey": '{}:{alertname="NodeDown"}',
        "truncatedAlerts": 0,
    }


def mixed(receiver: str = "wecom") -> dict[str, Any]:
    """One group with firing and resolved alerts of different names and severities."""
    payload = node_down(2, receiver=receiver)
    resolved = node_down(1, status="resolved", receiver=receiver)["alerts"][0]
    resolved["labels"] = {**resolved["labels"], "instance": "10.0.9.9:9100"}
    disk = {
        "status": "firing",
        "labels": {
            "alertname": "DiskFull",
            "cluster": "prod-bj",
            "instance": "10.0.3.7:9100",
            "job": "node",
            "mountpoint": "/data",
            "severity": "warning",
        },
        "annotations": {
            "summary": "Disk /data is 93% full",
            "description": "Predicted to fill within 4 hours.",
        },
        "startsAt": "2026-11-28T08:40:00.000000000Z",
        "endsAt": _ZERO,
        "generatorURL": "http://prometheus:9090/graph?g0.expr=node_filesystem_avail_bytes",
        "fingerprint": "d1sk",
    }
    payload["alerts"] = [disk, *payload["alerts"], resolved]
    payload["groupLabels"] = {"cluster": "prod-bj"}
    payload["commonLabels"] = {"cluster": "prod-bj", "job": "node"}
    payload["commonAnnotations"] = {}
    payload["groupKey"] = '{}:{cluster="prod-bj"}'
    return payload
