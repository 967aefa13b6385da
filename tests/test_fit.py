from hypothesis import given
from hypothesis import strategies as st

from alertmanager_wecom.rendering.fit import byte_len, split_text, truncate_utf8
from alertmanager_wecom.rendering.packing import pack

# Mix ASCII, 2-, 3- and 4-byte characters so that cuts land inside characters.
texts = st.text(
    alphabet=st.sampled_from([*list("ab \n"), "é", "节", "点", "宕", "机", "🔥", "✅"]), max_size=400
)


@given(texts, st.integers(min_value=0, max_value=300))
def test_truncate_never_exceeds_and_never_splits_a_character(text: str, limit: int) -> None:
    out = truncate_utf8(text, limit)
    assert byte_len(out) <= limit
    out.encode("utf-8").decode("utf-8")  # valid UTF-8: no half character
    if byte_len(text) <= limit:
        assert out == text
    else:
        body = out.removesuffix("…")
        assert text.startswith(body)


def test_truncate_marks_the_cut() -> None:
    assert truncate_utf8("节点宕机", 7) == "节…"  # 3 + 3 bytes of ellipsis; "点" would not fit
    assert truncate_utf8("abc", 3) == "abc"


@given(texts.filter(lambda t: t.strip() != ""), st.integers(min_value=8, max_value=120))
def test_split_text_chunks_fit_and_keep_all_characters(text: str, limit: int) -> None:
    chunks = split_text(text, limit)
    assert all(byte_len(c) <= limit for c in chunks)
    assert "".join(chunks).replace("\n", "") == text.replace("\n", "")


def test_packing_fills_each_part_and_counts_what_the_cap_leaves_out() -> None:
    # Ten alerts of 10 bytes, parts of 35 bytes (the first 25): 2, then 3, 3, 2 alerts.
    def fits(start: int, count: int, omitted: int, limit: int) -> bool:
        return count * 10 + (5 if omitted else 0) <= limit

    assert pack(10, 5, (25, 35), fits) == ([(0, 2), (2, 5), (5, 8), (8, 10)], 0)
    # Capped at two parts: the second says how many were left out, and still fits with that line.
    assert pack(10, 2, (25, 35), fits) == ([(0, 2), (2, 5)], 5)
    # An alert that fits nowhere still takes a part of its own (the hard cut keeps it in bytes).
    assert pack(2, 5, (5, 5), fits) == ([(0, 1), (1, 2)], 0)
