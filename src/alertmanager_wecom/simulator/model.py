"""What the simulated WeCom knows: corps, their members, apps and robots, and its limits."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, model_validator

# The faults the simulator can inject (its settings' and admin API's `kinds`, `--fault-kinds`).
Fault = Literal["busy", "rate_limit", "http_502", "slow"]
ALL_FAULTS: tuple[Fault, ...] = ("busy", "rate_limit", "http_502", "slow")


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid")


class SimApp(_Model):
    agent_id: int
    secret: str
    name: str = "alerts"
    # Members who may receive the app's messages (可见范围); ["@all"] for the whole corp.
    visible: list[str] = Field(default_factory=lambda: ["@all"])
    # None: any caller IP is accepted; a list: others get 60020 on message/send.
    trusted_ips: list[str] | None = None
    # The app may read the directory (通讯录): without it user/getuserid and get_userid_by_email answer 60011.
    contacts: bool = True


class SimContact(_Model):
    """What the directory knows of a member beyond the userid (look-ups go from these to the userid)."""

    email: str | None = None
    mobile: str | None = None


class SimCorp(_Model):
    corp_id: str
    # userids; an entry may also be {userid, email, mobile} (sim.yaml), kept in `contacts`.
    users: list[str]
    contacts: dict[str, SimContact] = Field(default_factory=dict)
    parties: dict[str, list[str]] = Field(default_factory=dict)
    tags: dict[str, list[str]] = Field(default_factory=dict)
    apps: list[SimApp] = Field(default_factory=list)

    @model_validator(mode="before")
    @classmethod
    def _people(cls, data: Any) -> Any:
        """``users: [zhangsan, {userid: lisi, email: lisi@corp.example, mobile: "13800000002"}]``."""
        if not isinstance(data, dict) or not isinstance(data.get("users"), list):
            return data
        users: list[Any] = []
        contacts = dict(data.get("contacts") or {})
        for user in data["users"]:
            if isinstance(user, dict) and "userid" in user:
                person = dict(user)
                userid = person.pop("userid")
                contacts[userid] = person
                users.append(userid)
            else:
                users.append(user)
        return {**data, "users": users, "contacts": contacts}


class Faults(_Model):
    rate: float = Field(default=0.0, ge=0.0, le=1.0)
    kinds: list[Fault] = Field(default_factory=lambda: list(ALL_FAULTS))
    slow_seconds: float = Field(default=2.0, ge=0.0)
    seed: int | None = None


class SimulatorSettings(_Model):
    corps: list[SimCorp] = Field(default_factory=list)
    robots: dict[str, str] = Field(default_factory=dict)  # name → key
    token_ttl_seconds: int = Field(default=7200, ge=1)
    member_per_minute: int = 30
    member_per_hour: int = 1000
    robot_per_minute: int = 20
    content_limit_bytes: int = 2048
    robot_markdown_limit_bytes: int = 4096
    # What message/send answers when a member's limit drops the message: 0 (WeCom's documented
    # "dropped, not delivered"; whether it answers 45009 is unconfirmed) or 45009.
    member_limit_errcode: Literal[0, 45009] = 0
    # Each person (robot chat, app chat) keeps this many newest messages in the inbox; older ones are
    # forgotten and counted (`trimmed` in /admin/inbox and /admin/stats, a note on /inbox).
    inbox_per_recipient: int = Field(default=500, ge=1)
    faults: Faults = Field(default_factory=Faults)

    @classmethod
    def load(cls, path: str | Path) -> SimulatorSettings:
        return cls.model_validate(yaml.safe_load(Path(path).read_text(encoding="utf-8")) or {})


SANDBOX_CORP_ID = "wwsandbox0000001"
SANDBOX_AGENT_ID = 1000002
# Not a secret: the sandbox's own made-up credential, printed in the README.
SANDBOX_SECRET = "sandbox-app-secret-0000000000000000000000"
SANDBOX_USERS = ["zhangsan", "lisi", "wangwu", "zhaoliu"]
SANDBOX_ROBOT_KEY = "sandbox-robot-key-00000000"
# zhangsan@sandbox.example / 13800000001, lisi … 13800000002, and so on: for email:/mobile: recipients.
SANDBOX_CONTACTS = {
    user: SimContact(email=f"{user}@sandbox.example", mobile=f"1380000000{n}")
    for n, user in enumerate(SANDBOX_USERS, start=1)
}


def sandbox_settings() -> SimulatorSettings:
    return SimulatorSettings(
        corps=[
            SimCorp(
                corp_id=SANDBOX_CORP_ID,
                users=SANDBOX_USERS,
                contacts=SANDBOX_CONTACTS,
                parties={"1": SANDBOX_USERS, "2": ["zhangsan", "lisi"]},
                tags={"1": ["wangwu"]},
                apps=[SimApp(agent_id=SANDBOX_AGENT_ID, secret=SANDBOX_SECRET, name="alerts")],
            )
        ],
        robots={"sre": SANDBOX_ROBOT_KEY},
    )
