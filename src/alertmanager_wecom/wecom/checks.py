"""`check`: the setup guide's manual test (gettoken, then message/send) with a diagnosis per failure."""

from __future__ import annotations

import socket
from dataclasses import dataclass

import httpx

from alertmanager_wecom.channels import build_channel, kind_of
from alertmanager_wecom.config import Config
from alertmanager_wecom.rendering.message import Message
from alertmanager_wecom.wecom.api import WeComAPI, WeComError
from alertmanager_wecom.wecom.errcodes import explain
from alertmanager_wecom.wecom.token import AccessToken


@dataclass(frozen=True)
class CheckResult:
    ok: bool
    subject: str
    message: str

    def line(self) -> str:
        return f"{'OK  ' if self.ok else 'FAIL'} {self.subject}: {self.message}"


def _why(exc: WeComError) -> str:
    if exc.errcode is not None:
        return explain(exc.errcode, exc.errmsg)
    fix = f": {exc.info.fix}" if exc.info.fix else " (check wecom.api_url, the network and any proxy)"
    return f"{exc.detail}{fix}"


async def run_checks(config: Config, client: httpx.AsyncClient, send: bool = True) -> list[CheckResult]:
    api = WeComAPI(config.wecom.api_url, client)
    tokens: dict[str, AccessToken] = {}
    results: list[CheckResult] = []
    working: set[str] = set()
    for name, app in config.apps.items():
        token = tokens[name] = AccessToken(api, app.corp_id, app.secret)
        try:
            await token.get()
        except WeComError as exc:
            results.append(CheckResult(False, f"app {name} gettoken", _why(exc)))
            continue
        working.add(name)
        results.append(
            CheckResult(True, f"app {name} gettoken", f"corp_id and secret accepted (corp {app.corp_id})")
        )
    if not send:
        return results
    text = f"alertmanager-wecom check: test message from {socket.gethostname()}"
    for receiver in config.receivers:
        for index, target in enumerate(receiver.targets):
            subject = f"receiver {receiver.name} target {index + 1} ({kind_of(target).via(target)})"
            if target.app is not None and target.app not in working:
                results.append(CheckResult(False, subject, f"skipped: app {target.app} has no access token"))
                continue
            channel = build_channel(target, config, api, tokens)
            try:
                sent = await channel.send(Message("text", text))
            except WeComError as exc:
                results.append(CheckResult(False, subject, _why(exc)))
                continue
            if sent.invalid:
                names = "; ".join(
                    f"{k.removeprefix('invalid')}: {'|'.join(v)}" for k, v in sent.invalid.items()
                )
                results.append(
                    CheckResult(
                        False,
                        subject,
                        f"sent, but WeCom skipped {names}: they do not exist or are outside the app's "
                        "visible range "
                        "(App Management → Apps → <app> → Visible to / 可见范围)",
                    )
                )
            else:
                agent = f" (agent_id {config.apps[target.app].agent_id} accepted)" if target.app else ""
                results.append(CheckResult(True, subject, f"test message sent to {channel.name}{agent}"))
    return results
