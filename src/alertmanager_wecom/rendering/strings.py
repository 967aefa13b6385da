"""Our own words in each language (zh, en), and durations written with them.

They are printed as they are (`Safe`): some are markup in some formats ("[FIRING] " is not a link)."""

from __future__ import annotations

from alertmanager_wecom.rendering.escaping import Safe

_STRINGS: dict[str, dict[str, str]] = {
    "zh": {
        "title_firing": "【告警】",
        "title_resolved": "【已恢复】",
        "title_digest": "【告警汇总】",
        "digest_note": "合并了 %d 条通知（告警频率超过企业微信限制）",
        "firing": "🔥 触发中",
        "resolved": "✅ 已恢复",
        "started": "开始",
        "lasted": "持续",
        "graph": "图表",
        "runbook": "手册",
        "omitted": "另有 %d 条告警未显示，请在 Alertmanager 查看",
        "details": "详情",
        "escalated": "⏫ %s无人认领，已升级至第 %d 级",
        "acknowledge": "认领",
        "acknowledge_all": "认领全部 %d 组",
        "d": "天",
        "h": "小时",
        "m": "分",
        "s": "秒",
    },
    "en": {
        "title_firing": "[FIRING] ",
        "title_resolved": "[RESOLVED] ",
        "title_digest": "[DIGEST] ",
        "digest_note": "%d notifications merged (more than WeCom's rate limit lets through)",
        "firing": "Firing",
        "resolved": "Resolved",
        "started": "since",
        "lasted": "lasted",
        "graph": "graph",
        "runbook": "runbook",
        "omitted": "%d more alerts not shown: see Alertmanager",
        "details": "More",
        "escalated": "⏫ Not acknowledged for %s: escalated to level %d",
        "acknowledge": "Acknowledge",
        "acknowledge_all": "Acknowledge all %d groups",
        "d": "d",
        "h": "h",
        "m": "m",
        "s": "s",
    },
}
STRINGS: dict[str, dict[str, str]] = {
    language: {key: Safe(text) for key, text in strings.items()} for language, strings in _STRINGS.items()
}


def format_duration(seconds: float, strings: dict[str, str]) -> str:
    seconds = max(0, int(seconds))
    units = [("d", 86400), ("h", 3600), ("m", 60), ("s", 1)]
    parts: list[str] = []
    for key, size in units:
        if seconds >= size or (key == "s" and not parts):
            parts.append(f"{seconds // size}{strings[key]}")
            seconds %= size
        if len(parts) == 2:
            break
    return "".join(parts)
