"""Typed configuration: the models (fields.py, targets.py, models.py), a leaf that imports nothing of
the package but `secret`, so that every other part can import them.

Loading a file (YAML, ${ENV}, *_file, matcher and template checks) is `alertmanager_wecom.loading`'s:
it uses the rendering to compile templates, which itself reads these models."""

from alertmanager_wecom.config.apis import AlertmanagerAPI, BasicAuth, ChartSettings, PrometheusAPI
from alertmanager_wecom.config.fields import Duration, Language, MsgType, parse_duration
from alertmanager_wecom.config.models import (
    DEFAULT_API_URL,
    AppConfig,
    CallbackSettings,
    Config,
    ConfigError,
    DeliverySettings,
    KeptTemplates,
    Receiver,
    RenderSettings,
    RobotConfig,
    StorageSettings,
    WeComSettings,
)
from alertmanager_wecom.config.oncall import EscalationPolicy, EscalationStep, OncallSettings, Schedule
from alertmanager_wecom.config.server import InboundAuth, ServerSettings, TLSSettings, VerifyFile
from alertmanager_wecom.config.targets import (
    AppTarget,
    ChatTarget,
    Fallback,
    RobotTarget,
    Target,
    TargetBase,
    WebhookConfig,
    WebhookTarget,
    parse_target,
    target_spec,
    validate_target,
)
from alertmanager_wecom.config.tracing import TracingSettings

__all__ = [
    "DEFAULT_API_URL",
    "AlertmanagerAPI",
    "AppConfig",
    "AppTarget",
    "BasicAuth",
    "CallbackSettings",
    "ChartSettings",
    "ChatTarget",
    "Config",
    "ConfigError",
    "DeliverySettings",
    "Duration",
    "EscalationPolicy",
    "EscalationStep",
    "Fallback",
    "InboundAuth",
    "KeptTemplates",
    "Language",
    "MsgType",
    "OncallSettings",
    "PrometheusAPI",
    "Receiver",
    "RenderSettings",
    "RobotConfig",
    "RobotTarget",
    "Schedule",
    "ServerSettings",
    "StorageSettings",
    "TLSSettings",
    "Target",
    "TargetBase",
    "TracingSettings",
    "VerifyFile",
    "WeComSettings",
    "WebhookConfig",
    "WebhookTarget",
    "parse_duration",
    "parse_target",
    "target_spec",
    "validate_target",
]
