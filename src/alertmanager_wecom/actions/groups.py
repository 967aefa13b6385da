"""The alert groups a card acts on: its own, or on a digest's card every group the digest merged.

A digest (a storm's backlog coalesced) has no group of its own (`DIGEST_GROUP_KEY`): its 认领 and its
silence stand for each group in it. Acknowledging the pseudo-group "digest" instead would mark every
later digest of the receiver as acknowledged, and with `card.ack_quiet` hold them back unsent.
"""

from __future__ import annotations

import asyncio

from alertmanager_wecom.actions.store import CardRecord
from alertmanager_wecom.ingest.payload import DIGEST_GROUP_KEY, parse_notification


async def card_groups(record: CardRecord) -> list[str]:
    """The group keys `record`'s buttons act on (a digest's read from the notification it shows, parsed
    off the event loop: a storm's digest is megabytes)."""
    if record.group_key != DIGEST_GROUP_KEY:
        return [record.group_key]
    notification = await asyncio.to_thread(parse_notification, record.payload)
    return list(notification.digest_groups)
