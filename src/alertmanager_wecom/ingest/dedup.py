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
    alerts = sorted(
        f"{alert_identity(a.get('fingerprint', ''), a.get('labels', {}))}|{a['status']}|{starts!r}|"
        f"{'' if ends is None else repr(ends)}"
        for a, (starts, ends) in zip(webhook["alerts"], instants, strict=True)
    )
    material = "\n".join([receiver, webhook.get("groupKey", ""), webhook["status"], *alerts])
    return hashlib.sha256(material.encode("utf-8")).hexdigest()
