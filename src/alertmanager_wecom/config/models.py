"""The configuration's typed models: a leaf (it imports nothing of the
package but `secret` and its siblings: fields.py, targets/ (one model per channel), apis.py, ….

Each model checks what it can see by itself; what needs other modules (matchers, templates) and
the YAML, ``${ENV_VAR}`` and ``*_file`` handling are the loader's (loader.py).
"""

from __future__ import annotations

import importlib.util
import re
from pathlib import Path
from typing import Any, Literal, TypedDict

from pydantic import Field, PrivateAttr, field_validator, model_validator

from alertmanager_wecom.config.apis import AlertmanagerAPI, ChartSettings, PrometheusAPI
from alertmanager_wecom.config.contacts import LookupSettings
from alertmanager_wecom.config.fields import Duration, Language, Model, check_time_zone
from alertmanager_wecom.config.oncall import OncallSettings, schedule_of
from alertmanager_wecom.config.server import InboundAuth, ServerSettings, VerifyFile
from alertmanager_wecom.config.targets import AppTarget, Target, WebhookConfig
from alertmanager_wecom.config.tracing import TracingSettings
from alertmanager_wecom.secret import Secret

DEFAULT_API_URL = "https://qyapi.weixin.qq.com/cgi-bin/"
_RECEIVER_NAME = re.compile(r"^[A-Za-z0-9_.-]+$")


class ConfigError(Exception):
    """The configuration cannot be used; the message lists each problem with its key path."""


class WeComSettings(LookupSettings):  # lookup_*: the look-ups of email:/mobile: recipients
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


class CallbackSettings(Model):
    """The app's callback URL (接收消息 → 设置API接收): the Token and EncodingAESKey WeCom shows there. The
    service answers at /wecom/callback/<app name>; the signature is the only auth of that route."""

    token: Secret
    encoding_aes_key: Secret
    # How far a callback's timestamp may be from now: an older signed request is a replay.
    max_age: Duration = 300.0
    # The public URL saved in WeCom (https://host/wecom/callback/<app>): `check` calls it as WeCom does.
    url: str | None = Field(default=None, pattern=r"^https?://")

    @field_validator("encoding_aes_key")
    @classmethod
    def _aes_key(cls, value: Secret) -> Secret:
        if not re.fullmatch(r"[A-Za-z0-9+/]{43}", value.reveal()):
            raise ValueError("an EncodingAESKey is 43 letters and digits, as WeCom shows it")
        return value


class AppConfig(Model):
    corp_id: str = Field(min_length=1)
    agent_id: int = Field(gt=0)
    secret: Secret
    safe: Literal[0, 1] = 0
    # WeCom drops a byte-identical request within this window: the backstop against duplicates
    # when a notification is retried after a partial delivery.
    duplicate_check_seconds: int = Field(default=1800, ge=0, le=14400)
    # Recipient-sends per day WeCom allows this app (licensed accounts × 200); None: not paced.
    daily_quota: int | None = Field(default=None, ge=1)
    callback: CallbackSettings | None = None


class RobotConfig(Model):
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


class Receiver(Model):
    name: str
    targets: list[Target] = Field(min_length=1)
    auth: InboundAuth | None = None
    # Where this receiver's card buttons make silences, when not the global `alertmanager`.
    alertmanager: AlertmanagerAPI | None = None
    # Where its charts' data comes from, when not the global `prometheus`.
    prometheus: PrometheusAPI | None = None
    # An escalation policy (oncall.escalations): who is told next while nobody acknowledges.
    escalation: str | None = None

    @field_validator("name")
    @classmethod
    def _name(cls, value: str) -> str:
        if not _RECEIVER_NAME.match(value):
            raise ValueError("use letters, digits, '_', '.', '-' (it is part of the webhook URL)")
        return value


class RedisConnection(TypedDict):
    """What each Redis store (outbox, cards, on-call) is opened with, by keyword."""

    url: str
    key_prefix: str
    password: str | None
    timeout: float


class StorageSettings(Model):
    # sqlite: one process, a local file (the default). redis: replicas sharing one Redis.
    backend: Literal["sqlite", "redis"] = "sqlite"
    # redis: redis://host:6379/0 or rediss:// (TLS); the password apart (password / password_file).
    url: Secret | None = None
    password: Secret | None = None
    key_prefix: str = Field(default="alertmanager-wecom", pattern=r"^[A-Za-z0-9_.:-]{1,64}$")
    # redis: acceptance also waits until this many Redis replicas have the notification (WAIT).
    min_replicas: int = Field(default=0, ge=0, le=10)
    # redis: a replica holds a target this long past its last sign of life (renewed every third of
    # it); a dead replica's targets are taken over after it. Short, so that takeover takes seconds; a
    # replica stalled longer loses its targets and sends nothing more to them (the write-ahead checks).
    lease: Duration = Field(default=3.0, ge=1.0, le=600.0)
    # redis: the longest one call to Redis may take (a free connection, connecting, every answer):
    # past it, a webhook answers 503 and /readyz says why, instead of waiting on a frozen Redis.
    timeout: Duration = Field(default=2.0, ge=0.1, le=60.0)
    # The outbox file; relative paths are relative to the working directory.
    path: str = "data/outbox.db"
    # full: a committed notification survives power loss; normal: survives a process crash only.
    synchronous: Literal["full", "normal"] = "full"
    # Upper bound on the outbox file; when full, the webhook answers 503 and Alertmanager keeps the alerts.
    max_size_mb: int | None = Field(default=None, ge=1)
    # Delivered and dead-lettered rows are deleted after this long.
    retention: Duration = 7 * 86400.0
    # Alert cards (and their acknowledgements) are kept this long past WeCom's 72 h for their response
    # codes; the audit log of card actions this long.
    card_retention: Duration = Field(default=7 * 86400.0, ge=0)
    audit_retention: Duration = Field(default=90 * 86400.0, ge=3600)

    def redis_connection(self) -> RedisConnection:
        """backend redis: the URL and password revealed, here only, for the stores' clients."""
        assert self.url is not None  # the backend needs one (checked below)
        return RedisConnection(
            url=self.url.reveal(),
            key_prefix=self.key_prefix,
            password=self.password.reveal() if self.password else None,
            timeout=self.timeout,
        )

    @model_validator(mode="after")
    def _redis(self) -> StorageSettings:
        if self.backend == "redis":
            if self.url is None:
                raise ValueError("backend redis needs url: redis://host:6379/0 (rediss:// for TLS)")
            if not self.url.reveal().startswith(("redis://", "rediss://", "unix://")):
                raise ValueError("url: redis://host:port/db, rediss://… (TLS) or unix:///path")
        return self


class DeliverySettings(Model):
    # Targets delivered to at once (each target's jobs one at a time, in order): a fan-out to many
    # people goes this many at a time; WeCom's per-app limits are per person, not per call in flight.
    workers: int = Field(default=32, ge=1, le=256)
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
    # Messages to one app chat (群聊会话): WeCom's limits per chat.
    chat_per_minute: int = Field(default=200, ge=1)
    chat_per_day: int = Field(default=10000, ge=1)
    # Most alerts merged into one digest (bounds memory in a storm; the rest go into the next digest).
    digest_max_alerts: int = Field(default=5000, ge=10)
    poll_interval: Duration = 1.0


class RenderSettings(Model):
    language: Language = "zh"
    time_zone: str = "Asia/Shanghai"
    max_messages: int = Field(default=5, ge=1, le=50)
    alertmanager_url: str | None = None
    # Annotations whose values are rendered as markdown (e.g. a runbook link written as [text](url)) in
    # markdown and markdown_v2 messages. Off by default: alert data is text, never markup.
    markdown_annotations: list[str] = Field(default_factory=list)
    # Templates are code: one render of a user template may take this long and print this much
    # (template_sandbox.py); past either it fails, and the package's template renders the alert instead.
    template_timeout: Duration = Field(default=2.0, gt=0, le=60)
    template_max_chars: int = Field(default=1_000_000, ge=10_000)

    @field_validator("time_zone")
    @classmethod
    def _tz(cls, value: str) -> str:
        return check_time_zone(value)


class KeptTemplates:
    """Templates compiled by the loader, kept for the renderer under `Target.template_key()`: a template
    edited after the config was loaded is not used unchecked (a reload checks and keeps it again).

    Derived from the config's own fields, so it takes no part in equality (and, private, none in dumps).
    The values are the renderer's `Templates`; typed `object` here so that this module stays a leaf."""

    def __init__(self) -> None:
        self.by_key: dict[tuple[str | None, str | None, str], object] = {}

    def __eq__(self, other: object) -> bool:
        return isinstance(other, KeptTemplates)

    # Compiled templates do not cross into another process (the console's preview worker): a config
    # pickled there starts with none kept, and the renderer compiles the target's template again.
    def __getstate__(self) -> dict[str, object]:
        return {}

    def __setstate__(self, state: dict[str, object]) -> None:
        self.by_key = {}

    __hash__ = None  # type: ignore[assignment]


class Config(Model):
    wecom: WeComSettings = Field(default_factory=WeComSettings)
    apps: dict[str, AppConfig] = Field(default_factory=dict)
    robots: dict[str, RobotConfig] = Field(default_factory=dict)
    # Outgoing webhooks (JSON POSTs to a gateway of the user's own): `webhook: NAME` targets.
    webhooks: dict[str, WebhookConfig] = Field(default_factory=dict)
    receivers: list[Receiver] = Field(default_factory=list)
    server: ServerSettings = Field(default_factory=ServerSettings)
    storage: StorageSettings = Field(default_factory=StorageSettings)
    delivery: DeliverySettings = Field(default_factory=DeliverySettings)
    render: RenderSettings = Field(default_factory=RenderSettings)
    # Alertmanager's API, for the silences made from cards (a receiver may name its own).
    alertmanager: AlertmanagerAPI | None = None
    # Prometheus's API, for the charts (`chart: true` on a target).
    prometheus: PrometheusAPI | None = None
    charts: ChartSettings = Field(default_factory=ChartSettings)
    tracing: TracingSettings = Field(default_factory=TracingSettings)  # off until it has an endpoint
    # Schedules, escalation policies, acknowledge links.
    oncall: OncallSettings = Field(default_factory=OncallSettings)
    # Files to serve at the root: a path (served under its own name) or {name, content}.
    verify_files: list[VerifyFile] = Field(default_factory=list)
    # Directory that relative template paths are resolved against (the config file's directory).
    base_dir: Path = Field(default_factory=Path.cwd, exclude=True)
    _templates: KeptTemplates = PrivateAttr(default_factory=KeptTemplates)

    @property
    def kept_templates(self) -> KeptTemplates:
        return self._templates

    @model_validator(mode="after")
    def _references(self) -> Config:
        seen: set[str] = set()
        for i, receiver in enumerate(self.receivers):
            if receiver.name in seen:
                raise ValueError(f"receivers[{i}].name: duplicate receiver name {receiver.name!r}")
            seen.add(receiver.name)
            named = [(f"receivers[{i}].escalation", receiver.escalation)] + [
                (f"receivers[{i}].targets[{j}].escalation", t.escalation)
                for j, t in enumerate(receiver.targets)
            ]
            for where, policy_name in named:
                if policy_name is not None and policy_name not in self.oncall.escalations:
                    known = ", ".join(sorted(self.oncall.escalations)) or "none defined"
                    raise ValueError(
                        f"{where}: unknown escalation policy {policy_name!r} (oncall.escalations: {known})"
                    )
            places = [(f"receivers[{i}].targets[{j}]", t) for j, t in enumerate(receiver.targets)]
            for policy_name in dict.fromkeys(name for _, name in named if name is not None):
                policy = self.oncall.escalations[policy_name]
                places += [
                    (f"oncall.escalations.{policy_name}.steps[{k}].targets[{j}]", t)
                    for k, step in enumerate(policy.steps)
                    for j, t in enumerate(step.targets)
                ]
            for where, target in places:
                self._target(receiver, target, where)
        for name, policy in self.oncall.escalations.items():
            for k, step in enumerate(policy.steps):
                for j, target in enumerate(step.targets):
                    self._oncall_names(target, f"oncall.escalations.{name}.steps[{k}].targets[{j}]")
                    if target.match or target.templated_recipients or target.escalation:
                        raise ValueError(
                            f"oncall.escalations.{name}.steps[{k}].targets[{j}]: a step's targets take "
                            "every alert of the group: no match, no recipients from labels, no escalation"
                        )
        return self

    def _oncall_names(self, target: Target, where: str) -> None:
        for field in ("to_user", "mention"):
            for value in getattr(target, field, ()):
                schedule = schedule_of(value)
                if schedule is not None and schedule not in self.oncall.schedules:
                    known = ", ".join(sorted(self.oncall.schedules)) or "none defined"
                    raise ValueError(
                        f"{where}.{field}: unknown schedule {value!r} (oncall.schedules: {known})"
                    )

    def _target(self, receiver: Receiver, target: Target, where: str) -> None:
        # The names a target refers to, as its model declares them: app → apps, robot → robots, ….
        for field, what, section in target.references:
            name = getattr(target, field)
            names: dict[str, object] = getattr(self, section)
            if name not in names:
                known = ", ".join(sorted(names)) or "none defined"
                raise ValueError(f"{where}.{field}: unknown {what} {name!r} ({section}: {known})")
        if isinstance(target, AppTarget) and target.msgtype == "template_card":
            self._card_target(receiver, target, where)  # the app channel's cards need its callback
        if target.chart:
            self._chart_target(receiver, where)
        self._oncall_names(target, where)

    def _card_target(self, receiver: Receiver, target: AppTarget, where: str) -> None:
        if self.apps[target.app].callback is None:
            raise ValueError(
                f"{where}.msgtype: WeCom sends cards with buttons only for apps with a callback URL: set "
                f"apps.{target.app}.callback (token, encoding_aes_key) and save the URL "
                f"https://<this service>/wecom/callback/{target.app} in the app's 接收消息 settings"
            )
        silences = target.card is None or any(b.action == "silence" for b in target.card.buttons)
        if silences and self.alertmanager_for(receiver) is None:
            raise ValueError(
                f"{where}.card: silence buttons need Alertmanager's API: set alertmanager.url (or the "
                f"receiver's alertmanager, or render.alertmanager_url), or drop the silence buttons"
            )

    def _chart_target(self, receiver: Receiver, where: str) -> None:
        if importlib.util.find_spec("matplotlib") is None:
            raise ValueError(
                f"{where}.chart: charts need the charts extra: pip install 'alertmanager-wecom[charts]'"
            )
        if (receiver.prometheus or self.prometheus) is None:
            raise ValueError(f"{where}.chart: set prometheus.url (or the receiver's prometheus) to query")

    def prometheus_for(self, receiver: Receiver | None) -> PrometheusAPI | None:
        return (receiver.prometheus if receiver is not None else None) or self.prometheus

    def alertmanager_for(self, receiver: Receiver) -> AlertmanagerAPI | None:
        """Where `receiver`'s silences go: its own `alertmanager`, the global one, else the
        render.alertmanager_url that links already point at (without auth)."""
        if receiver.alertmanager is not None:
            return receiver.alertmanager
        if self.alertmanager is not None:
            return self.alertmanager
        if self.render.alertmanager_url:
            return AlertmanagerAPI(url=self.render.alertmanager_url)
        return None

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

    def auth_for(self, receiver: Receiver) -> InboundAuth | None:
        """What a webhook to `receiver` must carry: its own auth, else the server's (None: open)."""
        return receiver.auth or self.server.auth
