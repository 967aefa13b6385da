from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from alertmanager_wecom.config import ConfigError, load_config, parse_config
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
