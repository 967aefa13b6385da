"""`alertmanager-wecom oncall …` against a real SQLite on-call store under tmp_path: who is on call at
a given time, the schedules, and overrides added, listed and removed by separate invocations."""

from __future__ import annotations

import datetime as dt
import re
from pathlib import Path
from typing import Any

import yaml
from click.testing import CliRunner, Result

from alertmanager_wecom.cli import main
from alertmanager_wecom.simulator.model import SANDBOX_AGENT_ID, SANDBOX_CORP_ID, SANDBOX_SECRET


def write_config(tmp_path: Path, sre_start: str = "2026-12-01") -> Path:
    config: dict[str, Any] = {
        "apps": {"ops": {"corp_id": SANDBOX_CORP_ID, "agent_id": SANDBOX_AGENT_ID, "secret": SANDBOX_SECRET}},
        "receivers": [{"name": "default", "targets": [{"app": "ops", "to_user": ["oncall:sre"]}]}],
        "storage": {"path": str(tmp_path / "outbox.db")},
        "oncall": {
            "schedules": {
                "sre": {"members": ["zhangsan", "lisi", "wangwu"], "start": sre_start},
                "dba": {
                    "members": ["zhaoliu", "sunqi"],
                    "rotation": "weekly",
                    "handoff": "Mon 09:00",
                    "time_zone": "America/New_York",
                    "start": "2026-11-30",
                },
            }
        },
    }
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(config), encoding="utf-8")
    return path


def run(*args: str) -> Result:
    return CliRunner().invoke(main, ["oncall", *args])


def test_who_at_a_time_names_now_and_next_on_the_schedule_s_clock(tmp_path: Path) -> None:
    config = str(write_config(tmp_path))
    result = run("who", "sre", "--config", config, "--at", "2026-12-02T10:00")
    assert result.exit_code == 0, result.output
    assert result.output.splitlines() == [
        "sre (daily, hand-off 09:00 Asia/Shanghai)",
        "  now   lisi             2026-12-02 09:00 → 2026-12-03 09:00 CST",
        "  next  wangwu           2026-12-03 09:00 → 2026-12-04 09:00 CST",
    ]
    # Every schedule, each on its own clock; an offset given is an instant.
    result = run("who", "--config", config, "--at", "2026-12-06T01:00Z")
    assert result.exit_code == 0, result.output
    assert "dba (weekly, hand-off Mon 09:00 America/New_York)" in result.output
    assert "  now   zhaoliu          2026-11-30 09:00 → 2026-12-07 09:00 EST" in result.output
    assert "  now   wangwu           2026-12-06 09:00 → 2026-12-07 09:00 CST" in result.output
    # Without an offset, for every schedule: one instant, on render.time_zone's clock (Shanghai here).
    assert run("who", "--config", config, "--at", "2026-12-06T09:00").output == result.output


def test_before_the_start_nobody_is_on_call(tmp_path: Path) -> None:
    result = run("who", "sre", "--config", str(write_config(tmp_path)), "--at", "2026-11-30T12:00")
    assert result.exit_code == 0, result.output
    assert "  now   nobody" in result.output
    assert "  next  zhangsan         2026-12-01 09:00 → 2026-12-02 09:00 CST" in result.output


def test_an_unknown_schedule_is_a_usage_error_naming_the_known_ones(tmp_path: Path) -> None:
    config = str(write_config(tmp_path))
    for args in (["who", "ops"], ["override", "list", "ops"], ["override", "add", "ops", "lisi"]):
        extra = ["--from", "now", "--to", "2099-01-01"] if args[0] == "override" and args[1] == "add" else []
        result = run(*args, "--config", config, *extra)
        assert result.exit_code == 2, result.output
        assert "unknown schedule 'ops' (schedules: dba, sre)" in result.output


def test_an_override_added_is_on_call_listed_and_removed(tmp_path: Path) -> None:
    config = str(write_config(tmp_path))
    now = dt.datetime.now(dt.UTC).replace(microsecond=0)
    start, end = now + dt.timedelta(hours=1), now + dt.timedelta(hours=3)
    added = run(
        "override",
        "add",
        "sre",
        "sunqi",
        "--config",
        config,
        "--from",
        start.isoformat(),
        "--to",
        end.isoformat(),
    )
    assert added.exit_code == 0, added.output
    match = re.match(r"added override ([0-9a-f]{12}): sunqi on call for sre ", added.output)
    assert match, added.output
    override_id = match.group(1)

    during = (now + dt.timedelta(hours=2)).isoformat()
    who = run("who", "sre", "--config", config, "--at", during)
    assert who.exit_code == 0, who.output
    local_start = start.astimezone(dt.timezone(dt.timedelta(hours=8)))
    assert f"  now   sunqi            {local_start:%Y-%m-%d %H:%M} → " in who.output
    assert f"(override {override_id})" in who.output
    before = run("who", "sre", "--config", config, "--at", now.isoformat())
    assert "  next  sunqi " in before.output  # the override cuts the shift in force

    listed = run("override", "list", "--config", config)
    assert listed.exit_code == 0, listed.output
    assert listed.output.startswith(f"{override_id}  sre          sunqi ")
    assert "by cli" in listed.output
    assert run("override", "list", "dba", "--config", config).output == "no overrides now or later\n"
    calendar = run("list", "--config", config, "--days", "1")
    assert f"sunqi            {local_start:%Y-%m-%d %H:%M}" in calendar.output

    removed = run("override", "remove", override_id, "--config", config)
    assert removed.exit_code == 0 and removed.output == f"removed override {override_id}\n"
    assert "sunqi" not in run("who", "sre", "--config", config, "--at", during).output
    again = run("override", "remove", override_id, "--config", config)
    assert again.exit_code == 1 and f"no override {override_id}" in again.output


def test_bad_overrides_are_refused_with_the_reason(tmp_path: Path) -> None:
    config = str(write_config(tmp_path))
    cases = {
        ("zhang san", "now", "2099-01-01"): "one WeCom userid",
        ("sunqi", "2099-01-02", "2099-01-01"): "must end after it starts",
        ("sunqi", "now", "tomorrow"): "'tomorrow' is not a time",
        ("sunqi", "2020-01-01", "2020-01-02"): "over already",
    }
    for (user, start, end), reason in cases.items():
        result = run("override", "add", "sre", user, "--config", config, "--from", start, "--to", end)
        assert result.exit_code == 2, result.output
        assert reason in result.output
    assert run("override", "list", "--config", config).output == "no overrides now or later\n"
    bad_id = run("override", "remove", "../etc", "--config", config)
    assert bad_id.exit_code == 2 and "not an override id" in bad_id.output


def test_list_shows_each_schedule_and_its_next_shifts(tmp_path: Path) -> None:
    today = dt.datetime.now(dt.timezone(dt.timedelta(hours=8))).date()
    config = str(write_config(tmp_path, sre_start=(today - dt.timedelta(days=3)).isoformat()))
    result = run("list", "--config", config, "--days", "3")
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    sre = lines.index("sre: zhangsan, lisi, wangwu")
    assert (
        lines[sre + 1]
        == f"  rotation daily, hand-off 09:00 Asia/Shanghai, from {today - dt.timedelta(days=3)}"
    )
    users = [line.split()[0] for line in lines[sre + 2 : sre + 5]]
    # Three days of a three-member daily rotation: each once, in member order from whoever is on now.
    assert sorted(users) == ["lisi", "wangwu", "zhangsan"]
    order = ["zhangsan", "lisi", "wangwu"]
    first = order.index(users[0])
    assert users == [order[(first + i) % 3] for i in range(3)]
    assert "dba: zhaoliu, sunqi" in lines


def test_a_config_without_schedules_says_so(tmp_path: Path) -> None:
    path = write_config(tmp_path)
    raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    raw["oncall"] = {}
    raw["receivers"][0]["targets"][0]["to_user"] = ["zhangsan"]
    path.write_text(yaml.safe_dump(raw), encoding="utf-8")
    result = run("who", "--config", str(path))
    assert result.exit_code == 2 and "no schedules (oncall.schedules)" in result.output


def test_incidents_list_pages_past_the_newest(tmp_path: Path) -> None:
    """`incidents list --limit --offset`: the store the service writes, newest first, a page at a time."""
    import asyncio

    from alertmanager_wecom.loading import load_config
    from alertmanager_wecom.oncall.opening import open_oncall_store

    config_path = write_config(tmp_path)

    async def three() -> None:
        store = open_oncall_store(load_config(str(config_path)).storage)
        try:
            for i in range(3):
                await store.open_incident(
                    "default", f"{{}}:{{g{i}}}", f"title-{i}", None, 1_800_000_000.0 + i
                )
        finally:
            await store.close()

    asyncio.run(three())
    runner = CliRunner()
    middle = runner.invoke(
        main, ["incidents", "list", "--config", str(config_path), "--limit", "1", "--offset", "1"]
    )
    assert middle.exit_code == 0, middle.output
    assert "title-1" in middle.output and "title-0" not in middle.output and "title-2" not in middle.output
    past = runner.invoke(main, ["incidents", "list", "--config", str(config_path), "--offset", "3"])
    assert past.exit_code == 0 and "no incidents past that offset" in past.output
    refused = runner.invoke(main, ["incidents", "list", "--config", str(config_path), "--offset", "-1"])
    assert refused.exit_code == 2
