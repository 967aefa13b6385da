"""Why a send failed or a job became a dead letter: one enum from the errcode table to the outbox to
the metrics labels.

A leaf module (it imports nothing of the package), so that the outbox, the WeCom client, the delivery
stages and the metrics can all name a reason without importing one another; `DeliveryError`, the one
error a channel raises, is here for the same reason. A `StrEnum`: each member
is its value, so it is stored in the outbox (`Job.reason`) and used as a metrics label unchanged. The
values are a stored format and a public label set (dashboards and alerts select on them): never rename
one; add members instead.
"""

from __future__ import annotations

import enum


class Reason(enum.StrEnum):
    # From WeCom's answers (wecom/errcodes.TABLE) and the HTTP exchange around them.
    TOKEN = "token"  # the access token was refused (refreshed and resent once)
    BUSY = "busy"
    RATE_LIMITED = "rate_limited"
    HTTP_ERROR = "http_error"  # a status other than 200, or a body that is not a JSON object
    NETWORK = "network"  # WeCom could not be reached, or the answer did not arrive
    TRUSTED_IP = "trusted_ip"
    BAD_CREDENTIALS = "bad_credentials"
    BAD_AGENT = "bad_agent"
    NO_PERMISSION = "no_permission"
    RECIPIENTS = "recipients"  # also: routed, but no valid recipient was left (stored dead at ingest)
    ROBOT = "robot"
    BAD_MESSAGE = "bad_message"  # also: a notification that cannot be read or rendered
    UNKNOWN = "unknown"  # an errcode the table does not know (retried)
    # The relay's own.
    CONFIG = "config"  # the job's target is gone from the configuration, or cannot be built


class DeliveryError(Exception):
    """A send that did not go through, on any channel: what delivery needs to know and nothing else.

    `reason` is why (the metrics label and the dead letter's reason); `retryable`, whether trying again
    later may help (else the job is a dead letter at once); `maybe_delivered`, whether the message may
    have arrived anyway (a read timeout: a resend must be byte-identical, so that a duplicate check drops
    it); `code`, the channel's own error code for the metrics (WeCom's errcode), or None; `detail`, for
    logs and dead letters, with no secret in it. Channels raise it (WeCom's `WeComError` derives from
    it); delivery reads only this, so a channel that is not WeCom has an error to raise."""

    def __init__(
        self,
        reason: Reason,
        detail: str,
        retryable: bool,
        maybe_delivered: bool = False,
        code: str | None = None,
    ) -> None:
        super().__init__(detail)
        self.reason = reason
        self.detail = detail
        self.retryable = retryable
        self.maybe_delivered = maybe_delivered
        self.code = code
