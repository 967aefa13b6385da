"""Typed configuration, validated when loaded.

Every error names the path of the bad key (``receivers[0].targets[1].app``) and why, so that the
process refuses to start with a message an operator can act on.  Secrets come from ``${ENV_VAR}``
interpolation or ``*_file`` keys and are held as `Secret`.
"""

from __future__ import annotations

import ipaddress
import os
import re
from pathlib import Path
from typing import Annotated, Any, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import yaml
from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)

from alertmanager_wecom.secret import Secret

DEFAULT_API_URL = "https://qyapi.weixin.qq.com/cgi-bin/"
MsgType = Literal["text", "markdown", "textcard", "markdown_v2"]
Language = Literal["zh", "en"]
_ENV_REF = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}")
_RECEIVER_NAME = re.compile(r"^[A-Za-z0-9_.-]+$")
# Keys whose value may instead be read from a file named by ``<key>_file`` (Kubernetes secrets).
SECRET_KEYS = frozenset({"secret", "key", "token", "password", "bearer_token", "encoding_aes_key"})


_DURATION = re.compile(
    r"^\s*(?:(\d+(?:\.\d+)?)d)?\s*(?:(\d+(?:\.\d+)?)h)?\s*(?:(\d+(?:\.\d+)?)m)?\s*"
    r"(?:(\d+(?:\.\d+)?)s)?\s*(?:(\d+)ms)?\s*$"
)


def parse_duration(value: object) -> float:
    """Seconds from a number or a string such as ``90``, ``1.5s``, ``5m``, ``24h``, ``1h30m``, ``7d``, ``250ms``."""
    if isinstance(value, bool):
        raise ValueError("expected a duration such as 30s, 5m, 24h")
    if isinstance(value, int | float):
        seconds = float(value)
    elif isinstance(value, str):
        match = _DURATION.match(value)
        if not value.strip() or match is None or not any(match.groups()):
            raise ValueError(f"{value!r} is not a duration (use e.g. 30s, 5m, 24h, 1h30m)")
        d, h, m, s, ms = (float(g) if g else 0.0 for g in match.groups())
        seconds = d * 86400 + h * 3600 + m * 60 + s + ms / 1000
    else:
        raise ValueError("expected a duration such as 30s, 5m, 24h")
    if seconds < 0:
        raise ValueError("a duration cannot be negative")
    return seconds


Duration = Annotated[float, BeforeValidator(parse_duration)]


class ConfigError(Exception):
    """The configuration cannot be used; the message lists each problem with its key path."""


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class WeComSettings(_Model):
    api_url: str = DEFAULT_API_URL
    timeout_seconds: float = Field(default=10.0, gt=0)  # reading an answer
    connect_timeout_seconds: float = Field(default=5.0, gt=0)
    # An HTTP(S) proxy for WeCom calls, e.g. the one host whose public IP is WeCom's trusted IP.
    proxy_url: str | None = None
    # A CA bundle for a TLS-intercepting gateway in front of WeCom.
    ca_file: str | None = None

    @field_validator("proxy_url")
    @classmethod
    def _proxy(cls, value: str | None) -> str | None:
        if value is not None and not value.startswith(("http://", "https://", "socks5://")):
            raise ValueError("must start with http://, https:// or socks5://")
        return value

    @field_validator("ca_file")
    @classmethod
    def _ca(cls, value: str | None) -> str | None:
        if value is not None and not Path(value).is_file():
            raise ValueError(f"no such file: {value}")
        return value

    @field_validator("api_url")
    @classmethod
    def _url(cls, value: str) -> str:
        if not value.startswith(("http://", "https://")):
            raise ValueError("must start with http:// or https://")
        return value if value.endswith("/") else value + "/"


class AppConfig(_Model):
    corp_id: str = Field(min_length=1)
    agent_id: int = Field(gt=0)
    secret: Secret
    safe: Literal[0, 1] = 0
    # WeCom drops a byte-identical request within this window: the backstop against duplicates
    # when a notification is retried after a partial delivery.
    duplicate_check_seconds: int = Field(default=1800, ge=0, le=14400)
    # Recipient-sends per day WeCom allows this app (licensed accounts × 200); None: not paced.
    daily_quota: int | None = Field(default=None, ge=1)


_MENTION_SOURCE = re.compile(r"^(labels|annotations)\.[A-Za-z_][A-Za-z0-9_]*$")


class RobotConfig(_Model):
    """A group robot (群机器人): its key, or the whole webhook URL (both are secrets)."""

    key: Secret | None = None
    url: Secret | None = None

    @model_validator(mode="after")
    def _one(self) -> RobotConfig:
        if (self.key is None) == (self.url is None):
            raise ValueError("set key (or key_file), or url: the robot's webhook address")
        if self.url is not None and not self.url.reveal().startswith(("http://", "https://")):
            raise ValueError("url must be the robot's full webhook URL (https://…/webhook/send?key=…)")
        return self


class Fallback(_Model):
    """Where alerts go whose templated recipients are all invalid (written in the config: may be @all)."""

    to_user: list[str] = Field(default_factory=list)
    to_party: list[str] = Field(default_factory=list)
    to_tag: list[str] = Field(default_factory=list)

    @model_validator(mode="after")
    def _some(self) -> Fallback:
        if not (self.to_user or self.to_party or self.to_tag):
            raise ValueError("fallback needs at least one of to_user, to_party, to_tag")
        if any("{{" in r for r in (*self.to_user, *self.to_party, *self.to_tag)):
            raise ValueError("fallback recipients are written out, not templated")
        return self


class Target(_Model):
    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)

    app: str | None = None
    robot: str | None = None
    chat: str | None = None  # an app chat (群聊会话) of `app`: appchat/send
    to_user: list[str] = Field(default_factory=list)
    to_party: list[str] = Field(default_factory=list)
    to_tag: list[str] = Field(default_factory=list)
    msgtype: MsgType = "markdown"
    send_resolved: bool = True
    language: Language | None = None
    time_zone: str | None = None
    template: str | None = None
    title_template: str | None = None
    max_messages: int | None = Field(default=None, ge=1, le=50)
    # Group robots: who to @mention ("@all" for everyone), also from each alert's labels/annotations.
    mention: list[str] = Field(default_factory=list)
    mention_mobile: list[str] = Field(default_factory=list)
    mention_from: list[str] = Field(default_factory=list)
    # Alert data names at most this many distinct people per notification (templated recipients, and
    # mentions from labels): a label cannot page the whole company.
    max_recipients: int = Field(default=20, ge=1, le=1000)
    max_mentions: int = Field(default=10, ge=1, le=100)
    # Templated recipients: where alerts go when no value of theirs is a valid WeCom id.
    fallback: Fallback | None = None
    # Routing inside the receiver: Alertmanager matchers; `continue: false` stops later targets for
    # the alerts this one took.
    match: list[str] = Field(default_factory=list)
    continue_: bool = Field(default=True, alias="continue")

    @model_validator(mode="after")
    def _shape(self) -> Target:
        from alertmanager_wecom.ingest.matchers import MatcherError, parse_matcher

        if (self.app is None) == (self.robot is None):
            raise ValueError(
                "a target sends through either an app (app: NAME) or a group robot (robot: NAME)"
            )
        recipients = self.to_user or self.to_party or self.to_tag
        if self.robot is not None:
            if recipients or self.chat:
                raise ValueError("a robot posts to its own group chat: drop to_user/to_party/to_tag/chat")
            if self.fallback is not None:
                raise ValueError("fallback: only for app targets with templated recipients")
            if self.msgtype == "textcard":
                raise ValueError("msgtype: group robots send text, markdown or markdown_v2")
        else:
            if self.msgtype == "markdown_v2":
                raise ValueError(
                    "msgtype: markdown_v2 is for group robots; apps send text, markdown or textcard"
                )
            if self.mention or self.mention_mobile or self.mention_from:
                raise ValueError("mention: only group robots can @mention people")
            if self.fallback is not None and not self.templated_recipients:
                raise ValueError("fallback: only for templated recipients (to_user: ['{{ labels.owner }}'])")
            if self.chat and recipients:
                raise ValueError(
                    "an app chat target sends to the chat's members: drop to_user/to_party/to_tag"
                )
            if not self.chat and not recipients:
                raise ValueError("a target needs at least one of to_user, to_party, to_tag (or chat)")
        if self.msgtype == "markdown_v2" and (self.mention or self.mention_mobile or self.mention_from):
            raise ValueError("markdown_v2 cannot @mention anyone: use msgtype markdown or text for mentions")
        if len(self.to_user) > 1000:
            raise ValueError("to_user: WeCom accepts at most 1000 users per message")
        if len(self.to_party) > 100 or len(self.to_tag) > 100:
            raise ValueError("to_party/to_tag: WeCom accepts at most 100 each")
        for source in self.mention_from:
            if not _MENTION_SOURCE.match(source):
                raise ValueError(f"mention_from: {source!r} must look like labels.NAME or annotations.NAME")
        for matcher in self.match:
            try:
                parse_matcher(matcher)
            except MatcherError as exc:
                raise ValueError(f"match: {exc}") from None
        return self

    @field_validator("time_zone")
    @classmethod
    def _tz(cls, value: str | None) -> str | None:
        return None if value is None else _check_time_zone(value)

    @property
    def templated_recipients(self) -> bool:
        return any("{{" in r for r in (*self.to_user, *self.to_party, *self.to_tag))


class Receiver(_Model):
    name: str
    targets: list[Target] = Field(min_length=1)
    auth: InboundAuth | None = None

    @field_validator("name")
    @classmethod
    def _name(cls, value: str) -> str:
        if not _RECEIVER_NAME.match(value):
            raise ValueError("use letters, digits, '_', '.', '-' (it is part of the webhook URL)")
        return value


class BasicAuth(_Model):
    username: str = Field(min_length=1)
    password: Secret


class InboundAuth(_Model):
    """What callers must present: Alertmanager's http_config.authorization (Bearer) or basic_auth."""

    bearer_token: Secret | None = None
    basic_auth: BasicAuth | None = None

    @model_validator(mode="after")
    def _one(self) -> InboundAuth:
        if (self.bearer_token is None) == (self.basic_auth is None):
            raise ValueError("set bearer_token (or bearer_token_file) or basic_auth")
        return self


class TLSSettings(_Model):
    cert_path: str
    key_path: str

    @model_validator(mode="after")
    def _files(self) -> TLSSettings:
        for path in (self.cert_path, self.key_path):
            if not Path(path).is_file():
                raise ValueError(f"no such file: {path}")
        return self


class VerifyFile(_Model):
    """A WeCom trusted-domain verification file, served at the root exactly as given."""

    name: str
    content: str

    @field_validator("name")
    @classmethod
    def _name(cls, value: str) -> str:
        if not re.fullmatch(r"[A-Za-z0-9_.-]+\.txt", value):
            raise ValueError("a file name such as WW_verify_2YR9B7ZGcQ3dbN3b.txt")
        return value


class ServerSettings(_Model):
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


class StorageSettings(_Model):
    backend: Literal["sqlite"] = "sqlite"
    # The outbox file; relative paths are relative to the working directory.
    path: str = "data/outbox.db"
    # full: a committed notification survives power loss; normal: survives a process crash only.
    synchronous: Literal["full", "normal"] = "full"
    # Upper bound on the outbox file; when full, the webhook answers 503 and Alertmanager keeps the alerts.
    max_size_mb: int | None = Field(default=None, ge=1)
    # Delivered and dead-lettered rows are deleted after this long.
    retention: Duration = 7 * 86400.0


class DeliverySettings(_Model):
    workers: int = Field(default=8, ge=1, le=256)
    retry_initial: Duration = 1.0
    retry_max: Duration = 60.0
    # A notification still failing transiently after this long goes to the dead letters.
    max_age: Duration = 86400.0
    # Identical notifications from several Alertmanager replicas within this window are delivered once.
    # Keep it shorter than Alertmanager's repeat_interval: repeats are intended.
    dedup_window: Duration = 300.0
    # WeCom drops what is over its limits without an error: stay this fraction below them.
    headroom: float = Field(default=0.1, ge=0.0, lt=1.0)
    member_per_minute: int = Field(default=30, ge=1)
    member_per_hour: int = Field(default=1000, ge=1)
    robot_per_minute: int = Field(default=20, ge=1)
    # Most alerts merged into one digest (bounds memory in a storm; the rest go into the next digest).
    digest_max_alerts: int = Field(default=5000, ge=10)
    poll_interval: Duration = 1.0


class RenderSettings(_Model):
    language: Language = "zh"
    time_zone: str = "Asia/Shanghai"
    max_messages: int = Field(default=5, ge=1, le=50)
    alertmanager_url: str | None = None
    # Annotations whose values are rendered as markdown (e.g. a runbook link written as [text](url)) in
    # markdown and markdown_v2 messages. Off by default: alert data is text, never markup.
    markdown_annotations: list[str] = Field(default_factory=list)

    @field_validator("time_zone")
    @classmethod
    def _tz(cls, value: str) -> str:
        return _check_time_zone(value)


class Config(_Model):
    wecom: WeComSettings = Field(default_factory=WeComSettings)
    apps: dict[str, AppConfig] = Field(default_factory=dict)
    robots: dict[str, RobotConfig] = Field(default_factory=dict)
    receivers: list[Receiver] = Field(default_factory=list)
    server: ServerSettings = Field(default_factory=ServerSettings)
    storage: StorageSettings = Field(default_factory=StorageSettings)
    delivery: DeliverySettings = Field(default_factory=DeliverySettings)
    render: RenderSettings = Field(default_factory=RenderSettings)
    # Files to serve at the root: a path (served under its own name) or {name, content}.
    verify_files: list[VerifyFile] = Field(default_factory=list)
    # Directory that relative template paths are resolved against (the config file's directory).
    base_dir: Path = Field(default_factory=Path.cwd, exclude=True)

    @model_validator(mode="after")
    def _references(self) -> Config:
        seen: set[str] = set()
        for i, receiver in enumerate(self.receivers):
            if receiver.name in seen:
                raise ValueError(f"receivers[{i}].name: duplicate receiver name {receiver.name!r}")
            seen.add(receiver.name)
            for j, target in enumerate(receiver.targets):
                if target.app is not None and target.app not in self.apps:
                    known = ", ".join(sorted(self.apps)) or "none defined"
                    raise ValueError(
                        f"receivers[{i}].targets[{j}].app: unknown app {target.app!r} (apps: {known})"
                    )
                if target.robot is not None and target.robot not in self.robots:
                    known = ", ".join(sorted(self.robots)) or "none defined"
                    raise ValueError(
                        f"receivers[{i}].targets[{j}].robot: unknown robot {target.robot!r} (robots: {known})"
                    )
        return self

    @field_validator("verify_files", mode="before")
    @classmethod
    def _verify_files(cls, value: Any) -> Any:
        if not isinstance(value, list):
            return value
        out = []
        for item in value:
            if isinstance(item, str):
                try:
                    item = {"name": Path(item).name, "content": Path(item).read_bytes().decode("utf-8")}
                except OSError as exc:
                    raise ValueError(f"cannot read {item}: {exc.strerror}") from None
            out.append(item)
        return out

    def receiver(self, name: str) -> Receiver | None:
        for receiver in self.receivers:
            if receiver.name == name:
                return receiver
        return None


def _check_time_zone(value: str) -> str:
    try:
        ZoneInfo(value)
    except (ZoneInfoNotFoundError, ValueError):
        raise ValueError(f"unknown time zone {value!r} (use an IANA name such as Asia/Shanghai)") from None
    return value


def _path(loc: tuple[str | int, ...]) -> str:
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += ("." if out else "") + part
    return out or "(top level)"


def _interpolate(node: Any, loc: tuple[str | int, ...], errors: list[str]) -> Any:
    """Replace ``${VAR}`` with environment values and ``<name>_file`` keys with file contents."""
    if isinstance(node, str):

        def env(match: re.Match[str]) -> str:
            value = os.environ.get(match.group(1))
            if value is None:
                errors.append(f"{_path(loc)}: environment variable {match.group(1)} is not set")
                return ""
            return value

        return _ENV_REF.sub(env, node)
    if isinstance(node, list):
        return [_interpolate(item, (*loc, i), errors) for i, item in enumerate(node)]
    if isinstance(node, dict):
        out: dict[str, Any] = {}
        for key, value in node.items():
            key = str(key)
            name = key.removesuffix("_file")
            if key.endswith("_file") and name in SECRET_KEYS and isinstance(value, str):
                if name in node:
                    errors.append(f"{_path((*loc, key))}: set either {name} or {key}, not both")
                    continue
                try:
                    out[name] = Path(value).read_text(encoding="utf-8").strip()
                except OSError as exc:
                    errors.append(f"{_path((*loc, key))}: cannot read {value}: {exc.strerror}")
                continue
            out[key] = _interpolate(value, (*loc, key), errors)
        return out
    return node


def parse_config(raw: Any, base_dir: Path | None = None) -> Config:
    """Validate already-parsed YAML; raise `ConfigError` listing every problem."""
    if raw is None:
        raw = {}
    if not isinstance(raw, dict):
        raise ConfigError("(top level): the config must be a mapping of keys to values")
    errors: list[str] = []
    data = _interpolate(raw, (), errors)
    if errors:
        raise ConfigError("\n".join(errors))
    if base_dir is not None:
        data["base_dir"] = base_dir
    try:
        config = Config.model_validate(data)
    except ValidationError as exc:
        lines = []
        for err in exc.errors():
            message = err["msg"].removeprefix("Value error, ")
            if err["type"] == "extra_forbidden":
                message = "unknown key"
            if message.startswith(("receivers[", "apps.")):
                lines.append(message)
            else:
                lines.append(f"{_path(err['loc'])}: {message}")
        raise ConfigError("\n".join(lines)) from None
    # Templates are compiled now so that a broken template stops the start, with its line number.
    from alertmanager_wecom.rendering.renderer import compile_target_templates

    compile_target_templates(config)
    return config


def load_config(path: str | Path) -> Config:
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"cannot read config {path}: {exc.strerror}") from None
    try:
        raw = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        problem = getattr(exc, "problem", None) or str(exc)
        context_mark = getattr(exc, "context_mark", None)
        context = getattr(exc, "context", None)
        if context and context_mark:
            problem += f" ({context} started at line {context_mark.line + 1})"
        raise ConfigError(f"{path}: invalid YAML{where}: {problem}") from None
    return parse_config(raw, base_dir=path.parent.resolve())
