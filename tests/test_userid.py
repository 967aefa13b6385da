"""Look-ups of userids by email and mobile (wecom/userid.py) against the simulator over loopback HTTP: the
answers, the cache, the daily bound on look-ups that find nobody, and the simulator's errcodes."""

from __future__ import annotations

import json
import logging
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest

from alertmanager_wecom.config import WeComSettings
from alertmanager_wecom.config.contacts import Contact
from alertmanager_wecom.metrics import Metrics
from alertmanager_wecom.outbox import SQLiteOutbox
from alertmanager_wecom.secret import Secret
from alertmanager_wecom.simulator import SimulatorState, sandbox_settings
from alertmanager_wecom.simulator.model import SANDBOX_CORP_ID, SANDBOX_SECRET, SimulatorSettings
from alertmanager_wecom.wecom.api import WeComAPI, WeComError
from alertmanager_wecom.wecom.errcodes import Reason
from alertmanager_wecom.wecom.token import AccessToken
from alertmanager_wecom.wecom.userid import UserIds

pytestmark = pytest.mark.anyio

ZHANGSAN = Contact("email", "zhangsan@sandbox.example")
LISI_MOBILE = Contact("mobile", "13800000002")


class Clock:
    def __init__(self) -> None:
        self.now = 1_000_000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
async def token(simulator: str) -> AsyncIterator[AccessToken]:
    async with httpx.AsyncClient(timeout=5) as client:
        yield AccessToken(WeComAPI(simulator + "/cgi-bin/", client), SANDBOX_CORP_ID, Secret(SANDBOX_SECRET))


def lookups(state: SimulatorState) -> int:
    calls = state.stats()["calls"]
    return int(calls.get("user/get_userid_by_email", 0)) + int(calls.get("user/getuserid", 0))


def metric(metrics: Metrics, form: str, outcome: str) -> float:
    # The contact's form is the label named `kind` on /metrics (the name dashboards use).
    value = metrics.registry.get_sample_value(
        "alertmanager_wecom_userid_lookups_total", {"app": "ops", "kind": form, "outcome": outcome}
    )
    return value or 0.0


async def test_email_and_mobile_find_the_member_and_the_answer_is_cached(
    token: AccessToken, sim_state: SimulatorState
) -> None:
    clock, metrics = Clock(), Metrics()
    userids = UserIds(WeComSettings(), metrics, clock)
    assert (await userids.userid(token, "ops", ZHANGSAN)).userid == "zhangsan"
    assert (await userids.userid(token, "ops", LISI_MOBILE)).userid == "lisi"
    assert lookups(sim_state) == 2
    # Within the day: from the cache, no call (case of the address as WeCom treats it: the same member).
    clock.now += 86000
    assert (await userids.userid(token, "ops", ZHANGSAN)).userid == "zhangsan"
    assert lookups(sim_state) == 2 and metric(metrics, "email", "cached_found") == 1
    # A day on: asked again.
    clock.now += 500
    assert (await userids.userid(token, "ops", ZHANGSAN)).userid == "zhangsan"
    assert lookups(sim_state) == 3 and metric(metrics, "email", "found") == 2


async def test_nobody_found_is_said_by_form_and_cached_for_an_hour(
    token: AccessToken, sim_state: SimulatorState
) -> None:
    clock = Clock()
    userids = UserIds(WeComSettings(), Metrics(), clock)
    answer = await userids.userid(token, "ops", Contact("email", "nobody@sandbox.example"))
    assert answer.userid is None and "no WeCom member has this email" in answer.problem
    mobile = await userids.userid(token, "ops", Contact("mobile", "13900000000"))
    assert mobile.userid is None and "no WeCom member has this mobile number" in mobile.problem
    assert sim_state.stats()["errors"]["46004"] == 2
    clock.now += 3500
    await userids.userid(token, "ops", Contact("email", "nobody@sandbox.example"))
    assert lookups(sim_state) == 2
    clock.now += 200
    await userids.userid(token, "ops", Contact("email", "nobody@sandbox.example"))
    assert lookups(sim_state) == 3


async def test_look_ups_that_find_nobody_are_bounded_per_day(
    token: AccessToken, sim_state: SimulatorState, caplog: pytest.LogCaptureFixture
) -> None:
    clock, metrics = Clock(), Metrics()
    userids = UserIds(WeComSettings(lookup_unknown_per_day=3), metrics, clock)
    for n in range(3):
        assert (
            await userids.userid(token, "ops", Contact("email", f"ghost{n}@sandbox.example"))
        ).userid is None
        clock.now += 60
    assert lookups(sim_state) == 3
    with caplog.at_level(logging.WARNING):
        for n in range(3, 10):
            answer = await userids.userid(token, "ops", Contact("email", f"ghost{n}@sandbox.example"))
            assert answer.userid is None and "wecom.lookup_unknown_per_day" in answer.problem
        # Past the bound even a real member is not looked up (WeCom would count a miss the same way)...
        assert (await userids.userid(token, "ops", LISI_MOBILE)).userid is None
    assert lookups(sim_state) == 3 and metric(metrics, "email", "bounded") == 7
    # ... and the log says so once, not once per value.
    said = [r for r in caplog.records if "lookup_unknown_per_day" in r.getMessage()]
    assert len(said) == 1 and "ghost" not in said[0].getMessage()
    # 24 h after the first miss, one slot is free again.
    clock.now = 1_000_000.0 + 86400 + 1
    assert (await userids.userid(token, "ops", LISI_MOBILE)).userid == "lisi"
    assert lookups(sim_state) == 4


async def test_the_day_s_misses_survive_a_restart_in_the_outbox(
    token: AccessToken, sim_state: SimulatorState, tmp_path: Path
) -> None:
    clock = Clock()
    settings = WeComSettings(lookup_unknown_per_day=2)
    outbox = SQLiteOutbox(str(tmp_path / "outbox.db"), synchronous="normal")
    try:
        before = UserIds(settings, Metrics(), clock, ledger=outbox.record_send)
        for n in range(2):
            await before.userid(token, "ops", Contact("email", f"ghost{n}@sandbox.example"))
        await outbox.record_send(["app:wwsandbox0000001:1000002:user:lisi"], clock.now)
        # A new process: the misses come back from the ledger, and the other sends go on to the limiter.
        after = UserIds(settings, Metrics(), clock)
        others = after.replay(await outbox.recent_sends(clock.now - 86400))
    finally:
        await outbox.close()
    assert others == [("app:wwsandbox0000001:1000002:user:lisi", clock.now)]
    assert after.misses_today(SANDBOX_CORP_ID) == 2
    answer = await after.userid(token, "ops", Contact("email", "ghost9@sandbox.example"))
    assert answer.userid is None and "not looked up" in answer.problem and lookups(sim_state) == 2


async def test_no_contacts_permission_is_60011_and_says_where_to_grant_it(
    token: AccessToken, sim_state: SimulatorState
) -> None:
    # The app's permission taken away in the served simulator, as WeCom's console would.
    sim_state.settings.corps[0].apps[0].contacts = False
    userids = UserIds(WeComSettings(), Metrics(), Clock())
    with pytest.raises(WeComError) as caught:
        await userids.userid(token, "ops", ZHANGSAN)
    assert caught.value.errcode == 60011 and caught.value.reason is Reason.NO_PERMISSION
    assert "通讯录" in caught.value.detail and "API permissions" in caught.value.detail
    assert not caught.value.retryable
    # Neither the secret nor the token is in what the error says.
    for secret in (SANDBOX_SECRET, *sim_state.issued_tokens):
        assert secret not in str(caught.value) and secret not in caught.value.detail


async def test_a_stale_token_is_refreshed_for_a_look_up(
    token: AccessToken, sim_state: SimulatorState
) -> None:
    await token.get()
    assert sim_state.revoke_tokens() == 1
    userids = UserIds(WeComSettings(), Metrics(), Clock())
    assert (await userids.userid(token, "ops", ZHANGSAN)).userid == "zhangsan"
    assert sim_state.stats()["errors"]["40014"] == 1 and sim_state.stats()["calls"]["gettoken"] == 2


def test_the_simulator_answers_as_wecom_does() -> None:
    settings = SimulatorSettings.model_validate(
        {
            "corps": [
                {
                    "corp_id": "wwx",
                    "users": ["a", {"userid": "b", "email": "b@x.example", "mobile": "+852 51234567"}],
                    "apps": [{"agent_id": 1, "secret": "s", "visible": ["a"]}],
                }
            ]
        }
    )
    state = SimulatorState(settings)
    assert settings.corps[0].users == ["a", "b"]
    token = state.gettoken({"corpid": "wwx", "corpsecret": "s"})["access_token"]

    def ask(endpoint: str, body: object, access_token: str = token) -> dict[str, object]:
        return state.lookup_userid(endpoint, {"access_token": access_token}, json.dumps(body).encode())

    # b exists but is outside the app's visible range: not found for this app.
    assert ask("user/getuserid", {"mobile": "+852 51234567"})["errcode"] == 46004
    state.settings.corps[0].apps[0].visible = ["@all"]
    assert ask("user/getuserid", {"mobile": "+852 51234567"}) == {"errcode": 0, "errmsg": "ok", "userid": "b"}
    assert ask("user/get_userid_by_email", {"email": "B@x.example", "email_type": 1})["userid"] == "b"
    assert ask("user/get_userid_by_email", {"email": "b@x.example", "email_type": 3})["errcode"] == 40058
    assert ask("user/getuserid", {"mobile": ""})["errcode"] == 40058
    assert ask("user/getuserid", [1])["errcode"] == 47001
    assert ask("user/getuserid", {"mobile": "13800000001"}, "wrong")["errcode"] == 40014
    sandbox = SimulatorState(sandbox_settings(), clock=(clock := Clock()))
    assert sandbox.settings.corps[0].contacts["zhaoliu"].mobile == "13800000004"
    sandbox_token = sandbox.gettoken({"corpid": SANDBOX_CORP_ID, "corpsecret": SANDBOX_SECRET})[
        "access_token"
    ]
    clock.now += 7200
    expired = sandbox.lookup_userid(
        "user/getuserid", {"access_token": sandbox_token}, b'{"mobile": "13800000004"}'
    )
    assert expired["errcode"] == 42001
    assert sandbox.lookup_userid("user/getuserid", {}, b'{"mobile": "13800000004"}')["errcode"] == 41001
