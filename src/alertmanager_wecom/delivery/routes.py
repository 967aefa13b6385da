"""Routes: what delivering to one stored target takes (its renderer, channel and rate keys), built
once per target spec and config, cached until the config is reloaded."""

from __future__ import annotations

import logging
from dataclasses import dataclass

from alertmanager_wecom.channels import Channel, build_channel, kind_of
from alertmanager_wecom.channels.base import OwnRendering
from alertmanager_wecom.config import Config, Target, parse_target
from alertmanager_wecom.delivery.pacing import RateLimiter
from alertmanager_wecom.metrics import Metrics
from alertmanager_wecom.rendering.card import CardBuilder, builder_for
from alertmanager_wecom.rendering.renderer import Renderer, TemplateError
from alertmanager_wecom.wecom.api import WeComAPI
from alertmanager_wecom.wecom.token import AccessToken

log = logging.getLogger(__name__)


@dataclass
class TargetRoute:
    target: Target
    renderer: Renderer
    channel: Channel
    rate_keys: list[str]
    channel_label: str  # app | chat | robot | webhook: the metrics label `channel`
    target_label: str  # app:NAME, robot:NAME, webhook:NAME: the metrics label `target` (no recipients)
    last_send: float = 0.0
    cards: CardBuilder | None = None  # msgtype template_card: builds the target's cards
    renders: OwnRendering | None = None  # the channel's own rendering (a webhook's JSON), else templates


class Routes:
    """The routes of one config. A reload makes a new `Routes`: tokens are fetched again (the secret may
    have changed); the limiter is shared, so that sends before the reload still count."""

    def __init__(self, config: Config, api: WeComAPI, metrics: Metrics, limiter: RateLimiter) -> None:
        self.config = config
        self.settings = config.delivery
        self.api = api
        self.metrics = metrics
        self.limiter = limiter
        self.tokens: dict[str, AccessToken] = {}
        self._routes: dict[str, TargetRoute] = {}

    def get(self, spec: str) -> TargetRoute:
        """The route for a stored target spec (JSON); raises when the config cannot deliver to it."""
        return self._route(spec)

    # -- routes ---------------------------------------------------------------------------------------

    def _route(self, spec: str) -> TargetRoute:
        route = self._routes.get(spec)
        if route is None:
            target = parse_target(spec)
            channel = build_channel(target, self.config, self.api, self.tokens)
            for app, token in self.tokens.items():  # the apps' tokens this channel built, if any
                if token.on_refresh is None:
                    token.on_refresh = self.metrics.token_refreshes.labels(app).inc
            kind = kind_of(target)
            route = TargetRoute(
                target,
                self._renderer(target, kind.content_limit(target, self.config)),
                channel,
                self._rate_keys(target),
                kind.channel_label,
                kind.target_label(target),
                cards=builder_for(target, self.config) if target.msgtype == "template_card" else None,
                renders=kind.renders(target, self.config),
            )
            self._routes[spec] = route
        return route

    def _renderer(self, target: Target, limit: int) -> Renderer:
        """The target's renderer; with the built-in templates if its own cannot be read any more (the
        file was moved after the config was loaded): the alerts go out, the operator is told."""
        try:
            return Renderer.for_target(target, self.config, limit)
        except TemplateError as exc:
            log.error("%s; sending with the built-in template until the template can be read", exc)
            builtin = target.model_copy(update={"template": None, "title_template": None})
            return Renderer.for_target(builtin, self.config, limit)

    def _rate_keys(self, target: Target) -> list[str]:
        keys = []
        for key, windows in kind_of(target).rate_windows(target, self.config, self.settings):
            self.limiter.configure(key, windows)
            keys.append(key)
        return keys
