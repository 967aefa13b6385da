from alertmanager_wecom import samples
from alertmanager_wecom.dedup import dedup_key
from alertmanager_wecom.digest import merge
from alertmanager_wecom.payload import Notification


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


def test_dedup_key_ignores_external_url_but_not_state() -> None:
    payload = samples.node_down(3)
    base = dedup_key("r", Notification.model_validate(payload))
    assert dedup_key("r", Notification.model_validate({**payload, "externalURL": "http://am-2:9093"})) == base
    assert dedup_key("other", Notification.model_validate(payload)) != base
    assert dedup_key("r", Notification.model_validate(samples.node_down(3, status="resolved"))) != base
    later = samples.node_down(3)
    later["alerts"][0]["startsAt"] = "2026-11-28T10:00:00.000000000Z"
    assert dedup_key("r", Notification.model_validate(later)) != base
