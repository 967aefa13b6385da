"""`init` on a terminal: asks for each value the setup guide collects, saying where in WeCom's admin
console it is, in Chinese or English (`--lang`, else `LANG`), and checks each with WeCom as it is given:
a wrong corp ID (40013) or secret (40001) is explained and asked again."""

from __future__ import annotations

import asyncio
import errno
import os
import re
import stat
from pathlib import Path

import click

from alertmanager_wecom.config.models import WeComSettings
from alertmanager_wecom.secret import Secret
from alertmanager_wecom.wecom.api import WeComAPI, WeComError, http_client
from alertmanager_wecom.wecom.errcodes import explain
from alertmanager_wecom.wecom.token import AccessToken

TEXTS: dict[str, dict[str, str]] = {
    "zh": {
        "corp_id": "企业ID（管理后台 → 我的企业 → 企业信息 → 企业ID）",
        "agent_id": "AgentId（应用管理 → 应用 → 你的自建应用）",
        "secret": "Secret（同一页面 → Secret → 查看；输入不显示）",
        "to_user": "接收告警的成员账号 userid，多个用 | 分隔",
        "secret_store": "服务从哪里读取 Secret？环境变量名，或文件路径（Secret 写入该文件，权限 600）",
        "retry_ip": "在管理后台添加该 IP 后按回车重试（约一分钟生效），输入 q 退出",
        "token_ok": "企业ID 和 Secret 正确",
        "export": "启动服务前请设置环境变量：export {name}=…（Secret 不会写入配置文件）",
        "wrote_secret": "Secret 已写入 {path}（权限 600）",
        "secret_link": "{path} 是符号链接：Secret 只写入普通文件，不经过链接写到别处。请给出文件本身的路径，或先删除该链接",
        "secret_unwritable": "无法把 Secret 写入 {path}：{reason}",
        "verify_found": "找到企业微信的域名验证文件 {name}：由本服务在域名根路径提供（设置可信域名时需要）？",
        "verify_path": "设置可信域名需要的 WW_verify_*.txt 文件路径（管理后台 → 应用 → 网页授权及JS-SDK → 设置可信域名 → 下载；没有就直接回车跳过）",
    },
    "en": {
        "corp_id": "Company ID (admin console → My Company → Company Information → Company ID)",
        "agent_id": "AgentId (App Management → Apps → your self-built app)",
        "secret": "Secret (the same page → Secret → View; typing is hidden)",
        "to_user": "userid(s) to send alerts to, separated by |",
        "secret_store": "Where should the service read the Secret? An environment variable name, or a file path "
        "(the secret is written there, mode 600)",
        "retry_ip": "Add that IP in the admin console, then press Enter to retry (it takes about a minute), or q to stop",
        "token_ok": "Company ID and Secret accepted",
        "export": "Before starting the service: export {name}=… (the secret is not written into the config)",
        "wrote_secret": "Secret written to {path} (mode 600)",
        "secret_link": "{path} is a symbolic link: the Secret is written only to a regular file, never through a "
        "link to somewhere else. Give the file's own path, or remove the link first",
        "secret_unwritable": "cannot write the Secret to {path}: {reason}",
        "verify_found": "Found WeCom's domain verification file {name}: serve it at the domain's root (needed for "
        "the trusted domain)?",
        "verify_path": "Path of the WW_verify_*.txt the trusted domain needs (App → Web authorization and "
        "JS-SDK → Trusted domain → download), or Enter to skip",
    },
}


def language(lang: str | None) -> str:
    chosen = lang or os.environ.get("LC_ALL") or os.environ.get("LANG") or ""
    return "zh" if chosen.lower().startswith("zh") else "en"


def ask_credentials(t: dict[str, str], wecom: WeComSettings) -> tuple[str, int, str]:
    """Corp ID, AgentId and Secret, asked until WeCom gives a token for them."""
    corp_id = click.prompt(t["corp_id"]).strip()
    agent_id = click.prompt(t["agent_id"], type=click.IntRange(min=1))
    secret = click.prompt(t["secret"], hide_input=True).strip()
    while True:
        errcode, problem = asyncio.run(_gettoken(wecom, corp_id, secret))
        if problem is None:
            click.echo(f"OK   {t['token_ok']}")
            return corp_id, agent_id, secret
        click.echo(f"FAIL {problem}")
        if errcode == 40013:
            corp_id = click.prompt(t["corp_id"]).strip()
        elif errcode == 40001:
            secret = click.prompt(t["secret"], hide_input=True).strip()
        else:
            raise click.ClickException(problem)


async def _gettoken(wecom: WeComSettings, corp_id: str, secret: str) -> tuple[int | None, str | None]:
    async with http_client(wecom) as client:
        try:
            await AccessToken(WeComAPI(wecom.api_url, client), corp_id, Secret(secret)).get()
        except WeComError as exc:
            if exc.errcode is not None:
                return exc.errcode, explain(exc.errcode, exc.errmsg)
            return None, exc.detail
    return None, None


def store_secret(t: dict[str, str], secret: str) -> dict[str, str]:
    """The config's reference to the secret: ${NAME} (the user exports it) or a file written here."""
    while True:
        where = click.prompt(t["secret_store"], default="WECOM_SECRET").strip()
        if "/" not in where and not where.startswith("."):
            break
        path = os.path.abspath(where)
        problem = write_secret_file(t, path, secret)
        if problem is None:
            click.echo(t["wrote_secret"].format(path=path))
            return {"secret_file": path}
        click.echo(f"FAIL {problem}")
    os.environ[where] = secret  # for the checks that follow, in this process only
    click.echo(t["export"].format(name=where))
    return {"secret": f"${{{where}}}"}


def write_secret_file(t: dict[str, str], path: str, secret: str) -> str | None:
    """Write the secret to `path`, readable by this user only, or say why not. A file that exists is
    made 0600 before the secret is in it (its old mode may let others read). A symbolic link is never
    followed: it could point at any file this user may write, and the secret would land there."""
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_NOFOLLOW | os.O_NONBLOCK, 0o600)
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            return t["secret_link"].format(path=path)
        return t["secret_unwritable"].format(path=path, reason=exc.strerror)
    with os.fdopen(fd, "w", encoding="utf-8") as out:
        if not stat.S_ISREG(os.fstat(fd).st_mode):  # a FIFO or a device: O_NONBLOCK got us here
            return t["secret_unwritable"].format(path=path, reason="not a regular file")
        try:
            os.fchmod(fd, 0o600)  # fails on another user's file: then it stays as it was
        except OSError as exc:
            return t["secret_unwritable"].format(path=path, reason=f"cannot make it 0600 ({exc.strerror})")
        os.ftruncate(fd, 0)  # only now: a file that is not written keeps what it had
        out.write(secret + "\n")
    return None


VERIFY_NAME = re.compile(r"^WW_verify_[A-Za-z0-9]{16}\.txt$")


def verify_file_problem(path: Path) -> str | None:
    """Why `path` is not a WeCom domain verification file (None: it looks like one)."""
    if not VERIFY_NAME.match(path.name):
        return f"{path.name}: WeCom's verification file is named WW_verify_<16 letters or digits>.txt"
    try:
        content = path.read_bytes()
    except OSError as exc:
        return f"{path}: {exc.strerror}"
    text = content.strip()
    if not text or len(text) > 128 or not text.isalnum():
        return f"{path}: its content should be the short code WeCom generated (download the file again)"
    return None


def ask_verify_files(t: dict[str, str]) -> list[str]:
    """Offer the WW_verify_*.txt found here or in ~/Downloads; else ask for one (Enter skips)."""
    found = sorted(
        p
        for folder in (Path.cwd(), Path.home() / "Downloads")
        if folder.is_dir()
        for p in folder.glob("WW_verify_*.txt")
        if verify_file_problem(p) is None
    )
    if found:
        return [
            str(p.resolve()) for p in found if click.confirm(t["verify_found"].format(name=p), default=True)
        ]
    while True:
        answer = click.prompt(t["verify_path"], default="", show_default=False).strip()
        if not answer:
            return []
        problem = verify_file_problem(Path(answer).expanduser())
        if problem is None:
            return [str(Path(answer).expanduser().resolve())]
        click.echo(problem)
