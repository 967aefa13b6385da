"""Outgoing webhooks: a JSON POST of the alerts (and the escalation step) to a URL of the user's own,
e.g. a phone or SMS gateway. The section `webhooks:` names them; a target says ``webhook: NAME``. The
channel is channels/webhook.py."""

from __future__ import annotations

from typing import Any, ClassVar

from pydantic import Field, field_validator

from alertmanager_wecom.config.fields import Duration, Model, check_header_names
from alertmanager_wecom.config.targets.base import TargetBase
from alertmanager_wecom.secret import Secret

# Set by the channel: a header of the config cannot change what the body is or where it goes.
_OWN_HEADERS = frozenset({"content-type", "content-length", "host", "transfer-encoding"})


class WebhookConfig(Model):
    """One outgoing webhook: where it posts and with which headers (secrets: ${ENV} or headers_file)."""

    url: Secret  # may carry a token in its path or query: never shown
    headers: dict[str, Secret] = Field(default_factory=dict)
    timeout: Duration = Field(default=10.0, gt=0, le=120)
    # The body is one JSON document per notification: alerts past this size are left out (and counted).
    max_body_bytes: int = Field(default=65536, ge=2048, le=10 * 1024 * 1024)
    # Posts per minute to this webhook (the gateway's own limit, or a bill's).
    per_minute: int = Field(default=60, ge=1, le=100_000)

    @field_validator("url")
    @classmethod
    def _url(cls, value: Secret) -> Secret:
        if not value.reveal().startswith(("http://", "https://")):
            raise ValueError("url must start with http:// or https://")
        return value

    @field_validator("headers")
    @classmethod
    def _headers(cls, value: dict[str, Secret]) -> dict[str, Secret]:
        check_header_names(value)
        for name in value:
            if name.lower() in _OWN_HEADERS:
                raise ValueError(f"{name}: set by the service (the body is JSON), not by the config")
        return value


class WebhookTarget(TargetBase):
    """An outgoing webhook (webhooks.NAME): one JSON POST per notification."""

    selected_by: ClassVar[tuple[str, ...]] = ("webhook",)
    sends_through: ClassVar[str] = "an outgoing webhook (webhook: NAME)"
    references: ClassVar[tuple[tuple[str, str, str], ...]] = (("webhook", "webhook", "webhooks"),)

    webhook: str

    @classmethod
    def shape(cls, data: dict[str, Any]) -> None:
        get = data.get
        written = [
            k for k in ("to_user", "to_party", "to_tag", "chat", "mention", "mention_mobile") if get(k)
        ]
        written += [k for k in ("mention_from", "fallback", "card") if get(k)]
        if written:
            raise ValueError(f"a webhook posts to its own URL: drop {'/'.join(written)}")
        rendered = [k for k in ("template", "title_template", "chart") if get(k)]
        if get("msgtype", "markdown") != "markdown":
            rendered.append("msgtype")
        if rendered:
            raise ValueError(f"a webhook posts the alerts as JSON, not a message: drop {'/'.join(rendered)}")
