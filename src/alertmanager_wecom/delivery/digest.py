"""Coalescing: several queued notifications for one target become one digest notification.

An alert that appears in several of them (re-notified, or fired then resolved) is shown once, in its
latest state.  The digest keeps every alert; the renderer then fits it into as many messages as the
recipient's rate limit lets through soon.
"""

from __future__ import annotations

from collections.abc import Sequence

from alertmanager_wecom.ingest.payload import (
    DIGEST_GROUP_KEY,
    Alert,
    Notification,
    alert_identity,
    dump_notification,
)

DIGEST_MAX_MESSAGES = 40  # even with budget to spare, a digest is at most this many messages


def merge(notifications: Sequence[Notification]) -> Notification:
    latest: dict[str, Alert] = {}
    for notification in notifications:  # oldest first: later states win
        for alert in notification.alerts:
            key = alert_identity(alert.fingerprint, alert.labels)
            latest.pop(key, None)
            latest[key] = alert
    alerts = list(latest.values())
    common = dict(notifications[0].common_labels)
    for notification in notifications[1:]:
        common = {k: v for k, v in common.items() if notification.common_labels.get(k) == v}
    first = notifications[0]
    groups: dict[str, None] = {}  # each once, in the order they came
    for notification in notifications:
        for group in notification.digest_groups if notification.digest_of else [notification.group_key]:
            if group:
                groups[group] = None
    return Notification(
        version=first.version,
        groupKey=DIGEST_GROUP_KEY,
        truncatedAlerts=sum(n.truncated_alerts for n in notifications),
        receiver=first.receiver,
        status="firing" if any(a.status == "firing" for a in alerts) else "resolved",
        alerts=alerts,
        groupLabels={},
        commonLabels=common,
        commonAnnotations={},
        externalURL=first.external_url,
        digest_of=sum(max(1, n.digest_of) for n in notifications),
        digest_groups=list(groups),
    )


def build(notifications: Sequence[Notification]) -> tuple[Notification, str]:
    """The digest of the notifications, ready to send, and its stored form (the same digest when a
    restart resumes it)."""
    merged = merge(notifications)
    # As many messages as it takes to show every alert (sent as the limits allow), up to a bound.
    merged.digest_max_messages = DIGEST_MAX_MESSAGES
    return merged, dump_notification(merged)
