"""WeCom's side of an app's callback URL: saving the URL (WeCom first calls it with a signed, encrypted
echostr and keeps it only if the plaintext comes back) and posting events to it, such as a person's
click on a card button (template_card_event), signed and encrypted as WeCom does."""

from __future__ import annotations

import secrets
import time
from dataclasses import dataclass
from typing import Any

import httpx

from alertmanager_wecom.wecom.callback_crypto import CallbackCrypto


@dataclass
class SavedCallback:
    url: str
    crypto: CallbackCrypto


class CallbackSender:
    def __init__(self, answer_within: float = 5.0) -> None:
        self.saved: dict[int, SavedCallback] = {}  # by agent_id
        self.answer_within = answer_within  # WeCom waits 5 s for an answer, then tries again

    async def save(
        self, corp_id: str, agent_id: int, url: str, token: str, encoding_aes_key: str
    ) -> dict[str, Any]:
        """As WeCom's admin console does when the callback URL is saved: verify it first."""
        try:
            crypto = CallbackCrypto(token, encoding_aes_key, corp_id)
        except ValueError as exc:
            return {"saved": False, "error": str(exc)}
        plaintext, query = crypto.url_check(int(time.time()))
        try:
            async with httpx.AsyncClient(timeout=1.0) as client:  # WeCom waits about a second
                answer = await client.get(url, params=query)
        except httpx.HTTPError as exc:
            return {"saved": False, "error": f"请求URL失败 (cannot reach {url}: {type(exc).__name__})"}
        if answer.status_code != 200 or answer.text != plaintext:
            return {
                "saved": False,
                "error": f"回调地址验证失败 (HTTP {answer.status_code}, not the echostr's plaintext)",
            }
        self.saved[agent_id] = SavedCallback(url, crypto)
        return {"saved": True, "url": url}

    async def click(
        self, agent_id: int, userid: str, event_key: str, task_id: str, response_code: str = ""
    ) -> dict[str, Any]:
        """A person presses a card button: WeCom posts a template_card_event to the app's callback URL,
        and tries again (3 tries in all) when it gets no answer within 5 s; every try is the same event."""
        saved = self.saved.get(agent_id)
        if saved is None:
            return {"sent": False, "error": f"app {agent_id} has no verified callback URL"}
        now = int(time.time())
        event = (
            f"<xml><ToUserName><![CDATA[{saved.crypto.receive_id}]]></ToUserName>"
            f"<FromUserName><![CDATA[{userid}]]></FromUserName><CreateTime>{now}</CreateTime>"
            "<MsgType><![CDATA[event]]></MsgType><Event><![CDATA[template_card_event]]></Event>"
            f"<EventKey><![CDATA[{event_key}]]></EventKey><TaskId><![CDATA[{task_id}]]></TaskId>"
            "<CardType><![CDATA[button_interaction]]></CardType>"
            f"<ResponseCode><![CDATA[{response_code or secrets.token_urlsafe(24)}]]></ResponseCode>"
            f"<AgentID>{agent_id}</AgentID></xml>"
        )
        encrypted = saved.crypto.encrypt(event)
        nonce = str(secrets.randbelow(10**9))
        query = {
            "msg_signature": saved.crypto.signature(str(now), nonce, encrypted),
            "timestamp": str(now),
            "nonce": nonce,
        }
        body = (
            f"<xml><ToUserName><![CDATA[{saved.crypto.receive_id}]]></ToUserName>"
            f"<Encrypt><![CDATA[{encrypted}]]></Encrypt><AgentID><![CDATA[{agent_id}]]></AgentID></xml>"
        )
        failure = ""
        async with httpx.AsyncClient(timeout=self.answer_within) as client:  # WeCom gives up after 5 s
            for attempt in range(1, 4):
                try:
                    answer = await client.post(saved.url, params=query, content=body.encode())
                except httpx.HTTPError as exc:
                    failure = f"cannot reach {saved.url}: {type(exc).__name__}"
                    continue
                return {"sent": True, "status": answer.status_code, "attempts": attempt}
        return {"sent": False, "error": failure, "attempts": 3}
