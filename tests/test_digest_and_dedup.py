import copy
from typing import Any

from alertmanager_wecom import samples
from alertmanager_wecom.delivery import digest
from alertmanager_wecom.delivery.digest import merge
from alertmanager_wecom.delivery.render import render_messages
from alertmanager_wecom.ingest.dedup import dedup_key
from alertmanager_wecom.ingest.payload import WEBHOOK, Notification, alert_instants
from alertmanager_wecom.loading import parse_config
from alertmanager_wecom.rendering.renderer import Renderer


def test_merge_keeps_every_alert_once_in_its_latest_state() -> None:
    first = Notification.model_validate(samples.node_down(3))
    second = Notification.model_validate(samples.node_down(2, status="resolved"))
    other = Notification.model_validate(samples.node_down(2, cluster="prod-sh"))
    merged = merge([first, second, other])
    assert len(merged.alerts) == 5
    states = {(a.labels["cluster"], a.labels["instance"]): a.status for a in merged.alerts}
    assert states[("prod-bj", "10.0.0.0:9100")] == "resolved"
    assert states[("prod-bj", "10.0.0.2:9100")] == "firing"
    assert merged.status == "firing"
    assert merged.digest_of == 3
    assert merged.common_labels == {"alertname": "NodeDown", "job": "node", "severity": "critical"}


def test_merging_digests_counts_their_notifications() -> None:
    digest = Notification.model_validate({**samples.node_down(1), "digest_of": 4})
    assert merge([digest, Notification.model_validate(samples.node_down(1, cluster="x"))]).digest_of == 5


def test_a_digest_remembers_the_groups_it_merged_through_digests_of_digests() -> None:
    """Each group once, in the order they came (on-call marks each group's incident from them)."""
    a, b = samples.node_down(1, cluster="a"), samples.node_down(1, cluster="b")
    a["groupKey"], b["groupKey"] = '{}:{cluster="a"}', '{}:{cluster="b"}'
    first = merge(
        [Notification.model_validate(a), Notification.model_validate(b), Notification.model_validate(a)]
    )
    assert first.group_key == "digest" and first.digest_groups == [a["groupKey"], b["groupKey"]]
    c = {**samples.node_down(1, cluster="c"), "groupKey": '{}:{cluster="c"}'}
    again = merge([first, Notification.model_validate(c), Notification.model_validate(b)])
    assert again.digest_groups == [a["groupKey"], b["groupKey"], c["groupKey"]]  # not "digest"
    stored = Notification.model_validate_json(digest.build([first])[1])
    assert stored.digest_groups == first.digest_groups  # kept in its stored form (a resumed digest)


def key(receiver: str, payload: dict[str, Any]) -> str:
    webhook = WEBHOOK.validate_python(payload)
    return dedup_key(receiver, webhook, alert_instants(webhook))


def test_dedup_key_ignores_external_url_but_not_state() -> None:
    payload = samples.node_down(3)
    base = key("r", payload)
    assert key("r", {**payload, "externalURL": "http://am-2:9093"}) == base
    assert key("other", payload) != base
    assert key("r", samples.node_down(3, status="resolved")) != base
    later = samples.node_down(3)
    later["alerts"][0]["startsAt"] = "2026-11-28T10:00:00.000000000Z"
    assert key("r", later) != base


def test_dedup_key_compares_instants_not_how_they_are_written() -> None:
    payload = samples.node_down(1)
    payload["alerts"][0]["startsAt"] = "2026-11-28T09:00:00Z"
    same = copy.deepcopy(payload)
    same["alerts"][0]["startsAt"] = "2026-11-28T17:00:00.000+08:00"
    assert key("r", same) == key("r", payload)
    # A firing alert's zero endsAt and a missing one mean the same: not ended.
    missing = copy.deepcopy(payload)
    del missing["alerts"][0]["endsAt"]
    assert key("r", missing) == key("r", payload)


def test_a_digest_renders_the_same_from_memory_and_from_its_stored_form() -> None:
    # The dispatcher sends a new digest from the merged object; a restart resumes it from the stored
    # JSON. Both must give byte-identical messages (WeCom's duplicate check then drops a resend).
    config = parse_config(
        {
            "apps": {"ops": {"corp_id": "wwsandbox0000001", "agent_id": 1000002, "secret": "s" * 40}},
            "receivers": [{"name": "default", "targets": [{"app": "ops", "to_user": ["zhangsan"]}]}],
        }
    )
    target = config.receivers[0].targets[0]
    renderer = Renderer.for_target(target, config)
    notifications = [
        Notification.model_validate(samples.node_down(20, cluster=f"c{i}", status=status))
        for i, status in enumerate(["firing", "resolved"] * 30)
    ]
    merged, stored = digest.build(notifications)
    from_memory = render_messages(target, renderer, merged)
    assert len(from_memory) > 1
    assert render_messages(target, renderer, Notification.model_validate_json(stored)) == from_memory
