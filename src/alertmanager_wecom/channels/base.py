"""What every channel implements: `Channel` sends one message; `ChannelKind` is everything else a
channel owns about its targets (their model, metrics labels, rate limits, descriptions, its
content limit, its own rendering when it does not send WeCom text, how it is built).

Adding a channel: see channels/__init__.py.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Protocol, TypeVar

from alertmanager_wecom.rendering.message import Message
from alertmanager_wecom.wecom.api import WeComAPI
from alertmanager_wecom.wecom.token import AccessToken

if TYPE_CHECKING:
    from alertmanager_wecom.config import Config, DeliverySettings, TargetBase
    from alertmanager_wecom.ingest.payload import Notification

T_contra = TypeVar("T_contra", contravariant=True)


@dataclass(frozen=True)
class Window:
    """At most `limit` sends in any `seconds`: one of the limits a channel declares for a rate key."""

    limit: int
    seconds: float


# A rate key (what WeCom limits: one member, one chat, one robot, an app's day) and its windows.
RateWindows = list[tuple[str, tuple[Window, ...]]]


@dataclass(frozen=True)
class SendResult:
    # Recipients WeCom refused while delivering to the rest: {"invaliduser": [...], ...}
    invalid: dict[str, list[str]] = field(default_factory=dict)
    # An interactive card's response_code (updates the card once, within 72 h).
    response_code: str = ""


class Channel(Protocol):
    """Sends one message; raises a `DeliveryError` on failure (WeCom's channels: a `WeComError`, with
    the errcode table's action)."""

    @property
    def name(self) -> str:
        """Where messages go, for logs and metrics: never contains a secret."""
        ...

    async def send(self, message: Message) -> SendResult: ...

    async def send_image(self, png: bytes) -> SendResult:
        """An image message (a chart), right after the alert's text."""
        ...


# A channel's own rendering: the notification (its resolved alerts already dropped when the target does
# not send them) → the messages it sends.
OwnRendering = Callable[["Notification"], list[Message]]


class ChannelKind(Protocol[T_contra]):
    """One channel's knowledge of its targets."""

    @property
    def target(self) -> type[TargetBase]:
        """The model of its targets (config/targets/<channel>.py): its key in the registry."""
        ...

    @property
    def channel_label(self) -> str:
        """The metrics label `channel`: app | chat | robot | webhook."""
        ...

    def target_label(self, target: T_contra) -> str:
        """The metrics label `target`, bounded (``app:NAME``, ``robot:NAME``): never a recipient."""
        ...

    def rate_windows(self, target: T_contra, config: Config, settings: DeliverySettings) -> RateWindows:
        """What WeCom limits for this target, with the delivery settings' headroom applied."""
        ...

    def via(self, target: T_contra) -> str:
        """What it sends through, for `check`: ``app ops``, ``app ops, chat c1``, ``robot sre``."""
        ...

    def describe(self, target: T_contra) -> str:
        """Where it sends, for `render`: ``app ops → zhangsan|party:2``, ``robot sre``."""
        ...

    def content_limit(self, target: T_contra, config: Config) -> int:
        """The most bytes of content one message to this target may have (WeCom cuts the rest
        silently; a webhook's is its max_body_bytes)."""
        ...

    def renders(self, target: T_contra, config: Config) -> OwnRendering | None:
        """How the channel renders a notification itself when its messages are not WeCom text (the
        webhook's JSON); None: the target's templates render it, within `content_limit`."""
        ...

    def build(
        self, target: T_contra, config: Config, api: WeComAPI, tokens: dict[str, AccessToken]
    ) -> Channel:
        """The channel that sends to this target (KeyError when its app or robot left the config)."""
        ...


class TemplatedKind:
    """The kinds of WeCom's text channels: their targets' templates render their messages."""

    def renders(self, target: object, config: Config) -> OwnRendering | None:
        return None


def windows(settings: DeliverySettings, *limits: tuple[int, float]) -> tuple[Window, ...]:
    """(limit, seconds) windows kept `headroom` below WeCom's limits: WeCom drops what is over them
    without an error."""
    keep = 1.0 - settings.headroom
    return tuple(Window(max(1, int(limit * keep)), seconds) for limit, seconds in limits)


async def upload_image(token: AccessToken, png: bytes) -> str:
    """media/upload (type image) with the app's token: the media_id an image message names (3 days)."""
    reply = await token.call(
        "POST", "media/upload", params={"type": "image"}, files={"media": ("chart.png", png, "image/png")}
    )
    media_id = reply.get("media_id")
    if not isinstance(media_id, str) or not media_id:
        raise ValueError("media/upload answered without a media_id")
    return media_id


def token_for(app_name: str, config: Config, api: WeComAPI, tokens: dict[str, AccessToken]) -> AccessToken:
    """The app's token cache, shared by every channel of that app."""
    token = tokens.get(app_name)
    if token is None:
        if app_name not in config.apps:
            raise KeyError(f"app {app_name!r} is not in the config (any more)")
        app = config.apps[app_name]
        token = tokens[app_name] = AccessToken(api, app.corp_id, app.secret)
    return token
