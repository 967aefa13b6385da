"""`alertmanager-wecom init` (non-interactive) against the simulator: it checks the values with WeCom,
writes a config that `check-config` and `check` accept and `serve` delivers with, and never writes the
secret into the file."""

from __future__ import annotations

import os
import stat
import sys
from pathlib import Path

import httpx
import pexpect
import pytest
from click.testing import CliRunner

from alertmanager_wecom import samples
from alertmanager_wecom.cli import init_prompts as prompts
from alertmanager_wecom.cli import main
from alertmanager_wecom.loading import load_config
from alertmanager_wecom.simulator import SimulatorState
from alertmanager_wecom.simulator.model import (
    SANDBOX_AGENT_ID,
    SANDBOX_CORP_ID,
    SANDBOX_ROBOT_KEY,
    SANDBOX_SECRET,
)
from alertmanager_wecom.web.app import create_app
from tests.helpers import wait_until
from tests.servers import serve_in_thread


def _init(simulator: str, output: Path, *extra: str, env_name: str = "SIM_SECRET") -> list[str]:
    return [
        "init",
        "--corp-id",
        SANDBOX_CORP_ID,
        "--agent-id",
        str(SANDBOX_AGENT_ID),
        "--secret-env",
        env_name,
        "--to-user",
        "zhangsan",
        "--api-url",
        f"{simulator}/cgi-bin/",
        "--output",
        str(output),
        *extra,
    ]


def test_init_writes_a_checked_config_that_delivers(
    simulator: str, sim_state: SimulatorState, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    env = {"SIM_SECRET": SANDBOX_SECRET}
    key_file = tmp_path / "robot.key"
    key_file.write_text(SANDBOX_ROBOT_KEY, encoding="utf-8")
    output = tmp_path / "config.yaml"
    runner = CliRunner()
    done = runner.invoke(main, _init(simulator, output, "--robot-key-file", str(key_file)), env=env)
    assert done.exit_code == 0, done.output
    assert "OK   app ops gettoken" in done.output and "wrote" in done.output
    assert "receivers:" in done.output and "/alerts/default" in done.output
    assert f"alertmanager-wecom serve --config {output}" in done.output
    written = output.read_text(encoding="utf-8")
    assert (
        SANDBOX_SECRET not in written
        and SANDBOX_ROBOT_KEY not in written
        and SANDBOX_SECRET not in done.output
    )
    assert "${SIM_SECRET}" in written and "Company ID" in written  # commented, secret by reference
    # The test messages init sent: one to zhangsan, one to the robot's group.
    assert {e["recipient"] for e in sim_state.entries()} >= {"zhangsan", "robot:sre"}

    assert runner.invoke(main, ["check-config", str(output)], env=env).exit_code == 0
    assert runner.invoke(main, ["check", "--config", str(output), "--no-send"], env=env).exit_code == 0
    (tmp_path / "storage").mkdir()
    with_storage = written + f"storage:\n  path: {tmp_path / 'storage' / 'outbox.db'}\n"
    output.write_text(with_storage, encoding="utf-8")
    monkeypatch.setenv("SIM_SECRET", SANDBOX_SECRET)
    config = load_config(output)
    before = len(sim_state.entries("zhangsan"))
    with serve_in_thread(create_app(config)) as relay:
        answer = httpx.post(f"{relay}/alerts/default", json=samples.node_down(2), timeout=30)
        assert answer.status_code == 200, answer.text
        wait_until(lambda: len(sim_state.entries("zhangsan")) > before, 30, "the alert in zhangsan's inbox")
    assert "NodeDown" in sim_state.entries("zhangsan")[-1]["visible"]


def test_init_explains_a_wrong_secret_and_writes_nothing(simulator: str, tmp_path: Path) -> None:
    output = tmp_path / "config.yaml"
    result = CliRunner().invoke(main, _init(simulator, output), env={"SIM_SECRET": "not-the-secret"})
    assert result.exit_code == 1
    assert "40001" in result.output and "not written" in result.output
    assert not output.exists()
    assert "not-the-secret" not in result.output


def test_init_never_overwrites_without_force(simulator: str, tmp_path: Path) -> None:
    output = tmp_path / "config.yaml"
    output.write_text("mine\n", encoding="utf-8")
    env = {"SIM_SECRET": SANDBOX_SECRET}
    refused = CliRunner().invoke(main, _init(simulator, output), env=env)
    assert refused.exit_code == 1 and "--force" in refused.output
    assert output.read_text(encoding="utf-8") == "mine\n"
    forced = CliRunner().invoke(main, _init(simulator, output, "--force", "--no-check"), env=env)
    assert forced.exit_code == 0, forced.output
    assert output.read_text(encoding="utf-8") != "mine\n"
    missing = CliRunner().invoke(
        main, _init(simulator, tmp_path / "other.yaml", env_name="UNSET_VAR"), env={}
    )
    assert missing.exit_code == 1 and "UNSET_VAR is not set" in missing.output


def test_init_on_a_terminal_asks_again_and_waits_for_the_trusted_ip(
    simulator: str, sim_state: SimulatorState, tmp_path: Path
) -> None:
    """Driven through a real pseudo-terminal: a wrong secret is named (40001) and asked again; a 60020
    names the IP WeCom saw and the console path, and init retries once the IP is added."""
    sim_state.set_trusted_ips(SANDBOX_AGENT_ID, ["10.9.9.9"])  # this host is not trusted yet
    output = tmp_path / "config.yaml"
    env = {k: v for k, v in os.environ.items() if "SECRET" not in k}
    child = pexpect.spawn(
        sys.executable,
        [
            "-m",
            "alertmanager_wecom",
            "init",
            "--lang",
            "en",
            "--api-url",
            f"{simulator}/cgi-bin/",
            "--output",
            str(output),
        ],
        env=env,
        encoding="utf-8",
        timeout=30,
    )
    try:
        child.expect("Company ID")
        child.sendline(SANDBOX_CORP_ID)
        child.expect("AgentId")
        child.sendline(str(SANDBOX_AGENT_ID))
        child.expect("Secret")
        child.sendline("wrong-secret")
        child.expect("40001")
        child.expect("Secret")
        child.sendline(SANDBOX_SECRET)
        child.expect("Company ID and Secret accepted")
        child.expect("userid")
        child.sendline("zhangsan")
        child.expect("Where should the service read the Secret")
        child.sendline("WECOM_SECRET")
        child.expect("WW_verify")  # none here: asked for one
        child.sendline(str(tmp_path / "WW_verify_bad.txt"))
        child.expect("16 letters or digits")  # not a verification file: asked again
        child.expect("WW_verify")
        child.sendline("")  # skipped
        child.expect("60020")
        child.expect("127.0.0.1")  # the IP WeCom saw
        child.expect("Trusted IP")  # where to add it
        child.expect("press Enter to retry")
        sim_state.set_trusted_ips(SANDBOX_AGENT_ID, None)  # the operator adds it
        child.sendline("")
        child.expect("wrote")
        child.expect(pexpect.EOF)
    finally:
        child.close()
    assert child.exitstatus == 0, child.before
    written = output.read_text(encoding="utf-8")
    assert SANDBOX_SECRET not in written and "wrong-secret" not in written
    assert "${WECOM_SECRET}" in written


VERIFY = "WW_verify_2YR9B7ZGcQ3dbN3b.txt"


def test_init_serves_the_verification_file_given_or_found(
    simulator: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """--verify-file (checked: WeCom's name and a code inside) ends up served at the root; on a
    terminal, a WW_verify_*.txt in the current directory is offered."""
    verify = tmp_path / VERIFY
    verify.write_text("2YR9B7ZGcQ3dbN3b", encoding="utf-8")
    env = {"SIM_SECRET": SANDBOX_SECRET}
    runner = CliRunner()
    output = tmp_path / "config.yaml"
    done = runner.invoke(main, _init(simulator, output, "--verify-file", str(verify)), env=env)
    assert done.exit_code == 0, done.output
    assert runner.invoke(main, ["check-config", str(output)], env=env).exit_code == 0
    wrong = tmp_path / "verify.txt"
    wrong.write_text("x", encoding="utf-8")
    refused = runner.invoke(
        main, _init(simulator, tmp_path / "other.yaml", "--verify-file", str(wrong)), env=env
    )
    assert refused.exit_code != 0 and "WW_verify_<16 letters or digits>.txt" in refused.output
    monkeypatch.setenv("SIM_SECRET", SANDBOX_SECRET)
    written = output.read_text(encoding="utf-8").replace("data/outbox.db", str(tmp_path / "outbox.db"))
    output.write_text(written + f"storage:\n  path: {tmp_path / 'outbox.db'}\n", encoding="utf-8")
    with serve_in_thread(create_app(load_config(output))) as relay:
        served = httpx.get(f"{relay}/{VERIFY}", timeout=10)
        assert (served.status_code, served.text) == (200, "2YR9B7ZGcQ3dbN3b")

    env_tty = {k: v for k, v in os.environ.items() if "SECRET" not in k}
    env_tty["WECOM_SECRET"] = SANDBOX_SECRET
    child = pexpect.spawn(
        sys.executable,
        [
            "-m",
            "alertmanager_wecom",
            "init",
            "--lang",
            "zh",
            "--api-url",
            f"{simulator}/cgi-bin/",
            "--output",
            "found.yaml",
        ],
        env=env_tty,
        cwd=str(tmp_path),
        encoding="utf-8",
        timeout=30,
    )
    try:
        child.expect("企业ID")
        child.sendline(SANDBOX_CORP_ID)
        child.expect("AgentId")
        child.sendline(str(SANDBOX_AGENT_ID))
        child.expect("Secret")
        child.sendline(SANDBOX_SECRET)
        child.expect("userid")
        child.sendline("zhangsan")
        child.expect("Secret")
        child.sendline("WECOM_SECRET")
        child.expect("找到企业微信的域名验证文件 .*WW_verify_2YR9B7ZGcQ3dbN3b.txt")
        child.sendline("y")
        child.expect("wrote")
        child.expect(pexpect.EOF)
    finally:
        child.close()
    assert child.exitstatus == 0, child.before
    assert str(verify) in (tmp_path / "found.yaml").read_text(encoding="utf-8")


def test_init_writes_the_secret_file_0600_over_an_existing_one_and_never_through_a_link(
    simulator: str, tmp_path: Path
) -> None:
    """On a terminal, the Secret goes to the file named: a symbolic link there is refused (and asked
    again), a file that exists, readable by others, is made 0600 before the secret is in it."""
    elsewhere = tmp_path / "someone-elses.txt"
    elsewhere.write_text("not yours\n", encoding="utf-8")
    link = tmp_path / "link-secret"
    link.symlink_to(elsewhere)
    existing = tmp_path / "wecom-secret"
    existing.write_text("an old secret\n", encoding="utf-8")
    existing.chmod(0o644)
    output = tmp_path / "config.yaml"
    env = {k: v for k, v in os.environ.items() if "SECRET" not in k}
    child = pexpect.spawn(
        sys.executable,
        ["-m", "alertmanager_wecom", "init", "--lang", "en", "--api-url", f"{simulator}/cgi-bin/"],
        env=env,
        cwd=str(tmp_path),
        encoding="utf-8",
        timeout=30,
    )
    try:
        child.expect("Company ID")
        child.sendline(SANDBOX_CORP_ID)
        child.expect("AgentId")
        child.sendline(str(SANDBOX_AGENT_ID))
        child.expect("Secret")
        child.sendline(SANDBOX_SECRET)
        child.expect("userid")
        child.sendline("zhangsan")
        child.expect("Where should the service read the Secret")
        child.sendline(str(link))
        child.expect("is a symbolic link")
        child.expect("Where should the service read the Secret")  # asked again
        child.sendline(str(existing))
        child.expect("Secret written to")
        child.expect("WW_verify")
        child.sendline("")
        child.expect("wrote")
        child.expect(pexpect.EOF)
    finally:
        child.close()
    assert child.exitstatus == 0, child.before
    assert elsewhere.read_text(encoding="utf-8") == "not yours\n" and link.is_symlink()
    assert existing.read_text(encoding="utf-8") == SANDBOX_SECRET + "\n"
    assert stat.S_IMODE(existing.stat().st_mode) == 0o600
    assert f"secret_file: {existing}" in output.read_text(encoding="utf-8")


def test_the_secret_file_writer_refuses_a_link_and_tightens_an_existing_file(tmp_path: Path) -> None:
    t = prompts.TEXTS["en"]
    target = tmp_path / "target"
    target.write_text("kept\n", encoding="utf-8")
    target.chmod(0o644)
    (tmp_path / "dangling").symlink_to(tmp_path / "nowhere")
    for link in (tmp_path / "dangling", tmp_path / "link"):
        if not link.is_symlink():
            link.symlink_to(target)
        problem = prompts.write_secret_file(t, str(link), "s3cret")
        assert problem is not None and f"{link} is a symbolic link" in problem
    assert not (tmp_path / "nowhere").exists()  # a dangling link did not create its target either
    assert target.read_text(encoding="utf-8") == "kept\n" and stat.S_IMODE(target.stat().st_mode) == 0o644
    assert prompts.write_secret_file(t, str(target), "s3cret") is None
    assert target.read_text(encoding="utf-8") == "s3cret\n" and stat.S_IMODE(target.stat().st_mode) == 0o600
