"""Acting on alert cards: what a button press does (acknowledge, silence, unsilence), and redrawing a
card for everyone who got it (``message/update_template_card`` with ``atall``) when its group is
acknowledged, silenced or resolved.

Nothing here runs on a request's or a delivery's path: clicks are handled after the callback answered
(WeCom waits 5 s), card updates after the message was recorded, and a failing update never holds a
delivery back. Each update spends a response code (WeCom: each works once, within 72 h; every click
brings a new one); with none left, or on 60140, a short new message says what happened instead.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import re
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine
from typing import Any

from alertmanager_wecom.actions.alertmanager import AlertmanagerClient, AlertmanagerError
from alertmanager_wecom.actions.groups import card_groups
from alertmanager_wecom.actions.silences import offered_keys, scope_refusal, silence_matchers
from alertmanager_wecom.actions.store import CardRecord, CardStore
from alertmanager_wecom.config import AppTarget, Config, Target, parse_target
from alertmanager_wecom.ingest.payload import DIGEST_GROUP_KEY, Notification, parse_notification
from alertmanager_wecom.metrics import Metrics
from alertmanager_wecom.rendering.card import CardBuilder, CardState, builder_for, short_duration
from alertmanager_wecom.tracing import OFF, Tracing
from alertmanager_wecom.wecom.api import WeComError
from alertmanager_wecom.wecom.token import AccessToken

log = logging.getLogger(__name__)

_SILENCE_KEY = re.compile(r"^silence:(\d{1,7})$")
_MAX_SILENCE = 90 * 86400
_LOCK_SECONDS = 30.0  # longer than a silence's round trip to Alertmanager (its timeout)


@dataclasses.dataclass(frozen=True)
class Click:
    """A template_card_event, as the callback decrypted it."""

    app: str
    user: str
    task_id: str
    key: str
    response_code: str
    at: float


class CardActions:
    def __init__(
        self,
        store: CardStore,
        config: Callable[[], Config],
        token: Callable[[str], AccessToken],
        metrics: Metrics,
        clock: Callable[[], float],
    ) -> None:
        self.store = store
        self.config = config
        self.token = token
        self.metrics = metrics
        self.clock = clock
        self._tasks: set[asyncio.Task[None]] = set()
        self._group_locks: dict[str, asyncio.Lock] = {}
        # A span for each click (and its WeCom calls), and where the traceparent of the job that sent a
        # card is found (the outbox); the relay sets both when tracing is on.
        self.tracing: Tracing = OFF
        self.traceparent_of: Callable[[int], Awaitable[str | None]] = _no_traceparent
        # The incident hears of acknowledgements and silences (actions/acknowledge.py plugs in).
        self.on_ack: Callable[[CardRecord, str, list[str]], Awaitable[None]] | None = None
        self.on_silenced: Callable[[CardRecord, str, str], Awaitable[None]] | None = None

    def later(self, work: Coroutine[Any, Any, None], what: str) -> None:
        """Run `work` (a coroutine) in the background; it is kept until done and its failure logged."""

        async def guarded() -> None:
            try:
                await work
            except Exception:
                log.exception("card action failed: %s", what)

        task = asyncio.get_running_loop().create_task(guarded())
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def drain(self) -> None:
        while self._tasks:
            await asyncio.gather(*list(self._tasks), return_exceptions=True)

    # -- delivery's side ----------------------------------------------------------------------------------

    async def state_for(self, receiver: str, group_key: str) -> CardState:
        """What a new card of the group shows from the start: who acknowledged it (a digest: nobody)."""
        ack = await self.store.ack_of(receiver, group_key) if group_key != DIGEST_GROUP_KEY else None
        return CardState(acked_by=ack[0], acked_at=ack[1]) if ack else CardState()

    async def quiet_reason(self, receiver: str, target: Target, notification: Notification) -> str | None:
        """Why a repeat of an acknowledged group is held back (`card.ack_quiet`); never a resolution."""
        if not isinstance(target, AppTarget):
            return None
        quiet = target.card_settings.ack_quiet
        if not quiet or notification.resolved or notification.digest_of:
            return None
        ack = await self.store.ack_of(receiver, notification.group_key)
        if ack is None or self.clock() - ack[1] >= quiet:
            return None
        return f"acknowledged by {ack[0]}: repeats held back for {short_duration(quiet, 'en')}"

    async def sent(
        self,
        app: str,
        receiver: str,
        target: str,
        job_id: int,
        payload: str,
        group_key: str,
        card: dict[str, Any],
        code: str,
    ) -> None:
        """A card reached WeCom: remember it (with the notification it shows, to redraw it) and the
        response code of its send."""
        task_id = str(card.get("task_id", ""))
        state = await self.state_for(receiver, group_key)
        record = CardRecord(
            task_id, app, receiver, target, group_key, job_id, payload, card, state, False, self.clock()
        )
        await self.store.add_card(record)
        if code:
            await self.store.add_code(task_id, code, self.clock())

    async def group_resolved(self, receiver: str, target: str, group_key: str) -> None:
        """The group resolved: its cards on this target turn "resolved" (option card.resolve_in_place)."""
        spec = parse_target(target)
        if not isinstance(spec, AppTarget) or not spec.card_settings.resolve_in_place:
            return
        await self.store.clear_ack(receiver, group_key)
        for record in await self.store.open_cards(receiver, group_key, target):
            if (await _parsed(record)).status == "resolved":
                await self.store.redrawn(record.task_id, record.card, record.state, True)
                continue  # the card that says it resolved
            state = dataclasses.replace(record.state, resolved_at=self.clock(), failure="")
            await self.redraw(record, state, resolved=True)

    # -- clicks -------------------------------------------------------------------------------------------

    async def click(self, click: Click) -> None:
        if not self.tracing.enabled:
            await self._click(click)
            return
        # In the trace of the notification whose card was pressed (a child of its webhook's span), so that
        # alert, card, click, silence and redrawn card are one story. The user and the button are what an
        # operator looks for; the task id is the card's, not a secret.
        record = await self.store.card(click.task_id)
        parent = await self.traceparent_of(record.job_id) if record and record.app == click.app else None
        attributes = {"wecom.app": click.app, "wecom.user": click.user, "wecom.card.task_id": click.task_id}
        attributes["wecom.card.key"] = click.key[:40]
        with self.tracing.span("card action", parent=parent, attributes=attributes):
            await self._click(click)

    async def _click(self, click: Click) -> None:
        record = await self.store.card(click.task_id)
        if record is None or record.app != click.app:
            await self._done(click, "unknown_card", "no such card of this app (older than the store keeps?)")
            return
        if click.response_code:
            await self.store.add_code(click.task_id, click.response_code, self.clock())
        target = parse_target(record.target)
        if not isinstance(target, AppTarget):
            return
        if record.resolved:
            await self._done(click, "ignored", "the group has resolved")
            return
        allowed = target.card_settings.allow_users
        if allowed and click.user not in allowed:
            await self._done(click, "denied", f"{click.user} is not in card.allow_users")
            return
        group = f"{record.receiver}\0{record.group_key}"
        lock = self._group_locks.setdefault(group, asyncio.Lock())
        async with lock, self._shared_lock(group):
            record = await self.store.card(click.task_id) or record  # as the previous click left it
            # A click does only what the card offers: a signed event with another key (a 90-day
            # silence on a card offering 1 h) is refused.
            if click.key not in offered_keys(record.card):
                await self._done(click, "refused", f"button {click.key[:40]!r} is not on this card")
                return
            if click.key == "ack":
                await self._ack(click, record)
            elif click.key == "unsilence":
                await self._unsilence(click, record)
            elif silence := _SILENCE_KEY.match(click.key):
                await self._silence(click, record, float(silence.group(1)))
            else:
                await self._done(click, "ignored", f"unknown button key {click.key[:40]!r}")

    @contextlib.asynccontextmanager
    async def _shared_lock(self, group: str) -> AsyncIterator[None]:
        """The group's lock in the store: two clicks on one group, on two replicas, act one after the
        other (the second sees the first's silence). Held at most `_LOCK_SECONDS`; waited for up to
        that long, then acted on anyway (a replica that died holding it must not block the group)."""
        owner = uuid.uuid4().hex
        deadline = self.clock() + _LOCK_SECONDS
        while not await self.store.lock(group, owner, _LOCK_SECONDS):
            if self.clock() > deadline:
                log.warning(
                    "card action: the group's lock was not free within %ss; acting anyway", _LOCK_SECONDS
                )
                break
            await asyncio.sleep(0.05)
        try:
            yield
        finally:
            await self.store.unlock(group, owner)

    async def maintain(self, now: float) -> None:
        """The maintenance round's part (the dispatcher calls it): cards, codes, acknowledgements and
        the audit log past their retention (storage.card_retention, storage.audit_retention) go."""
        storage = self.config().storage
        gone = await self.store.purge(now, storage.card_retention, storage.audit_retention)
        if gone:
            log.info("card store: %d cards past their retention forgotten", gone)

    async def _ack(self, click: Click, record: CardRecord) -> None:
        groups = await card_groups(record)  # a digest's card: each group it merged
        for group in groups:
            await self.store.ack(record.receiver, group, click.user, self.clock())
        state = dataclasses.replace(record.state, acked_by=click.user, acked_at=self.clock(), failure="")
        if self.on_ack is not None:  # first: escalation stops before the card is redrawn
            await self.on_ack(record, click.user, groups)
        await self._done(click, "ok", "acknowledged")
        await self.redraw(record, state)

    def _client(self, record: CardRecord) -> AlertmanagerClient | None:
        config = self.config()
        receiver = config.receiver(record.receiver)
        api = config.alertmanager_for(receiver) if receiver is not None else None
        return AlertmanagerClient(api) if api is not None else None

    async def _silence(self, click: Click, record: CardRecord, seconds: float) -> None:
        if not 60 <= seconds <= _MAX_SILENCE:
            await self._done(click, "ignored", f"silence of {seconds:g}s out of range")
            return
        if record.state.silence_id and not record.state.unsilenced_by:
            await self._done(click, "ignored", f"already silenced ({record.state.silence_id})")
            return
        client = self._client(record)
        if client is None:
            await self._failed(click, record, "no Alertmanager API configured (alertmanager.url)")
            return
        notification = await _parsed(record)
        target = parse_target(record.target)
        assert isinstance(target, AppTarget)
        mode = target.card_settings.silence_matchers
        groups = silence_matchers(notification, mode)
        refusal = await scope_refusal(client, notification, mode, groups)
        if refusal is not None:
            await client.aclose()
            await self._failed(click, record, refusal, outcome="refused")
            return
        now = self.clock()
        comment = (
            f"Silenced from WeCom by {click.user} ({short_duration(seconds, 'en')}) with alertmanager-wecom "
            f"card {record.task_id}, receiver {record.receiver}"
        )
        ids: list[str] = []
        try:
            for matchers in groups:
                ids.append(await client.create_silence(matchers, now, now + seconds, click.user, comment))
        except AlertmanagerError as exc:
            for made in ids:  # all or nothing: a half-silenced group would mislead
                try:
                    await client.expire_silence(made)
                except AlertmanagerError:
                    log.warning(
                        "could not expire silence %s after a failed silence of %s", made, record.task_id
                    )
            await self._failed(click, record, str(exc))
            return
        finally:
            await client.aclose()
        state = dataclasses.replace(
            record.state,
            silence_id=",".join(ids),
            silenced_by=click.user,
            silence_for=seconds,
            silenced_until=now + seconds,
            unsilenced_by="",
            failure="",
        )
        if self.on_silenced is not None:
            await self.on_silenced(record, click.user, f"silence {','.join(ids)}")
        await self._done(click, "ok", f"silence {','.join(ids)} for {short_duration(seconds, 'en')}")
        await self.redraw(record, state)

    async def _unsilence(self, click: Click, record: CardRecord) -> None:
        if not record.state.silence_id or record.state.unsilenced_by:
            await self._done(click, "ignored", "no silence to expire")
            return
        client = self._client(record)
        if client is None:
            await self._failed(click, record, "no Alertmanager API configured (alertmanager.url)")
            return
        try:
            for silence_id in record.state.silence_id.split(","):
                await client.expire_silence(silence_id)
        except AlertmanagerError as exc:
            await self._failed(click, record, str(exc))
            return
        finally:
            await client.aclose()
        state = dataclasses.replace(record.state, unsilenced_by=click.user, failure="")
        await self._done(click, "ok", f"expired silence {record.state.silence_id}")
        await self.redraw(record, state)

    async def _failed(self, click: Click, record: CardRecord, why: str, outcome: str = "failed") -> None:
        """Nothing was done: said in the audit (`outcome`) and on the card."""
        await self._done(click, outcome, why)
        await self.redraw(record, dataclasses.replace(record.state, failure=why[:80]))

    async def _done(self, click: Click, outcome: str, detail: str) -> None:
        action = (
            click.key.split(":")[0] if click.key.split(":")[0] in ("ack", "silence", "unsilence") else "other"
        )
        self.metrics.card_actions.labels(click.app, action, outcome).inc()
        self._audit_log(click, outcome, detail)
        await self.store.record(
            self.clock(), click.app, click.user, click.key, click.task_id, outcome, detail
        )

    @staticmethod
    def _audit_log(click: Click, outcome: str, detail: str) -> None:
        log.info(
            "card action app=%s user=%s button=%s card=%s outcome=%s: %s",
            click.app,
            click.user,
            click.key[:40],
            click.task_id,
            outcome,
            detail,
        )

    # -- redrawing ----------------------------------------------------------------------------------------

    def _builder(self, record: CardRecord) -> CardBuilder | None:
        target = parse_target(record.target)
        config = self.config()
        if not isinstance(target, AppTarget) or target.app not in config.apps:
            return None
        return builder_for(target, config)

    async def redraw(self, record: CardRecord, state: CardState, resolved: bool = False) -> bool:
        """Show `state` on the card, for every recipient. False: it could not be updated (then a short
        new message said it)."""
        builder = self._builder(record)
        if builder is None:
            return False
        notification = await _parsed(record)
        card = builder.build(notification, record.task_id, state)
        app = self.config().apps[record.app]
        while True:
            code = await self.store.take_code(record.task_id, self.clock())
            if code is None:
                break
            body = {"atall": 1, "agentid": app.agent_id, "response_code": code, "template_card": card}
            try:
                await self.token(record.app).call("POST", "message/update_template_card", body=body)
            except WeComError as exc:
                if exc.errcode == 60140:
                    continue  # used or too old: the next one
                log.warning("card %s not updated: %s", record.task_id, exc)
                self.metrics.card_updates.labels(record.app, "failed").inc()
                break
            await self.store.redrawn(record.task_id, card, state, resolved)
            self.metrics.card_updates.labels(record.app, "updated").inc()
            return True
        await self.store.redrawn(record.task_id, record.card, state, resolved)
        await self._tell(record, builder, state, notification)
        return False

    async def _tell(
        self, record: CardRecord, builder: CardBuilder, state: CardState, notification: Notification
    ) -> None:
        """No response code left to update the card: a short text message to the card's recipients."""
        target = parse_target(record.target)
        if not isinstance(target, AppTarget):
            return
        title = str(builder.build(notification, record.task_id, state)["main_title"]["title"])
        text = f"{title}\n{builder.status_line(state)}".strip()
        app = self.config().apps[record.app]
        body: dict[str, Any] = {"agentid": app.agent_id, "msgtype": "text", "text": {"content": text}}
        for key, values in (
            ("touser", target.to_user),
            ("toparty", target.to_party),
            ("totag", target.to_tag),
        ):
            if values:
                body[key] = "|".join(values)
        try:
            await self.token(record.app).call("POST", "message/send", body=body)
            self.metrics.card_updates.labels(record.app, "message").inc()
        except WeComError as exc:
            self.metrics.card_updates.labels(record.app, "failed").inc()
            log.warning("card %s: neither updated nor told by a message: %s", record.task_id, exc)


async def _no_traceparent(job_id: int) -> str | None:
    return None


async def _parsed(record: CardRecord) -> Notification:
    """The card's notification, parsed off the event loop (a large group is megabytes)."""
    return await asyncio.to_thread(parse_notification, record.payload)
