"""OpenTelemetry traces (issue 24, part 3), against a real OTLP/HTTP receiver on loopback (tests/otlp.py)
and the simulator: one alert's path from Alertmanager's traceparent through the webhook, the outbox (and
a restart) and the delivery's stages to WeCom's errcode is one trace; sampling follows the caller; no
secret reaches a span; with tracing off nothing of OpenTelemetry is imported."""

from __future__ import annotations

import json
import ssl
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from alertmanager_wecom import samples
from alertmanager_wecom.config import ConfigError
from alertmanager_wecom.loading import parse_config
from alertmanager_wecom.simulator import SimulatorState
from alertmanager_wecom.simulator.model import SANDBOX_AGENT_ID, SANDBOX_SECRET
from alertmanager_wecom.web.app import create_app
from alertmanager_wecom.web.relay import Relay
from tests.helpers import SAMPLES, raw_config, wait_until
from tests.otlp import ReceivedSpan, Receiver, otlp_receiver
from tests.servers import free_port, self_signed, serve_in_thread

TRACE_ID = "4bf92f3577b34da6a3ce929d0e0e4736"
CALLER_SPAN = "00f067aa0ba902b7"
SAMPLED = f"00-{TRACE_ID}-{CALLER_SPAN}-01"  # what Alertmanager 0.30+ sends with a sampled trace
NOT_SAMPLED = f"00-{TRACE_ID}-{CALLER_SPAN}-00"
PAYLOAD = json.loads((SAMPLES / "am-0.25-firing-nodedown.json").read_text(encoding="utf-8"))
WEBHOOK = "POST /alerts/{receiver}"
STAGES = {"render", "wait for room", "write ahead", "send", "record"}


def tracing_config(api: str, tmp_path: Path, endpoint: str, **tracing: Any) -> dict[str, Any]:
    raw = raw_config(api, tmp_path, {"app": "ops", "to_user": ["zhangsan"], "msgtype": "markdown"})
    raw["tracing"] = {"endpoint": endpoint, "insecure": True, **tracing}
    return raw


@contextmanager
def traced_relay(raw: dict[str, Any]) -> Iterator[tuple[str, Relay]]:
    app = create_app(parse_config(raw))
    with serve_in_thread(app) as url:
        yield url, app.state.relay


def exported(relay: Relay, receiver: Receiver, name: str) -> list[ReceivedSpan]:
    """The spans named `name` the receiver has, after the relay exported what has ended."""
    relay.tracing.flush()
    return receiver.named(name)


def outcome(span: ReceivedSpan) -> Any:
    return span.attributes.get("alertmanager_wecom.outcome")


def settled(url: str, relay: Relay) -> bool:
    """Nothing left to deliver, and no target's task under way: the last delivery's span has ended (it
    ends just after the job is marked done, and the task after it)."""
    if httpx.get(f"{url}/readyz", timeout=5).json().get("pending") != 0:
        return False
    assert relay.dispatcher is not None
    return relay.dispatcher.busy == 0


def test_one_alerts_path_from_alertmanager_to_wecom_is_one_trace(
    simulator: str, sim_state: SimulatorState, tmp_path: Path
) -> None:
    header = tmp_path / "otlp-token"
    header.write_text("Bearer otlp-secret-4711\n", encoding="utf-8")
    with otlp_receiver() as (receiver, endpoint):
        # sampling_fraction 0 (Alertmanager's default): the trace is kept only because the caller sampled it.
        raw = tracing_config(simulator, tmp_path, endpoint, headers_file={"Authorization": str(header)})
        with traced_relay(raw) as (url, relay):
            answer = httpx.post(
                f"{url}/alerts/default", json=PAYLOAD, headers={"traceparent": SAMPLED}, timeout=30
            )
            assert answer.status_code == 200, answer.text
            wait_until(lambda: sim_state.entries("zhangsan"), what="delivery")
            wait_until(lambda: exported(relay, receiver, "deliver"), what="the delivery's span")

    [webhook] = receiver.named(WEBHOOK)
    assert (webhook.trace_id, webhook.parent_span_id, webhook.kind) == (TRACE_ID, CALLER_SPAN, "server")
    assert webhook.attributes["http.response.status_code"] == 200
    assert webhook.attributes["alertmanager_wecom.receiver"] == "default"
    [deliver] = receiver.named("deliver")
    assert (deliver.trace_id, deliver.parent_span_id) == (TRACE_ID, webhook.span_id)
    assert deliver.status_code != 2 and deliver.attributes["alertmanager_wecom.messages"] == 1
    assert outcome(deliver) == "delivered"
    spans = receiver.in_trace(TRACE_ID)
    stages = [s for s in spans if s.parent_span_id == deliver.span_id]
    assert {s.name for s in stages} == STAGES
    [send] = [s for s in stages if s.name == "send"]
    calls = {s.attributes["wecom.api"]: s for s in spans if s.parent_span_id == send.span_id}
    assert set(calls) == {"gettoken", "message/send"}  # the first send fetched the app's token
    assert calls["message/send"].name == "POST message/send" and calls["message/send"].kind == "client"
    assert calls["message/send"].attributes["wecom.errcode"] == 0
    assert calls["gettoken"].attributes["wecom.errcode"] == 0
    # Everything the service exported is in the caller's trace: nothing went astray in a trace of its own.
    assert {s.trace_id for s in receiver.spans} == {TRACE_ID}
    assert {s.service for s in receiver.spans} == {"alertmanager-wecom"}

    # The export carried the header read from headers_file; no span carries a secret, a token or a URL
    # with one (the token travels in message/send's query string).
    assert {h.get("authorization") for h in receiver.headers} == {"Bearer otlp-secret-4711"}
    assert sim_state.issued_tokens
    secrets = [SANDBOX_SECRET, "otlp-secret-4711", *sim_state.issued_tokens]
    for span in receiver.spans:
        for value in span.attributes.values():
            assert "access_token" not in str(value) and "corpsecret" not in str(value)
            assert not [secret for secret in secrets if secret in str(value)], span
    for body in receiver.bodies:  # the whole export: names, statuses, resource
        assert not [secret for secret in secrets if secret.encode() in body]


def test_a_delivery_after_a_restart_continues_the_webhooks_trace(
    simulator: str, sim_state: SimulatorState, tmp_path: Path
) -> None:
    with otlp_receiver() as (receiver, endpoint):
        # First WeCom cannot be reached (nothing listens there): the job stays in the outbox file.
        down = tracing_config(f"http://127.0.0.1:{free_port()}", tmp_path, endpoint)
        with traced_relay(down) as (url, relay):
            answer = httpx.post(
                f"{url}/alerts/default", json=PAYLOAD, headers={"traceparent": SAMPLED}, timeout=30
            )
            assert answer.status_code == 200, answer.text
            wait_until(lambda: exported(relay, receiver, "deliver"), what="a failed delivery's span")
        assert not sim_state.entries("zhangsan")
        # Another process, the same outbox file, WeCom back.
        with traced_relay(tracing_config(simulator, tmp_path, endpoint)) as (url, relay):
            wait_until(lambda: sim_state.entries("zhangsan"), what="delivery after the restart")
            wait_until(
                lambda: [s for s in exported(relay, receiver, "deliver") if outcome(s) == "delivered"],
                what="the successful delivery's span",
            )

    [webhook] = receiver.named(WEBHOOK)
    delivers = receiver.named("deliver")
    # (A delivery the first relay's shutdown interrupted, between attempts, may be there too: "stopped".)
    failed = [s for s in delivers if outcome(s) == "failed"]
    [ok] = [s for s in delivers if outcome(s) == "delivered"]
    assert failed and {s.status_code for s in failed} == {2} and ok.status_code != 2
    assert {s.attributes["alertmanager_wecom.reason"] for s in failed} == {"network"}
    assert {(s.trace_id, s.parent_span_id) for s in delivers} == {(TRACE_ID, webhook.span_id)}
    assert ok.attributes["alertmanager_wecom.attempt"] == len(failed) + 1
    [call] = [s for s in receiver.in_trace(TRACE_ID) if s.attributes.get("wecom.api") == "message/send"]
    assert call.attributes["wecom.errcode"] == 0  # the calls that never reached WeCom have no errcode


def test_a_digest_continues_the_first_merged_trace_and_links_the_others(
    simulator: str, sim_state: SimulatorState, tmp_path: Path
) -> None:
    callers = [f"{i:032x}" for i in range(1, 5)]
    with otlp_receiver() as (receiver, endpoint):
        # Four notifications wait in the outbox while WeCom is down...
        with traced_relay(tracing_config(f"http://127.0.0.1:{free_port()}", tmp_path, endpoint)) as (url, _):
            for i, trace_id in enumerate(callers):
                payload = {**PAYLOAD, "groupKey": f'{{}}:{{n="{i}"}}'}
                headers = {"traceparent": f"00-{trace_id}-{CALLER_SPAN}-01"}
                answer = httpx.post(f"{url}/alerts/default", json=payload, headers=headers, timeout=30)
                assert answer.json()["status"] == "accepted", answer.text
        # ... and then find room for two messages a minute: one digest carries them.
        raw = tracing_config(simulator, tmp_path, endpoint)
        raw["delivery"]["member_per_minute"] = 3
        with traced_relay(raw) as (url, relay):
            wait_until(lambda: sim_state.entries("zhangsan"), what="the digest")
            wait_until(
                lambda: [
                    s
                    for s in exported(relay, receiver, "deliver")
                    if s.attributes["alertmanager_wecom.digest_of"]
                ],
                what="the digest's delivery span",
            )
    webhooks = {s.trace_id: s for s in receiver.named(WEBHOOK)}
    assert set(webhooks) == set(callers)
    [digest] = [s for s in receiver.named("deliver") if s.attributes["alertmanager_wecom.digest_of"]]
    assert digest.attributes["alertmanager_wecom.digest_of"] == 4
    first = webhooks[callers[0]]
    assert (digest.trace_id, digest.parent_span_id) == (first.trace_id, first.span_id)
    assert sorted(digest.links) == sorted((webhooks[t].trace_id, webhooks[t].span_id) for t in callers[1:])


def test_a_button_press_on_a_card_continues_the_alerts_trace(
    simulator: str, sim_state: SimulatorState, tmp_path: Path
) -> None:
    vector = json.loads((SAMPLES / "wecom-callback-vectors.json").read_text(encoding="utf-8"))["vectors"][0]
    callback = {"token": vector["token"], "encoding_aes_key": vector["encoding_aes_key"]}
    with otlp_receiver() as (receiver, endpoint):
        raw = tracing_config(simulator, tmp_path, endpoint)
        raw["receivers"][0]["targets"] = [{"app": "ops", "to_user": ["zhangsan"], "msgtype": "template_card"}]
        raw["apps"]["ops"]["callback"] = callback
        raw["alertmanager"] = {"url": "http://127.0.0.1:9"}  # for the silence buttons; an ack needs none
        with traced_relay(raw) as (url, relay):
            saved = httpx.post(
                f"{simulator}/admin/callback",
                json={"agent_id": SANDBOX_AGENT_ID, "url": f"{url}/wecom/callback/ops", **callback},
                timeout=10,
            )
            assert saved.json()["saved"], saved.text
            answer = httpx.post(
                f"{url}/alerts/default", json=PAYLOAD, headers={"traceparent": SAMPLED}, timeout=30
            )
            assert answer.status_code == 200, answer.text
            card = wait_until(lambda: sim_state.entries("zhangsan"), what="the card")[0]
            pressed = httpx.post(
                f"{simulator}/admin/click",
                json={
                    "agent_id": SANDBOX_AGENT_ID,
                    "userid": "zhangsan",
                    "event_key": "ack",
                    "task_id": card["card"]["task_id"],
                },
                timeout=30,
            )
            assert pressed.status_code == 200, pressed.text
            wait_until(lambda: exported(relay, receiver, "card action"), what="the card action's span")
    # In the alert's trace, a child of the webhook's span: the card's story in one place.
    [webhook] = receiver.named(WEBHOOK)
    [action] = receiver.named("card action")
    assert (action.trace_id, action.parent_span_id) == (TRACE_ID, webhook.span_id)
    assert action.attributes["wecom.user"] == "zhangsan" and action.attributes["wecom.card.key"] == "ack"
    updates = [s for s in receiver.in_trace(TRACE_ID) if s.parent_span_id == action.span_id]
    assert updates and {(s.attributes["wecom.api"], s.attributes["wecom.errcode"]) for s in updates} == {
        ("message/update_template_card", 0)
    }


def test_a_receiver_that_is_down_costs_deliveries_nothing(
    simulator: str, sim_state: SimulatorState, tmp_path: Path
) -> None:
    # Spans are exported in the SDK's thread, never on a webhook's or a delivery's path.
    nobody = f"127.0.0.1:{free_port()}"
    raw = tracing_config(simulator, tmp_path, nobody, sampling_fraction=1.0, timeout="1s")
    with traced_relay(raw) as (url, _):
        for i in range(3):  # three different messages: WeCom drops a copy of one it had
            payload = samples.node_down(1, cluster=f"c{i}")
            assert httpx.post(f"{url}/alerts/default", json=payload, timeout=30).status_code == 200
        wait_until(lambda: len(sim_state.entries("zhangsan")) == 3, what="three deliveries")


def test_an_export_refused_is_logged_without_the_headers_secret(
    simulator: str, sim_state: SimulatorState, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    with otlp_receiver() as (receiver, endpoint):
        receiver.refuse = True
        raw = tracing_config(simulator, tmp_path, endpoint, sampling_fraction=1.0)
        raw["tracing"]["headers"] = {"Authorization": "Bearer echo-secret-0099"}
        with traced_relay(raw) as (url, relay):
            assert httpx.post(f"{url}/alerts/default", json=PAYLOAD, timeout=30).status_code == 200
            wait_until(lambda: sim_state.entries("zhangsan"), what="delivery")
            wait_until(lambda: settled(url, relay), what="the job done")
            relay.tracing.flush()
    refused = [r.getMessage() for r in caplog.records if r.name.startswith("opentelemetry.exporter")]
    assert refused and all("refused **********" in line for line in refused), refused
    assert not [line for line in caplog.messages if "echo-secret-0099" in line]


def test_https_to_the_receiver_with_tls_configs_ca_and_client_certificate(
    simulator: str, sim_state: SimulatorState, tmp_path: Path
) -> None:
    cert, key = self_signed(tmp_path, "otlp")
    # The receiver's certificate is signed by no CA the system knows, and it asks for ours (mutual TLS):
    # spans arrive only if both files of tls_config are used.
    tls = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    tls.load_cert_chain(cert, key)
    tls.verify_mode = ssl.CERT_REQUIRED
    tls.load_verify_locations(cert)
    with otlp_receiver(tls) as (receiver, endpoint):
        raw = tracing_config(simulator, tmp_path, endpoint, sampling_fraction=1.0)
        raw["tracing"]["insecure"] = False
        raw["tracing"]["tls_config"] = {"ca_file": str(cert), "cert_file": str(cert), "key_file": str(key)}
        with traced_relay(raw) as (url, relay):
            assert httpx.post(f"{url}/alerts/default", json=PAYLOAD, timeout=30).status_code == 200
            wait_until(lambda: exported(relay, receiver, "deliver"), what="the delivery's span over HTTPS")
    assert receiver.named(WEBHOOK)
    half = _config_error(tmp_path, {"endpoint": "c:4318", "tls_config": {"cert_file": str(cert)}})
    assert "cert_file and key_file go together" in half
    plain = _config_error(
        tmp_path, {"endpoint": "c:4318", "insecure": True, "tls_config": {"ca_file": str(cert)}}
    )
    assert "tls_config is for HTTPS" in plain


@pytest.mark.parametrize(
    ("fraction", "traceparent"),
    [(0.0, None), (0.0, NOT_SAMPLED), (1.0, NOT_SAMPLED)],
    ids=["fraction-0", "caller-not-sampled", "caller-not-sampled-fraction-1"],
)
def test_what_is_not_sampled_is_not_exported(
    simulator: str, sim_state: SimulatorState, tmp_path: Path, fraction: float, traceparent: str | None
) -> None:
    headers = {"traceparent": traceparent} if traceparent else {}
    with otlp_receiver() as (receiver, endpoint):
        raw = tracing_config(simulator, tmp_path, endpoint, sampling_fraction=fraction)
        with traced_relay(raw) as (url, relay):
            assert (
                httpx.post(f"{url}/alerts/default", json=PAYLOAD, headers=headers, timeout=30).status_code
                == 200
            )
            wait_until(lambda: sim_state.entries("zhangsan"), what="delivery")
            wait_until(lambda: settled(url, relay), what="the job done")
            relay.tracing.flush()
            assert receiver.spans == []


def test_without_a_valid_traceparent_a_sampled_trace_starts_at_the_webhook(
    simulator: str, sim_state: SimulatorState, tmp_path: Path
) -> None:
    with otlp_receiver() as (receiver, endpoint):
        raw = tracing_config(simulator, tmp_path, endpoint, sampling_fraction=1.0, compression="gzip")
        with traced_relay(raw) as (url, relay):
            # A header that does not parse is ignored (W3C), never a failed webhook.
            bad = {"traceparent": "00-not-a-trace-01"}
            assert (
                httpx.post(f"{url}/alerts/default", json=PAYLOAD, headers=bad, timeout=30).status_code == 200
            )
            wait_until(lambda: exported(relay, receiver, "deliver"), what="the delivery's span")
    [webhook] = receiver.named(WEBHOOK)
    [deliver] = receiver.named("deliver")
    assert webhook.parent_span_id == "" and webhook.trace_id != TRACE_ID
    assert (deliver.trace_id, deliver.parent_span_id) == (webhook.trace_id, webhook.span_id)


# -- off: nothing of OpenTelemetry -------------------------------------------------------------------

_BUILD_AND_POST = """
import asyncio, json, sys
import httpx
from alertmanager_wecom.loading import load_config
from alertmanager_wecom.web.app import create_app

async def main():
    app = create_app(load_config(sys.argv[1]))
    async with app.router.lifespan_context(app):  # the relay started, as uvicorn starts it
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://localhost") as client:  # a host the relay serves
            body = open(sys.argv[2], "rb").read()
            answer = await client.post("/alerts/default", content=body, headers={"traceparent": sys.argv[3]})
            assert answer.status_code == 200, answer.text

asyncio.run(main())
print(json.dumps(sorted(name for name in sys.modules if name.split(".")[0] == "opentelemetry")))
"""


def _imported(raw: dict[str, Any], tmp_path: Path) -> list[str]:
    config = tmp_path / "config.yaml"
    config.write_text(yaml.safe_dump(raw), encoding="utf-8")
    out = subprocess.run(
        [
            sys.executable,
            "-c",
            _BUILD_AND_POST,
            str(config),
            str(SAMPLES / "am-0.25-firing-nodedown.json"),
            SAMPLED,
        ],
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    ).stdout
    return list(json.loads(out.splitlines()[-1]))


def test_with_tracing_off_nothing_of_opentelemetry_is_imported(simulator: str, tmp_path: Path) -> None:
    raw = raw_config(simulator, tmp_path, {"app": "ops", "to_user": ["zhangsan"]})
    assert _imported(raw, tmp_path) == []
    # The same check sees the SDK when tracing is on: it can fail.
    with otlp_receiver() as (_, endpoint):
        raw["tracing"] = {"endpoint": endpoint, "insecure": True, "timeout": "2s"}
        assert "opentelemetry.sdk.trace" in _imported(raw, tmp_path)


# -- config -----------------------------------------------------------------------------------------


def _config_error(tmp_path: Path, tracing: dict[str, Any]) -> str:
    raw = raw_config("http://127.0.0.1:9", tmp_path, {"app": "ops", "to_user": ["zhangsan"]})
    raw["tracing"] = tracing
    with pytest.raises(ConfigError) as caught:
        parse_config(raw)
    return str(caught.value)


def test_tracing_is_off_by_default(tmp_path: Path) -> None:
    config = parse_config(raw_config("http://127.0.0.1:9", tmp_path, {"app": "ops", "to_user": ["zhangsan"]}))
    assert not config.tracing.enabled


def test_grpc_and_urls_are_refused_with_what_to_write_instead(tmp_path: Path) -> None:
    grpc = _config_error(tmp_path, {"endpoint": "collector:4317", "client_type": "grpc"})
    assert "tracing.client_type: grpc is not supported: set client_type: http" in grpc
    url = _config_error(tmp_path, {"endpoint": "http://collector:4318"})
    assert "tracing.endpoint" in url and "host:port" in url
    fraction = _config_error(tmp_path, {"endpoint": "collector:4318", "sampling_fraction": 1.5})
    assert "tracing.sampling_fraction" in fraction


def test_headers_come_from_files_masked_and_once(tmp_path: Path) -> None:
    token = tmp_path / "token"
    token.write_text("Bearer from-a-file-0042\n", encoding="utf-8")
    raw = raw_config("http://127.0.0.1:9", tmp_path, {"app": "ops", "to_user": ["zhangsan"]})
    raw["tracing"] = {
        "endpoint": "collector:4318",
        "headers": {"X-Scope-OrgID": "tenant-1"},
        "headers_file": {"Authorization": str(token)},
    }
    tracing = parse_config(raw).tracing
    assert {k: v.reveal() for k, v in tracing.headers.items()} == {
        "X-Scope-OrgID": "tenant-1",
        "Authorization": "Bearer from-a-file-0042",
    }
    assert "from-a-file" not in repr(tracing) and tracing.url == "https://collector:4318/v1/traces"
    both = _config_error(
        tmp_path, {"endpoint": "c:4318", "headers": {"A": "x"}, "headers_file": {"A": str(token)}}
    )
    assert "tracing.headers: A is set here and in headers_file" in both
    missing = _config_error(tmp_path, {"endpoint": "c:4318", "headers_file": {"A": str(tmp_path / "none")}})
    assert "tracing.headers_file.A: cannot read" in missing


def test_tracing_without_the_extra_says_how_to_install_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(sys.modules, "opentelemetry.sdk", None)  # as if the extra were not installed
    message = _config_error(tmp_path, {"endpoint": "collector:4318"})
    assert "pip install 'alertmanager-wecom[tracing]'" in message
