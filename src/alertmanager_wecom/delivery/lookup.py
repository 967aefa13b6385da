"""The look-up stage: a target whose recipients are written email:/mobile: becomes, just before its jobs
are delivered, the same target with the members' userids (wecom/userid.py, cached).

All the jobs of one target share its recipients, so they are looked up once per page of jobs; the
resolved target has a route of its own (its rate keys are the members' userids, paced with every other
target that names them). A value that finds nobody is dropped; when nobody is left, the jobs go to the
target's `fallback` recipients (as alerts whose label named no valid recipient do at ingest), or else
become dead letters that say which form of value (email, mobile number) found nobody.
"""

from __future__ import annotations

import logging

from alertmanager_wecom.channels.base import token_for
from alertmanager_wecom.config import AppTarget, target_spec
from alertmanager_wecom.config.contacts import contact_problem, form_of, parse_contact
from alertmanager_wecom.delivery.retry import Failures
from alertmanager_wecom.delivery.routes import Routes, TargetRoute
from alertmanager_wecom.ingest.recipients import summarize
from alertmanager_wecom.outbox import Job
from alertmanager_wecom.reasons import DeliveryError, Reason
from alertmanager_wecom.wecom.userid import UserIds

log = logging.getLogger(__name__)


class Lookups:
    def __init__(self, userids: UserIds, failures: Failures) -> None:
        self.userids = userids
        self.failures = failures

    async def route(self, jobs: list[Job], route: TargetRoute, routes: Routes) -> TargetRoute | bool:
        """The route to deliver `jobs` through, with userids for their email:/mobile: recipients; or, when
        the jobs were dealt with here, whether to go on with the target (True: dead letters made, the
        next jobs go on; False: a transient failure, the target backs off)."""
        target = route.target
        assert isinstance(target, AppTarget) and target.lookups
        users: list[str] = []
        missing: list[str] = []
        try:
            token = token_for(target.app, routes.config, routes.api, routes.tokens)
            for recipient in target.to_user:
                contact = parse_contact(recipient)
                if form_of(recipient) is None:
                    users.append(recipient)
                elif contact is None:  # written by a version that checked less: never sent as is
                    missing.append(f"{recipient!r} {contact_problem(recipient)}")
                else:
                    answer = await self.userids.userid(token, target.app, contact)
                    if answer.userid is not None:
                        users.append(answer.userid)
                    else:
                        missing.append(answer.problem)
        except DeliveryError as exc:
            if exc.retryable:
                return await self.failures.retry_later(jobs[0], route, exc)
            for job in jobs:
                await self.failures.dead(job, route, exc.reason, f"cannot look up recipients: {exc.detail}")
            return True
        resolved = target.model_copy(update={"to_user": list(dict.fromkeys(users)), "fallback": None})
        nobody = not (resolved.to_user or resolved.to_party or resolved.to_tag)
        if missing:
            log.log(
                logging.INFO if nobody and target.fallback is not None else logging.WARNING,
                "receiver %s: %s%s",
                jobs[0].receiver,
                summarize(missing),
                ", sent to the fallback" if nobody and target.fallback is not None else "",
            )
        if nobody:
            fallback = target.fallback
            if fallback is None:
                for job in jobs:
                    detail = f"no valid recipient: {summarize(missing)}"
                    await self.failures.dead(job, route, Reason.RECIPIENTS, detail)
                return True
            resolved = target.model_copy(
                update={
                    "to_user": fallback.to_user,
                    "to_party": fallback.to_party,
                    "to_tag": fallback.to_tag,
                    "fallback": None,
                }
            )
        return routes.get(target_spec(resolved))
