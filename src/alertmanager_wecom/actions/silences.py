"""What a card's silence may match, and what a click may press: the rules that keep a signed click to
the card it came from (issue 20). A silence matches the group's labels (one silence) or each alert's
(`card.silence_matchers: alerts`); without group labels the common labels are all there is, and they are
used only when Alertmanager holds no other alert they match."""

from __future__ import annotations

from typing import Any

from alertmanager_wecom.actions.alertmanager import AlertmanagerClient, AlertmanagerError, Matcher
from alertmanager_wecom.ingest.payload import Notification


def offered_keys(card: dict[str, Any]) -> set[str]:
    """The button keys of a card as last drawn."""
    buttons = card.get("button_list")
    if not isinstance(buttons, list):
        return set()
    return {str(b["key"]) for b in buttons if isinstance(b, dict) and "key" in b and b["key"] != "noop"}


async def scope_refusal(
    client: AlertmanagerClient, notification: Notification, mode: str, groups: list[list[Matcher]]
) -> str | None:
    """Why a silence would do more, or less, than silence the card's alerts; None when it is sound.

    The group's labels name the group (Alertmanager's group_by). Without them the common labels are
    all there is, and they may be as wide as ``severity=critical``: then the silence is made only if
    Alertmanager has no alert they match beyond the card's own."""
    if not groups:
        return "nothing to match: the alerts have no labels, a silence would match everything"
    if mode == "alerts" or notification.group_labels:
        return None
    try:
        matched = await client.matched_fingerprints(groups[0])
    except AlertmanagerError as exc:
        return f"could not check what the silence would match: {exc}"
    others = matched - {alert.fingerprint for alert in notification.alerts}
    if not others:
        return None
    shown = ",".join(f"{m.name}={m.value}" for m in groups[0])[:60]
    return (
        f"{shown} would also silence {len(others)} other alert(s): group the route (group_by) or set "
        "card.silence_matchers: alerts"
    )


def silence_matchers(notification: Notification, mode: str) -> list[list[Matcher]]:
    """The matchers of the silences a click makes: the group's labels (one silence), or each alert's
    own labels (one silence per alert)."""
    if mode == "alerts":
        out = []
        for alert in notification.alerts:
            matchers = [Matcher(k, v) for k, v in sorted(alert.labels.items())]
            if matchers and matchers not in out:
                out.append(matchers)
        return out
    labels = notification.group_labels or notification.common_labels
    return [[Matcher(k, v) for k, v in sorted(labels.items())]] if labels else []
