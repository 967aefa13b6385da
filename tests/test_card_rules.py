"""Alert cards without Alertmanager: what the config refuses, what a card may hold (property test against
the simulator's checks with hostile alert data), the simulator's response codes and task ids, and the
fallback message when a card cannot be updated any more."""

from __future__ import annotations

import asyncio
import json
import re
import sqlite3
from pathlib import Path
from typing import Any

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from alertmanager_wecom.actions.sqlite_store import actions_path
from alertmanager_wecom.config import AppTarget, ConfigError
from alertmanager_wecom.config.targets import CardSettings, parse_target, target_spec
from alertmanager_wecom.ingest.payload import Notification
from alertmanager_wecom.loading import parse_config
from alertmanager_wecom.rendering.card import CardBuilder, CardState, task_id_for
from alertmanager_wecom.rendering.fit import byte_len
from alertmanager_wecom.simulator.callbacks import CallbackSender, SavedCallback
from alertmanager_wecom.simulator.model import SANDBOX_AGENT_ID, SANDBOX_SECRET, sandbox_settings
from alertmanager_wecom.simulator.state import SimulatorState
from alertmanager_wecom.web.app import create_app
from alertmanager_wecom.wecom.callback_crypto import CallbackCrypto
from tests.helpers import SAMPLES, pending, post, raw_config, wait_until
from tests.servers import serve_in_thread

VECTOR = json.loads((SAMPLES / "wecom-callback-vectors.json").read_text(encoding="utf-8"))["vectors"][0]
CALLBACK = {"token": VECTOR["token"], "encoding_aes_key": VECTOR["encoding_aes_key"]}


def _raw(tmp_path: Path, callback: bool = True, **target: Any) -> dict[str, Any]:
    spec = {"app": "ops", "to_user": ["zhangsan"], "msgtype": "template_card", **target}
    raw = raw_config("http://127.0.0.1:9", tmp_path, spec)
    if callback:
        raw["apps"]["ops"]["callback"] = dict(CALLBACK)
    raw["alertmanager"] = {"url": "http://127.0.0.1:9093"}
    return raw


def test_the_config_refuses_cards_wecom_would_not_send(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"only for apps with a callback URL: set apps\.ops\.callback"):
        parse_config(_raw(tmp_path, callback=False))
    robot = _raw(tmp_path)
    robot["receivers"][0]["targets"] = [{"robot": "sre", "msgtype": "template_card"}]
    with pytest.raises(ConfigError, match="robots get no clicks"):
        parse_config(robot)
    with pytest.raises(ConfigError, match="appchat/send sends no template cards"):
        parse_config(_raw(tmp_path, to_user=[], chat="c1"))
    with pytest.raises(ConfigError, match="card: settings for msgtype template_card"):
        parse_config(_raw(tmp_path, msgtype="markdown", card={"buttons": [{"action": "ack"}]}))
    with pytest.raises(ConfigError, match="needs a duration"):
        parse_config(_raw(tmp_path, card={"buttons": [{"action": "silence"}]}))
    with pytest.raises(ConfigError, match="at most 6"):
        parse_config(_raw(tmp_path, card={"buttons": [{"action": "ack"}] * 7}))
    no_am = _raw(tmp_path)
    del no_am["alertmanager"]
    with pytest.raises(ConfigError, match="silence buttons need Alertmanager's API"):
        parse_config(no_am)
    # Acknowledge only: no Alertmanager needed; render.alertmanager_url is enough for silences.
    parse_config({**no_am, "receivers": _raw(tmp_path, card={"buttons": [{"action": "ack"}]})["receivers"]})
    config = parse_config({**no_am, "render": {"alertmanager_url": "http://am:9093"}})
    receiver = config.receivers[0]
    assert config.alertmanager_for(receiver) is not None


def test_a_target_without_card_settings_keeps_its_stored_spec(tmp_path: Path) -> None:
    """Adding `card` to targets must not change the stored spec (the target key) of existing targets."""
    config = parse_config(raw_config("http://127.0.0.1:9", tmp_path, {"app": "ops", "to_user": ["a"]}))
    spec = target_spec(config.receivers[0].targets[0])
    assert '"card"' not in spec
    card = parse_config(_raw(tmp_path, card={"ack_quiet": "30m"})).receivers[0].targets[0]
    again = parse_target(target_spec(card))
    assert isinstance(again, AppTarget)
    assert again == card and again.card is not None and again.card.ack_quiet == 1800


label_text = st.text(st.characters(codec="utf-8"), max_size=300)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    name=label_text,
    instance=label_text,
    summary=label_text,
    severity=label_text,
    count=st.integers(1, 30),
    language=st.sampled_from(["zh", "en"]),
    acked=label_text,
    job_id=st.integers(0, 10**12),
)
def test_every_card_fits_wecom_whatever_the_alerts_say(
    name: str, instance: str, summary: str, severity: str, count: int, language: str, acked: str, job_id: int
) -> None:
    state = SimulatorState(sandbox_settings())
    state.callback_apps.add(SANDBOX_AGENT_ID)
    alerts = [
        {
            "status": "firing",
            "labels": {"alertname": name, "instance": instance, "severity": severity, "n": str(i)},
            "annotations": {"summary": summary},
            "startsAt": "2026-11-28T10:00:00Z",
            "generatorURL": "javascript:alert(1)",
        }
        for i in range(count)
    ]
    notification = Notification.model_validate(
        {"status": "firing", "groupKey": name, "groupLabels": {"alertname": name}, "alerts": alerts}
    )
    task_id = task_id_for("default", name, job_id, 1.5e9)
    builder = CardBuilder(CardSettings(), language, "Asia/Shanghai", "http://am:9093")
    card = builder.build(notification, task_id, CardState(acked_by=acked, acked_at=1.7e9))
    assert re.fullmatch(r"[0-9A-Za-z_\-@]{1,128}", card["task_id"]) and byte_len(card["task_id"]) <= 128
    assert len(card["main_title"]["title"]) <= 36 and len(card["main_title"]["desc"]) <= 44
    assert len(card.get("sub_title_text", "")) <= 160
    for item in card["horizontal_content_list"]:
        assert len(item["keyname"]) <= 5 and len(item["value"]) <= 30
        assert "\n" not in item["value"]
    for button in card["button_list"]:
        assert 1 <= len(button["text"]) <= 10
        assert button.get("url", "http://").startswith("http")  # never the alert's javascript: URL
    assert state.check_card(SANDBOX_AGENT_ID, card) is None  # WeCom would take it


def _token(state: SimulatorState) -> str:
    return str(state.gettoken({"corpid": "wwsandbox0000001", "corpsecret": SANDBOX_SECRET})["access_token"])


def _card(task_id: str) -> dict[str, Any]:
    return {
        "card_type": "button_interaction",
        "main_title": {"title": "t"},
        "task_id": task_id,
        "button_list": [{"text": "认领", "key": "ack"}],
    }


def _send(state: SimulatorState, token: str, card: dict[str, Any]) -> dict[str, Any]:
    body = {
        "agentid": SANDBOX_AGENT_ID,
        "msgtype": "template_card",
        "touser": "zhangsan|lisi",
        "template_card": card,
    }
    return state.message_send({"access_token": token}, json.dumps(body).encode(), "127.0.0.1")


def test_the_simulator_holds_cards_to_wecom_rules() -> None:
    clock = [1000.0]
    state = SimulatorState(sandbox_settings(), clock=lambda: clock[0])
    token = _token(state)
    refused = _send(state, token, _card("t1"))
    assert refused["errcode"] == 40058 and "callback" in refused["errmsg"]
    state.callback_apps.add(SANDBOX_AGENT_ID)
    sent = _send(state, token, _card("t1"))
    assert sent["errcode"] == 0 and sent["response_code"]
    assert _send(state, token, _card("t1"))["errcode"] == 40058  # task_id unique per app
    assert _send(state, token, _card("bad id!"))["errcode"] == 40058
    assert (
        _send(state, token, {**_card("t2"), "button_list": [{"text": "x", "key": "k"}] * 2})["errcode"]
        == 40058
    )

    def update(code: str, **extra: Any) -> dict[str, Any]:
        body = {"agentid": SANDBOX_AGENT_ID, "response_code": code, **extra}
        return state.update_template_card({"access_token": _token(state)}, json.dumps(body).encode())

    new = {**_card("t1"), "main_title": {"title": "已静默"}}
    assert update(sent["response_code"], userids=["lisi"], template_card=new)["errcode"] == 0
    shown = {e.recipient: e.visible for e in state.inbox}
    assert shown["lisi"].startswith("已静默") and shown["zhangsan"].startswith("t")  # only lisi's
    assert update(sent["response_code"], atall=1, template_card=new)["errcode"] == 60140  # used once
    code = state.click_code(SANDBOX_AGENT_ID, "t1")
    clock[0] += 72 * 3600 + 1
    assert update(code, atall=1, template_card=new)["errcode"] == 60140  # older than 72 h
    code = state.click_code(SANDBOX_AGENT_ID, "t1")
    assert update(code, atall=1, button={"replace_name": "已处理"})["errcode"] == 0
    assert all(e.visible.endswith("[已处理]") for e in state.inbox)


def test_no_code_left_the_resolution_goes_out_as_a_short_message(
    simulator: str, sim_state: SimulatorState, tmp_path: Path
) -> None:
    sim_state.callback_apps.add(SANDBOX_AGENT_ID)
    raw = _raw(tmp_path, card={"resolved_message": False})
    raw["wecom"]["api_url"] = f"{simulator}/cgi-bin/"
    raw["server"] = {"admin_allow_loopback": True}
    firing = json.loads((SAMPLES / "am-0.25-firing-nodedown.json").read_text(encoding="utf-8"))
    resolved = json.loads((SAMPLES / "am-0.25-resolved-nodedown.json").read_text(encoding="utf-8"))
    with serve_in_thread(create_app(parse_config(raw))) as relay:
        assert post(relay, firing).status_code == 200
        wait_until(lambda: any(e.card for e in sim_state.inbox), 15, "the card")
        sim_state.card_codes.clear()  # as if 72 h had passed: every code the relay holds is refused
        assert post(relay, resolved).status_code == 200
        told = wait_until(
            lambda: [e for e in sim_state.inbox if e.msgtype == "text" and "已恢复" in e.visible],
            15,
            "a message",
        )
        assert {e.recipient for e in told} == {"zhangsan"} and "NodeDown" in told[0].visible
        assert not any(e.card and "已恢复" in e.visible for e in sim_state.inbox)  # the card was not updated
        assert sim_state.errors.get("60140") == 1
        listed = httpx.get(f"{relay}/api/actions", timeout=5).json()
        assert [c["resolved"] for c in listed["cards"]] == [True]
        assert listed["cards"][0]["state"]["resolved_at"] > 0
        assert VECTOR["token"] not in json.dumps(listed) and SANDBOX_SECRET not in json.dumps(listed)


@pytest.mark.anyio
async def test_the_simulator_retries_a_click_like_wecom_when_no_answer_comes_in_time() -> None:
    """WeCom tries an event 3 times when no answer comes within 5 s (here: 0.3 s): the same event each time."""
    seen: list[tuple[str, bytes]] = []
    third = asyncio.Event()  # used on the server's loop only

    async def slow(request: Request) -> Response:
        seen.append((str(request.url.query), await request.body()))
        if len(seen) < 3:  # no answer until WeCom has tried again, and again
            await asyncio.wait_for(third.wait(), 10)
        third.set()
        return Response(b"")

    crypto = CallbackCrypto(VECTOR["token"], VECTOR["encoding_aes_key"], "wwsandbox0000001")
    sender = CallbackSender(answer_within=0.3)
    with serve_in_thread(Starlette(routes=[Route("/cb", slow, methods=["POST"])])) as url:
        sender.saved[SANDBOX_AGENT_ID] = SavedCallback(f"{url}/cb", crypto)
        result = await sender.click(SANDBOX_AGENT_ID, "zhangsan", "ack", "t1", "code-1")
    assert result == {"sent": True, "status": 200, "attempts": 3}
    assert len(seen) == 3 and len(set(seen)) == 1  # one event, tried three times
    inner = crypto.decrypt(seen[0][1].decode().split("<Encrypt><![CDATA[")[1].split("]]>")[0])
    assert "<ResponseCode><![CDATA[code-1]]></ResponseCode>" in inner and "zhangsan" in inner


def _save_callback(simulator: str, relay: str) -> None:
    """The app's callback URL saved as in WeCom's console (the simulator checks it first)."""
    saved = httpx.post(
        f"{simulator}/admin/callback",
        json={"agent_id": SANDBOX_AGENT_ID, "url": f"{relay}/wecom/callback/ops", **CALLBACK},
        timeout=10,
    )
    assert saved.json()["saved"], saved.text


def _press_ack(simulator: str, task_id: str) -> None:
    """zhangsan presses 认领 on the card `task_id` (the simulator sends the click to the callback URL)."""
    pressed = httpx.post(
        f"{simulator}/admin/click",
        json={"agent_id": SANDBOX_AGENT_ID, "userid": "zhangsan", "event_key": "ack", "task_id": task_id},
        timeout=10,
    )
    assert pressed.json()["sent"]


def test_ack_quiet_holds_back_repeats_of_an_acknowledged_group_but_never_its_resolution(
    simulator: str, sim_state: SimulatorState, tmp_path: Path
) -> None:
    raw = _raw(tmp_path, card={"ack_quiet": "1h", "buttons": [{"action": "ack"}]})
    raw["wecom"]["api_url"] = f"{simulator}/cgi-bin/"
    raw["delivery"]["dedup_window"] = "0s"  # the repeat below is not an HA duplicate
    firing = json.loads((SAMPLES / "am-0.25-firing-nodedown.json").read_text(encoding="utf-8"))
    resolved = json.loads((SAMPLES / "am-0.25-resolved-nodedown.json").read_text(encoding="utf-8"))
    with serve_in_thread(create_app(parse_config(raw))) as relay:
        _save_callback(simulator, relay)
        assert post(relay, firing).status_code == 200
        card = wait_until(lambda: [e for e in sim_state.inbox if e.card], 15, "the card")[0]
        _press_ack(simulator, card.card["task_id"])
        wait_until(lambda: "已认领 · zhangsan" in card.visible, 10, "the acknowledgement on the card")
        before = len(sim_state.inbox)
        repeat = post(relay, firing)  # Alertmanager's repeat of the group
        assert repeat.status_code == 200 and repeat.json()["status"] == "accepted"
        # Its job is done once handled; a message sent would be in the inbox by then.
        wait_until(lambda: pending(relay) == 0, 10, "the repeat handled")
        assert len(sim_state.inbox) == before  # held back
        assert post(relay, resolved).status_code == 200
        wait_until(
            lambda: any(e.card and "已恢复" in e.visible for e in sim_state.inbox[before:]), 10, "resolved"
        )


def test_a_digest_cards_ack_acknowledges_each_group_it_merged_not_every_later_digest(
    simulator: str, sim_state: SimulatorState, tmp_path: Path
) -> None:
    """A digest has no group of its own ("digest"): its 认领 acknowledges each group it merged. It used to
    acknowledge the pseudo-group, so every later digest of the receiver showed "已认领" from the start and,
    with card.ack_quiet, was held back unsent."""
    raw = _raw(tmp_path, card={"ack_quiet": "1h", "buttons": [{"action": "ack"}]})
    raw["wecom"]["api_url"] = f"{simulator}/cgi-bin/"

    def storm(tag: str) -> list[str]:
        keys = []
        for i in range(35):  # more groups than zhangsan may get in a minute: the rest become a digest
            payload = json.loads((SAMPLES / "am-0.25-firing-nodedown.json").read_text(encoding="utf-8"))
            payload["groupKey"] = f'{{}}:{{cluster="{tag}{i}"}}'
            for alert in payload["alerts"]:
                alert["labels"]["cluster"] = f"{tag}{i}"
            keys.append(payload["groupKey"])
            assert post(relay, payload).status_code == 200
        return keys

    def digests() -> list[Any]:
        """The digests' cards: each is the card just before its details (the 【告警汇总】 message)."""
        inbox = list(sim_state.inbox)
        found = []
        for at, entry in enumerate(inbox):
            if not entry.card and "【告警汇总】" in entry.visible:
                card = next(e for e in reversed(inbox[:at]) if e.card)
                if card not in found:
                    found.append(card)
        return found

    with serve_in_thread(create_app(parse_config(raw))) as relay:
        _save_callback(simulator, relay)
        first_keys = storm("a")
        digest = wait_until(digests, 90, "a digest card")[0]
        _press_ack(simulator, digest.card["task_id"])
        wait_until(lambda: "已认领 · zhangsan" in digest.visible, 10, "the acknowledgement on the card")
        config = parse_config(raw)
        with sqlite3.connect(f"file:{actions_path(config.storage.path)}?mode=ro", uri=True) as conn:
            acked = {row[0] for row in conn.execute("SELECT group_key FROM acks WHERE receiver = 'default'")}
        assert "digest" not in acked
        assert acked and acked < set(first_keys)  # the groups in the digest, not those sent alone
        before = len(digests())
        storm("b")  # another storm: its digest is sent, and nobody has acknowledged it
        later = wait_until(lambda: digests()[before:], 150, "the next digest (after room under the limit)")
        assert "已认领" not in later[0].visible
