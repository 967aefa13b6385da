"""The outgoing webhook channel (issue 23's gateway for on-call escalation), through the real dispatcher
and outbox of tests/test_dispatcher.py (its fake clock), posting over real HTTP to a loopback receiver:
the body, the escalation step (rendered), retry on 503, a dead letter on 400, and the URL and headers never in a
log, an error or a metrics label."""

from __future__ import annotations

import asyncio
import json
import logging
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from prometheus_client import generate_latest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from alertmanager_wecom import samples
from alertmanager_wecom.channels import WebhookChannel, kind_of
from alertmanager_wecom.channels.webhook import body
from alertmanager_wecom.config import (
    Config,
    ConfigError,
    WebhookTarget,
    parse_target,
    target_spec,
    validate_target,
)
from alertmanager_wecom.config.targets import EscalationMark
from alertmanager_wecom.ingest.payload import Notification
from alertmanager_wecom.loading import parse_config
from alertmanager_wecom.outbox import JobState
from alertmanager_wecom.reasons import DeliveryError, Reason
from alertmanager_wecom.rendering.message import Message
from tests.helpers import raw_config
from tests.servers import serve_in_thread
from tests.test_dispatcher import FakeTime, relay, simulator

pytestmark = pytest.mark.anyio

URL_TOKEN = "url-token-6f1d2c9a"  # in the webhook's path: a secret like the header
HEADER_SECRET = "Bearer gw-secret-9b8e7d6c"


@dataclass
class Gateway:
    """A phone/SMS gateway of the user's own: answers each POST with the next scripted status (then
    200), and keeps what it got."""

    statuses: list[int] = field(default_factory=list)
    delay: float = 0.0
    got: list[tuple[dict[str, str], bytes]] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    async def hook(self, request: Request) -> Response:
        content = await request.body()
        with self.lock:
            self.got.append((dict(request.headers), content))
            status = self.statuses.pop(0) if self.statuses else 200
        if self.delay:
            await asyncio.sleep(self.delay)
        text = f"refused: bad body, your header was {request.headers.get('authorization')}"
        return Response(text if status >= 400 else "ok", status_code=status)

    @contextmanager
    def serving(self) -> Iterator[str]:
        app = Starlette(routes=[Route(f"/hook/{URL_TOKEN}", self.hook, methods=["POST"])])
        with serve_in_thread(app) as base:
            yield f"{base}/hook/{URL_TOKEN}"


def webhook_config(tmp_path: Path, url: str, **webhook: Any) -> Config:
    secret_file = tmp_path / "gateway-auth"
    secret_file.write_text(HEADER_SECRET + "\n", encoding="utf-8")
    raw = raw_config("http://sim", tmp_path, {"webhook": "pager"})
    raw["webhooks"] = {
        "pager": {
            "url": url,
            "headers": {"X-Team": "sre"},
            "headers_file": {"Authorization": str(secret_file)},
            **webhook,
        }
    }
    raw["delivery"] = {"retry_initial": "1s", "retry_max": "5s", "poll_interval": "1s"}
    return parse_config(raw)


def no_secret_in(*texts: str) -> None:
    for text in texts:
        assert URL_TOKEN not in text and "gw-secret" not in text, text


async def test_the_alerts_are_posted_as_json_with_the_secret_header(tmp_path: Path) -> None:
    gateway = Gateway()
    time = FakeTime()
    with gateway.serving() as url:
        config = webhook_config(tmp_path, url)
        async with relay(config, simulator(time), time) as r:
            await r.queue(samples.node_down(2))
            await r.dispatcher.start()
            await r.run_until_delivered()
            sent_count = r.count(
                "messages_sent", receiver="default", channel="webhook", target="webhook:pager"
            )
    [(headers, content)] = gateway.got
    assert sent_count == 1
    assert headers["authorization"] == HEADER_SECRET and headers["x-team"] == "sre"
    assert headers["content-type"] == "application/json; charset=utf-8"
    sent = json.loads(content)
    assert (sent["receiver"], sent["status"], sent["truncatedAlerts"]) == ("wecom", "firing", 0)  # as sent
    assert sent["groupKey"] and sent["groupLabels"] == {"alertname": "NodeDown"}
    assert len(sent["alerts"]) == 2 and "escalation" not in sent
    alert = sent["alerts"][0]
    assert set(alert) >= {"status", "labels", "annotations", "startsAt", "generatorURL"}
    assert alert["labels"]["alertname"] == "NodeDown" and alert["status"] == "firing"


def test_an_escalation_steps_post_says_which_step(tmp_path: Path) -> None:
    config = webhook_config(tmp_path, "http://gw.example/hook")
    # An escalation step's stored target carries its mark (ingest/escalation.py stores it so).
    mark = EscalationMark(policy="sre", round=1, step=0, after=600.0)
    step = parse_target(
        target_spec(validate_target({"webhook": "pager"}).model_copy(update={"escalation_step": mark}))
    )
    render = kind_of(step).renders(step, config)
    assert render is not None
    [message] = render(Notification.model_validate(samples.node_down(1)))
    # The first notification is level 1: the policy's first step is level 2.
    escalation = json.loads(message.content)["escalation"]
    assert escalation == {"policy": "sre", "level": 2, "round": 1, "after_seconds": 600.0}


async def test_a_503_is_retried_and_nothing_secret_is_logged(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    gateway = Gateway(statuses=[503, 503])
    time = FakeTime()
    with gateway.serving() as url:
        async with relay(webhook_config(tmp_path, url), simulator(time), time) as r:
            await r.queue(samples.node_down(1))
            await r.dispatcher.start()
            await r.run_until_delivered()
            [job] = await r.jobs()
            failed = r.count(
                "messages_failed",
                receiver="default",
                channel="webhook",
                target="webhook:pager",
                reason="http_error",
            )
            metrics_text = generate_latest(r.metrics.registry).decode()
    assert job.state == JobState.DONE and job.attempts == 2 and failed == 2
    assert len(gateway.got) == 3 and len({content for _, content in gateway.got}) == 1  # the same body
    assert r.count("wecom_errors", errcode="503") == 2
    no_secret_in(caplog.text, metrics_text, job.last_error or "")
    assert "webhook:pager answered HTTP 503" in caplog.text


async def test_a_400_is_a_dead_letter_at_once_with_the_answer(tmp_path: Path) -> None:
    gateway = Gateway(statuses=[400])
    time = FakeTime()
    with gateway.serving() as url:
        async with relay(webhook_config(tmp_path, url), simulator(time), time) as r:
            await r.queue(samples.node_down(1))
            await r.dispatcher.start()

            async def dead() -> bool:
                return bool(await r.outbox.list_jobs(JobState.DEAD, 1))

            await r.run_until(dead)
            [job] = await r.jobs(JobState.DEAD)
    assert len(gateway.got) == 1 and job.reason == Reason.HTTP_ERROR
    error = job.last_error or ""
    assert "webhook:pager answered HTTP 400: refused: bad body" in error
    no_secret_in(error)  # the gateway quoted the header back: redacted


async def test_a_timeout_is_retryable_and_may_have_been_delivered(tmp_path: Path) -> None:
    gateway = Gateway(delay=1.0)
    with gateway.serving() as url:
        config = webhook_config(tmp_path, url, timeout="200ms")
        target = validate_target({"webhook": "pager"})
        channel = kind_of(target).build(target, config, None, {})  # type: ignore[arg-type]  # no WeCom
        assert isinstance(channel, WebhookChannel) and channel.name == "webhook:pager"
        with pytest.raises(DeliveryError) as info:
            await channel.send(Message("json", "{}"))
    assert info.value.retryable and info.value.maybe_delivered and info.value.reason == Reason.NETWORK
    no_secret_in(str(info.value), repr(channel.webhook))


def test_the_body_fits_max_body_bytes_and_counts_what_it_left_out() -> None:
    payload = samples.node_down(200)
    payload["alerts"][0]["annotations"]["description"] = "长" * 100_000  # hostile: one huge value
    notification = Notification.model_validate(payload)
    target = validate_target({"webhook": "pager"})
    assert isinstance(target, WebhookTarget)
    text = body(notification, target, 16_384)
    sent = json.loads(text)
    assert len(text.encode()) <= 16_384
    assert 0 < len(sent["alerts"]) < 200 and sent["truncatedAlerts"] == 200 - len(sent["alerts"])
    assert sent["alerts"][0]["annotations"]["description"].startswith("长")  # cut, not dropped
    small = Notification.model_validate(samples.node_down(2))
    assert json.loads(body(small, target, 16_384))["truncatedAlerts"] == 0


def test_config_names_the_webhook_and_refuses_what_a_webhook_cannot_do(tmp_path: Path) -> None:
    raw = raw_config("http://sim", tmp_path, {"webhook": "nope"})
    raw["webhooks"] = {"pager": {"url": "http://gw.example/x"}}
    with pytest.raises(
        ConfigError, match=r"receivers\[0\].targets\[0\].webhook: unknown webhook 'nope' \(webhooks: pager\)"
    ):
        parse_config(raw)
    with pytest.raises(ValueError, match="a webhook posts to its own URL: drop to_user"):
        validate_target({"webhook": "pager", "to_user": ["a"]})
    with pytest.raises(ValueError, match="not a message: drop template/msgtype"):
        validate_target({"webhook": "pager", "template": "t.j2", "msgtype": "text"})
    raw["receivers"][0]["targets"] = [{"webhook": "pager"}]
    raw["webhooks"]["pager"]["headers"] = {"Content-Type": "text/plain"}
    with pytest.raises(ConfigError, match="Content-Type: set by the service"):
        parse_config(raw)
    # Stored and read back as any target; the stored layout of the others is untouched.
    target = validate_target({"webhook": "pager", "send_resolved": False})
    assert parse_target(target_spec(target)) == target and target_spec(target).endswith(',"webhook":"pager"}')
