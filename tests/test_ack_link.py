"""Signed acknowledge links (oncall/ack_link.py): a token names a receiver and a group, or a digest
(``j<job id>``); it verifies only unaltered, under its key, before it expires."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from alertmanager_wecom.oncall.ack_link import BadLink, digest_job, digest_link_group, sign, verify
from alertmanager_wecom.oncall.store import group_id

KEY = b"k" * 32
RECEIVERS = st.from_regex(r"[A-Za-z0-9_.-]{1,40}", fullmatch=True)
GROUPS = st.one_of(
    st.text(min_size=1, max_size=200).map(group_id),
    st.integers(min_value=1, max_value=10**17).map(digest_link_group),
)


@given(RECEIVERS, GROUPS)
def test_a_token_gives_back_what_it_names(receiver: str, group: str) -> None:
    token = sign(KEY, receiver, group, 2_000_000_000)
    assert verify(KEY, token, 1_900_000_000) == (receiver, group)
    job = digest_job(group)
    assert (job is not None) == group.startswith("j")
    assert job is None or digest_link_group(job) == group


@given(RECEIVERS, GROUPS, st.integers(min_value=0), st.characters(codec="ascii"))
def test_a_token_altered_in_any_character_is_refused(receiver: str, group: str, at: int, char: str) -> None:
    token = sign(KEY, receiver, group, 2_000_000_000)
    at %= len(token)
    altered = token[:at] + char + token[at + 1 :]
    if altered == token:
        return
    with pytest.raises(BadLink):
        verify(KEY, altered, 1_900_000_000)


@pytest.mark.parametrize("group", ["j0", "j01", "j", "jx", "j" + "1" * 19, "A" * 20, "digest"])
def test_a_group_that_is_neither_a_group_id_nor_a_digest_is_refused(group: str) -> None:
    with pytest.raises(BadLink, match="cut or altered"):
        verify(KEY, sign(KEY, "default", group, 2_000_000_000), 1_900_000_000)


def test_another_key_or_past_its_time_is_refused() -> None:
    token = sign(KEY, "default", digest_link_group(7), 1_900_000_000)
    with pytest.raises(BadLink, match="another key"):
        verify(b"x" * 32, token, 1_800_000_000)
    with pytest.raises(BadLink, match="expired"):
        verify(KEY, token, 1_900_000_001)
