"""HA deduplication: the same notification from several Alertmanager replicas is delivered once.

Replicas differ in `externalURL`, so the key covers what identifies the notification's content:
receiver, groupKey, status and each alert's fingerprint with its startsAt/endsAt.
"""

from __future__ import annotations

import hashlib

from alertmanager_wecom.ingest.payload import Webhook, alert_identity


def dedup_key(receiver: str, webhook: Webhook, instants: list[tuple[float, float | None]]) -> str:
    """`instants`: the alerts' times from `alert_instants`, as timestamps, so that the same instants
    match whatever offset they were written with."""
    # On every webhook's path: a webhook repeats its instants, each is written out once.
    written: dict[float | None, str] = {None: ""}
    alerts = []
    for alert, (starts, ends) in zip(webhook["alerts"], instants, strict=True):
        started = written.get(starts)
        if started is None:
            started = written[starts] = repr(starts)
        ended = written.get(ends)
        if ended is None:
            ended = written[ends] = repr(ends)
        identity = alert.get("fingerprint") or alert_identity("", alert.get("labels", {}))
        alerts.append(f"{identity}|{alert['status']}|{started}|{ended}")
    alerts.sort()
    material = "\n".join([receiver, webhook.get("groupKey", ""), webhook["status"], *alerts])
    return hashlib.sha256(material.encode("utf-8")).hexdigest()
