"""The callback URL (issue 11, first step): WeCom's crypto against its published vectors, and the route
/wecom/callback/<app> over real HTTP: URL verification, signed and encrypted events, and everything that
must be refused (forged, replayed, another corp's, malformed), with no secret in any answer or log."""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from alertmanager_wecom.channels.checks import run_checks
from alertmanager_wecom.config import ConfigError
from alertmanager_wecom.loading import parse_config
from alertmanager_wecom.simulator.model import SANDBOX_SECRET
from alertmanager_wecom.web.app import create_app
from alertmanager_wecom.wecom.callback_crypto import CallbackCrypto, CallbackError
from tests.helpers import SAMPLES, raw_config, signed_event
from tests.servers import free_port, serve_in_thread

# The published vectors (WeCom's official sample code and its documentation's worked example).
VECTORS = json.loads((SAMPLES / "wecom-callback-vectors.json").read_text(encoding="utf-8"))["vectors"]
OFFICIAL = VECTORS[0]


@pytest.mark.parametrize("vector", VECTORS, ids=[v["name"] for v in VECTORS])
def test_the_published_vectors(vector: dict[str, Any]) -> None:
    crypto = CallbackCrypto(vector["token"], vector["encoding_aes_key"], vector["receive_id"])
    for part, encrypted in (("verify_url", "echostr"), ("message", "encrypt")):
        case = vector[part]
        assert crypto.signature(case["timestamp"], case["nonce"], case[encrypted]) == case["msg_signature"]
        crypto.check_signature(case["msg_signature"], case["timestamp"], case["nonce"], case[encrypted])
        assert crypto.decrypt(case[encrypted]) == case["plaintext"]


def test_what_we_encrypt_wecom_decrypts_and_tampering_is_refused() -> None:
    crypto = CallbackCrypto(OFFICIAL["token"], OFFICIAL["encoding_aes_key"], OFFICIAL["receive_id"])
    for message in ("", "x", "好" * 11, "a" * 32, "<xml>" + "b" * 1000 + "</xml>"):  # around block edges
        assert crypto.decrypt(crypto.encrypt(message)) == message
    other_corp = CallbackCrypto(OFFICIAL["token"], OFFICIAL["encoding_aes_key"], "ww-another-corp")
    with pytest.raises(CallbackError, match="another corp"):
        crypto.decrypt(other_corp.encrypt("hello"))
    other_key = CallbackCrypto(OFFICIAL["token"], "A" * 43, OFFICIAL["receive_id"])
    with pytest.raises(CallbackError):
        crypto.decrypt(other_key.encrypt("hello"))
    with pytest.raises(CallbackError, match="signature"):
        crypto.check_signature("0" * 40, "1", "2", crypto.encrypt("x"))
    for junk in ("not base64!", "QUJD", ""):
        with pytest.raises(CallbackError):
            crypto.decrypt(junk)


def _config(simulator: str, tmp_path: Path, **callback: Any) -> dict[str, Any]:
    raw = raw_config(simulator, tmp_path, {"app": "ops", "to_user": ["zhangsan"]})
    raw["apps"]["cb"] = {
        "corp_id": OFFICIAL["receive_id"],
        "agent_id": 1000002,
        "secret": "cb-secret",
        "callback": {
            "token": OFFICIAL["token"],
            "encoding_aes_key": OFFICIAL["encoding_aes_key"],
            **callback,
        },
    }
    return raw


@pytest.fixture
def relay(simulator: str, tmp_path: Path) -> Iterator[str]:
    with serve_in_thread(create_app(parse_config(_config(simulator, tmp_path)))) as url:
        yield url


CLICK = (
    "<xml><ToUserName><![CDATA[ww1436e0e65a779aee]]></ToUserName><FromUserName><![CDATA[zhangsan]]></FromUserName>"
    "<CreateTime>{t}</CreateTime><MsgType><![CDATA[event]]></MsgType><Event><![CDATA[template_card_event]]></Event>"
    "<AgentID>1000002</AgentID><EventKey><![CDATA[silence_1h]]></EventKey><TaskId><![CDATA[t1]]></TaskId></xml>"
)


def _metric(relay: str, outcome: str) -> float:
    text = httpx.get(f"{relay}/metrics", timeout=10).text
    line = f'alertmanager_wecom_callbacks_received_total{{app="cb",outcome="{outcome}"}}'
    return next((float(row.split()[-1]) for row in text.splitlines() if row.startswith(line)), 0.0)


def test_url_verification_answers_the_plaintext_only(relay: str) -> None:
    case = OFFICIAL["verify_url"]
    # The published example is signed for its own day, long past: a URL check has the same timestamp
    # window as events (issue 20), so a captured one cannot be replayed.
    old = {k: case[k] for k in ("msg_signature", "timestamp", "nonce", "echostr")}
    stale = httpx.get(f"{relay}/wecom/callback/cb", params=old, timeout=10)
    assert stale.status_code == 403 and "timestamp" in stale.json()["error"]
    crypto = CallbackCrypto(OFFICIAL["token"], OFFICIAL["encoding_aes_key"], OFFICIAL["receive_id"])
    plaintext, query = crypto.url_check(int(time.time()))
    answer = httpx.get(f"{relay}/wecom/callback/cb", params=query, timeout=10)
    assert (answer.status_code, answer.content) == (200, plaintext.encode())
    forged = httpx.get(f"{relay}/wecom/callback/cb", params={**query, "msg_signature": "0" * 40}, timeout=10)
    assert forged.status_code == 403 and "signature" in forged.json()["error"]
    assert httpx.get(f"{relay}/wecom/callback/cb", params={"echostr": "x"}, timeout=10).status_code == 400
    assert (
        httpx.get(f"{relay}/wecom/callback/ops", params=query, timeout=10).status_code == 404
    )  # no callback
    assert httpx.get(f"{relay}/wecom/callback/nope", params=query, timeout=10).status_code == 404
    assert _metric(relay, "verified") == 1 and _metric(relay, "refused") == 2


def test_an_event_is_taken_once_and_forgeries_do_nothing(
    relay: str, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    crypto = CallbackCrypto(OFFICIAL["token"], OFFICIAL["encoding_aes_key"], OFFICIAL["receive_id"])
    now = int(time.time())
    url = f"{relay}/wecom/callback/cb"
    query, body = signed_event(crypto, CLICK.format(t=now), now)
    first = httpx.post(url, params=query, content=body, timeout=10)
    assert (first.status_code, first.content) == (200, b"")  # no passive reply
    again = httpx.post(url, params=query, content=body, timeout=10)  # WeCom's retry
    assert (again.status_code, again.content) == (200, b"")
    assert _metric(relay, "accepted") == 1 and _metric(relay, "duplicate") == 1
    assert (
        sum(
            "template_card_event" in r.getMessage() and "silence_1h" in r.getMessage() for r in caplog.records
        )
        == 1
    )

    refused = []
    # Replayed: the vector's real, signed message from 2016.
    case = OFFICIAL["message"]
    old = {k: case[k] for k in ("msg_signature", "timestamp", "nonce")}
    old_body = f"<xml><Encrypt><![CDATA[{case['encrypt']}]]></Encrypt></xml>".encode()
    refused.append(httpx.post(url, params=old, content=old_body, timeout=10))
    # Forged: signed with another token.
    forger = CallbackCrypto("not-the-token", OFFICIAL["encoding_aes_key"], OFFICIAL["receive_id"])
    refused.append(
        httpx.post(
            url,
            params=signed_event(forger, CLICK.format(t=now + 1), now)[0],
            content=signed_event(forger, CLICK.format(t=now + 1), now)[1],
            timeout=10,
        )
    )
    # Another corp's message, signed with our token.
    other = CallbackCrypto(OFFICIAL["token"], OFFICIAL["encoding_aes_key"], "ww-another-corp")
    q, b = signed_event(other, CLICK.format(t=now + 2), now)
    refused.append(httpx.post(url, params=q, content=b, timeout=10))
    assert [r.status_code for r in refused] == [403, 403, 403]
    assert "replay" in refused[0].json()["error"] and "another corp" in refused[2].json()["error"]

    bad = [
        httpx.post(url, params=query, content=b"not xml", timeout=10),
        httpx.post(url, params=query, content=b"<xml><Nothing/></xml>", timeout=10),
        httpx.post(url, params={**query, "timestamp": "soon"}, content=body, timeout=10),
        httpx.post(
            url,
            params=query,
            content=b'<?xml version="1.0"?><!DOCTYPE x [<!ENTITY a "aaaaaaaaaa"><!ENTITY b "&a;&a;&a;&a;">]><xml><Encrypt>&b;</Encrypt></xml>',
            timeout=10,
        ),
        httpx.post(url, params=query, content=b"<xml>" + b"x" * 70_000 + b"</xml>", timeout=10),
    ]
    assert [r.status_code for r in bad] == [400] * 5
    assert _metric(relay, "accepted") == 1  # nothing of the above was taken
    everything = " ".join([*(r.text for r in refused + bad), caplog.text])
    assert OFFICIAL["token"] not in everything and OFFICIAL["encoding_aes_key"] not in everything


def test_callback_settings_are_checked_at_load(simulator: str, tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"apps\.cb\.callback\.encoding_aes_key: .*43"):
        parse_config(_config(simulator, tmp_path, encoding_aes_key="too-short"))
    (tmp_path / "token").write_text(OFFICIAL["token"] + "\n", encoding="utf-8")
    raw = _config(simulator, tmp_path)
    del raw["apps"]["cb"]["callback"]["token"]
    raw["apps"]["cb"]["callback"]["token_file"] = str(tmp_path / "token")
    config = parse_config(raw)
    callback = config.apps["cb"].callback
    assert callback is not None and callback.token.reveal() == OFFICIAL["token"]
    assert OFFICIAL["token"] not in repr(config)


def test_check_calls_the_callback_url_as_wecom_does(simulator: str, tmp_path: Path) -> None:
    served = _config(simulator, tmp_path)
    with serve_in_thread(create_app(parse_config(served))) as relay:

        def check(**callback: Any) -> str:
            raw = _config(simulator, tmp_path, **callback)
            config = parse_config(raw)

            async def run() -> str:
                async with httpx.AsyncClient(timeout=5) as client:
                    results = await run_checks(config, client, send=False)
                return next(r.line() for r in results if r.subject == "app cb callback")

            return asyncio.run(run())

        url = f"{relay}/wecom/callback/cb"
        assert check(url=url).startswith("OK   app cb callback: ") and "answered WeCom's URL check" in check(
            url=url
        )
        wrong_token = check(url=url, token="another-token")
        assert wrong_token.startswith("FAIL") and "HTTP 403" in wrong_token and "another token" in wrong_token
        assert "another-token" not in wrong_token
        wrong_path = check(url=f"{relay}/wecom/callback/ops")
        assert wrong_path.startswith("FAIL") and "HTTP 404" in wrong_path
        assert "cannot be reached" in check(url=f"http://127.0.0.1:{free_port()}/wecom/callback/cb")
        assert "set apps.cb.callback.url" in check()


def test_the_simulator_saves_the_callback_url_and_delivers_a_click(
    simulator: str, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """WeCom's side, played by the simulator: saving the URL verifies it; a card click arrives once."""
    caplog.set_level(logging.INFO)
    raw = _config(simulator, tmp_path)
    raw["apps"]["ops"]["callback"] = raw["apps"]["cb"]["callback"]
    with serve_in_thread(create_app(parse_config(raw))) as relay:
        callback = {"agent_id": 1000002, "url": f"{relay}/wecom/callback/ops", "token": OFFICIAL["token"]}
        wrong = httpx.post(
            f"{simulator}/admin/callback",
            json={**callback, "token": "x", "encoding_aes_key": OFFICIAL["encoding_aes_key"]},
        )
        assert wrong.status_code == 422 and "回调地址验证失败" in wrong.json()["error"]
        saved = httpx.post(
            f"{simulator}/admin/callback", json={**callback, "encoding_aes_key": OFFICIAL["encoding_aes_key"]}
        )
        assert saved.json() == {"saved": True, "url": callback["url"]}
        click = {"agent_id": 1000002, "userid": "zhangsan", "event_key": "ack", "task_id": "t-1"}
        nothing = httpx.post(f"{simulator}/admin/callback/click", json=click, timeout=10)
        assert nothing.status_code == 404  # a person can press only the buttons of a card they got
        token = httpx.get(
            f"{simulator}/cgi-bin/gettoken",
            params={"corpid": "wwsandbox0000001", "corpsecret": SANDBOX_SECRET},
        ).json()["access_token"]
        card = {
            "card_type": "button_interaction",
            "main_title": {"title": "t"},
            "task_id": "t-1",
            "button_list": [{"text": "认领", "key": "ack"}],
        }
        sent = httpx.post(
            f"{simulator}/cgi-bin/message/send",
            params={"access_token": token},
            json={
                "agentid": 1000002,
                "touser": "zhangsan",
                "msgtype": "template_card",
                "template_card": card,
            },
        ).json()
        assert sent["errcode"] == 0, sent
        assert httpx.post(f"{simulator}/admin/callback/click", json=click, timeout=10).json() == {
            "sent": True,
            "status": 200,
            "attempts": 1,
        }
    events = [r.getMessage() for r in caplog.records if "template_card_event" in r.getMessage()]
    assert events == ["callback for app ops: event template_card_event from zhangsan (key ack)"]


@settings(max_examples=200, deadline=None)
@given(message=st.text(max_size=3000), receive_id=st.from_regex(r"ww[0-9a-f]{16}", fullmatch=True))
def test_encrypt_then_decrypt_round_trips(message: str, receive_id: str) -> None:
    """Whatever the message (any length around the 32-byte blocks, any characters), what is encrypted for
    a corp decrypts to it for that corp, with a valid signature, and is refused for another corp."""
    crypto = CallbackCrypto(OFFICIAL["token"], OFFICIAL["encoding_aes_key"], receive_id)
    encrypted = crypto.encrypt(message)
    crypto.check_signature(crypto.signature("1", "2", encrypted), "1", "2", encrypted)
    assert crypto.decrypt(encrypted) == message
    other = CallbackCrypto(OFFICIAL["token"], OFFICIAL["encoding_aes_key"], receive_id + "x")
    with pytest.raises(CallbackError):
        other.decrypt(encrypted)
