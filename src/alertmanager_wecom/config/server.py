"""The server's settings: where it listens, who may call it (inbound auth, admin), which hosts it
answers for, TLS, timeouts, the domain verification files. A leaf, as models.py is."""

from __future__ import annotations

import ipaddress
import re
from pathlib import Path

from pydantic import Field, field_validator, model_validator

from alertmanager_wecom.config.apis import BasicAuth
from alertmanager_wecom.config.fields import Duration, Model
from alertmanager_wecom.secret import Secret


class InboundAuth(Model):
    """What callers must present: Alertmanager's http_config.authorization (Bearer) or basic_auth."""

    bearer_token: Secret | None = None
    basic_auth: BasicAuth | None = None

    @model_validator(mode="after")
    def _one(self) -> InboundAuth:
        if (self.bearer_token is None) == (self.basic_auth is None):
            raise ValueError("set bearer_token (or bearer_token_file) or basic_auth")
        return self


class TLSSettings(Model):
    cert_path: str
    key_path: str

    @model_validator(mode="after")
    def _files(self) -> TLSSettings:
        for path in (self.cert_path, self.key_path):
            if not Path(path).is_file():
                raise ValueError(f"no such file: {path}")
        return self


class VerifyFile(Model):
    """A WeCom trusted-domain verification file, served at the root exactly as given."""

    name: str
    content: str

    @field_validator("name")
    @classmethod
    def _name(cls, value: str) -> str:
        if not re.fullmatch(r"[A-Za-z0-9_.-]+\.txt", value):
            raise ValueError("a file name such as WW_verify_2YR9B7ZGcQ3dbN3b.txt")
        return value


class ServerSettings(Model):
    listen: str = "127.0.0.1:9095"
    max_body_bytes: int = Field(default=4 * 1024 * 1024, ge=1024)
    auth: InboundAuth | None = None  # for every webhook, unless a receiver has its own
    # Reload and outbox actions. Without it they are off, unless admin_allow_loopback lets callers on
    # this host use them (anyone on the host, and anyone a proxy on the host forwards).
    admin_auth: InboundAuth | None = None
    admin_allow_loopback: bool = False
    # Proxies whose X-Forwarded-For / X-Forwarded-Proto are believed (IPs or CIDRs); nobody's otherwise.
    trusted_proxies: list[str] = Field(default_factory=list)
    # Listening beyond loopback with no inbound auth is refused unless this is set.
    allow_unauthenticated: bool = False
    tls: TLSSettings | None = None
    # A client must send its request's headers within header_timeout and its body within body_timeout
    # (Alertmanager sends both at once); at most max_connections are served at a time, more get 503.
    header_timeout: Duration = Field(default=10.0, gt=0)
    body_timeout: Duration = Field(default=30.0, gt=0)
    max_connections: int = Field(default=1000, ge=1)
    # The names this service answers for (DNS rebinding: any other Host gets 421), besides the listen
    # address, localhost, the loopback addresses and external_url's host; "*.example.com" for a
    # domain's subdomains, "*" for any (web/hosts.py).
    allowed_hosts: list[str] = Field(default_factory=list)
    # The URL people and WeCom reach this service at (behind a proxy, say): its host is served.
    external_url: str | None = None

    @field_validator("allowed_hosts")
    @classmethod
    def _hosts(cls, value: list[str]) -> list[str]:
        for item in value:
            if not re.fullmatch(r"\*|(\*\.)?[A-Za-z0-9_.:\[\]-]+", item.strip()):
                raise ValueError(
                    f"{item!r} is not a host name (e.g. alertmanager-wecom.monitoring.svc, *.example.com, "
                    "10.0.0.5; no scheme, port or path)"
                )
        return value

    @field_validator("external_url")
    @classmethod
    def _external(cls, value: str | None) -> str | None:
        if value is not None and not re.fullmatch(r"https?://[^/\s?#]+(/\S*)?", value):
            raise ValueError(f"{value!r} is not an http(s) URL (e.g. https://alerts.example.com)")
        return value

    @field_validator("trusted_proxies")
    @classmethod
    def _proxies(cls, value: list[str]) -> list[str]:
        for item in value:
            try:
                ipaddress.ip_network(item, strict=False)
            except ValueError:
                raise ValueError(
                    f"{item!r} is not an IP address or CIDR (e.g. 10.0.0.5 or 10.0.0.0/8)"
                ) from None
        return value
