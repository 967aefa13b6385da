"""The callback URL WeCom calls (``/wecom/callback/<app>``): URL verification and events (card clicks).

No auth of ours on this route: WeCom's signature is the auth. A request is refused (403, logged, nothing
done) when its signature does not match the app's token, its timestamp is outside `callback.max_age` (a
replayed event), or it decrypts to another corp's message. WeCom retries an event 3 times when it gets
no answer within 5 s, so the answer comes first and repeats are recognised (FromUserName + CreateTime).
"""

from __future__ import annotations

import logging
from collections import OrderedDict
from xml.etree.ElementTree import Element

import defusedxml.ElementTree as SafeXML
from defusedxml import DefusedXmlException
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import BaseRoute, Route

from alertmanager_wecom.actions.cards import Click
from alertmanager_wecom.web.answers import BodyTooLarge, BodyTooSlow, error, read_body
from alertmanager_wecom.web.relay import Relay
from alertmanager_wecom.wecom.callback_crypto import CallbackCrypto, CallbackError

log = logging.getLogger(__name__)

MAX_BODY = 64 * 1024  # an event is a few hundred bytes
_SEEN = 10_000  # events remembered for spotting WeCom's retries


class Callbacks:
    def __init__(self, relay: Relay) -> None:
        self.relay = relay
        self._seen: OrderedDict[tuple[str, str, str], None] = OrderedDict()

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
        log.warning("callback for app %s refused: %s", name, reason)
        return error(403, f"refused: {reason}")

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
        if not (signature and timestamp.isdigit() and nonce):
            self.relay.metrics.callbacks.labels(name, "bad_request").inc()
            return error(400, "a WeCom callback sends msg_signature, timestamp (seconds) and nonce")
        if abs(self.relay.clock() - int(timestamp)) > app.callback.max_age:
            return self._refused(name, f"timestamp outside {app.callback.max_age:g}s of now (a replay?)")
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
        key = (_text(inner, "FromUserName"), _text(inner, "CreateTime"), _text(inner, "MsgId"))
        if key in self._seen:
            self.relay.metrics.callbacks.labels(name, "duplicate").inc()
            return Response(b"")  # WeCom's retry of an event already taken
        self._seen[key] = None
        if len(self._seen) > _SEEN:
            self._seen.popitem(last=False)
        self.relay.metrics.callbacks.labels(name, "accepted").inc()
        if _text(inner, "ToUserName") and _text(inner, "ToUserName") != app.corp_id:
            return self._refused(name, "the event is addressed to another corp")
        cards = self.relay.cards
        if _text(inner, "Event") == "template_card_event" and cards is not None:
            # Acted on after this answer: WeCom waits 5 s, Alertmanager may take longer.
            click = Click(
                app=name,
                user=key[0],
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
            key[0] or "?",
            _text(inner, "EventKey") or "-",
        )
        return Response(b"")


def _xml(data: bytes) -> Element | None:
    """WeCom's XML, parsed without entity expansion or external references (defusedxml)."""
    try:
        return SafeXML.fromstring(data)
    except (SafeXML.ParseError, DefusedXmlException, ValueError):
        return None


def _text(root: Element, tag: str) -> str:
    node = root.find(tag)
    return (node.text or "").strip() if node is not None else ""
