"""App chats (群聊会话): create one, or read one back. Used by hand (`alertmanager-wecom appchat`), to make
the chat a target sends to with `chat: CHATID`; sending to it is the app_chat channel's job."""

from __future__ import annotations

from typing import Any

from alertmanager_wecom.wecom.token import AccessToken


async def create_app_chat(
    token: AccessToken, name: str, users: list[str], owner: str | None = None, chatid: str | None = None
) -> str:
    """The new chat's id (`chatid` if given; WeCom makes one otherwise). Raises WeComError."""
    body: dict[str, Any] = {"name": name, "userlist": users}
    if owner:
        body["owner"] = owner
    if chatid:
        body["chatid"] = chatid
    reply = await token.call("POST", "appchat/create", body=body)
    return str(reply["chatid"])


async def get_app_chat(token: AccessToken, chatid: str) -> dict[str, Any]:
    """The chat's chat_info (chatid, name, owner, userlist); {} if WeCom sends none. Raises WeComError."""
    reply = await token.call("GET", "appchat/get", params={"chatid": chatid})
    info = reply.get("chat_info")
    return info if isinstance(info, dict) else {}
