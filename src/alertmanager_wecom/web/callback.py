"""The callback URL WeCom calls (``/wecom/callback/<app>``): URL verification and events (card clicks).

No auth of ours on this route: WeCom's signature is the auth. A request is refused (403, logged at a
bounded rate, nothing done) when its signature does not match the app's token, its timestamp is outside
`callback.max_age` (URL checks and events alike), or it decrypts to another corp's message. WeCom
retries an event 3 times when it gets no answer within 5 s, so the answer comes first, and an event
already taken is recognised in the card store (durable: a capture replayed after a restart does
nothing). One click is who, when, which card, which button and its response code (new for every
click), so two clicks in the same second are two clicks.
"""

from __future__ import annotations

import hashlib
import logging
from xml.etree.ElementTree import Element

import defusedxml.ElementTree as SafeXML
from defusedxml import DefusedXmlException
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import BaseRoute, Route

from alertmanager_wecom.actions.cards import Click
from alertmanager_wecom.throttled_log import ThrottledLog
from alertmanager_wecom.web.answers import BodyTooLarge, BodyTooSlow, error, read_body
from alertmanager_wecom.web.relay import Relay
from alertmanager_wecom.wecom.callback_crypto import CallbackCrypto, CallbackError

log = logging.getLogger(__name__)

MAX_BODY = 64 * 1024  # an event is a few hundred bytes
_refusals = ThrottledLog(log)


class Callbacks:
    def __init__(self, relay: Relay) -> None:
        self.relay = relay

    def routes(self) -> list[BaseRoute]:
        return [
            Route("/wecom/callback/{app}", self.verify, methods=["GET"]),
            Route("/wecom/callback/{app}", self.event, methods=["POST"]),
        ]

    def _crypto(self, name: str) -> CallbackCrypto | None:
        app = self.relay.config.apps.get(name)
        if app is None or app.callback is None:
            return None
        callback = app.callback
        return CallbackCrypto(callback.token.reveal(), callback.encoding_aes_key.reveal(), app.corp_id)

    def _refused(self, name: str, reason: str) -> Response:
        self.relay.metrics.callbacks.labels(name, "refused").inc()
        _refusals.warning("callback for app %s refused: %s", name, reason)
        return error(403, f"refused: {reason}")

    def _timestamp_problem(self, name: str, timestamp: str, max_age: float) -> Response | None:
        """400 for a timestamp that is not seconds (``²`` is a digit to Python; 5,000 digits are not a
        time), 403 for one outside `max_age` of now (a replay), else None."""
        if not (timestamp.isascii() and timestamp.isdigit() and len(timestamp) <= 12):
            self.relay.metrics.callbacks.labels(name, "bad_request").inc()
            return error(400, "timestamp is seconds since 1970 (up to 12 ASCII digits)")
        if abs(self.relay.clock() - int(timestamp)) > max_age:
            return self._refused(name, f"timestamp outside {max_age:g}s of now (a replay?)")
        return None

    async def verify(self, request: Request) -> Response:
        """URL verification (when the callback URL is saved in WeCom's admin console): answer the
        decrypted echostr, exactly, nothing else."""
        name = request.path_params["app"]
        crypto = self._crypto(name)
        if crypto is None:
            return error(404, f"no callback configured for app {name!r} (apps.{name}.callback)")
        query = request.query_params
        fields = [query.get(k) for k in ("msg_signature", "timestamp", "nonce", "echostr")]
        if not all(fields):
            self.relay.metrics.callbacks.labels(name, "bad_request").inc()
            return error(400, "WeCom's URL verification sends msg_signature, timestamp, nonce and echostr")
        signature, timestamp, nonce, echostr = (f or "" for f in fields)
        callback = self.relay.config.apps[name].callback
        assert callback is not None
        problem = self._timestamp_problem(name, timestamp, callback.max_age)
        if problem is not None:
            return problem
        try:
            crypto.check_signature(signature, timestamp, nonce, echostr)
            plaintext = crypto.decrypt(echostr)
        except CallbackError as exc:
            return self._refused(name, str(exc))
        self.relay.metrics.callbacks.labels(name, "verified").inc()
        log.info("callback URL of app %s verified by WeCom", name)
        return PlainTextResponse(plaintext)

    async def event(self, request: Request) -> Response:
        name = request.path_params["app"]
        crypto = self._crypto(name)
        if crypto is None:
            return error(404, f"no callback configured for app {name!r} (apps.{name}.callback)")
        app = self.relay.config.apps[name]
        assert app.callback is not None
        query = request.query_params
        signature, timestamp, nonce = (query.get(k, "") for k in ("msg_signature", "timestamp", "nonce"))
        if not (signature and timestamp and nonce):
            self.relay.metrics.callbacks.labels(name, "bad_request").inc()
            return error(400, "a WeCom callback sends msg_signature, timestamp (seconds) and nonce")
        problem = self._timestamp_problem(name, timestamp, app.callback.max_age)
        if problem is not None:
            return problem
        try:
            body = await read_body(request, MAX_BODY, self.relay.config.server.body_timeout)
        except (BodyTooLarge, BodyTooSlow):
            self.relay.metrics.callbacks.labels(name, "bad_request").inc()
            return error(400, f"a callback body is XML under {MAX_BODY} bytes")
        outer = _xml(body)
        encrypted = _text(outer, "Encrypt") if outer is not None else ""
        if not encrypted:
            self.relay.metrics.callbacks.labels(name, "bad_request").inc()
            return error(400, "a callback body is <xml> with an <Encrypt> element")
        try:
            crypto.check_signature(signature, timestamp, nonce, encrypted)
            inner = _xml(crypto.decrypt(encrypted).encode("utf-8"))
        except CallbackError as exc:
            return self._refused(name, str(exc))
        if inner is None:
            return self._refused(name, "the decrypted message is not XML")
        if _text(inner, "ToUserName") and _text(inner, "ToUserName") != app.corp_id:
            return self._refused(name, "the event is addressed to another corp")
        user = _text(inner, "FromUserName")
        cards = self.relay.cards
        if cards is not None and not await cards.store.first_time(
            _event_key(name, inner), self.relay.clock(), keep=2 * app.callback.max_age + 60
        ):
            self.relay.metrics.callbacks.labels(name, "duplicate").inc()
            return Response(b"")  # WeCom's retry of an event already taken, or a replay
        self.relay.metrics.callbacks.labels(name, "accepted").inc()
        if _text(inner, "Event") == "template_card_event" and cards is not None:
            # Acted on after this answer: WeCom waits 5 s, Alertmanager may take longer.
            click = Click(
                app=name,
                user=user,
                task_id=_text(inner, "TaskId"),
                key=_text(inner, "EventKey"),
                response_code=_text(inner, "ResponseCode"),
                at=self.relay.clock(),
            )
            cards.later(cards.click(click), f"click on {click.task_id}")
        # An empty 200 is "no passive reply".
        log.info(
            "callback for app %s: %s %s from %s (key %s)",
            name,
            _text(inner, "MsgType") or "?",
            _text(inner, "Event") or "-",
            user or "?",
            _text(inner, "EventKey") or "-",
        )
        return Response(b"")


def _event_key(app: str, inner: Element) -> str:
    """What makes one event one event: who, when, which message or card, which button, and the
    click's response code (WeCom makes a new one for every click)."""
    fields = ("FromUserName", "CreateTime", "MsgId", "Event", "TaskId", "EventKey", "ResponseCode")
    text = "\0".join([app, *(_text(inner, f) for f in fields)])
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def _xml(data: bytes) -> Element | None:
    """WeCom's XML, parsed without entity expansion or external references (defusedxml)."""
    try:
        return SafeXML.fromstring(data)
    except (SafeXML.ParseError, DefusedXmlException, ValueError):
        return None


def _text(root: Element, tag: str) -> str:
    node = root.find(tag)
    return (node.text or "").strip() if node is not None else ""
