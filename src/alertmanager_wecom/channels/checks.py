"""`check`: the setup guide's manual test (gettoken, then message/send) with a diagnosis per failure."""

from __future__ import annotations

import socket
import time
from dataclasses import dataclass

import httpx

from alertmanager_wecom.channels import build_channel, kind_of
from alertmanager_wecom.config import AppTarget, CallbackSettings, ChatTarget, Config
from alertmanager_wecom.rendering.message import Message
from alertmanager_wecom.wecom.api import WeComAPI, WeComError
from alertmanager_wecom.wecom.callback_crypto import CallbackCrypto
from alertmanager_wecom.wecom.errcodes import explain
from alertmanager_wecom.wecom.lookup_check import check_lookups, resolve_written
from alertmanager_wecom.wecom.token import AccessToken
from alertmanager_wecom.wecom.userid import UserIds


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
    for name, app in config.apps.items():
        if app.callback is not None:
            results.append(await check_callback(name, app.corp_id, app.callback, client))
    userids = UserIds(config.wecom)
    results += [CheckResult(*r) for r in await check_lookups(config, tokens, working, userids)]
    if not send:
        return results
    text = f"alertmanager-wecom check: test message from {socket.gethostname()}"
    for receiver in config.receivers:
        for index, target in enumerate(receiver.targets):
            subject = f"receiver {receiver.name} target {index + 1} ({kind_of(target).via(target)})"
            if isinstance(target, AppTarget) and target.templated_recipients:
                results.append(CheckResult(True, subject, _not_tested(target)))
                continue
            if kind_of(target).renders(target, config) is not None:
                # A webhook's gateway may call a phone: `check` does not page anyone.
                results.append(CheckResult(True, subject, "not tested: it posts to a gateway of your own"))
                continue
            via = target.app if isinstance(target, AppTarget | ChatTarget) else None
            if via is not None and via not in working:
                results.append(CheckResult(False, subject, f"skipped: app {via} has no access token"))
                continue
            target, _ = await resolve_written(target, tokens, userids)  # email:/mobile: (checked above)
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
                agent = f" (agent_id {config.apps[via].agent_id} accepted)" if via else ""
                results.append(CheckResult(True, subject, f"test message sent to {channel.name}{agent}"))
    return results


def _not_tested(target: AppTarget) -> str:
    """Why a target whose recipients come from alert data gets no test message: a template is not an
    id, and sending to its literal text would only earn an error for a name nobody has."""
    templates = [
        f"{field}: {value}"
        for field in ("to_user", "to_party", "to_tag")
        for value in getattr(target, field, ())
        if "{{" in value
    ]
    return (
        f"not tested: its recipients come from alert data ({'; '.join(templates)}), so there is nobody "
        f"to send a test message to; nothing was sent (try one person: alertmanager-wecom send --app "
        f"{target.app} --to <userid>)"
    )


async def check_callback(
    name: str, corp_id: str, callback: CallbackSettings, client: httpx.AsyncClient
) -> CheckResult:
    """Call the app's callback URL as WeCom does when it is saved (a signed, encrypted echostr) and
    expect the plaintext back: the URL is reachable, and the service there has the same token and key."""
    subject = f"app {name} callback"
    if callback.url is None:
        return CheckResult(
            True, subject, f"configured; set apps.{name}.callback.url to let check call it as WeCom does"
        )
    crypto = CallbackCrypto(callback.token.reveal(), callback.encoding_aes_key.reveal(), corp_id)
    plaintext, query = crypto.url_check(int(time.time()))
    try:
        answer = await client.get(callback.url, params=query)
    except httpx.HTTPError as exc:
        return CheckResult(
            False,
            subject,
            f"{callback.url} cannot be reached ({type(exc).__name__}): WeCom must reach it too",
        )
    if answer.status_code == 200 and answer.text == plaintext:
        return CheckResult(True, subject, f"{callback.url} answered WeCom's URL check")
    hints = {
        403: "refused: the service there has another token or EncodingAESKey, or another corp_id",
        404: f"not found: the path is /wecom/callback/{name}, and that service needs apps.{name}.callback",
    }
    hint = hints.get(answer.status_code, "answered something else (is it this service?)")
    return CheckResult(False, subject, f"{callback.url}: HTTP {answer.status_code}, {hint}")
