"""HA deduplication: the same notification from several Alertmanager replicas is delivered once.

Replicas differ in `externalURL`, so the key covers what identifies the notification's content:
receiver, groupKey, status and each alert's fingerprint with its startsAt/endsAt.
"""

from __future__ import annotations

import hashlib

from alertmanager_wecom.digest import alert_identity
from alertmanager_wecom.payload import Notification


def dedup_key(receiver: str, notification: Notification) -> str:
    # Timestamps as numbers: the same instants, and cheaper than isoformat on every webhook.
    alerts = sorted(
        f"{alert_identity(a)}|{a.status}|{a.starts_at.timestamp()}|{a.ends_at.timestamp() if a.ends_at else ''}"
        for a in notification.alerts
    )
    material = "\n".join([receiver, notification.group_key, notification.status, *alerts])
    return hashlib.sha256(material.encode("utf-8")).hexdigest()
