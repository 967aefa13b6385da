from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import httpx
import pytest

from alertmanager_wecom.simulator import SimulatorState, create_simulator_app, sandbox_settings
from alertmanager_wecom.simulator.model import (
    SANDBOX_AGENT_ID,
    SANDBOX_CORP_ID,
    SANDBOX_SECRET,
    SimulatorSettings,
)
from tests.servers import cli_process, free_port, serve_in_thread, wait_http


class Clock:
    def __init__(self) -> None:
        self.now = 1_000_000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def state(clock: Clock) -> SimulatorState:
    return SimulatorState(sandbox_settings(), clock=clock)


def token(state: SimulatorState) -> str:
    reply = state.gettoken({"corpid": SANDBOX_CORP_ID, "corpsecret": SANDBOX_SECRET})
    assert reply["errcode"] == 0
    return str(reply["access_token"])


def send(state: SimulatorState, tok: str, ip: str = "127.0.0.1", **body: Any) -> dict[str, Any]:
    payload = {
        "agentid": SANDBOX_AGENT_ID,
        "msgtype": "text",
        "text": {"content": "hello"},
        "touser": "zhangsan",
        **body,
    }
    return state.message_send({"access_token": tok}, json.dumps(payload, ensure_ascii=False).encode(), ip)


def test_gettoken_errors(state: SimulatorState) -> None:
    assert state.gettoken({"corpid": "wrong", "corpsecret": SANDBOX_SECRET})["errcode"] == 40013
    assert state.gettoken({"corpid": SANDBOX_CORP_ID, "corpsecret": "wrong"})["errcode"] == 40001
    first, second = token(state), token(state)
    assert first == second  # re-fetching a valid token returns the same one


def test_token_expiry_and_revocation(state: SimulatorState, clock: Clock) -> None:
    tok = token(state)
    assert send(state, tok)["errcode"] == 0
    clock.now += 7200
    assert send(state, tok)["errcode"] == 42001
    tok = token(state)
    state.revoke_tokens()
    assert send(state, tok)["errcode"] == 40014
    assert send(state, "")["errcode"] == 41001


def test_send_errcodes(state: SimulatorState) -> None:
    tok = token(state)
    assert send(state, tok, agentid=999)["errcode"] == 40056
    assert send(state, tok, msgtype="html", html={})["errcode"] == 40008
    assert send(state, tok, text={"content": ""})["errcode"] == 44004
    assert send(state, tok, touser="")["errcode"] == 82001
    reply = send(state, tok, touser="nobody|ghost")
    assert reply["errcode"] == 81013 and reply["invaliduser"] == "nobody|ghost"
    reply = send(state, tok, touser="zhangsan|ghost", toparty="77")
    assert reply["errcode"] == 0 and reply["invaliduser"] == "ghost" and reply["invalidparty"] == "77"
    raw = state.message_send({"access_token": tok}, b"{not json", "127.0.0.1")
    assert raw["errcode"] == 47001


def test_truncation_at_2048_bytes_is_silent_and_utf8_safe(state: SimulatorState) -> None:
    tok = token(state)
    content = "节" * 1000  # 3000 bytes
    assert send(state, tok, text={"content": content})["errcode"] == 0
    [entry] = state.entries("zhangsan")
    assert entry["truncated"] is True
    assert len(entry["visible"].encode()) == 2046  # 682 whole characters; the partial one is gone
    assert entry["sent_bytes"] == 3000


def test_member_limits_drop_silently(state: SimulatorState, clock: Clock) -> None:
    tok = token(state)
    for i in range(31):
        assert send(state, tok, text={"content": f"m{i}"})["errcode"] == 0
        clock.now += 0.5
    entries = state.entries("zhangsan")
    assert [e["dropped"] for e in entries].count(None) == 30
    assert entries[-1]["dropped"] == "member limit 30/minute"
    clock.now += 60
    assert send(state, tok, text={"content": "after a minute"})["errcode"] == 0
    assert state.entries("zhangsan")[-1]["dropped"] is None
    # the hourly limit: 1000 per hour, paced under the minute limit
    for i in range(1000):
        send(state, tok, text={"content": f"h{i}"})
        clock.now += 2.1
    assert any(e["dropped"] == "member limit 1000/hour" for e in state.entries("zhangsan"))


def test_each_person_keeps_their_newest_messages_and_the_count_of_the_rest(clock: Clock) -> None:
    assert SimulatorSettings().inbox_per_recipient == 500
    state = SimulatorState(sandbox_settings().model_copy(update={"inbox_per_recipient": 3}), clock=clock)
    tok = token(state)
    for i in range(5):
        assert send(state, tok, text={"content": f"z{i}"})["errcode"] == 0
        clock.now += 61  # under the minute's limit
    for i in range(2):
        assert send(state, tok, touser="lisi", text={"content": f"l{i}"})["errcode"] == 0
    assert [e["visible"] for e in state.entries("zhangsan")] == ["z2", "z3", "z4"]
    assert [e["visible"] for e in state.entries("lisi")] == ["l0", "l1"]  # another person's own count
    assert (state.trimmed_count("zhangsan"), state.trimmed_count("lisi"), state.trimmed_count()) == (2, 0, 2)
    assert state.stats()["trimmed"] == 2 and state.stats()["messages"] == 5
    with serve_in_thread(create_simulator_app(state)) as url, httpx.Client(base_url=url) as client:
        mine = client.get("/admin/inbox", params={"user": "zhangsan"}).json()
        assert (mine["trimmed"], mine["kept_per_recipient"], len(mine["entries"])) == (2, 3, 3)
        assert client.get("/admin/inbox", params={"user": "lisi"}).json()["trimmed"] == 0
        everyone = client.get("/admin/inbox").json()
        assert (everyone["trimmed"], len(everyone["entries"])) == (2, 5)
        assert "2 older messages are no longer kept" in client.get("/inbox", params={"user": "zhangsan"}).text
        assert "no longer kept" not in client.get("/inbox", params={"user": "lisi"}).text
    state.reset()
    assert state.trimmed_count() == 0 and state.entries() == []


def test_trusted_ip_answers_60020_with_caller_ip(state: SimulatorState) -> None:
    state.set_trusted_ips(SANDBOX_AGENT_ID, ["203.0.113.9"])
    reply = send(state, token(state), ip="127.0.0.7")
    assert reply["errcode"] == 60020 and "from ip: 127.0.0.7" in reply["errmsg"]


def test_duplicate_check_suppresses_identical_body(state: SimulatorState) -> None:
    tok = token(state)
    for _ in range(2):
        assert send(state, tok, enable_duplicate_check=1, duplicate_check_interval=600)["errcode"] == 0
    assert len(state.entries("zhangsan")) == 1
    assert state.stats()["suppressed_duplicates"] == 1


def test_robot_limits_and_mentions(state: SimulatorState) -> None:
    key = sandbox_settings().robots["sre"]
    body = {"msgtype": "text", "text": {"content": "hi", "mentioned_list": ["zhangsan"]}}
    assert state.robot_send({"key": "wrong"}, json.dumps(body).encode())["errcode"] == 93000
    for _ in range(20):
        assert state.robot_send({"key": key}, json.dumps(body).encode())["errcode"] == 0
    assert state.robot_send({"key": key}, json.dumps(body).encode())["errcode"] == 45009
    assert state.entries("robot:sre")[0]["mentioned"] == ["zhangsan"]
    state.reset()
    big = {"msgtype": "markdown", "markdown": {"content": "x" * 4097}}
    assert state.robot_send({"key": key}, json.dumps(big).encode())["errcode"] == 40058


def test_http_faults_inbox_page_and_media_upload() -> None:
    settings = sandbox_settings()
    state = SimulatorState(settings)
    with serve_in_thread(create_simulator_app(state)) as url, httpx.Client(base_url=url) as client:
        assert client.post("/admin/faults", json={"rate": 1.0, "kinds": ["http_502"]}).status_code == 200
        assert (
            client.get(
                "/cgi-bin/gettoken", params={"corpid": SANDBOX_CORP_ID, "corpsecret": SANDBOX_SECRET}
            ).status_code
            == 502
        )
        client.post("/admin/faults", json={"rate": 1.0, "kinds": ["busy"]})
        assert client.get("/cgi-bin/gettoken").json()["errcode"] == -1
        assert client.post("/admin/faults", json={"rate": 7}).status_code == 400
        client.post("/admin/faults", json={"rate": 0})
        tok = client.get(
            "/cgi-bin/gettoken", params={"corpid": SANDBOX_CORP_ID, "corpsecret": SANDBOX_SECRET}
        ).json()["access_token"]
        body = {
            "agentid": SANDBOX_AGENT_ID,
            "msgtype": "text",
            "touser": "lisi",
            "text": {"content": "<script>alert(1)</script> 告警"},
        }
        assert (
            client.post("/cgi-bin/message/send", params={"access_token": tok}, json=body).json()["errcode"]
            == 0
        )
        page = client.get("/inbox").text
        assert "&lt;script&gt;" in page and "<script>alert" not in page and "告警" in page
        assert client.get("/admin/inbox", params={"user": "lisi"}).json()["entries"][0]["recipient"] == "lisi"
        upload = client.post(
            "/cgi-bin/media/upload",
            params={"access_token": tok, "type": "image"},
            files={"media": ("chart.png", b"\x89PNG\r\n\x1a\n" + b"0" * 100, "image/png")},
        ).json()
        assert upload["errcode"] == 0 and upload["media_id"] and upload["type"] == "image"
        not_an_image = client.post(
            "/cgi-bin/media/upload",
            params={"access_token": tok, "type": "image"},
            files={"media": ("chart.png", b"GIF89a" + b"0" * 100, "image/png")},
        ).json()
        assert not_an_image["errcode"] == 40005
        assert client.post("/admin/tokens/revoke", json={}).json()["revoked"] == 1
        assert (
            client.post("/cgi-bin/message/send", params={"access_token": tok}, json=body).json()["errcode"]
            == 40014
        )


def test_the_simulator_prints_credentials_that_work(tmp_path: Path) -> None:
    """`alertmanager-wecom simulator` says what to put in a config to use it; those values are accepted."""
    port = free_port()
    with cli_process(
        ["simulator", "--listen", f"127.0.0.1:{port}"], tmp_path / "sim.log", env={"PYTHONUNBUFFERED": "1"}
    ):
        wait_http(f"http://127.0.0.1:{port}/admin/stats")
        printed = (tmp_path / "sim.log").read_text(encoding="utf-8")
        corp = re.search(r"corp_id (\S+)", printed)
        app = re.search(r"agent_id (\d+)\s+secret (\S+)", printed)
        robot = re.search(r"robot sre: key (\S+)", printed)
        assert corp and app and robot, printed
        api = f"http://127.0.0.1:{port}/cgi-bin/"
        token = httpx.get(f"{api}gettoken", params={"corpid": corp[1], "corpsecret": app[2]}).json()
        assert token["errcode"] == 0, token
        sent = httpx.post(
            f"{api}message/send",
            params={"access_token": token["access_token"]},
            json={"touser": "zhangsan", "agentid": int(app[1]), "msgtype": "text", "text": {"content": "hi"}},
        ).json()
        robot_sent = httpx.post(
            f"{api}webhook/send",
            params={"key": robot[1]},
            json={"msgtype": "text", "text": {"content": "hi"}},
        ).json()
        assert (sent["errcode"], robot_sent["errcode"]) == (0, 0)


def test_the_simulator_command_sets_the_inbox_bound(tmp_path: Path) -> None:
    port = free_port()
    with cli_process(
        ["simulator", "--listen", f"127.0.0.1:{port}", "--inbox-per-recipient", "2"], tmp_path / "sim.log"
    ):
        url = f"http://127.0.0.1:{port}"
        wait_http(f"{url}/admin/stats")
        tok = httpx.get(
            f"{url}/cgi-bin/gettoken", params={"corpid": SANDBOX_CORP_ID, "corpsecret": SANDBOX_SECRET}
        ).json()["access_token"]
        for i in range(3):
            body = {
                "touser": "zhangsan",
                "agentid": SANDBOX_AGENT_ID,
                "msgtype": "text",
                "text": {"content": f"m{i}"},
            }
            httpx.post(f"{url}/cgi-bin/message/send", params={"access_token": tok}, json=body)
        inbox = httpx.get(f"{url}/admin/inbox", params={"user": "zhangsan"}).json()
        assert [e["visible"] for e in inbox["entries"]] == ["m1", "m2"] and inbox["trimmed"] == 1


def test_the_simulator_command_answers_only_its_own_hosts(tmp_path: Path) -> None:
    """DNS rebinding: a page on a name that resolves to 127.0.0.1 gets 421 (it could read the inbox and
    change the faults from a developer's browser); localhost, the listen address and --allowed-host work."""
    port = free_port()
    with cli_process(
        ["simulator", "--listen", f"127.0.0.1:{port}", "--allowed-host", "wecom-sim"], tmp_path / "sim.log"
    ):
        url = f"http://127.0.0.1:{port}"
        wait_http(f"{url}/admin/stats")
        for host in ("evil.example", "wecom-sim.evil.example"):
            refused = httpx.get(f"{url}/inbox", headers={"Host": host})
            assert refused.status_code == 421, (host, refused.status_code)
            assert "zhangsan" not in refused.text
        for host in (f"127.0.0.1:{port}", f"localhost:{port}", "wecom-sim:9096"):
            assert httpx.get(f"{url}/admin/stats", headers={"Host": host}).status_code == 200, host
