"""Alert cards: a notification as a WeCom ``template_card`` of type ``button_interaction``.

The card is a summary (status and alert name, severity, instance or count, since when, the summary
annotation) with buttons; a group of several alerts also gets the detail messages after it (markdown),
so that every alert stays visible. What a card shows later (acknowledged, silenced, resolved) is
`CardState`, applied to the card as it was sent (`with_state`).

Card text is plain text in WeCom (no markup is interpreted), so alert data needs no escaping here; it
is cut to WeCom's suggested lengths in characters, and URLs are http(s) only.
"""

from __future__ import annotations

import hashlib
import urllib.parse
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

from alertmanager_wecom.config.targets import CardButton, CardSettings
from alertmanager_wecom.ingest.payload import Alert, Notification
from alertmanager_wecom.rendering.escaping import label_text, safe_url
from alertmanager_wecom.rendering.views import severity_rank

# WeCom's suggested lengths (characters) for button_interaction cards (doc 90236).
TITLE_CHARS = 36
TITLE_DESC_CHARS = 44
SUB_TITLE_CHARS = 160
KEYNAME_CHARS = 5
VALUE_CHARS = 30
BUTTON_CHARS = 10
QUOTE_CHARS = 160
TASK_ID_BYTES = 128

WORDS = {
    "zh": {
        "firing": "告警",
        "resolved": "已恢复",
        "severity": "级别",
        "instance": "实例",
        "count": "告警数",
        "since": "开始",
        "ack": "认领",
        "acked": "已认领",
        "silence": "静默 %s",
        "open": "查看",
        "unsilence": "取消静默",
        "silenced": "已静默 %s · %s · 至 %s",
        "unsilenced": "静默已取消 · %s",
        "more": "共 %d 条告警，详情见后续消息",
        "failed": "操作失败：%s",
        "resolved_at": "已恢复 · %s",
        "h": "h",
        "m": "m",
        "d": "d",
    },
    "en": {
        "firing": "FIRING",
        "resolved": "RESOLVED",
        "severity": "Level",
        "instance": "Host",
        "count": "Alerts",
        "since": "Since",
        "ack": "Acknowledge",
        "acked": "Acked",
        "silence": "Silence %s",
        "open": "Open",
        "unsilence": "Unsilence",
        "silenced": "Silenced %s · %s · until %s",
        "unsilenced": "Silence expired · %s",
        "more": "%d alerts: details in the next messages",
        "failed": "Failed: %s",
        "resolved_at": "Resolved · %s",
        "h": "h",
        "m": "m",
        "d": "d",
    },
}


def clip(text: str, chars: int) -> str:
    """One line of at most `chars` characters, an ellipsis marking a cut."""
    text = label_text(text).strip()
    return text if len(text) <= chars else text[: chars - 1] + "…"


def short_duration(seconds: float, language: str) -> str:
    """1h, 4h, 30m, 1d: how a silence button names its duration."""
    words = WORDS[language]
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size and seconds % size == 0:
            return f"{int(seconds // size)}{words[unit]}"
    return f"{int(seconds // 60) or 1}{words['m']}"


def task_id_for(receiver: str, group_key: str, job_id: int, created_at: float, part: int = 0) -> str:
    """Unique per app and stable for a job (a resend after a crash carries the same card): the job, and a
    hash of what makes it unique across outboxes. Within WeCom's 128 bytes of [0-9A-Za-z_-@]."""
    digest = hashlib.sha256(f"{receiver}\0{group_key}\0{created_at!r}".encode()).hexdigest()[:16]
    return f"amw-{job_id}-{part}-{digest}"


def button_key(button: CardButton) -> str:
    if button.action == "silence":
        return f"silence:{int(button.duration or 0)}"
    return button.action


@dataclass(frozen=True)
class CardState:
    """What happened to a card's group since it was sent; shown on the card."""

    acked_by: str = ""
    acked_at: float = 0.0
    silence_id: str = ""
    silenced_by: str = ""
    silence_for: float = 0.0
    silenced_until: float = 0.0
    unsilenced_by: str = ""
    resolved_at: float = 0.0
    failure: str = ""


class CardBuilder:
    """Builds one target's cards: its buttons, language and time zone, and where "open" points."""

    def __init__(
        self, settings: CardSettings, language: str, time_zone: str, alertmanager_url: str | None = None
    ) -> None:
        self.settings = settings
        self.language = language
        self.words = WORDS[language]
        self.zone = ZoneInfo(time_zone)
        self.alertmanager_url = alertmanager_url

    def _time(self, moment: datetime | float, with_date: bool = True) -> str:
        if isinstance(moment, float | int):
            moment = datetime.fromtimestamp(moment, tz=self.zone)
        local = moment.astimezone(self.zone)
        return local.strftime("%m-%d %H:%M" if with_date else "%H:%M")

    def open_url(self, notification: Notification) -> str:
        for button in self.settings.buttons:
            if button.action == "open" and button.url:
                return button.url
        for candidate in (self.alertmanager_url or "", notification.external_url):
            url = str(safe_url(candidate))
            if url:
                # Alertmanager's alert list, filtered to the group (the labels are quoted, not trusted).
                labels = notification.group_labels
                matchers = ",".join(f'{k}="{v}"' for k, v in sorted(labels.items()))
                query = f"?filter={urllib.parse.quote('{' + matchers + '}', safe='')}" if matchers else ""
                return f"{url.rstrip('/')}/#/alerts{query}"
        for alert in notification.alerts:
            url = str(safe_url(alert.generator_url))
            if url:
                return url
        return ""

    def buttons(self, notification: Notification, state: CardState | None = None) -> list[dict[str, Any]]:
        state = state or CardState()
        out: list[dict[str, Any]] = []
        resolved = bool(state.resolved_at) or notification.status == "resolved"
        for button in self.settings.buttons:
            if button.action == "open":
                url = self.open_url(notification)
                if url:
                    out.append({"type": 1, "text": clip(button.text or self.words["open"], 10), "url": url})
                continue
            if resolved:
                continue  # nothing left to silence or claim
            if button.action == "silence" and state.silence_id and not state.unsilenced_by:
                continue  # one silence at a time: the card offers to expire it instead
            if button.action == "ack":
                text = button.text or self.words["ack"]
                out.append({"type": 0, "text": clip(text, BUTTON_CHARS), "style": 1, "key": "ack"})
            else:
                text = button.text or self.words["silence"] % short_duration(
                    button.duration or 0, self.language
                )
                out.append(
                    {"type": 0, "text": clip(text, BUTTON_CHARS), "style": 2, "key": button_key(button)}
                )
        if state.silence_id and not state.unsilenced_by and not resolved:
            # The silence's id is in the store, not in the key: a key is all a click brings back.
            out.insert(
                0, {"type": 0, "text": clip(self.words["unsilence"], 10), "style": 3, "key": "unsilence"}
            )
        return out[:6]

    def build(
        self, notification: Notification, task_id: str, state: CardState | None = None
    ) -> dict[str, Any]:
        """The card for `notification` (its first alert by severity leads)."""
        state = state or CardState()
        alerts = sorted(notification.alerts, key=lambda a: (a.status != "firing", severity_rank(a)))
        lead: Alert | None = alerts[0] if alerts else None
        resolved = notification.status == "resolved" or bool(state.resolved_at)
        status = self.words["resolved" if resolved else "firing"]
        name = notification.group_labels.get("alertname") or (lead.name if lead else "")
        count = len(notification.alerts)
        title = f"[{status}{':' + str(count) if count > 1 else ''}] {label_text(name)}"
        facts: list[tuple[str, str]] = []
        desc = ""
        if lead is not None:
            desc = " · ".join(
                p
                for p in (
                    lead.labels.get("severity", ""),
                    f"{self.words['since']} {self._time(lead.started)}",
                )
                if p
            )
            severity = lead.labels.get("severity", "")
            if severity:
                facts.append((self.words["severity"], severity))
            if count > 1:
                facts.append((self.words["count"], str(count)))
            elif lead.labels.get("instance"):
                facts.append((self.words["instance"], lead.labels["instance"]))
            facts.append((self.words["since"], self._time(lead.started)))
        summary = ""
        if lead is not None:
            summary = lead.annotations.get("summary") or lead.annotations.get("description") or ""
        if count > 1:
            summary = self.words["more"] % count + (f" · {summary}" if summary else "")
        card: dict[str, Any] = {
            "card_type": "button_interaction",
            "source": {"desc": "Alertmanager", "desc_color": 3 if resolved else 2},
            "main_title": {"title": clip(title, TITLE_CHARS), "desc": clip(desc, TITLE_DESC_CHARS)},
            "horizontal_content_list": [
                {"keyname": clip(k, KEYNAME_CHARS), "value": clip(v, VALUE_CHARS)} for k, v in facts[:6]
            ],
            "task_id": task_id,
            "button_list": self.buttons(notification, state) or self._placeholder(),
        }
        if summary:
            card["sub_title_text"] = clip(summary, SUB_TITLE_CHARS)
        quote = self.status_line(state)
        if quote:
            card["quote_area"] = {"type": 0, "quote_text": clip(quote, QUOTE_CHARS)}
        url = self.open_url(notification)
        if url:
            card["card_action"] = {"type": 1, "url": url}
        return card

    def status_line(self, state: CardState) -> str:
        words = self.words
        lines = []
        if state.resolved_at:
            lines.append(words["resolved_at"] % self._time(state.resolved_at))
        if state.silence_id and not state.unsilenced_by:
            until = self._time(state.silenced_until, with_date=False)
            length = short_duration(state.silence_for, self.language)
            lines.append(words["silenced"] % (length, state.silenced_by, until))
        if state.unsilenced_by:
            lines.append(words["unsilenced"] % state.unsilenced_by)
        if state.acked_by:
            lines.append(f"{words['acked']} · {state.acked_by}")
        if state.failure:
            lines.append(words["failed"] % state.failure)
        return "\n".join(lines)

    def _placeholder(self) -> list[dict[str, Any]]:
        """A button_interaction card needs a button: a resolved card without a URL keeps a greyed one."""
        return [{"type": 0, "text": self.words["resolved"], "style": 4, "key": "noop"}]


def needs_details(notification: Notification, card: dict[str, Any]) -> bool:
    """Whether the card leaves alerts (or their text) out, so that detail messages must follow."""
    if len(notification.alerts) > 1:
        return True
    alert = notification.alerts[0] if notification.alerts else None
    if alert is None:
        return False
    summary = alert.annotations.get("summary", "")
    shown = str(card.get("sub_title_text", ""))
    cut = summary and shown != label_text(summary).strip()
    return bool(cut or alert.annotations.get("description"))


def builder_for(target: Any, config: Any) -> CardBuilder:
    """The card builder of a template_card target (`target`: AppTarget, `config`: Config)."""
    render = config.render
    return CardBuilder(
        target.card_settings,
        target.language or render.language,
        target.time_zone or render.time_zone,
        render.alertmanager_url,
    )
