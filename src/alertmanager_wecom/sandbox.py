"""Sandbox mode: `serve` with no config runs the simulator in-process, with a demo app and receiver."""

from __future__ import annotations

from alertmanager_wecom.config import Config
from alertmanager_wecom.loading import parse_config
from alertmanager_wecom.rendering import chart
from alertmanager_wecom.simulator.callbacks import SavedCallback
from alertmanager_wecom.simulator.model import (
    SANDBOX_AGENT_ID,
    SANDBOX_CORP_ID,
    SANDBOX_ROBOT_KEY,
    SANDBOX_SECRET,
)
from alertmanager_wecom.wecom.callback_crypto import CallbackCrypto

SIMULATOR_PREFIX = "/sim"
DEMO_RECEIVER = "demo"
# The sandbox app's callback (made up, like its secret): zhaoliu's alert cards can be pressed in the inbox.
SANDBOX_CALLBACK_TOKEN = "sandboxcallbacktoken"
SANDBOX_CALLBACK_AES_KEY = "sandboxCallbackEncodingAESKey00000000000000"
SANDBOX_ACK_KEY = "sandbox-acknowledge-link-key-000"  # made up too: the sandbox's links are local


def sandbox_callbacks(host: str, port: int) -> dict[int, SavedCallback]:
    """The sandbox simulator knows the relay's callback URL from the start (as if saved in the console)."""
    url = f"http://{_reachable(host)}:{port}/wecom/callback/demo"
    crypto = CallbackCrypto(SANDBOX_CALLBACK_TOKEN, SANDBOX_CALLBACK_AES_KEY, SANDBOX_CORP_ID)
    return {SANDBOX_AGENT_ID: SavedCallback(url, crypto)}


def _reachable(host: str) -> str:
    reachable = "127.0.0.1" if host in ("0.0.0.0", "", "::") else host
    return f"[{reachable}]" if ":" in reachable else reachable


def sandbox_config(host: str, port: int, data_dir: str) -> Config:
    reachable = _reachable(host)
    return parse_config(
        {
            "wecom": {"api_url": f"http://{reachable}:{port}{SIMULATOR_PREFIX}/cgi-bin/"},
            "apps": {
                "demo": {
                    "corp_id": SANDBOX_CORP_ID,
                    "agent_id": SANDBOX_AGENT_ID,
                    "secret": SANDBOX_SECRET,
                    "callback": {
                        "token": SANDBOX_CALLBACK_TOKEN,
                        "encoding_aes_key": SANDBOX_CALLBACK_AES_KEY,
                    },
                }
            },
            "robots": {"sre": {"key": SANDBOX_ROBOT_KEY}},
            "receivers": [
                {
                    "name": DEMO_RECEIVER,
                    "escalation": "sre",
                    "targets": [
                        # A chart after the text when matplotlib (the charts extra) is installed.
                        {
                            "app": "demo",
                            "to_user": ["zhangsan"],
                            "msgtype": "markdown",
                            "chart": chart.available(),
                        },
                        {"app": "demo", "to_user": ["lisi"], "msgtype": "text", "language": "en"},
                        {"app": "demo", "to_user": ["wangwu"], "msgtype": "textcard"},
                        # No Alertmanager in the sandbox: cards to acknowledge (silences need one).
                        {
                            "app": "demo",
                            "to_user": ["zhaoliu"],
                            "msgtype": "template_card",
                            "card": {"buttons": [{"action": "ack"}, {"action": "open"}]},
                        },
                        {
                            "robot": "sre",
                            "msgtype": "markdown",
                            "mention_from": ["labels.owner"],
                            "mention": ["zhaoliu"],
                        },
                    ],
                }
            ],
            # Loopback only (serve refuses other addresses in sandbox mode): the console at /ui without a login.
            "server": {
                "listen": f"{host}:{port}",
                "admin_allow_loopback": True,
                "external_url": f"http://{reachable}:{port}",  # where the acknowledge links point
            },
            # On-call: a daily rotation, and a one-minute escalation: an alert nobody acknowledges reaches
            # the person on call (and the robot, with an @) a minute later; 认领 on zhaoliu's card, or
            # the link in zhangsan's and lisi's messages, stops it.
            "oncall": {
                "ack_key": SANDBOX_ACK_KEY,
                "schedules": {
                    "sre": {
                        "members": ["zhangsan", "lisi", "wangwu"],
                        "rotation": "daily",
                        "start": "2026-01-01",
                    }
                },
                "escalations": {
                    "sre": {
                        "steps": [
                            {
                                "after": "1m",
                                "targets": [
                                    {"app": "demo", "to_user": ["oncall:sre"], "msgtype": "text"},
                                    {"robot": "sre", "msgtype": "text", "mention": ["oncall:sre"]},
                                ],
                            }
                        ]
                    }
                },
            },
            # The simulator's made-up series stands in for Prometheus (see simulator/server.py).
            "prometheus": {"url": f"http://{reachable}:{port}{SIMULATOR_PREFIX}"},
            "storage": {"path": f"{data_dir}/outbox.db", "synchronous": "normal"},
        }
    )
