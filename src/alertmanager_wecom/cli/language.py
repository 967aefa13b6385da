"""The CLI in Chinese for Chinese operators: `--lang zh`, or a zh_* `LANG`/`LC_ALL` (or
`ALERTMANAGER_WECOM_LANG=zh`). Commands' and options' help and click's own words ("Usage:", "Options:",
"Error:") are shown in Chinese; values, flags and config keys stay as they are typed."""

from __future__ import annotations

import gettext
import os
import sys

import click

# command path → its help; (command path, option name) → the option's help
COMMANDS: dict[str, str] = {
    "": "把 Alertmanager 和 Grafana 的告警可靠地发送到企业微信。",
    "serve": "运行告警转发服务。不带 --config 时为沙箱模式：企业微信由同一进程里的模拟器代替。",
    "check-config": "校验配置文件（并编译模板），不连接企业微信。",
    "check": "为每个应用获取 token，向每个发送目标发一条测试消息，逐项说明失败原因和处理方法。",
    "simulator": "运行企业微信模拟器：gettoken、message/send、群机器人、卡片、收件箱页面。",
    "demo": "向运行中的服务发送示例告警（一组 100 条告警和恢复通知）。",
    "send": "通过应用或群机器人发送一条消息（TEXT，省略时读标准输入），按字节限制切分。",
    "render": "打印一个 webhook 负载（文件，或 - 表示标准输入）会变成的消息及其字节数。",
    "alertmanager-config": "打印 Alertmanager 的 receivers: 配置片段（webhook_configs、认证、max_alerts）。",
    "appchat": "创建或查看应用群聊（群聊会话）。",
    "appchat create": "创建应用群聊。",
    "appchat show": "查看应用群聊及其成员。",
    "outbox": "查看和修复发件箱：列出、查看、重试、清理。",
    "outbox list": "列出任务，最新的在前（每个通知、每个发送目标一个任务）。",
    "outbox show": "查看一个任务及其通知。",
    "outbox retry": "重新排队死信（先修复原因）：指定 JOB_IDS，或 --all-dead。",
    "outbox purge": "删除已结束的任务（从不删除待发送的）。",
    "oncall": "值班：谁在值班、轮换、临时替班。",
    "incidents": "事件：每个告警组的每次触发，以及发生了什么。",
    "incidents list": "最新的事件在前：编号、开始时间、接收器、状态、标题。",
    "incidents show": "事件 INCIDENT_ID 的时间线：每一步及其时间。",
    "oncall who": "SCHEDULE（或每个排班）现在（或 --at 指定的时间）和下一班的值班人。",
    "oncall list": "每个排班的成员、轮换方式，以及接下来几天的班次（含替班）。",
    "oncall override": "临时替班：添加、列出、删除。",
    "oncall override add": "USER 在 --from 到 --to 之间替 SCHEDULE 值班（代替轮换）。",
    "oncall override list": "现在和以后生效的替班（SCHEDULE 的，或所有排班的）。",
    "oncall override remove": "删除替班 OVERRIDE_ID（恢复按轮换值班）。",
    "init": "按企业微信配置指南的各项值逐一校验，写出可直接使用的 config.yaml。",
}
OPTIONS: dict[tuple[str, str], str] = {
    ("", "log_level"): "日志级别",
    ("", "log_format"): "日志格式（json：每行一个 JSON 对象）",
    ("", "lang"): "命令行语言：zh 或 en（默认看 LANG）",
    ("serve", "config_path"): "YAML 配置文件；省略则进入沙箱模式",
    ("serve", "listen"): "监听地址 host:port（端口 0 表示任选空闲端口）",
    ("check", "config_path"): "YAML 配置文件",
    ("check-config", "config_path"): "YAML 配置文件",
    ("render", "config_path"): "按该配置里接收组的发送目标渲染；省略则使用下面的默认值",
    ("render", "receiver"): "接收组名称（默认第一个）",
    ("render", "msgtype"): "消息类型（不带 --config 时）",
    ("render", "language"): "语言（不带 --config 时）",
    ("render", "as_json"): "输出 JSON",
    ("oncall who", "at_text"): "ISO 8601 时间或 now；不带时区时按排班的时区",
    ("oncall list", "days"): "显示多少天内的班次",
    ("oncall override add", "start_text"): "开始时间（ISO 8601 或 now；不带时区时按排班的时区）",
    ("oncall override add", "end_text"): "结束时间（最多在开始后 90 天）",
    ("incidents list", "open_only"): "只列出尚未恢复的事件",
    ("incidents list", "limit"): "列出多少条",
}
# click's own words (it looks them up through gettext)
CLICK: dict[str, str] = {
    "Usage:": "用法：",
    "Options": "选项",
    "Commands": "命令",
    "Show this message and exit.": "显示本帮助并退出。",
    "Error: {message}": "错误：{message}",
    "Try '{command} {option}' for help.": "运行 '{command} {option}' 查看帮助。",
    "No such command {name!r}.": "没有命令 {name!r}。",
    "Invalid value: {message}": "取值无效：{message}",
    "Invalid value for {param_hint}: {message}": "{param_hint} 取值无效：{message}",
    "Missing argument": "缺少参数",
    "Missing option": "缺少选项",
    "Missing parameter": "缺少参数",
    "No such option: {name}": "没有选项：{name}",
    "default: {default}": "默认：{default}",
    "required": "必填",
}


class _Chinese(gettext.NullTranslations):
    def gettext(self, message: str) -> str:
        return CLICK.get(message, message)

    def ngettext(self, msgid1: str, msgid2: str, n: int) -> str:
        return CLICK.get(msgid1 if n == 1 else msgid2, msgid1 if n == 1 else msgid2)


def wanted(argv: list[str]) -> str:
    """zh or en: `--lang X` on the command line, else the environment."""
    for index, arg in enumerate(argv):
        if arg == "--lang" and index + 1 < len(argv):
            return "zh" if argv[index + 1].startswith("zh") else "en"
        if arg.startswith("--lang="):
            return "zh" if arg.split("=", 1)[1].startswith("zh") else "en"
    for name in ("ALERTMANAGER_WECOM_LANG", "LC_ALL", "LC_MESSAGES", "LANG"):
        value = os.environ.get(name, "")
        if value:
            return "zh" if value.lower().startswith("zh") else "en"
    return "en"


def use_chinese(group: click.Group) -> None:
    """Chinese help for every command and option that has it, and click's words in Chinese."""
    translations = _Chinese()
    # click looks its words up with gettext functions it imported as module globals: those are replaced
    # (click's modules only, nothing else's).
    for name, module in list(sys.modules.items()):
        if name == "click" or name.startswith("click."):
            if getattr(module, "_", None) is gettext.gettext:
                module._ = translations.gettext  # type: ignore[attr-defined]
            if getattr(module, "ngettext", None) is gettext.ngettext:
                module.ngettext = translations.ngettext  # type: ignore[attr-defined]

    def walk(command: click.Command, path: str) -> None:
        if path in COMMANDS:
            command.help = COMMANDS[path]
            command.short_help = COMMANDS[path]
        for param in command.params:
            text = "显示版本并退出。" if param.name == "version" else OPTIONS.get((path, param.name or ""))
            if text is not None and isinstance(param, click.Option):
                param.help = text
        if isinstance(command, click.Group):
            for name, sub in command.commands.items():
                walk(sub, f"{path} {name}".strip())

    walk(group, "")
