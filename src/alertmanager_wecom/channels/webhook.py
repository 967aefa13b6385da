"""Outgoing webhooks: one JSON POST per notification to a URL of the user's own (a phone or SMS gateway
for on-call escalation). The body is Alertmanager's webhook shape (receiver, status, groupKey, labels,
alerts), with an `escalation` object on an escalation step's jobs, bounded by the webhook's
max_body_bytes: alerts past it are left out and counted in `truncatedAlerts`.

2xx is delivered; 408, 429, 5xx and transport failures are retried; any other status is permanent, with
a bounded excerpt of the answer. The URL and the headers are secrets: the channel's name, its label and
its errors say `webhook:NAME` only.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

import httpx

from alertmanager_wecom.channels.base import OwnRendering, RateWindows, SendResult, Window
from alertmanager_wecom.config import Config, WebhookConfig, WebhookTarget
from alertmanager_wecom.ingest.payload import Alert, Notification
from alertmanager_wecom.reasons import DeliveryError, Reason
from alertmanager_wecom.rendering.message import Message
from alertmanager_wecom.secret import redact
from alertmanager_wecom.wecom.api import WeComAPI
from alertmanager_wecom.wecom.token import AccessToken

if TYPE_CHECKING:
    from alertmanager_wecom.config import DeliverySettings

MSGTYPE = "json"  # the Message a webhook sends: its content is the body
_EXCERPT = 200  # characters of a refusing answer kept in the error
_VALUE_BYTES = 2048  # a label or annotation value, when the body must shrink to fit


def _bounded(values: dict[str, str], shrink: bool) -> dict[str, str]:
    if not shrink:
        return values
    return {k[:256]: v.encode()[:_VALUE_BYTES].decode(errors="ignore") for k, v in values.items()}


def _alert(alert: Alert, shrink: bool) -> dict[str, Any]:
    out: dict[str, Any] = {
        "status": alert.status,
        "labels": _bounded(alert.labels, shrink),
        "annotations": _bounded(alert.annotations, shrink),
        "startsAt": alert.starts_at.isoformat(),
        "generatorURL": alert.generator_url[:_VALUE_BYTES] if shrink else alert.generator_url,
    }
    if alert.ends_at is not None:
        out["endsAt"] = alert.ends_at.isoformat()
    if alert.fingerprint:
        out["fingerprint"] = alert.fingerprint
    return out


def body(notification: Notification, target: WebhookTarget, max_bytes: int) -> str:
    """The JSON document posted for `notification`: every alert when it fits in `max_bytes`; else values
    cut to 2 KiB, then as many alerts as fit, the others counted in truncatedAlerts."""

    def dump(count: int, shrink: bool) -> str:
        document: dict[str, Any] = {
            "version": "4",
            "receiver": notification.receiver,
            "status": notification.status,
            "groupKey": notification.group_key[:_VALUE_BYTES] if shrink else notification.group_key,
            "groupLabels": _bounded(notification.group_labels, shrink),
            "commonLabels": _bounded(notification.common_labels, shrink),
            "alerts": [_alert(a, shrink) for a in notification.alerts[:count]],
            "truncatedAlerts": notification.truncated_alerts + len(notification.alerts) - count,
        }
        mark = target.escalation_step
        if mark is not None:
            # Level 1 is the receiver's own first notification; step 0 of the policy is level 2.
            document["escalation"] = {
                "policy": mark.policy,
                "level": mark.step + 2,
                "round": mark.round,
                "after_seconds": mark.after,
            }
        return json.dumps(document, ensure_ascii=False, separators=(",", ":"))

    def size(text: str) -> int:
        return len(text.encode("utf-8"))

    everything = dump(len(notification.alerts), shrink=False)
    if size(everything) <= max_bytes:
        return everything
    low, high = 0, len(notification.alerts)  # the most alerts that fit, by bisection
    while low < high:
        middle = (low + high + 1) // 2
        if size(dump(middle, shrink=True)) <= max_bytes:
            low = middle
        else:
            high = middle - 1
    text = dump(low, shrink=True)
    if size(text) > max_bytes:  # the group's own labels are over it: the alerts' count, at least
        text = json.dumps(
            {"version": "4", "status": notification.status, "alerts": [],
             "truncatedAlerts": notification.truncated_alerts + len(notification.alerts)},
        )  # fmt: skip
    return text


class WebhookChannel:
    def __init__(self, name: str, webhook: WebhookConfig) -> None:
        self.webhook = webhook
        self._name = f"webhook:{name}"

    @property
    def name(self) -> str:
        return self._name

    async def send(self, message: Message) -> SendResult:
        headers = {k: v.reveal() for k, v in self.webhook.headers.items()}
        headers["Content-Type"] = "application/json; charset=utf-8"
        content = message.content.encode("utf-8")
        # A client per post: webhooks are few and slow-paced, and one not shared cannot outlive its
        # event loop or carry WeCom's egress proxy to a gateway on the inside.
        try:
            async with httpx.AsyncClient(timeout=self.webhook.timeout, follow_redirects=False) as client:
                response = await client.post(self.webhook.url.reveal(), content=content, headers=headers)
        except httpx.TimeoutException as exc:
            sent = not isinstance(exc, httpx.ConnectTimeout | httpx.PoolTimeout)
            raise self._error(Reason.NETWORK, f"timed out ({type(exc).__name__})", True, sent) from None
        except (httpx.ConnectError, httpx.UnsupportedProtocol) as exc:
            raise self._error(Reason.NETWORK, f"cannot connect ({type(exc).__name__})", True) from None
        except httpx.HTTPError as exc:
            raise self._error(Reason.NETWORK, f"failed ({type(exc).__name__})", True, True) from None
        status = response.status_code
        if 200 <= status < 300:
            return SendResult()
        excerpt = " ".join(response.text[:_EXCERPT].split())
        detail = f"answered HTTP {status}" + (f": {excerpt}" if excerpt else "")
        if status == 429:
            raise self._error(Reason.RATE_LIMITED, detail, True, code=str(status))
        if status >= 500 or status == 408:
            raise self._error(Reason.HTTP_ERROR, detail, True, True, code=str(status))
        raise self._error(Reason.HTTP_ERROR, detail, False, code=str(status))

    def _error(
        self, reason: Reason, what: str, retryable: bool, sent: bool = False, code: str | None = None
    ) -> DeliveryError:
        # The name, never the URL; an answer that quotes a header back is redacted.
        return DeliveryError(
            reason, redact(f"{self._name} {what}"), retryable, maybe_delivered=sent, code=code
        )

    async def send_image(self, png: bytes) -> SendResult:
        # The config refuses charts on webhook targets.
        raise DeliveryError(Reason.BAD_MESSAGE, f"{self._name} posts JSON, not images", retryable=False)


class WebhookKind:
    target = WebhookTarget
    channel_label = "webhook"

    def target_label(self, target: WebhookTarget) -> str:
        return f"webhook:{target.webhook}"

    def rate_windows(self, target: WebhookTarget, config: Config, settings: DeliverySettings) -> RateWindows:
        # The user's own gateway: its own limit, with no headroom (WeCom's silent drops are not its).
        per_minute = config.webhooks[target.webhook].per_minute
        return [(f"webhook:{target.webhook}", (Window(per_minute, 60.0),))]

    def via(self, target: WebhookTarget) -> str:
        return f"webhook {target.webhook}"

    def describe(self, target: WebhookTarget) -> str:
        return f"webhook {target.webhook}"

    def content_limit(self, target: WebhookTarget, config: Config) -> int:
        return config.webhooks[target.webhook].max_body_bytes

    def renders(self, target: WebhookTarget, config: Config) -> OwnRendering | None:
        most = self.content_limit(target, config)
        return lambda notification: [Message(MSGTYPE, body(notification, target, most))]

    def build(
        self, target: WebhookTarget, config: Config, api: WeComAPI, tokens: dict[str, AccessToken]
    ) -> WebhookChannel:
        if target.webhook not in config.webhooks:
            raise KeyError(f"webhook {target.webhook!r} is not in the config (any more)")
        return WebhookChannel(target.webhook, config.webhooks[target.webhook])


KIND = WebhookKind()
