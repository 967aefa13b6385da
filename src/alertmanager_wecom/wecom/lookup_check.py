"""`check` for recipients written email:/mobile:: one look-up per app that has them, so that a missing
directory (通讯录) permission shows at setup and not as dead letters at the first alert; and the test
message of such a target goes to the userids the values written out stand for.
"""

from __future__ import annotations

from alertmanager_wecom.config import AppTarget, Config, Target
from alertmanager_wecom.config.contacts import Contact, form_of, parse_contact
from alertmanager_wecom.wecom.api import WeComError
from alertmanager_wecom.wecom.token import AccessToken
from alertmanager_wecom.wecom.userid import UserIds

# Asked when the config writes no address out (only templates): a made-up one that finds nobody, which
# shows the permission as well. It costs one of WeCom's "wrong look-ups" per check run.
PROBE = Contact("email", "alertmanager-wecom-check@example.invalid")


def lookup_uses(config: Config) -> dict[str, list[Contact]]:
    """Apps whose targets have email:/mobile: recipients → the values written out (may be none)."""
    uses: dict[str, list[Contact]] = {}
    for receiver in config.receivers:
        for target in receiver.targets:
            if isinstance(target, AppTarget) and target.lookups:
                values = uses.setdefault(target.app, [])
                values += [c for r in target.to_user if (c := parse_contact(r)) is not None]
    return uses


async def check_lookups(
    config: Config, tokens: dict[str, AccessToken], working: set[str], userids: UserIds
) -> list[tuple[bool, str, str]]:
    """(ok, subject, message) per app that looks members up."""
    results: list[tuple[bool, str, str]] = []
    for app, values in lookup_uses(config).items():
        if app not in working:
            continue  # its gettoken failed, and said so
        contact = values[0] if values else PROBE
        subject = f"app {app} look-up by {contact.noun}"
        try:
            answer = await userids.userid(tokens[app], app, contact)
        except WeComError as exc:
            results.append((False, subject, exc.detail))
            continue
        if answer.userid is not None:
            results.append((True, subject, f"{contact} is member {answer.userid}"))
        elif contact is PROBE:
            results.append((True, subject, "allowed (the directory permission is there)"))
        else:
            results.append(
                (
                    False,
                    subject,
                    f"{answer.problem} (or the member is outside the app's Visible to, 可见范围)",
                )
            )
    return results


async def resolve_written(
    target: Target, tokens: dict[str, AccessToken], userids: UserIds
) -> tuple[Target, list[str]]:
    """The target with the userids its written-out email:/mobile: values stand for, and why some stand
    for nobody (those are left out; the fallback is taken when nobody is left). Templated values are
    left as they are: they wait for alert data."""
    if not isinstance(target, AppTarget) or not target.lookups or target.app not in tokens:
        return target, []
    users: list[str] = []
    problems: list[str] = []
    for recipient in target.to_user:
        contact = parse_contact(recipient)
        if form_of(recipient) is None or contact is None:
            users.append(recipient)
            continue
        try:
            answer = await userids.userid(tokens[target.app], target.app, contact)
        except WeComError as exc:
            problems.append(f"{contact}: {exc.detail}")
            continue
        if answer.userid is not None:
            users.append(answer.userid)
        else:
            problems.append(answer.problem)
    fallback = target.fallback
    if not (users or target.to_party or target.to_tag) and fallback is not None:
        update = {"to_user": fallback.to_user, "to_party": fallback.to_party, "to_tag": fallback.to_tag}
        return target.model_copy(update=update), problems
    return target.model_copy(update={"to_user": users}), problems
