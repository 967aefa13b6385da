"""Recipients written email:/mobile: (config/contacts.py): one address or one number, never more; where
the config may write them; and what routing makes of them when alert data fills them in."""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from alertmanager_wecom import samples
from alertmanager_wecom.config import AppTarget, ConfigError, parse_target
from alertmanager_wecom.config.contacts import Contact, contact_problem, parse_contact
from alertmanager_wecom.ingest.payload import Notification
from alertmanager_wecom.ingest.recipients import refusal
from alertmanager_wecom.ingest.routing import Router
from alertmanager_wecom.loading import parse_config

# What would make one value reach more than one person, or break out of it.
SEPARATORS = ",;| \t\n<>\"'()[]"

_atom = st.text("abcdefghijklmnopqrstuvwxyz0123456789", min_size=1, max_size=8)
emails = st.builds(
    lambda local, labels, tld: f"{local}@{'.'.join(labels)}.{tld}",
    st.lists(_atom, min_size=1, max_size=2).map(".".join),
    st.lists(_atom, min_size=1, max_size=2),
    st.text("abcdefghijklmnopqrstuvwxyz", min_size=2, max_size=4),
).filter(lambda e: 6 <= len(e) <= 64)
mobiles = st.one_of(
    st.text("0123456789", min_size=5, max_size=20),
    st.builds(
        lambda cc, n: f"+{cc} {n}", st.integers(1, 999), st.text("0123456789", min_size=6, max_size=12)
    ),
)


@given(emails)
def test_one_email_address_parses(email: str) -> None:
    assert parse_contact(f"email:{email}") == Contact("email", email)
    assert contact_problem(f"email:{email}") is None


@given(mobiles)
def test_one_mobile_number_parses(mobile: str) -> None:
    assert parse_contact(f"mobile:{mobile}") == Contact("mobile", mobile)


@given(emails, emails, st.sampled_from(SEPARATORS))
def test_two_addresses_are_never_one_value(first: str, second: str, separator: str) -> None:
    text = f"email:{first}{separator}{second}"
    assert parse_contact(text) is None
    assert contact_problem(text) is not None


@given(st.sampled_from(["email", "mobile"]), st.text(max_size=80))
def test_whatever_the_value_a_contact_is_one_clean_value(form: str, value: str) -> None:
    # Any text at all: the parser never raises, and what it accepts is exactly what was written, with
    # nothing that could separate two people or open markup.
    contact = parse_contact(f"{form}:{value}")
    if contact is not None:
        assert str(contact) == f"{form}:{value}"
        assert (
            not set(contact.value) & set(SEPARATORS.replace(" ", "")) and "@all" not in contact.value.lower()
        )
        assert contact.value.count(" ") <= (1 if form == "mobile" else 0)


def test_examples_of_the_form() -> None:
    assert parse_contact("email:alice@corp.com") == Contact("email", "alice@corp.com")
    assert parse_contact("mobile:13800000000") == Contact("mobile", "13800000000")
    assert parse_contact("mobile:+852 51234567") == Contact("mobile", "+852 51234567")
    for bad in (
        "email:@all",
        "email:alice",
        "email:a@b",
        "email:alice@corp.com,bob@corp.com",
        "mobile:12",
        "mobile:138 0000 0000",
        "mobile:@all",
    ):
        assert parse_contact(bad) is None, bad
    assert parse_contact("zhangsan") is None and contact_problem("zhangsan") is None


def _config(*targets: dict[str, Any]) -> Any:
    return parse_config(
        {
            "apps": {"ops": {"corp_id": "ww1", "agent_id": 1, "secret": "s3cret-value"}},
            "robots": {"sre": {"key": "robot-key-value"}},
            "receivers": [{"name": "r", "targets": list(targets)}],
        }
    )


@pytest.mark.parametrize(
    ("target", "words"),
    [
        ({"app": "ops", "to_user": ["email:alice"]}, "not one email address"),
        ({"app": "ops", "to_user": ["mobile:138-0000"]}, "not one mobile number"),
        ({"app": "ops", "to_party": ["email:a@corp.com"]}, "go in to_user"),
        (
            {
                "app": "ops",
                "to_user": ["email:{{ labels.e }}"],
                "fallback": {"to_user": ["email:a@corp.com"]},
            },
            "a look-up could miss too",
        ),
        ({"robot": "sre", "msgtype": "text", "mention": ["email:a@corp.com"]}, "no app token"),
        ({"robot": "sre", "mention": ["mobile:13800000001"]}, "only text messages"),
        ({"robot": "sre", "msgtype": "text", "mention": ["mobile:1|2"]}, "not one mobile number"),
    ],
)
def test_the_config_refuses_what_is_not_one_value(target: dict[str, Any], words: str) -> None:
    with pytest.raises(ConfigError, match=words):
        _config(target)


def test_a_target_with_lookups_may_have_a_fallback() -> None:
    config = _config({"app": "ops", "to_user": ["email:alice@corp.com"], "fallback": {"to_user": ["lisi"]}})
    target = config.receivers[0].targets[0]
    assert isinstance(target, AppTarget) and target.lookups and target.fallback is not None
    assert config.wecom.lookup_unknown_per_day == 100 and config.wecom.lookup_cache_found == 86400.0


def test_refusal_lets_only_the_config_choose_a_lookup() -> None:
    assert refusal("to_user", "email:alice@corp.com", "email") is None
    assert "not one email address" in str(refusal("to_user", "email:a@x.com b@x.com", "email"))
    assert refusal("to_user", "email:", "email") == "is empty for this alert"
    # A label that says "email:..." where the config wrote {{ labels.owner }}: not a userid.
    assert "only when the config writes it" in str(refusal("to_user", "email:alice@corp.com"))


def test_routing_keeps_one_address_per_alert_and_the_fallback_with_it() -> None:
    config = _config(
        {"app": "ops", "to_user": ["email:{{ labels.owner_email }}"], "fallback": {"to_user": ["lisi"]}}
    )
    body = samples.node_down(3)
    body["alerts"][0]["labels"]["owner_email"] = "zhangsan@sandbox.example"
    body["alerts"][1]["labels"]["owner_email"] = "zhangsan@sandbox.example,lisi@sandbox.example"
    jobs = Router(config).route("r", Notification.model_validate(body), json.dumps(body))
    routed = [(parse_target(j.target_spec), len(json.loads(j.payload)["alerts"])) for j in jobs]
    assert all(isinstance(target, AppTarget) for target, _ in routed)
    first, second = [(target, n) for target, n in routed if isinstance(target, AppTarget)]
    assert first[0].to_user == ["email:zhangsan@sandbox.example"] and first[1] == 1
    assert first[0].fallback is not None and first[0].fallback.to_user == ["lisi"]
    # the list and the missing label: to the fallback, which needs no look-up
    assert second[0].to_user == ["lisi"] and second[0].fallback is None and second[1] == 2
