"""Routes: what delivering to one stored target takes (its renderer, channel and rate keys), built
once per target spec and config, cached until the config is reloaded."""

from __future__ import annotations

import logging
from dataclasses import dataclass

from alertmanager_wecom.channels import Channel, build_channel
from alertmanager_wecom.config import Config, Target
from alertmanager_wecom.delivery.pacing import RateLimiter, Window
from alertmanager_wecom.metrics import Metrics
from alertmanager_wecom.rendering.renderer import Renderer, TemplateError
from alertmanager_wecom.wecom.api import WeComAPI
from alertmanager_wecom.wecom.token import AccessToken

log = logging.getLogger("alertmanager_wecom.delivery.routes")


@dataclass
class Route:
    target: Target
    renderer: Renderer
    channel: Channel
    rate_keys: list[str]
    kind: str  # app | chat | robot: the channel label of metrics
    label: str  # app:NAME or robot:NAME: a bounded metrics label (no recipients)
    last_send: float = 0.0


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
        self._routes: dict[str, Route] = {}

    def get(self, spec: str) -> Route:
        """The route for a stored target spec (JSON); raises when the config cannot deliver to it."""
        return self._route(spec)

    # -- routes ---------------------------------------------------------------------------------------

    def _route(self, spec: str) -> Route:
        route = self._routes.get(spec)
        if route is None:
            target = Target.model_validate_json(spec)
            channel = build_channel(target, self.config, self.api, self.tokens)
            if target.app is not None:
                token = self.tokens.get(target.app)
                if token is not None and token.on_refresh is None:
                    token.on_refresh = self.metrics.token_refreshes.labels(target.app).inc
            kind = "robot" if target.robot else "chat" if target.chat else "app"
            label = f"robot:{target.robot}" if target.robot else f"app:{target.app}"
            route = Route(
                target,
                self._renderer(target),
                channel,
                self._rate_keys(target),
                kind,
                label,
            )
            self._routes[spec] = route
        return route

    def _renderer(self, target: Target) -> Renderer:
        """The target's renderer; with the built-in templates if its own cannot be read any more (the
        file was moved after the config was loaded): the alerts go out, the operator is told."""
        try:
            return Renderer.for_target(target, self.config)
        except TemplateError as exc:
            log.error("%s; sending with the built-in template until the template can be read", exc)
            builtin = target.model_copy(update={"template": None, "title_template": None})
            return Renderer.for_target(builtin, self.config)

    def _rate_keys(self, target: Target) -> list[str]:
        keep = 1.0 - self.settings.headroom

        def windows(*limits: tuple[int, float]) -> tuple[Window, ...]:
            return tuple(Window(max(1, int(limit * keep)), seconds) for limit, seconds in limits)

        if target.robot is not None:
            key = f"robot:{target.robot}"
            self.limiter.configure(key, windows((self.settings.robot_per_minute, 60.0)))
            return [key]
        assert target.app is not None
        app = self.config.apps[target.app]
        prefix = f"app:{app.corp_id}:{app.agent_id}"
        if target.chat:
            # WeCom drops app-chat messages over 200/min or 10,000/day per chat without an error.
            key = f"{prefix}:chat:{target.chat}"
            self.limiter.configure(key, windows((200, 60.0), (10000, 86400.0)))
            return [key]
        member = windows((self.settings.member_per_minute, 60.0), (self.settings.member_per_hour, 3600.0))
        # A party or tag is paced like one member: its members are not known here.
        keys = [f"{prefix}:user:{u}" for u in target.to_user] + [
            f"{prefix}:party:{p}" for p in target.to_party
        ]
        keys += [f"{prefix}:tag:{t}" for t in target.to_tag]
        for key in keys:
            self.limiter.configure(key, member)
        if app.daily_quota:
            day = f"{prefix}:day"
            self.limiter.configure(day, windows((app.daily_quota, 86400.0)))
            keys.append(day)
        return keys
