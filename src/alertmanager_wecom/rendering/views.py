"""What a template sees: one `AlertView` per alert (labels and annotations made inert, times in the
configured zone), `AlertGroup`s for compact lines, and the notification-wide context (`common`).

Everything taken from the payload is text of one line (or an http(s) URL), never structure."""

from __future__ import annotations

import urllib.parse
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any
from zoneinfo import ZoneInfo

from alertmanager_wecom.ingest.payload import Alert, Notification
from alertmanager_wecom.rendering.escaping import (
    Safe,
    annotation_text,
    label_text,
    safe_url,
    trusted_markdown,
)
from alertmanager_wecom.rendering.strings import format_duration

# Shown in the heading rather than per alert; never "identifying".
_NOT_IDENTIFYING = frozenset({"alertname", "severity"})
_SEVERITY_RANK = {
    "critical": 0,
    "page": 0,
    "p0": 0,
    "high": 1,
    "error": 1,
    "p1": 1,
    "warning": 2,
    "warn": 2,
    "p2": 2,
    "medium": 2,
    "info": 3,
    "low": 3,
    "none": 4,
}


def severity_rank(alert: Alert) -> int:
    return _SEVERITY_RANK.get(alert.labels.get("severity", "").lower(), 3)


@dataclass(frozen=True)
class AlertView:
    """What a template sees of one alert (times already in the configured zone)."""

    name: str
    status: str
    severity: str
    labels: dict[str, str]
    annotations: dict[str, str]
    identifying: dict[str, str]
    ident: str
    summary: str
    description: str
    starts: str
    starts_short: str
    ends: str
    duration: str
    generator_url: str
    runbook_url: str
    silence_url: str
    dashboard_url: str
    fingerprint: str


@dataclass(frozen=True)
class AlertGroup:
    """Alerts of one name, for compact lines: ``NodeDown critical ×3 instance: a, b, c``."""

    name: str
    severity: str
    count: int
    key: str  # the one identifying label all of them have, or "" (then items are full "k=v" lists)
    items: list[str]


class LazyViews:
    """The alerts' views, each made when first needed: a storm's digest shows a few thousand of its
    alerts and only counts the rest, which then never pay for their labels and times being formatted."""

    def __init__(self, alerts: list[Alert], make: Callable[[Alert], AlertView]) -> None:
        self._alerts = alerts
        self._make = make
        self._views: list[AlertView | None] = [None] * len(alerts)

    def __len__(self) -> int:
        return len(self._alerts)

    def __getitem__(self, span: slice) -> list[AlertView]:
        out = []
        for index in range(*span.indices(len(self._alerts))):
            view = self._views[index]
            if view is None:
                view = self._views[index] = self._make(self._alerts[index])
            out.append(view)
        return out


def groups(views: Sequence[AlertView]) -> list[AlertGroup]:
    groups: dict[str, list[AlertView]] = {}
    for view in views:
        groups.setdefault(view.name, []).append(view)
    out = []
    for name, members in groups.items():
        keys = {tuple(v.identifying) for v in members}
        only = next(iter(keys))
        key = only[0] if len(keys) == 1 and len(only) == 1 else ""
        items = [v.identifying[key] if key else (v.ident or "-") for v in members]
        severities = list(dict.fromkeys(v.severity for v in members if v.severity))
        out.append(AlertGroup(name, "/".join(severities), len(members), key, items))
    return out


class ViewMaker:
    """Makes the views of one target's notifications: its language, time zone and msgtype (which
    annotations stay markdown depends on it)."""

    def __init__(
        self,
        msgtype: str,
        strings: dict[str, str],
        language: str,
        zone: ZoneInfo,
        alertmanager_url: str | None,
        markdown_annotations: frozenset[str],
    ) -> None:
        self.msgtype = msgtype
        self.strings = strings
        self.language = language
        self.zone = zone
        self.alertmanager_url = alertmanager_url
        # Annotations the operator trusts as markdown (runbook links): only where markdown is rendered.
        self.markdown_annotations = (
            markdown_annotations if msgtype in ("markdown", "markdown_v2") else frozenset()
        )

    def common(self, notification: Notification, alerts: list[Alert]) -> dict[str, Any]:
        # Everything taken from the payload is text of one line (or an http(s) URL), never structure.
        names = list(dict.fromkeys(label_text(a.name) for a in alerts if a.name))
        group_name = label_text(notification.group_labels.get("alertname", ""))
        title = group_name or (
            names[0]
            if len(names) == 1
            else ", ".join(names[:3]) + (f" +{len(names) - 3}" if len(names) > 3 else "")
        )
        common_labels = labels_of(notification.common_labels)
        shown_common = {k: v for k, v in common_labels.items() if k not in _NOT_IDENTIFYING}
        if len(alerts) == 1:
            shown_common = {}  # a lone alert lists all its labels itself
        base = self.alertmanager_url or notification.external_url
        am_url = ""
        if base:
            query = urllib.parse.quote(notification.receiver) if notification.receiver else ""
            am_url = base.rstrip("/") + "/#/alerts" + (f"?receiver={query}" if query else "")
        grafana_title = label_text(notification.title or "")
        return {
            "t": self.strings,
            "language": self.language,
            "status": "firing" if notification.firing else "resolved",
            "receiver": label_text(notification.receiver),
            "title": grafana_title if grafana_title and not title else title,
            "group_labels": labels_of(notification.group_labels),
            "common_labels": common_labels,
            "common_annotations": self.annotations(notification.common_annotations),
            "common_text": " ".join(f"{k}={v}" for k, v in shown_common.items()),
            "external_url": safe_url(notification.external_url),
            "alertmanager_url": safe_url(am_url),
            "show_names": len(names) > 1,
            "total_firing": len(notification.firing),
            "total_resolved": len(notification.resolved),
            "total": len(alerts),
            "truncated_alerts": notification.truncated_alerts,
            "digest": notification.digest_of,
        }

    def annotations(self, annotations: Mapping[str, str]) -> dict[str, str]:
        """Multi-line text; the ones named in render.markdown_annotations stay markdown (`Safe`)."""
        trusted = self.markdown_annotations
        out = labels_of(annotations, annotation_text)
        for name in trusted.intersection(annotations):
            out[name] = trusted_markdown(annotation_text(annotations[name]), self.msgtype)
        return out

    def local(self, at: datetime) -> datetime:
        """`at` in the configured zone; in UTC where the zone's offset would leave the calendar
        (year 9999 and year 1 at the edges): a time never makes an alert unrenderable."""
        for zone in (self.zone, UTC):
            try:
                return at.astimezone(zone)
            except (OverflowError, ValueError):
                continue
        return at

    def view_or_note(self, alert: Alert, common_labels: dict[str, str], many: bool) -> AlertView:
        """The alert's view; if something in it cannot be shown, a line that says so, so that one
        alert never stops the others of its notification (or of a digest) from being sent."""
        try:
            return self.view(alert, common_labels, many)
        except Exception as exc:
            note = f"(this alert cannot be shown: {type(exc).__name__})"
            name = label_text(alert.labels.get("alertname", "") if isinstance(alert.labels, dict) else "")
            return AlertView(
                name=name[:100] or "?",
                status=alert.status,
                severity="",
                labels={},
                annotations={},
                identifying={},
                ident=note,
                summary="",
                description="",
                starts="",
                starts_short="",
                ends="",
                duration="",
                generator_url=Safe(""),
                runbook_url=Safe(""),
                silence_url=Safe(""),
                dashboard_url=Safe(""),
                fingerprint="",
            )

    def view(self, alert: Alert, common_labels: dict[str, str], many: bool) -> AlertView:
        labels = labels_of(alert.labels)
        identifying = {
            k: v
            for k, v in labels.items()
            if k not in _NOT_IDENTIFYING and not (many and common_labels.get(k) == v)
        }
        started = self.local(alert.started)
        ended = alert.ended
        duration = ""
        ends = ""
        if ended is not None and alert.status == "resolved":
            duration = format_duration((ended - alert.started).total_seconds(), self.strings)
            ends = self.local(ended).strftime("%Y-%m-%d %H:%M:%S")
        annotations = self.annotations(alert.annotations)
        runbook = alert.annotations.get("runbook_url", "") or alert.annotations.get("runbook", "")
        return AlertView(
            name=labels.get("alertname", ""),
            status=alert.status,
            severity=labels.get("severity", ""),
            labels=labels,
            annotations=annotations,
            identifying=identifying,
            ident=" ".join(f"{k}={v}" for k, v in identifying.items()),
            summary=annotations.get("summary", "") or annotations.get("message", ""),
            description=annotations.get("description", ""),
            starts=started.strftime("%Y-%m-%d %H:%M:%S"),
            starts_short=started.strftime("%m-%d %H:%M"),
            ends=ends,
            duration=duration,
            generator_url=safe_url(alert.generator_url),
            runbook_url=safe_url(runbook),
            silence_url=safe_url(alert.silence_url or ""),
            dashboard_url=safe_url(alert.dashboard_url or ""),
            fingerprint=label_text(alert.fingerprint),
        )


def labels_of(labels: Mapping[str, str], text: Callable[[str], str] = label_text) -> dict[str, str]:
    """Label names (one line each) and values (`text`). A name that had to be cleaned never takes the
    place of another: "alert\u202ename" does not become a second "alertname"."""
    out: dict[str, str] = {}
    for name, value in labels.items():
        shown = label_text(name)
        if shown != name:
            while shown in labels or shown in out:
                shown += "\ufffd"
        out[shown] = text(value)
    return out
