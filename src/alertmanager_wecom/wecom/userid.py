"""A member's userid from their email (user/get_userid_by_email, doc 95895) or mobile number
(user/getuserid, doc 95402), with the app's access token.

Both answers are cached (found: `wecom.lookup_cache_found`, a day; not found: `lookup_cache_not_found`,
an hour), because WeCom punishes wrong look-ups: once they pass 20 % of the corp's member cap the APIs
are blocked for a day. So the look-ups that find nobody are also bounded, per corp and per 24 hours
(`wecom.lookup_unknown_per_day`): past the bound no value outside the cache is looked up, and the log
says so once. The misses are kept in the outbox's ledger of sends, so that a restart does not reset the
bound; the cache is the process's own. A value is never a metrics label; the app name and the form are
(the lookups metric's label named `kind`: email, mobile).
"""

from __future__ import annotations

import logging
import time
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from alertmanager_wecom.config import WeComSettings
from alertmanager_wecom.config.contacts import Contact
from alertmanager_wecom.metrics import Metrics
from alertmanager_wecom.wecom.api import WeComError
from alertmanager_wecom.wecom.errcodes import Action, ErrInfo, Reason, explain_lookup
from alertmanager_wecom.wecom.token import AccessToken

log = logging.getLogger(__name__)

DAY = 86400.0
# The outbox's ledger of sends (kept a day, shared by replicas on Redis) also keeps the look-ups that
# found nobody, under this key and the corp: a restart does not start the day's bound afresh.
MISS_KEY = "lookup-miss:"
Ledger = Callable[[list[str], float], Awaitable[None]]
# The path of each form's look-up.
_CALLS = {"email": "user/get_userid_by_email", "mobile": "user/getuserid"}


@dataclass(frozen=True)
class Answer:
    """A look-up's outcome: the userid, or why there is none (for logs and dead letters)."""

    userid: str | None
    problem: str = ""


def _body(contact: Contact) -> dict[str, object]:
    if contact.form == "email":
        return {"email": contact.value, "email_type": 1}  # 1: the corp's own mail (2: personal)
    return {"mobile": contact.value}


class UserIds:
    """The cache and the bound, shared by every app and kept across config reloads (`configure`)."""

    def __init__(
        self,
        settings: WeComSettings,
        metrics: Metrics | None = None,
        clock: Callable[[], float] = time.time,
        ledger: Ledger | None = None,
    ) -> None:
        """`ledger`: where each look-up that found nobody is recorded (the outbox's `record_send`)."""
        self.settings = settings
        self.metrics = metrics or Metrics()
        self.clock = clock
        self.ledger = ledger
        # (corp, "email:x") → (userid or None for "no such member", kept until)
        self._cache: dict[tuple[str, str], tuple[str | None, float]] = {}
        self._misses: dict[str, deque[float]] = {}  # corp → times of look-ups that found nobody
        self._warned: dict[str, float] = {}  # corp → when the bound was last reported

    def configure(self, settings: WeComSettings) -> None:
        self.settings = settings

    def replay(self, sends: list[tuple[str, float]]) -> list[tuple[str, float]]:
        """Take the misses from the ledger's records (oldest first); returns the other records."""
        others = []
        for key, at in sends:
            if key.startswith(MISS_KEY):
                self._misses.setdefault(key.removeprefix(MISS_KEY), deque()).append(at)
            else:
                others.append((key, at))
        return others

    def misses_today(self, corp_id: str) -> int:
        misses = self._misses.get(corp_id)
        if misses is None:
            return 0
        while misses and misses[0] <= self.clock() - DAY:
            misses.popleft()
        return len(misses)

    async def userid(self, token: AccessToken, app: str, contact: Contact) -> Answer:
        """The member's userid, or why not. Raises `WeComError` when WeCom did not answer the look-up
        (transient: retry; permanent, e.g. 60011 without the directory permission: the detail says which)."""
        corp = token.corp_id
        key = (corp, str(contact))
        now = self.clock()
        cached = self._cache.get(key)
        if cached is not None and cached[1] > now:
            self._count(app, contact, "cached_found" if cached[0] else "cached_not_found")
            return Answer(cached[0]) if cached[0] else self._not_found(contact)
        bound = self.settings.lookup_unknown_per_day
        if self.misses_today(corp) >= bound:
            self._count(app, contact, "bounded")
            self._report_bound(corp, bound)
            return Answer(
                None,
                f"{contact.noun} {contact.value!r} not looked up: {bound} look-ups found nobody in the last "
                "24 h (wecom.lookup_unknown_per_day; WeCom blocks look-ups for a day past 20 % of the member cap)",
            )
        try:
            reply = await token.call("POST", _CALLS[contact.form], body=_body(contact))
        except WeComError as exc:
            if exc.action is not Action.NOT_FOUND:
                self._count(app, contact, "failed")
                if exc.errcode is None:
                    raise
                detail = explain_lookup(exc.errcode, exc.errmsg)
                raise WeComError(exc.info, detail, exc.errcode, exc.errmsg) from None
            self._misses.setdefault(corp, deque()).append(now)
            await self._record_miss(corp, now)
            self._cache[key] = (None, now + self.settings.lookup_cache_not_found)
            self._count(app, contact, "not_found")
            return self._not_found(contact)
        userid = reply.get("userid")
        if not isinstance(userid, str) or not userid:
            self._count(app, contact, "failed")
            detail = f"WeCom's {_CALLS[contact.form]} answered without a userid"
            raise WeComError(ErrInfo(Action.RETRY, Reason.HTTP_ERROR, detail), detail)
        self._cache[key] = (userid, now + self.settings.lookup_cache_found)
        self._count(app, contact, "found")
        return Answer(userid)

    async def _record_miss(self, corp: str, at: float) -> None:
        if self.ledger is None:
            return
        try:
            await self.ledger([MISS_KEY + corp], at)
        except Exception as exc:  # the answer stands; only a restart would forget this miss
            log.warning("could not record a look-up that found nobody in the outbox: %s", exc)

    def _count(self, app: str, contact: Contact, outcome: str) -> None:
        self.metrics.lookups.labels(app, contact.form, outcome).inc()

    @staticmethod
    def _not_found(contact: Contact) -> Answer:
        return Answer(None, f"no WeCom member has this {contact.noun}: {contact.value!r}")

    def _report_bound(self, corp: str, bound: int) -> None:
        """Once an hour at most: the bound holds back look-ups until old misses leave the 24 h window."""
        now = self.clock()
        if now - self._warned.get(corp, -DAY) < 3600:
            return
        self._warned[corp] = now
        log.warning(
            "corp %s: %d look-ups by email/mobile found nobody in the last 24 h "
            "(wecom.lookup_unknown_per_day): values not in the cache are not looked up for now, and their "
            "alerts go to the target's fallback or the dead letters (WeCom blocks these APIs for a day when "
            "wrong look-ups pass 20 %% of the member cap)",
            corp,
            bound,
        )
