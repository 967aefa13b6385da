"""Prometheus metrics at /metrics. Labels are bounded: receiver and target names from the config,
channels (app, chat, robot, webhook) and failure reasons (`reasons.Reason`); never alert labels or
recipients."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

PREFIX = "alertmanager_wecom"


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        r = self.registry
        self.notifications = Counter(
            f"{PREFIX}_notifications_received",
            "Webhook notifications, by outcome.",
            ["receiver", "status"],
            registry=r,
        )
        self.webhooks_too_large = Counter(
            f"{PREFIX}_webhooks_too_large",
            "Webhooks refused with 413 (over server.max_body_bytes); Alertmanager does not resend them.",
            ["receiver"],
            registry=r,
        )
        self.escalations = Counter(
            f"{PREFIX}_escalations_total",
            "Escalation steps taken (sent), by policy and step (2 = the first step after the notification).",
            ["policy", "step"],
            registry=r,
        )
        self.escalations_stopped = Counter(
            f"{PREFIX}_escalations_stopped_total",
            "Escalation steps not taken when due, by why (acknowledged, silenced, resolved, taken, stale).",
            ["policy", "why"],
            registry=r,
        )
        self.time_to_acknowledge = Histogram(
            f"{PREFIX}_time_to_acknowledge_seconds",
            "From an incident's first notification to its acknowledgement, by receiver.",
            ["receiver"],
            buckets=(30, 60, 120, 300, 600, 900, 1800, 3600, 7200, 14400, 43200, 86400),
            registry=r,
        )
        self.time_to_resolve = Histogram(
            f"{PREFIX}_time_to_resolve_seconds",
            "From an incident's first notification to its resolution, by receiver.",
            ["receiver"],
            buckets=(60, 300, 600, 1800, 3600, 7200, 14400, 43200, 86400, 259200),
            registry=r,
        )
        self.callbacks = Counter(
            f"{PREFIX}_callbacks_received",
            "Requests to /wecom/callback/<app>, by outcome (verified, accepted, duplicate, refused, bad_request).",
            ["app", "outcome"],
            registry=r,
        )
        self.card_actions = Counter(
            f"{PREFIX}_card_actions",
            "Card button presses, by action (ack, silence, unsilence, other) and outcome (ok, failed, denied, "
            "ignored, unknown_card).",
            ["app", "action", "outcome"],
            registry=r,
        )
        self.card_updates = Counter(
            f"{PREFIX}_card_updates",
            "Cards redrawn for their recipients (updated), told by a new message instead (message), or neither (failed).",
            ["app", "outcome"],
            registry=r,
        )
        self.charts = Counter(
            f"{PREFIX}_charts",
            "Charts after alerts, by channel and outcome (sent, skipped: no query, Prometheus down or the "
            "text first; failed).",
            ["channel", "outcome"],
            registry=r,
        )
        self.wecom_errors = Counter(
            f"{PREFIX}_wecom_errors",
            "Sends WeCom refused, by errcode (none: no answer, or HTTP).",
            ["errcode"],
            registry=r,
        )
        self.messages_sent = Counter(
            f"{PREFIX}_messages_sent",
            "Messages WeCom accepted.",
            ["receiver", "channel", "target"],
            registry=r,
        )
        self.messages_failed = Counter(
            f"{PREFIX}_messages_failed",
            "Failed sends, by reason.",
            ["receiver", "channel", "target", "reason"],
            registry=r,
        )
        self.latency = Histogram(
            f"{PREFIX}_delivery_latency_seconds",
            "From acceptance of a notification to WeCom's answer for its last message.",
            ["channel"],
            registry=r,
            buckets=(0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 900, 3600),
        )
        self.outbox_pending = Gauge(f"{PREFIX}_outbox_pending", "Jobs waiting in the outbox.", registry=r)
        self.outbox_oldest = Gauge(
            f"{PREFIX}_outbox_oldest_pending_seconds", "Age of the oldest waiting job.", registry=r
        )
        self.outbox_backend = Gauge(
            f"{PREFIX}_outbox_backend",
            "1 for the outbox's backend (sqlite or redis): the outbox gauges above describe its storage.",
            ["backend"],
            registry=r,
        )
        self.outbox_dead = Gauge(f"{PREFIX}_outbox_dead", "Dead letters kept in the outbox.", registry=r)
        self.dead_letters = Counter(
            f"{PREFIX}_dead_letters",
            "Jobs moved to the dead letters, by reason.",
            ["receiver", "reason"],
            registry=r,
        )
        self.token_refreshes = Counter(
            f"{PREFIX}_token_refreshes", "Access tokens fetched, by app.", ["app"], registry=r
        )
        self.rate_limit_waits = Counter(
            f"{PREFIX}_rate_limit_waits",
            "Sends held back to stay under WeCom's limits.",
            ["channel", "target"],
            registry=r,
        )
        self.lookups = Counter(
            f"{PREFIX}_userid_lookups",
            "Recipients written email:/mobile: turned into userids, by app, kind (email, mobile) and outcome "
            "(found, not_found, cached_found, cached_not_found, bounded: not looked up, past "
            "wecom.lookup_unknown_per_day; failed).",
            ["app", "kind", "outcome"],
            registry=r,
        )
        self.digests = Counter(
            f"{PREFIX}_digests", "Backlogs coalesced into a digest.", ["receiver"], registry=r
        )
        self.dedup_hits = Counter(
            f"{PREFIX}_dedup_hits", "Notifications dropped as HA duplicates.", ["receiver"], registry=r
        )
        self.ingest_writer_exits = Counter(
            f"{PREFIX}_ingest_writer_exits",
            "Times the child process that commits webhooks exited unasked (it is started again).",
            registry=r,
        )
        self.reloads = Counter(
            f"{PREFIX}_config_reloads", "Configuration reloads, by result.", ["result"], registry=r
        )
        self.reload_success = Gauge(
            f"{PREFIX}_config_last_reload_successful",
            "1 if the last reload succeeded (or none was tried).",
            registry=r,
        )
        self.reload_success.set(1)
