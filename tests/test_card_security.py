"""Card actions do only what the card offers (issue 20): a click's key must be a button of that card; a
silence that would reach beyond the card's alerts, or match everything, is refused (on the card and in
the audit, never "ok"); replay protection is durable; two clicks in one second are two clicks; the
callback's timestamps are checked the same way for URL checks and events, and malformed ones are 400.

The real Alertmanager wherever a silence is involved; WeCom's signed, encrypted posts made with the
callback crypto, as the simulator (or an attacker holding a signed capture) would send them.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import httpx
import pytest

from alertmanager_wecom.loading import parse_config
from alertmanager_wecom.simulator.model import SANDBOX_AGENT_ID, SANDBOX_CORP_ID
from alertmanager_wecom.web.app import create_app
from alertmanager_wecom.wecom.callback_crypto import CallbackCrypto
from tests.alertmanager import now_iso, post_alerts, run_alertmanager, webhook_config
from tests.helpers import raw_config, signed_event, wait_until
from tests.servers import free_port, serve_in_thread
from tests.test_cards import AES_KEY, TOKEN, card_config, card_relay, cards, click, silences

CRYPTO = CallbackCrypto(TOKEN, AES_KEY, SANDBOX_CORP_ID)


def event(user: str, task_id: str, key: str, at: int, code: str) -> str:
    return (
        f"<xml><ToUserName><![CDATA[{SANDBOX_CORP_ID}]]></ToUserName><FromUserName><![CDATA[{user}]]>"
        f"</FromUserName><CreateTime>{at}</CreateTime><MsgType><![CDATA[event]]></MsgType>"
        f"<Event><![CDATA[template_card_event]]></Event><EventKey><![CDATA[{key}]]></EventKey>"
        f"<TaskId><![CDATA[{task_id}]]></TaskId><ResponseCode><![CDATA[{code}]]></ResponseCode>"
        f"<AgentID>{SANDBOX_AGENT_ID}</AgentID></xml>"
    )


def post_event(relay: str, inner: str, at: int, nonce: str) -> httpx.Response:
    query, body = signed_event(CRYPTO, inner, at, nonce)
    return httpx.post(f"{relay}/wecom/callback/ops", params=query, content=body, timeout=10)


def audit(relay: str) -> list[dict[str, Any]]:
    return list(httpx.get(f"{relay}/api/actions", timeout=5).json()["actions"])


def outcomes(relay: str, action_prefix: str) -> list[str]:
    return [a["outcome"] for a in audit(relay) if a["action"].startswith(action_prefix)]


def admin(raw: dict[str, Any]) -> dict[str, Any]:
    raw["server"] = {"admin_allow_loopback": True}
    return raw


def labelled(name: str, **labels: str) -> dict[str, Any]:
    return {"labels": {"alertname": name, **labels}, "annotations": {"summary": name}, "startsAt": now_iso()}


@pytest.mark.e2e
def test_a_key_the_card_does_not_offer_does_nothing(simulator: str, tmp_path: Path) -> None:
    relay_port = free_port()
    with run_alertmanager(tmp_path, webhook_config(f"http://127.0.0.1:{relay_port}/alerts/default")) as am:
        raw = admin(card_config(simulator, tmp_path, am))
        with card_relay(simulator, raw, relay_port) as relay:
            post_alerts(am, [labelled("Offered", severity="critical", instance="a")])
            card = wait_until(lambda: cards(simulator, "zhangsan"), 30, "a card")[0]
            task = card["card"]["task_id"]
            now = int(time.time())
            # Signed by WeCom's key, but a 90-day silence is not a button of this card (1 h, 4 h).
            assert (
                post_event(relay, event("zhangsan", task, "silence:7776000", now, "c1"), now, "1").status_code
                == 200
            )
            wait_until(lambda: outcomes(relay, "silence"), 10, "the audit of the click")
            assert outcomes(relay, "silence") == ["refused"]
            assert "not on this card" in audit(relay)[0]["detail"]
            assert silences(am) == []
            # The offered one works.
            assert (
                post_event(relay, event("zhangsan", task, "silence:3600", now, "c2"), now, "2").status_code
                == 200
            )
            wait_until(lambda: silences(am), 15, "the offered silence")
            assert outcomes(relay, "silence") == ["ok", "refused"]


@pytest.mark.e2e
def test_a_silence_wider_than_the_card_or_of_nothing_is_refused(simulator: str, tmp_path: Path) -> None:
    relay_port = free_port()
    am_config = webhook_config(f"http://127.0.0.1:{relay_port}/alerts/default")
    # No group labels: the whole route is one group, and another team's alerts go elsewhere.
    am_config["route"]["group_by"] = []
    am_config["route"]["routes"] = [{"matchers": ['team="other"'], "receiver": "blackhole"}]
    am_config["receivers"].append({"name": "blackhole"})
    with run_alertmanager(tmp_path, am_config) as am:
        raw = admin(card_config(simulator, tmp_path, am))
        with card_relay(simulator, raw, relay_port) as relay:
            other = labelled("OtherTeam", severity="critical", team="other")
            post_alerts(am, [other])
            post_alerts(
                am,
                [
                    labelled("DiskFull", severity="critical", instance="db-1"),
                    labelled("CPUHigh", severity="critical", instance="db-2"),
                ],
            )
            card = wait_until(
                lambda: (
                    [c for c in cards(simulator, "zhangsan") if "2" in c["card"]["main_title"]["title"]]
                    or cards(simulator, "zhangsan")
                ),
                30,
                "the group's card",
            )[-1]
            pressed = click(simulator, "zhangsan", card, "silence:3600")
            assert pressed["sent"]
            wait_until(lambda: outcomes(relay, "silence"), 15, "the audit of the press")
            # severity=critical would silence the other team's alert too: refused, said why.
            assert outcomes(relay, "silence") == ["refused"]
            detail = audit(relay)[0]["detail"]
            assert "severity=critical" in detail and "1 other alert" in detail, detail
            assert silences(am) == []
            redrawn = wait_until(
                lambda: [
                    c
                    for c in cards(simulator, "zhangsan")
                    if c["card"]["task_id"] == card["card"]["task_id"] and "severity=critical" in c["visible"]
                ],
                15,
                "the card saying why",
            )
            assert redrawn
            # Once the other alert has resolved, the common labels match only the card's: made.
            post_alerts(am, [{**other, "endsAt": now_iso()}])
            wait_until(
                lambda: (
                    not httpx.get(f"{am}/api/v2/alerts", params={"filter": 'team="other"'}, timeout=5).json()
                ),
                15,
                "the other alert resolved",
            )
            click(simulator, "zhangsan", card, "silence:3600")
            silence = wait_until(lambda: silences(am), 15, "the silence")[0]
            assert {(m["name"], m["value"]) for m in silence["matchers"]} == {("severity", "critical")}
            assert outcomes(relay, "silence") == ["ok", "refused"]


@pytest.mark.e2e
def test_a_silence_of_alerts_with_nothing_in_common_is_refused(simulator: str, tmp_path: Path) -> None:
    relay_port = free_port()
    am_config = webhook_config(f"http://127.0.0.1:{relay_port}/alerts/default")
    am_config["route"]["group_by"] = []
    with run_alertmanager(tmp_path, am_config) as am:
        raw = admin(card_config(simulator, tmp_path, am))
        with card_relay(simulator, raw, relay_port) as relay:
            post_alerts(am, [labelled("A", instance="x"), labelled("B", job="y")])
            card = wait_until(lambda: cards(simulator, "zhangsan"), 30, "a card")[-1]
            click(simulator, "zhangsan", card, "silence:3600")
            wait_until(lambda: outcomes(relay, "silence"), 15, "the audit of the press")
            assert outcomes(relay, "silence") == ["refused"]
            assert "nothing to match" in audit(relay)[0]["detail"]
            assert silences(am) == []


def _card_relay_without_alertmanager(simulator: str, tmp_path: Path) -> dict[str, Any]:
    target = {
        "app": "ops",
        "to_user": ["zhangsan"],
        "msgtype": "template_card",
        "card": {"buttons": [{"action": "ack"}]},
    }
    raw = admin(raw_config(simulator, tmp_path, target))
    raw["apps"]["ops"]["callback"] = {"token": TOKEN, "encoding_aes_key": AES_KEY}
    return raw


def _send_card(relay: str) -> None:
    alert = {
        "status": "firing",
        "labels": {"alertname": "Replayed", "severity": "warning"},
        "annotations": {},
        "startsAt": now_iso(),
        "endsAt": "0001-01-01T00:00:00Z",
        "fingerprint": "00000000000000aa",
    }
    payload = {
        "version": "4",
        "groupKey": '{}:{alertname="Replayed"}',
        "status": "firing",
        "receiver": "default",
        "groupLabels": {"alertname": "Replayed"},
        "commonLabels": alert["labels"],
        "commonAnnotations": {},
        "externalURL": "http://alertmanager:9093",
        "alerts": [alert],
    }
    assert httpx.post(f"{relay}/alerts/default", json=payload, timeout=10).status_code == 200


@pytest.fixture
def relay_port() -> int:
    return free_port()


def test_a_replayed_click_does_nothing_after_a_restart_and_two_clicks_in_a_second_are_two(
    simulator: str, tmp_path: Path, relay_port: int
) -> None:
    raw = _card_relay_without_alertmanager(simulator, tmp_path)
    now = int(time.time())
    with card_relay(simulator, raw, relay_port) as relay:
        _send_card(relay)
        card = wait_until(lambda: cards(simulator, "zhangsan"), 30, "a card")[0]
        task = card["card"]["task_id"]
        captured = event("zhangsan", task, "ack", now, "code-1")
        assert post_event(relay, captured, now, "11").status_code == 200
        # lisi presses in the same second: another click, not a retry of zhangsan's.
        assert post_event(relay, event("lisi", task, "ack", now, "code-2"), now, "12").status_code == 200
        wait_until(lambda: len(outcomes(relay, "ack")) == 2, 10, "two acknowledgements")
    # The service restarts (same store); the captured click comes again, still within its window.
    with card_relay(simulator, raw, relay_port) as relay:
        assert post_event(relay, captured, now, "11").status_code == 200
        # zhangsan again, same second, another button press (another response code): a click.
        assert post_event(relay, event("zhangsan", task, "ack", now, "code-3"), now, "13").status_code == 200
        wait_until(lambda: len(outcomes(relay, "ack")) == 3, 10, "the third acknowledgement")
        metrics = httpx.get(f"{relay}/metrics", timeout=5).text
        assert 'alertmanager_wecom_callbacks_received_total{app="ops",outcome="duplicate"} 1.0' in metrics
        assert len(outcomes(relay, "ack")) == 3


@pytest.mark.parametrize("timestamp", ["²", "1" * 5000, "-1", "1e9", ""])
def test_a_malformed_timestamp_is_a_400_for_events_and_url_checks(
    simulator: str, tmp_path: Path, relay_port: int, timestamp: str
) -> None:
    raw = _card_relay_without_alertmanager(simulator, tmp_path)
    with serve_in_thread(create_app(parse_config(raw)), port=relay_port) as relay:
        url = f"{relay}/wecom/callback/ops"
        query = {"msg_signature": "a" * 40, "timestamp": timestamp, "nonce": "1"}
        posted = httpx.post(url, params=query, content=b"<xml><Encrypt>x</Encrypt></xml>", timeout=10)
        checked = httpx.get(url, params={**query, "echostr": "x"}, timeout=10)
        assert posted.status_code == 400 and checked.status_code == 400, (posted.text, checked.text)
        assert "timestamp" in posted.json()["error"] and "timestamp" in checked.json()["error"]


def test_a_stale_url_check_is_refused_like_a_stale_event(
    simulator: str, tmp_path: Path, relay_port: int
) -> None:
    raw = _card_relay_without_alertmanager(simulator, tmp_path)
    with serve_in_thread(create_app(parse_config(raw)), port=relay_port) as relay:
        url = f"{relay}/wecom/callback/ops"
        _, stale = CRYPTO.url_check(int(time.time()) - 3600)
        answer = httpx.get(url, params=stale, timeout=10)
        assert answer.status_code == 403 and "timestamp" in answer.json()["error"]
        plaintext, fresh = CRYPTO.url_check(int(time.time()))
        assert httpx.get(url, params=fresh, timeout=10).text == plaintext
