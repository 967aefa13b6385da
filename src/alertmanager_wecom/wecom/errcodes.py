"""The one table that maps every WeCom errcode to what a sender does about it.

Nothing else in the code base looks at errcode values: channels call `classify` and act on the
`Action`; the `Reason` (`alertmanager_wecom.reasons`, re-exported here) is the label that logs, metrics
and the outbox's dead letters use.  Success (errcode 0) is not in the table: the client returns the
reply and classifies only failures.  Codes not in the table are treated as transient, because
retrying an unknown failure until the age limit loses less than giving up.
"""

from __future__ import annotations

import enum
import re
from dataclasses import dataclass

from alertmanager_wecom.reasons import Reason


class Action(enum.Enum):
    REFRESH_TOKEN = "refresh_token"  # get a new token, resend once
    RETRY = "retry"  # transient: back off and try again
    PERMANENT = "permanent"  # configuration error: do not retry, tell the operator the fix
    BAD_REQUEST = "bad_request"  # this message is wrong: do not resend it unchanged
    NOT_FOUND = "not_found"  # a look-up's answer, not a failure: no member has that email / mobile


@dataclass(frozen=True)
class ErrInfo:
    action: Action
    reason: Reason
    meaning: str
    fix: str = ""


_A, _R = Action, Reason
TABLE: dict[int, ErrInfo] = {
    # token: refresh and resend once
    40014: ErrInfo(_A.REFRESH_TOKEN, _R.TOKEN, "invalid access_token"),
    41001: ErrInfo(_A.REFRESH_TOKEN, _R.TOKEN, "access_token missing"),
    42001: ErrInfo(_A.REFRESH_TOKEN, _R.TOKEN, "access_token expired"),
    # transient: back off
    -1: ErrInfo(_A.RETRY, _R.BUSY, "system busy"),
    45009: ErrInfo(_A.RETRY, _R.RATE_LIMITED, "API frequency limit reached"),
    45033: ErrInfo(_A.RETRY, _R.RATE_LIMITED, "too many concurrent calls"),
    6000: ErrInfo(_A.RETRY, _R.BUSY, "data version conflict"),
    # permanent configuration errors
    40001: ErrInfo(
        _A.PERMANENT,
        _R.BAD_CREDENTIALS,
        "invalid secret",
        "the app's Secret does not belong to this corp_id: copy it again from App Management → Apps → "
        "<app> → Secret (View), and check corp_id under My Company → Company Information",
    ),
    40013: ErrInfo(
        _A.PERMANENT,
        _R.BAD_CREDENTIALS,
        "invalid corpid",
        "corp_id is wrong: copy the Company ID from My Company → Company Information (it starts with ww)",
    ),
    40056: ErrInfo(
        _A.PERMANENT,
        _R.BAD_AGENT,
        "invalid agentid",
        "agent_id is wrong: use the AgentId shown on the app's detail page (App Management → Apps → <app>)",
    ),
    301002: ErrInfo(
        _A.PERMANENT,
        _R.BAD_AGENT,
        "the token's app is not this agentid",
        "agent_id does not match the app whose Secret is configured: take both from the same app's page",
    ),
    60020: ErrInfo(
        _A.PERMANENT,
        _R.TRUSTED_IP,
        "caller IP is not a trusted IP",
        "add {ip} under App Management → Apps → <app> → Developer API → Company's Trusted IP (企业可信IP); "
        "that needs a verified trusted domain or a callback URL first; changes take about a minute",
    ),
    48002: ErrInfo(
        _A.PERMANENT,
        _R.NO_PERMISSION,
        "API forbidden for this app",
        "the app has no permission for this API: check the app's API permissions in the admin console",
    ),
    50003: ErrInfo(
        _A.PERMANENT,
        _R.NO_PERMISSION,
        "app is disabled",
        "the app is disabled: enable it under App Management → Apps → <app>",
    ),
    60011: ErrInfo(
        _A.PERMANENT,
        _R.NO_PERMISSION,
        "no privilege to access or operate",
        "the recipients are outside the app's visible range: add them under the app's Visible to (可见范围)",
    ),
    81013: ErrInfo(
        _A.PERMANENT,
        _R.RECIPIENTS,
        "all recipients invalid or outside the app's visible range",
        "check the userids/party ids/tag ids and add them to the app's Visible to (可见范围) list",
    ),
    82001: ErrInfo(
        _A.PERMANENT,
        _R.RECIPIENTS,
        "no recipients",
        "set to_user, to_party or to_tag on the target",
    ),
    40032: ErrInfo(_A.PERMANENT, _R.RECIPIENTS, "too many users (max 1000)", "split the recipients"),
    82002: ErrInfo(_A.PERMANENT, _R.RECIPIENTS, "too many parties (max 100)", "split the recipients"),
    82003: ErrInfo(_A.PERMANENT, _R.RECIPIENTS, "too many tags (max 100)", "split the recipients"),
    86003: ErrInfo(
        _A.PERMANENT,
        _R.RECIPIENTS,
        "app chat not found",
        "the chatid does not exist for this app: create the chat with `alertmanager-wecom appchat create`",
    ),
    60111: ErrInfo(_A.PERMANENT, _R.RECIPIENTS, "userid not found", "check the userids"),
    # user/getuserid, user/get_userid_by_email: an answer (cached as such), not a failure to report.
    46004: ErrInfo(_A.NOT_FOUND, _R.RECIPIENTS, "no such member", "check the email or mobile number"),
    86215: ErrInfo(_A.PERMANENT, _R.BAD_MESSAGE, "app chat already exists", "choose another chatid"),
    93000: ErrInfo(
        _A.PERMANENT,
        _R.ROBOT,
        "robot webhook URL invalid or robot removed",
        "the robot key is wrong or the robot was removed from the group: copy the webhook URL again",
    ),
    93004: ErrInfo(
        _A.PERMANENT, _R.ROBOT, "robot disabled", "the robot is disabled: enable it in the group's settings"
    ),
    # bad message: do not resend unchanged
    44004: ErrInfo(_A.BAD_REQUEST, _R.BAD_MESSAGE, "empty content"),
    45002: ErrInfo(_A.BAD_REQUEST, _R.BAD_MESSAGE, "content too long"),
    40058: ErrInfo(_A.BAD_REQUEST, _R.BAD_MESSAGE, "invalid parameter (or robot content too long)"),
    40035: ErrInfo(_A.BAD_REQUEST, _R.BAD_MESSAGE, "invalid parameter"),
    40008: ErrInfo(_A.BAD_REQUEST, _R.BAD_MESSAGE, "invalid msgtype"),
    40007: ErrInfo(_A.BAD_REQUEST, _R.BAD_MESSAGE, "invalid media_id"),
    47001: ErrInfo(_A.BAD_REQUEST, _R.BAD_MESSAGE, "data format error (body is not valid JSON)"),
    60140: ErrInfo(
        _A.BAD_REQUEST,
        _R.BAD_MESSAGE,
        "card response_code invalid, already used or older than 72 h",
        "each response_code updates a card once: a newer one comes with the next click",
    ),
}
_UNKNOWN = ErrInfo(_A.RETRY, _R.UNKNOWN, "unknown errcode")
_FROM_IP = re.compile(r"from ip:\s*([0-9a-fA-F.:]+)")

# What 60011 / 48002 mean for user/getuserid and user/get_userid_by_email (their table entries speak of
# message/send's recipients). Where the permission is granted: WeCom's console, as of 2024.
CONTACTS_FIX = (
    "the app needs the directory (通讯录) read permission to find members by email or mobile: grant it "
    "under App Management → Apps → <app> → API permissions (通讯录 → 读取成员 / read members), and keep "
    "the members in the app's Visible to (可见范围)"
)

__all__ = [
    "CONTACTS_FIX",
    "TABLE",
    "Action",
    "ErrInfo",
    "Reason",
    "caller_ip",
    "classify",
    "explain",
    "explain_lookup",
]


def classify(errcode: int) -> ErrInfo:
    """What to do about a failed call (never called with errcode 0, which is success)."""
    return TABLE.get(errcode, _UNKNOWN)


def caller_ip(errmsg: str) -> str | None:
    """The caller IP WeCom saw, from ``..., from ip: 1.2.3.4, more info at ...``."""
    match = _FROM_IP.search(errmsg)
    return match.group(1).rstrip(".") if match else None


def explain(errcode: int, errmsg: str) -> str:
    """One line: what went wrong and how to fix it."""
    info = classify(errcode)
    fix = info.fix
    if "{ip}" in fix:
        fix = fix.replace("{ip}", caller_ip(errmsg) or "this host's public egress IP")
    text = f"WeCom errcode {errcode} ({info.meaning})"
    return f"{text}: {fix}" if fix else text


def explain_lookup(errcode: int, errmsg: str) -> str:
    """`explain` for a failed look-up of a member by email or mobile: a missing permission is named as
    the directory (通讯录) permission that these APIs need."""
    if classify(errcode).reason is Reason.NO_PERMISSION and errcode != 50003:
        return f"WeCom errcode {errcode} ({classify(errcode).meaning}): {CONTACTS_FIX}"
    return explain(errcode, errmsg)
