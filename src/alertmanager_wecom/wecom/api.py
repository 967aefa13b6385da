"""The HTTP boundary to the WeCom API (or a proxy, gateway or the simulator).

Every call goes through `WeComAPI.call`, which turns transport failures, HTTP errors and non-zero
errcodes into one exception type, `WeComError`, carrying the `ErrInfo` from the errcode table.
Text that leaves this module is redacted: httpx errors quote URLs with ``access_token=``/``key=``.
"""

from __future__ import annotations

import json
import logging
import ssl
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

import httpx

from alertmanager_wecom.reasons import DeliveryError
from alertmanager_wecom.secret import guard_logger, redact
from alertmanager_wecom.tracing import NO_SPAN, Span, active
from alertmanager_wecom.wecom import errcodes
from alertmanager_wecom.wecom.errcodes import Action, ErrInfo, Reason

if TYPE_CHECKING:
    from alertmanager_wecom.config import WeComSettings

log = logging.getLogger(__name__)
# httpx logs request URLs, which carry access_token, corpsecret and robot keys.
guard_logger("httpx")


def http_client(settings: WeComSettings) -> httpx.AsyncClient:
    """The one HTTP client for WeCom, used by the service and by every command (check, send, appchat):
    timeouts, the optional egress proxy (the one trusted IP) and CA bundle from `wecom:`."""
    verify: ssl.SSLContext | bool = (
        ssl.create_default_context(cafile=settings.ca_file) if settings.ca_file else True
    )
    return httpx.AsyncClient(
        timeout=httpx.Timeout(settings.timeout_seconds, connect=settings.connect_timeout_seconds),
        proxy=settings.proxy_url,
        verify=verify,
    )


class WeComError(DeliveryError):
    """A failed WeCom call: what happened (`info`, from the errcode table) and the errcode/errmsg when
    WeCom answered. A `DeliveryError`: retryable when the table says retry or refresh the token."""

    def __init__(
        self,
        info: ErrInfo,
        detail: str,
        errcode: int | None = None,
        errmsg: str = "",
        maybe_delivered: bool = False,
    ) -> None:
        self.info = info
        self.errcode = errcode
        self.errmsg = redact(errmsg)
        # maybe_delivered: the request may have reached WeCom and been acted on (a read timeout, a
        # gateway error).
        super().__init__(
            info.reason,
            redact(detail),
            retryable=info.action in (Action.RETRY, Action.REFRESH_TOKEN),
            maybe_delivered=maybe_delivered,
            code=str(errcode) if errcode is not None else None,
        )

    @property
    def action(self) -> Action:
        return self.info.action


def _transport_error(reason: Reason, detail: str, maybe_delivered: bool = False) -> WeComError:
    return WeComError(ErrInfo(Action.RETRY, reason, detail), detail, maybe_delivered=maybe_delivered)


class WeComAPI:
    """A thin client: base URL + path, JSON in and out, errcode checked."""

    def __init__(self, base_url: str, client: httpx.AsyncClient) -> None:
        self.base_url = base_url if base_url.endswith("/") else base_url + "/"
        self.client = client

    async def call(
        self,
        method: str,
        path: str,
        params: dict[str, str] | None = None,
        body: dict[str, Any] | None = None,
        files: dict[str, tuple[str, bytes, str]] | None = None,
    ) -> dict[str, Any]:
        """`files`: a multipart upload (media/upload's field `media`: name, bytes, content type)."""
        # A robot configured by its full webhook URL is called at that URL.
        url = path if path.startswith(("http://", "https://")) else self.base_url + path
        tracing = active()  # the delivery's or card action's, if it is traced
        if not tracing.enabled:
            return await self._call(method, url, path, params, body, files, NO_SPAN)
        # The URL's path only: its query carries access_token, corpsecret or a robot's key.
        api = urlsplit(url).path.removeprefix(urlsplit(self.base_url).path)
        attributes = {
            "http.request.method": method,
            "wecom.api": api,
            "server.address": urlsplit(url).hostname or "",
        }
        with tracing.span(f"{method} {api}", kind="client", attributes=attributes) as span:
            try:
                return await self._call(method, url, path, params, body, files, span)
            except WeComError as exc:
                span.set("wecom.reason", exc.reason)
                raise

    async def _call(
        self,
        method: str,
        url: str,
        path: str,
        params: dict[str, str] | None,
        body: dict[str, Any] | None,
        files: dict[str, tuple[str, bytes, str]] | None,
        span: Span,
    ) -> dict[str, Any]:
        try:
            if files is not None:
                response = await self.client.request(method, url, params=params, files=files)
            elif body is not None:
                # ensure_ascii=False: WeCom counts UTF-8 bytes, and \uXXXX escapes would waste them.
                content = json.dumps(body, ensure_ascii=False).encode("utf-8")
                response = await self.client.request(
                    method,
                    url,
                    params=params,
                    content=content,
                    headers={"Content-Type": "application/json; charset=utf-8"},
                )
            else:
                response = await self.client.request(method, url, params=params)
        except httpx.TimeoutException as exc:
            sent = not isinstance(exc, httpx.ConnectTimeout | httpx.PoolTimeout)
            detail = f"timeout calling WeCom {path}: {type(exc).__name__}"
            raise _transport_error(Reason.NETWORK, detail, maybe_delivered=sent) from None
        except (httpx.ConnectError, httpx.UnsupportedProtocol) as exc:
            raise _transport_error(Reason.NETWORK, f"cannot reach WeCom {path}: {exc}") from None
        except httpx.HTTPError as exc:
            detail = f"connection to WeCom {path} failed: {exc}"
            raise _transport_error(Reason.NETWORK, detail, maybe_delivered=True) from None
        span.set("http.response.status_code", response.status_code)
        if response.status_code >= 500 or response.status_code in (408, 429):
            detail = f"WeCom {path} answered HTTP {response.status_code}"
            raise _transport_error(Reason.HTTP_ERROR, detail, maybe_delivered=True)
        if response.status_code >= 400:
            info = ErrInfo(
                Action.PERMANENT,
                Reason.HTTP_ERROR,
                f"HTTP {response.status_code}",
                "check wecom.api_url: it must point at the WeCom API (…/cgi-bin/) or the simulator",
            )
            raise WeComError(info, f"WeCom {path} answered HTTP {response.status_code}")
        try:
            reply = response.json()
        except ValueError:
            raise _transport_error(
                Reason.HTTP_ERROR, f"WeCom {path} answered with a body that is not JSON"
            ) from None
        if not isinstance(reply, dict):
            raise _transport_error(
                Reason.HTTP_ERROR, f"WeCom {path} answered with JSON that is not an object"
            )
        errcode = reply.get("errcode", 0)
        if not isinstance(errcode, int):
            errcode = -1
        span.set("wecom.errcode", errcode)
        if errcode != 0:
            errmsg = str(reply.get("errmsg", ""))
            raise WeComError(errcodes.classify(errcode), errcodes.explain(errcode, errmsg), errcode, errmsg)
        return reply
