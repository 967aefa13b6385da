"""Alert cards end to end (issue 11): the real Alertmanager → this service → the simulator's inbox, a
person presses a button there → the simulator posts the signed, encrypted click to our callback URL →
a silence in Alertmanager (read back through its API), every recipient's card redrawn, Alertmanager's
next repeat not delivered; acknowledgements, resolution in place, Alertmanager down."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest

from alertmanager_wecom.loading import parse_config
from alertmanager_wecom.simulator.model import SANDBOX_AGENT_ID, SANDBOX_CORP_ID
from alertmanager_wecom.web.app import create_app
from alertmanager_wecom.wecom.callback_crypto import CallbackCrypto
from tests.alertmanager import now_iso, post_alerts, run_alertmanager, webhook_config
from tests.helpers import SAMPLES, raw_config, signed_event, wait_until
from tests.servers import free_port, serve_in_thread

pytestmark = pytest.mark.e2e

VECTOR = json.loads((SAMPLES / "wecom-callback-vectors.json").read_text(encoding="utf-8"))["vectors"][0]
TOKEN, AES_KEY = VECTOR["token"], VECTOR["encoding_aes_key"]


def card_config(simulator: str, tmp_path: Path, am_url: str, **card: Any) -> dict[str, Any]:
    target: dict[str, Any] = {"app": "ops", "to_user": ["zhangsan", "lisi"], "msgtype": "template_card"}
    if card:
        target["card"] = card
    raw = raw_config(simulator, tmp_path, target)
    raw["apps"]["ops"]["callback"] = {"token": TOKEN, "encoding_aes_key": AES_KEY}
    raw["alertmanager"] = {"url": am_url, "timeout": "2s"}
    raw["delivery"]["dedup_window"] = "1s"  # Alertmanager repeats every few seconds here
    return raw


def save_callback(simulator: str, relay: str) -> None:
    """The app's callback URL saved as in WeCom's console (the simulator checks it first)."""
    saved = httpx.post(
        f"{simulator}/admin/callback",
        json={
            "agent_id": SANDBOX_AGENT_ID,
            "url": f"{relay}/wecom/callback/ops",
            "token": TOKEN,
            "encoding_aes_key": AES_KEY,
        },
        timeout=10,
    )
    assert saved.json() == {"saved": True, "url": f"{relay}/wecom/callback/ops"}, saved.text


@contextmanager
def card_relay(simulator: str, raw: dict[str, Any], port: int) -> Iterator[str]:
    with serve_in_thread(create_app(parse_config(raw)), port=port) as relay:
        save_callback(simulator, relay)
        yield relay


def cards(simulator: str, user: str) -> list[dict[str, Any]]:
    entries = httpx.get(f"{simulator}/admin/inbox", params={"user": user}, timeout=5).json()["entries"]
    return [e for e in entries if e["msgtype"] == "template_card" and e["dropped"] is None]


def click(simulator: str, user: str, card: dict[str, Any], key: str) -> dict[str, Any]:
    answer = httpx.post(
        f"{simulator}/admin/click",
        json={
            "agent_id": SANDBOX_AGENT_ID,
            "userid": user,
            "event_key": key,
            "task_id": card["card"]["task_id"],
        },
        timeout=30,
    )
    assert answer.status_code == 200, answer.text
    return dict(answer.json())


def silences(am: str) -> list[dict[str, Any]]:
    return list(httpx.get(f"{am}/api/v2/silences", timeout=5).json())


def alert(name: str, **labels: str) -> dict[str, Any]:
    return {
        "labels": {"alertname": name, "severity": "critical", "instance": "db-1:9100", **labels},
        "annotations": {"summary": f"{name} 数据库主库延迟过高"},
        "startsAt": now_iso(),
        "generatorURL": "http://prometheus:9090/graph?g0.expr=up",
    }


def keys(card: dict[str, Any]) -> list[str]:
    return [b.get("key", b.get("url", "")) for b in card["card"]["button_list"]]


def test_silence_from_a_card_reaches_alertmanager_and_every_recipient(simulator: str, tmp_path: Path) -> None:
    relay_port = free_port()
    am_config = webhook_config(
        f"http://127.0.0.1:{relay_port}/alerts/default", group_interval="1s", repeat_interval="3s"
    )
    with (
        run_alertmanager(tmp_path, am_config) as am,
        card_relay(simulator, card_config(simulator, tmp_path, am), relay_port),
    ):
        post_alerts(am, [alert("DBReplicationLag")])
        first = wait_until(lambda: cards(simulator, "zhangsan"), 30, "a card for zhangsan")[0]
        assert first["card"]["main_title"]["title"].endswith("DBReplicationLag")
        assert keys(first)[:3] == ["ack", "silence:3600", "silence:14400"]
        assert "认领" in first["visible"] and "静默 1h" in first["visible"]
        wait_until(lambda: cards(simulator, "lisi"), 10, "the same card for lisi")

        pressed = click(simulator, "zhangsan", first, "silence:3600")
        assert pressed["sent"] and pressed["status"] == 200
        silence = wait_until(
            lambda: [s for s in silences(am) if s["status"]["state"] == "active"], 15, "a silence"
        )[0]
        assert silence["createdBy"] == "zhangsan"
        assert {(m["name"], m["value"], m["isEqual"], m["isRegex"]) for m in silence["matchers"]} == {
            ("alertname", "DBReplicationLag", True, False)
        }
        starts = time.mktime(time.strptime(silence["startsAt"][:19], "%Y-%m-%dT%H:%M:%S"))
        ends = time.mktime(time.strptime(silence["endsAt"][:19], "%Y-%m-%dT%H:%M:%S"))
        assert 3590 <= ends - starts <= 3610
        assert "WeCom" in silence["comment"] and first["card"]["task_id"] in silence["comment"]

        def redrawn(user: str) -> dict[str, Any] | None:
            mine = [c for c in cards(simulator, user) if c["card"]["task_id"] == first["card"]["task_id"]]
            return mine[0] if mine and "已静默 1h · zhangsan" in mine[0]["visible"] else None

        for user in ("zhangsan", "lisi"):  # every recipient's card, not just the clicker's
            card = wait_until(lambda u=user: redrawn(u), 15, f"{user}'s card showing the silence")
            assert keys(card)[0] == "unsilence" and "silence:3600" not in keys(card)
        # Alertmanager's repeats (every 3 s) of the silenced group are not sent any more.
        count = len(cards(simulator, "zhangsan"))
        time.sleep(8)
        assert len(cards(simulator, "zhangsan")) == count

        card = redrawn("lisi")
        assert card is not None
        click(simulator, "lisi", card, "unsilence")
        wait_until(
            lambda: all(s["status"]["state"] == "expired" for s in silences(am)),
            15,
            "the silence expired",
        )
        card = wait_until(
            lambda: next(
                (c for c in cards(simulator, "zhangsan") if "静默已取消 · lisi" in c["visible"]), None
            ),
            15,
            "the card saying lisi expired the silence",
        )
        assert "silence:3600" in keys(card)
        # Unsilenced, the group's repeats come again.
        wait_until(lambda: len(cards(simulator, "zhangsan")) > count, 20, "a repeat after the silence")
        log = httpx.get(f"{simulator}/admin/stats", timeout=5).json()
        assert log["errors"].get("60140", 0) == 0


def test_acknowledge_shows_everywhere_and_the_group_resolves_in_place(simulator: str, tmp_path: Path) -> None:
    relay_port = free_port()
    am_config = webhook_config(
        f"http://127.0.0.1:{relay_port}/alerts/default", group_interval="1s", repeat_interval="3s"
    )
    with run_alertmanager(tmp_path, am_config) as am:
        raw = card_config(simulator, tmp_path, am)
        with card_relay(simulator, raw, relay_port) as relay:
            firing = alert("DiskFull", instance="fs-1:9100")
            post_alerts(am, [firing])
            first = wait_until(lambda: cards(simulator, "lisi"), 30, "a card for lisi")[0]
            click(simulator, "lisi", first, "ack")
            for user in ("zhangsan", "lisi"):
                wait_until(
                    lambda u=user: any(
                        "已认领 · lisi" in c["visible"] and c["card"]["task_id"] == first["card"]["task_id"]
                        for c in cards(simulator, u)
                    ),
                    15,
                    f"{user}'s card showing lisi's acknowledgement",
                )
            # The group's next notification (Alertmanager's repeat) says who acknowledged it.
            later = wait_until(
                lambda: [
                    c
                    for c in cards(simulator, "zhangsan")
                    if c["card"]["task_id"] != first["card"]["task_id"]
                ],
                20,
                "a repeat of the acknowledged group",
            )[-1]
            assert "已认领 · lisi" in later["visible"]

            post_alerts(am, [{**firing, "endsAt": now_iso()}])

            def original_resolved() -> bool:
                mine = [
                    c
                    for c in cards(simulator, "zhangsan")
                    if c["card"]["task_id"] == first["card"]["task_id"]
                ]
                return bool(mine) and "已恢复" in mine[0]["visible"]

            wait_until(original_resolved, 30, "the first card showing the group resolved")
            resolved = next(
                c for c in cards(simulator, "zhangsan") if c["card"]["task_id"] == first["card"]["task_id"]
            )
            assert not any(k.startswith(("ack", "silence")) for k in keys(resolved))  # nothing left to press
            actions = httpx.get(f"{relay}/metrics", timeout=5).text
            assert 'alertmanager_wecom_card_actions_total{action="ack",app="ops",outcome="ok"} 1.0' in actions


def test_alertmanager_down_the_card_says_why_and_a_later_click_works(simulator: str, tmp_path: Path) -> None:
    relay_port, am_port = free_port(), free_port()
    raw = card_config(simulator, tmp_path, f"http://127.0.0.1:{am_port}")
    with card_relay(simulator, raw, relay_port) as relay:
        body = {
            "version": "4",
            "groupKey": '{}:{alertname="Down"}',
            "status": "firing",
            "receiver": "wecom",
            "groupLabels": {"alertname": "Down"},
            "commonLabels": {"alertname": "Down"},
            "alerts": [{**alert("Down"), "status": "firing"}],
        }
        assert httpx.post(f"{relay}/alerts/default", json=body, timeout=10).status_code == 200
        first = wait_until(lambda: cards(simulator, "zhangsan"), 30, "a card")[0]
        click(simulator, "zhangsan", first, "silence:3600")
        failed = wait_until(
            lambda: next((c for c in cards(simulator, "zhangsan") if "操作失败" in c["visible"]), None),
            15,
            "the card saying the silence failed",
        )
        assert "unreachable" in failed["visible"] and "silence:3600" in keys(failed)  # press again later
        with run_alertmanager(tmp_path, webhook_config(f"{relay}/alerts/default"), port=am_port) as am:
            click(simulator, "lisi", failed, "silence:3600")
            wait_until(
                lambda: [s for s in silences(am) if s["createdBy"] == "lisi"], 15, "the silence, made now"
            )
            wait_until(
                lambda: any("已静默 1h · lisi" in c["visible"] for c in cards(simulator, "zhangsan")),
                15,
                "the card showing it",
            )


def test_a_click_retried_by_wecom_makes_one_silence_and_strangers_do_nothing(
    simulator: str, tmp_path: Path
) -> None:
    relay_port = free_port()
    with run_alertmanager(tmp_path, webhook_config(f"http://127.0.0.1:{relay_port}/alerts/default")) as am:
        raw = card_config(simulator, tmp_path, am, allow_users=["zhangsan"])
        with card_relay(simulator, raw, relay_port) as relay:
            post_alerts(am, [alert("Retried")])
            first = wait_until(lambda: cards(simulator, "lisi"), 30, "a card")[0]
            # lisi got the card but is not allowed to act on it.
            click(simulator, "lisi", first, "silence:3600")
            wait_until(
                lambda: 'outcome="denied"' in httpx.get(f"{relay}/metrics", timeout=5).text, 10, "the refusal"
            )
            # The same event three times, as WeCom retries it: one silence.
            crypto = CallbackCrypto(TOKEN, AES_KEY, SANDBOX_CORP_ID)
            now = int(time.time())
            event = (
                f"<xml><ToUserName><![CDATA[{SANDBOX_CORP_ID}]]></ToUserName><FromUserName><![CDATA[zhangsan]]>"
                f"</FromUserName><CreateTime>{now}</CreateTime><MsgType><![CDATA[event]]></MsgType>"
                "<Event><![CDATA[template_card_event]]></Event><EventKey><![CDATA[silence:3600]]></EventKey>"
                f"<TaskId><![CDATA[{first['card']['task_id']}]]></TaskId><ResponseCode><![CDATA[c1]]></ResponseCode>"
                f"<AgentID>{SANDBOX_AGENT_ID}</AgentID></xml>"
            )
            query, body = signed_event(crypto, event, now, "7")
            for _ in range(3):
                answer = httpx.post(f"{relay}/wecom/callback/ops", params=query, content=body, timeout=10)
                assert (answer.status_code, answer.content) == (200, b"")
            wait_until(lambda: silences(am), 15, "the silence")
            time.sleep(1.5)
            assert len(silences(am)) == 1 and silences(am)[0]["createdBy"] == "zhangsan"
            # A click on a card we never sent does nothing.
            stranger = event.replace(first["card"]["task_id"], "amw-0-0-0000").replace(str(now), str(now + 1))
            query, body = signed_event(crypto, stranger, now, "8")
            assert (
                httpx.post(f"{relay}/wecom/callback/ops", params=query, content=body, timeout=10).status_code
                == 200
            )
            wait_until(
                lambda: 'outcome="unknown_card"' in httpx.get(f"{relay}/metrics", timeout=5).text,
                10,
                "ignored",
            )
            assert len(silences(am)) == 1
