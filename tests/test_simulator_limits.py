"""The simulator's one sliding-window counter: WeCom's per-member, per-robot and per-chat limits."""

from __future__ import annotations

import json

from alertmanager_wecom.simulator import SimulatorState, sandbox_settings
from alertmanager_wecom.simulator.limits import SlidingWindows
from alertmanager_wecom.simulator.model import SANDBOX_CORP_ID, SANDBOX_ROBOT_KEY, SANDBOX_SECRET


def test_exactly_the_limit_passes_and_one_more_is_refused() -> None:
    robot = SlidingWindows((20, 60))
    assert [robot.take("sre", 100.0 + i) for i in range(20)] == [None] * 20
    assert robot.take("sre", 119.5) == 0


def test_a_send_leaves_its_window_exactly_when_it_is_the_window_old() -> None:
    chat = SlidingWindows((2, 60))
    assert chat.take("c", 0.0) is None
    assert chat.take("c", 30.0) is None
    assert chat.take("c", 59.999) == 0  # the first send is still inside
    assert chat.take("c", 60.0) is None  # now it is not
    assert chat.take("c", 60.0) == 0  # the window holds the sends at 30 and 60


def test_a_refused_send_is_not_counted() -> None:
    robot = SlidingWindows((1, 60))
    assert robot.take("r", 0.0) is None
    for t in (10.0, 20.0, 59.0):
        assert robot.take("r", t) == 0
    assert robot.take("r", 60.0) is None  # the refusals did not extend the wait


def test_keys_are_independent() -> None:
    member = SlidingWindows((1, 60))
    assert member.take(("corp", 1, "zhangsan"), 0.0) is None
    assert member.take(("corp", 1, "lisi"), 0.0) is None
    assert member.take(("corp", 2, "zhangsan"), 0.0) is None
    assert member.take(("corp", 1, "zhangsan"), 1.0) == 0


def test_several_windows_name_the_first_that_is_full() -> None:
    # A member: 1000 an hour, 30 a minute (here 3 an hour, 2 a minute).
    member = SlidingWindows((3, 3600), (2, 60))
    assert member.take("u", 0.0) is None
    assert member.take("u", 1.0) is None
    assert member.take("u", 2.0) == 1  # the minute is full
    assert member.take("u", 61.0) is None  # the minute has room again: the third of the hour
    assert member.take("u", 200.0) == 0  # the hour is full, though the minute has room
    assert member.take("u", 3600.0) is None  # the send at 0 has left the hour


# As the simulator applies them (from the simulator helper's branch): the robot's minute and each app
# chat's minute, through the endpoints.


class Clock:
    def __init__(self) -> None:
        self.now = 1_000_000.0

    def __call__(self) -> float:
        return self.now


CHAT_PER_MINUTE = 200


def test_robot_limit_frees_up_after_a_minute() -> None:
    clock = Clock()
    state = SimulatorState(sandbox_settings(), clock=clock)
    body = json.dumps({"msgtype": "text", "text": {"content": "hi"}}).encode()
    for _ in range(20):
        assert state.robot_send({"key": SANDBOX_ROBOT_KEY}, body)["errcode"] == 0
    clock.now += 59.9
    assert state.robot_send({"key": SANDBOX_ROBOT_KEY}, body)["errcode"] == 45009
    clock.now += 0.1
    assert state.robot_send({"key": SANDBOX_ROBOT_KEY}, body)["errcode"] == 0


def test_app_chat_drops_silently_over_its_minute_limit_per_chat() -> None:
    clock = Clock()
    state = SimulatorState(sandbox_settings(), clock=clock)
    tok = state.gettoken({"corpid": SANDBOX_CORP_ID, "corpsecret": SANDBOX_SECRET})["access_token"]
    for chatid in ("ops", "db"):
        created = state.appchat(
            "create",
            {"access_token": tok},
            json.dumps({"chatid": chatid, "userlist": ["zhangsan", "lisi"]}).encode(),
        )
        assert created["errcode"] == 0

    def send(chatid: str) -> None:
        body = {"chatid": chatid, "msgtype": "text", "text": {"content": "x"}}
        assert state.appchat("send", {"access_token": tok}, json.dumps(body).encode())["errcode"] == 0

    for _ in range(CHAT_PER_MINUTE + 1):
        send("ops")
    send("db")
    ops = state.entries("chat:ops")
    assert [e["dropped"] for e in ops].count(None) == CHAT_PER_MINUTE
    assert ops[-1]["dropped"] == f"chat limit {CHAT_PER_MINUTE}/minute"
    assert state.entries("chat:db")[0]["dropped"] is None  # another chat has its own minute
    clock.now += 60
    send("ops")
    assert state.entries("chat:ops")[-1]["dropped"] is None
