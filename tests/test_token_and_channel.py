from __future__ import annotations

import asyncio

import httpx
import pytest

from alertmanager_wecom.channels import build_channel
from alertmanager_wecom.rendering.message import Message
from alertmanager_wecom.secret import Secret
from alertmanager_wecom.simulator import SimulatorState, create_simulator_app, sandbox_settings
from alertmanager_wecom.simulator.model import SANDBOX_AGENT_ID, SANDBOX_CORP_ID, SANDBOX_SECRET
from alertmanager_wecom.wecom.api import WeComAPI, WeComError
from alertmanager_wecom.wecom.errcodes import Action, Reason
from alertmanager_wecom.wecom.token import AccessToken
from tests.helpers import relay_config

pytestmark = pytest.mark.anyio


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def client_for(state: SimulatorState) -> httpx.AsyncClient:
    # The real httpx client talking to the simulator app in-process (no network, same code path).
    return httpx.AsyncClient(
        transport=httpx.ASGITransport(app=create_simulator_app(state)), base_url="http://sim"
    )


async def test_one_gettoken_for_many_concurrent_sends() -> None:
    state = SimulatorState(sandbox_settings())
    async with client_for(state) as client:
        api = WeComAPI("http://sim/cgi-bin/", client)
        token = AccessToken(api, SANDBOX_CORP_ID, Secret(SANDBOX_SECRET))
        values = await asyncio.gather(*(token.get() for _ in range(50)))
    assert len(set(values)) == 1
    assert state.stats()["calls"]["gettoken"] == 1


async def test_token_refreshed_before_expiry_with_margin() -> None:
    settings = sandbox_settings()
    settings.token_ttl_seconds = 7200
    state = SimulatorState(settings)
    clock = Clock()
    async with client_for(state) as client:
        token = AccessToken(
            WeComAPI("http://sim/cgi-bin/", client), SANDBOX_CORP_ID, Secret(SANDBOX_SECRET), clock=clock
        )
        await token.get()
        clock.now = 7200 - 301  # still outside the 300 s margin: cached
        await token.get()
        assert state.stats()["calls"]["gettoken"] == 1
        clock.now = 7200 - 299  # inside the margin: refreshed
        await token.get()
        assert state.stats()["calls"]["gettoken"] == 2


async def test_revoked_token_is_refreshed_and_message_resent_once() -> None:
    state = SimulatorState(sandbox_settings())
    config = relay_config("http://sim/cgi-bin/")
    async with client_for(state) as client:
        api = WeComAPI(config.wecom.api_url, client)
        channel = build_channel(config.receivers[0].targets[0], config, api, {})
        await channel.send(Message("text", "before"))
        state.revoke_tokens()
        await channel.send(Message("text", "after"))
    assert [e["visible"] for e in state.entries("zhangsan")] == ["before", "after"]
    assert state.stats()["calls"]["gettoken"] == 2
    assert state.stats()["errors"] == {"40014": 1}


async def test_partial_failure_returns_invalid_recipients() -> None:
    state = SimulatorState(sandbox_settings())
    config = relay_config("http://sim/cgi-bin/", to_user=["zhangsan", "ghost"], to_party=["99"])
    async with client_for(state) as client:
        channel = build_channel(
            config.receivers[0].targets[0], config, WeComAPI(config.wecom.api_url, client), {}
        )
        result = await channel.send(Message("text", "hi"))
    assert result.invalid == {"invaliduser": ["ghost"], "invalidparty": ["99"]}


@pytest.mark.parametrize(
    ("setup", "action", "reason", "words"),
    [
        ("trusted_ip", Action.PERMANENT, Reason.TRUSTED_IP, "add 127.0.0.1 under"),
        ("bad_agent", Action.PERMANENT, Reason.BAD_AGENT, "AgentId"),
        ("bad_secret", Action.PERMANENT, Reason.BAD_CREDENTIALS, "Secret"),
        ("busy", Action.RETRY, Reason.BUSY, "system busy"),
        ("rate_limit", Action.RETRY, Reason.RATE_LIMITED, "frequency"),
        ("http_502", Action.RETRY, Reason.HTTP_ERROR, "HTTP 502"),
        ("nobody", Action.PERMANENT, Reason.RECIPIENTS, "visible"),
    ],
)
async def test_errcode_classes(setup: str, action: Action, reason: Reason, words: str) -> None:
    state = SimulatorState(sandbox_settings())
    to_user = ["zhangsan"]
    secret = SANDBOX_SECRET
    if setup == "trusted_ip":
        state.set_trusted_ips(SANDBOX_AGENT_ID, ["203.0.113.1"])
    elif setup in ("busy", "rate_limit", "http_502"):
        state.set_faults(state.settings.faults.model_copy(update={"rate": 1.0, "kinds": [setup]}))
    elif setup == "nobody":
        to_user = ["ghost"]
    config = relay_config("http://sim/cgi-bin/", to_user=to_user)
    app = config.apps["ops"]
    if setup == "bad_agent":
        app = app.model_copy(update={"agent_id": 4242})
    if setup == "bad_secret":
        secret = "not-the-secret"
        app = app.model_copy(update={"secret": Secret(secret)})
    config = config.model_copy(update={"apps": {"ops": app}})
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=create_simulator_app(state), client=("127.0.0.1", 5555))
    ) as client:
        channel = build_channel(
            config.receivers[0].targets[0], config, WeComAPI("http://sim/cgi-bin/", client), {}
        )
        with pytest.raises(WeComError) as info:
            await channel.send(Message("text", "hi"))
    assert info.value.action is action and info.value.reason is reason
    assert words in info.value.detail
    assert secret not in info.value.detail and "access_token=" not in info.value.detail.replace(
        "access_token=*", ""
    )
