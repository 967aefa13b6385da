import re

import pytest
from hypothesis import given
from hypothesis import strategies as st

from alertmanager_wecom.ingest.matchers import MatcherError, parse_matcher


@pytest.mark.parametrize(
    ("text", "labels", "expected"),
    [
        ('severity="critical"', {"severity": "critical"}, True),
        ('severity="critical"', {"severity": "warning"}, False),
        ("severity=critical", {"severity": "critical"}, True),
        ('env!="dev"', {"env": "prod"}, True),
        ('env!="dev"', {}, True),
        ('env!="dev"', {"env": "dev"}, False),
        ('team=~"db|infra"', {"team": "infra"}, True),
        ('team=~"db|infra"', {"team": "infra-2"}, False),  # anchored, as in Alertmanager
        ('team!~"db|infra"', {"team": "web"}, True),
        ('team!~"db|infra"', {"team": "db"}, False),
        ('missing=""', {}, True),  # an absent label is the empty string
        (' msg = "say \\"hi\\"" ', {"msg": 'say "hi"'}, True),
    ],
)
def test_matcher_semantics(text: str, labels: dict[str, str], expected: bool) -> None:
    assert parse_matcher(text).matches(labels) is expected


@pytest.mark.parametrize("text", ["severity", '="x"', 'a=~"("', 'a="x', '1a="x"', 'a="x"y"'])
def test_bad_matchers_are_refused(text: str) -> None:
    with pytest.raises(MatcherError):
        parse_matcher(text)


names = st.from_regex(r"[A-Za-z_][A-Za-z0-9_]{0,10}", fullmatch=True)
values = st.text(max_size=20)


@given(names, st.sampled_from(["=", "!="]), values, values)
def test_equality_matchers_round_trip_and_agree_with_python(
    name: str, op: str, value: str, actual: str
) -> None:
    matcher = parse_matcher(f"{name}{op}" + '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"')
    assert (matcher.name, matcher.op, matcher.value) == (name, op, value)
    assert parse_matcher(str(matcher)) == matcher
    assert matcher.matches({name: actual}) is ((actual == value) == (op == "="))


@given(
    names,
    st.from_regex(r"[a-z]{1,4}(\|[a-z]{1,4}){0,2}", fullmatch=True),
    st.text(alphabet="abcd|", max_size=6),
)
def test_regex_matchers_are_anchored(name: str, pattern: str, actual: str) -> None:
    matcher = parse_matcher(f'{name}=~"{pattern}"')
    assert matcher.matches({name: actual}) is (re.fullmatch(f"(?:{pattern})", actual) is not None)
