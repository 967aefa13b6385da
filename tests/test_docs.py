"""The Chinese README keeps up with the English one: the same sections and every command it shows."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_the_chinese_readme_has_every_section_and_command_of_the_english_one() -> None:
    english = (ROOT / "README.md").read_text(encoding="utf-8")
    chinese = (ROOT / "README.zh-CN.md").read_text(encoding="utf-8")
    assert "[简体中文](README.zh-CN.md)" in english and "[English](README.md)" in chinese
    assert len(re.findall(r"^## ", english, re.M)) == len(re.findall(r"^## ", chinese, re.M))
    commands = set(re.findall(r"alertmanager-wecom [a-z][a-z-]+(?: [a-z]+)?", english))
    missing = sorted(c for c in commands if c not in chinese)
    assert not missing, missing
    for key in re.findall(r"`([a-z_]+\.[a-z_]+)`", english):  # config keys such as storage.lease
        assert key.endswith(".py") or key in chinese, key


def test_the_chinese_readme_names_every_file_of_the_checkout_the_english_one_names() -> None:
    english = (ROOT / "README.md").read_text(encoding="utf-8")
    chinese = (ROOT / "README.zh-CN.md").read_text(encoding="utf-8")
    named = {name for name in re.findall(r"`([^`\s]+)`", english) if "/" in name or name.startswith(".")}
    files = sorted(name for name in named if (ROOT / name).exists())
    assert ".pre-commit-config.yaml" in files and "tests/helpers.py" in files  # the checks see them
    missing = [name for name in files if name not in chinese]
    assert not missing, missing


def test_the_on_call_example_of_each_readme_is_a_config_that_loads() -> None:
    """The "complete example" of the on-call section, with the apps, robot and webhook it names."""
    import yaml

    from alertmanager_wecom.loading import parse_config

    for name, heading in (
        ("README.md", "## On-call: schedules and escalation"),
        ("README.zh-CN.md", "## 值班与升级"),
    ):
        text = (ROOT / name).read_text(encoding="utf-8")
        section = text.split(heading, 1)[1]
        example = section.split("```yaml\n", 1)[1].split("```", 1)[0]
        raw = yaml.safe_load(example.replace("ack_key_file: /run/secrets/ack-key", "ack_key: " + "k" * 32))
        raw["apps"] = {
            "ops": {
                "corp_id": "ww1",
                "agent_id": 1000002,
                "secret": "s",
                "callback": {"token": "t", "encoding_aes_key": "a" * 43},
            }
        }
        raw["robots"] = {"sre": {"key": "k"}}
        raw["webhooks"] = {"phone": {"url": "https://gateway.example.com/page"}}
        raw["render"] = {"alertmanager_url": "http://alertmanager:9093"}  # the card's silence buttons
        config = parse_config(raw)
        assert config.receivers[0].escalation == "sre", name
        assert [len(s.targets) for s in config.oncall.escalations["sre"].steps] == [1, 3], name
