"""`tracing:`: OpenTelemetry traces, shaped as Alertmanager's own `tracing:` section so that one block
can be copied between the two. Off while `endpoint` is unset (the default). A leaf, like models.py."""

from __future__ import annotations

import importlib.util
import re
from pathlib import Path

from pydantic import Field, field_validator, model_validator

from alertmanager_wecom.config.fields import Duration, Model, check_header_names
from alertmanager_wecom.secret import Secret

# An HTTP header's name (RFC 9110's token): a value from the config must not split a request.
# What `tracing` needs installed: the `tracing` extra.
_EXTRA_MODULES = ("opentelemetry.sdk", "opentelemetry.exporter.otlp.proto.http")


def _installed(module: str) -> bool:
    try:
        return importlib.util.find_spec(module) is not None
    except (ImportError, ValueError):  # a parent package missing, or blocked in sys.modules
        return False


class TracingTLS(Model):
    """Alertmanager's `tls_config`, the parts an OTLP/HTTP export uses: the CA that signed the receiver's
    certificate (else the system's CAs) and a client certificate for mutual TLS."""

    ca_file: str | None = None
    cert_file: str | None = None
    key_file: str | None = None

    @model_validator(mode="after")
    def _files(self) -> TracingTLS:
        if (self.cert_file is None) != (self.key_file is None):
            raise ValueError("cert_file and key_file go together (a client certificate and its key)")
        for path in (self.ca_file, self.cert_file, self.key_file):
            if path is not None and not Path(path).is_file():
                raise ValueError(f"no such file: {path}")
        return self


class TracingSettings(Model):
    # host:port of an OTLP receiver (a collector's OTLP/HTTP port is 4318); unset: no tracing at all.
    endpoint: str | None = None
    # Alertmanager's default is grpc; only OTLP/HTTP (protobuf) is implemented here, so http is ours.
    client_type: str = "http"
    # Plain HTTP to the receiver; otherwise HTTPS, with the system's CAs unless tls_config names one.
    insecure: bool = False
    tls_config: TracingTLS | None = None
    # The fraction of traces started here that are kept; a caller's traceparent decides for its trace
    # (Alertmanager samples, we follow). 0, as in Alertmanager: only traces a caller sampled are kept.
    sampling_fraction: float = Field(default=0.0, ge=0.0, le=1.0)
    # Sent with every export (e.g. a tenant or an API key): secrets, so from ${ENV} or headers_file.
    headers: dict[str, Secret] = Field(default_factory=dict)
    compression: str | None = None
    timeout: Duration = Field(default=10.0, gt=0)

    @property
    def enabled(self) -> bool:
        return self.endpoint is not None

    @property
    def url(self) -> str:
        """Where spans are posted: OTLP/HTTP's path for traces at `endpoint`."""
        return f"{'http' if self.insecure else 'https'}://{self.endpoint}/v1/traces"

    @field_validator("endpoint")
    @classmethod
    def _endpoint(cls, value: str | None) -> str | None:
        if value is not None and not re.fullmatch(r"(\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9.-]+):\d{1,5}", value):
            raise ValueError(
                f"{value!r}: host:port of the OTLP receiver, without a scheme or path"
                " (e.g. otel-collector:4318; insecure: true for plain HTTP)"
            )
        return value

    @field_validator("client_type")
    @classmethod
    def _client_type(cls, value: str) -> str:
        if value == "grpc":
            raise ValueError(
                "grpc is not supported: set client_type: http and point endpoint at the receiver's"
                " OTLP/HTTP port (4318 on an OpenTelemetry Collector)"
            )
        if value != "http":
            raise ValueError(f"{value!r}: use http (OTLP/HTTP, protobuf)")
        return value

    @field_validator("compression")
    @classmethod
    def _compression(cls, value: str | None) -> str | None:
        if value not in (None, "gzip"):
            raise ValueError(f"{value!r}: use gzip, or leave it out")
        return value

    @field_validator("headers")
    @classmethod
    def _headers(cls, value: dict[str, Secret]) -> dict[str, Secret]:
        check_header_names(value)
        return value

    @model_validator(mode="after")
    def _tls(self) -> TracingSettings:
        if self.insecure and self.tls_config is not None:
            raise ValueError("tls_config is for HTTPS: drop it, or set insecure: false")
        return self

    @model_validator(mode="after")
    def _extra(self) -> TracingSettings:
        if self.enabled and not all(_installed(module) for module in _EXTRA_MODULES):
            raise ValueError(
                "tracing needs the tracing extra (the OpenTelemetry SDK and its OTLP exporter):"
                " pip install 'alertmanager-wecom[tracing]'"
            )
        return self
