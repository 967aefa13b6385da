"""HA deduplication: the same notification from several Alertmanager replicas is delivered once.

Replicas differ in `externalURL`, so the key covers what identifies the notification's content:
receiver, groupKey, status and each alert's fingerprint with its startsAt/endsAt.
"""

from __future__ import annotations

import hashlib
from datetime import datetime

from alertmanager_wecom.digest import alert_identity
from alertmanager_wecom.payload import Notification


def _instant(moment: datetime | None) -> str:
    # Timestamps as numbers: the same instants whatever the offset they were written with. Firing
    # alerts carry the zero time as endsAt; it is not converted (this runs on every webhook).
    if moment is None or moment.year <= 1:
        return ""
    return repr(moment.timestamp())


def dedup_key(receiver: str, notification: Notification) -> str:
    alerts = sorted(
        f"{alert_identity(a)}|{a.status}|{_instant(a.starts_at)}|{_instant(a.ends_at)}"
        for a in notification.alerts
    )
    material = "\n".join([receiver, notification.group_key, notification.status, *alerts])
    return hashlib.sha256(material.encode("utf-8")).hexdigest()
