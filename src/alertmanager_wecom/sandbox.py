"""Sandbox mode: `serve` with no config runs the simulator in-process, with a demo app and receiver."""

from __future__ import annotations

from alertmanager_wecom.config import Config
from alertmanager_wecom.config.loader import parse_config
from alertmanager_wecom.simulator.model import (
    SANDBOX_AGENT_ID,
    SANDBOX_CORP_ID,
    SANDBOX_ROBOT_KEY,
    SANDBOX_SECRET,
)

SIMULATOR_PREFIX = "/sim"
DEMO_RECEIVER = "demo"


def sandbox_config(host: str, port: int, data_dir: str) -> Config:
    reachable = "127.0.0.1" if host in ("0.0.0.0", "", "::") else host
    if ":" in reachable:
        reachable = f"[{reachable}]"
    return parse_config(
        {
            "wecom": {"api_url": f"http://{reachable}:{port}{SIMULATOR_PREFIX}/cgi-bin/"},
            "apps": {
                "demo": {"corp_id": SANDBOX_CORP_ID, "agent_id": SANDBOX_AGENT_ID, "secret": SANDBOX_SECRET}
            },
            "robots": {"sre": {"key": SANDBOX_ROBOT_KEY}},
            "receivers": [
                {
                    "name": DEMO_RECEIVER,
                    "targets": [
                        {"app": "demo", "to_user": ["zhangsan"], "msgtype": "markdown"},
                        {"app": "demo", "to_user": ["lisi"], "msgtype": "text", "language": "en"},
                        {"app": "demo", "to_user": ["wangwu"], "msgtype": "textcard"},
                        {
                            "robot": "sre",
                            "msgtype": "markdown",
                            "mention_from": ["labels.owner"],
                            "mention": ["zhaoliu"],
                        },
                    ],
                }
            ],
            "server": {"listen": f"{host}:{port}"},
            "storage": {"path": f"{data_dir}/outbox.db", "synchronous": "normal"},
        }
    )
