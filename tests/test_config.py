from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from alertmanager_wecom.config import ConfigError
from alertmanager_wecom.loading import load_config, parse_config
from alertmanager_wecom.secret import MASK, Secret, redact

BAD = sorted((Path(__file__).parent / "bad_configs").glob("*.yaml"))


def _expected(path: Path) -> str:
    first = path.read_text(encoding="utf-8").splitlines()[0]
    assert first.startswith("# expect: "), f"{path.name} must start with '# expect: '"
    return first.removeprefix("# expect: ")


@pytest.mark.parametrize("path", BAD, ids=[p.stem for p in BAD])
def test_each_bad_config_is_refused_with_its_key_path(path: Path) -> None:
    with pytest.raises(ConfigError) as info:
        load_config(path)
    assert _expected(path) in str(info.value)


def test_bad_config_makes_check_config_and_serve_exit_nonzero() -> None:
    path = Path(__file__).parent / "bad_configs" / "unknown_app.yaml"
    for command in (["check-config", str(path)], ["serve", "--config", str(path)]):
        result = subprocess.run(
            [sys.executable, "-m", "alertmanager_wecom", *command], capture_output=True, text=True, timeout=60
        )
        assert result.returncode != 0
        assert "receivers[0].targets[0].app: unknown app 'dev'" in result.stderr


def test_env_interpolation_and_secret_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AMW_TEST_SECRET", "env-secret-value-1")
    (tmp_path / "secret").write_text("file-secret-value-2\n", encoding="utf-8")
    config = parse_config(
        {
            "apps": {
                "a": {"corp_id": "ww1", "agent_id": 1, "secret": "${AMW_TEST_SECRET}"},
                "b": {"corp_id": "ww1", "agent_id": 2, "secret_file": str(tmp_path / "secret")},
            },
        }
    )
    assert config.apps["a"].secret.reveal() == "env-secret-value-1"
    assert config.apps["b"].secret.reveal() == "file-secret-value-2"


def test_secrets_are_masked_in_repr_str_and_dumps() -> None:
    config = parse_config({"apps": {"a": {"corp_id": "ww1", "agent_id": 1, "secret": "very-secret-abc"}}})
    for shown in (repr(config), str(config), f"{config.apps['a'].secret}", config.model_dump_json()):
        assert "very-secret-abc" not in shown
    assert MASK in repr(config.apps["a"].secret)


def test_redact_removes_registered_secrets_and_url_parameters() -> None:
    Secret("registered-secret-xyz")
    text = (
        "GET /cgi-bin/gettoken?corpid=ww1&corpsecret=abc&x=1 failed: registered-secret-xyz access_token=t0k"
    )
    out = redact(text)
    assert "registered-secret-xyz" not in out and "corpsecret=abc" not in out and "t0k" not in out
    assert "corpid=ww1" in out


def test_defaults() -> None:
    config = parse_config(None)
    assert config.wecom.api_url == "https://qyapi.weixin.qq.com/cgi-bin/"
    assert config.render.language == "zh" and config.render.time_zone == "Asia/Shanghai"
    assert config.server.listen == "127.0.0.1:9095"


def test_templates_checked_at_load_are_the_ones_rendered(tmp_path: Path) -> None:
    """The loader keeps the compiled templates: a file edited (or broken, or removed) after the load is
    not used unchecked; a reload checks and keeps it again."""
    from alertmanager_wecom.ingest.payload import Notification
    from alertmanager_wecom.rendering.renderer import Renderer

    template = tmp_path / "mine.j2"
    template.write_text("CHECKED {% for a in alerts %}{{ a.ident }}{% endfor %}", encoding="utf-8")
    raw = {
        "apps": {"ops": {"corp_id": "c", "agent_id": 1, "secret": "s"}},
        "receivers": [
            {
                "name": "r",
                "targets": [{"app": "ops", "to_user": ["a"], "msgtype": "text", "template": "mine.j2"}],
            }
        ],
    }
    config = parse_config(raw, base_dir=tmp_path)
    target = config.receivers[0].targets[0]
    assert target.template_key() in config.kept_templates.by_key
    template.write_text("BROKEN {% for %}", encoding="utf-8")
    alert = {"status": "firing", "labels": {"alertname": "X"}, "startsAt": "2024-01-01T00:00:00Z"}
    notification = Notification.model_validate({"status": "firing", "receiver": "r", "alerts": [alert]})
    [message] = Renderer.for_target(target, config).render(notification)
    assert message.content.startswith("CHECKED") and "BROKEN" not in message.content
    with pytest.raises(ConfigError, match=r"receivers\[0\]\.targets\[0\]\.template: .*mine\.j2:1"):
        parse_config(raw, base_dir=tmp_path)  # what a reload would say
    # Kept templates take no part in equality: the same file loaded twice is the same config.
    template.write_text("CHECKED", encoding="utf-8")
    assert parse_config(raw, base_dir=tmp_path) == parse_config(raw, base_dir=tmp_path)
