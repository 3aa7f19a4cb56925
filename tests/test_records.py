"""The JSON the engine and the stores share: the fast encoding of the usual session must be the
C encoder's, byte for byte (change detection compares texts; a Node app reads them)."""

from __future__ import annotations

from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from sessionware._records import _c_encode, _encode_flat, encode_json

scalars = st.one_of(
    st.text(), st.integers(), st.booleans(), st.none(), st.sampled_from(["", "é", "\u2028", '"'])
)
values = st.one_of(
    scalars, st.floats(allow_nan=False, allow_infinity=False), st.lists(scalars, max_size=3)
)


def c_encoded(data: dict[str, Any]) -> str:
    assert _c_encode is not None
    return "".join(_c_encode(data, 0))


@given(st.dictionaries(st.text(), values, max_size=6))
def test_the_encoding_of_any_session_is_the_c_encoders(data: dict[str, Any]) -> None:
    assert encode_json(data) == c_encoded(data)


@given(st.dictionaries(st.text(), scalars, max_size=6))
def test_the_fast_encoding_takes_or_leaves_a_flat_session_but_never_changes_it(
    data: dict[str, Any],
) -> None:
    fast = _encode_flat(data)
    assert fast is None or fast == c_encoded(data)


def test_the_fast_encoding_takes_the_usual_session() -> None:
    data = {"user_id": 42, "name": "Ada Lovelace", "fresh": True, "csrf": None, "é": "ü"}
    assert _encode_flat(data) == c_encoded(data)


def test_the_fast_encoding_leaves_what_needs_escapes_or_other_types() -> None:
    for data in ({"a": 'say "hi"'}, {"a\\b": 1}, {"a": "line\nbreak"}, {"a": 1.5}, {"a": [1]}):
        assert _encode_flat(data) is None
        assert encode_json(data) == c_encoded(data)


def test_lone_surrogates_are_written_as_json_stringify_writes_them() -> None:
    """Node 20: JSON.stringify({a: "\\ud800", b: "x\\ud83d\\ude00", c: ["\\udfff"]})."""
    data = {"a": "\ud800", "b": "x\ud83d\ude00", "c": ["\udfff"]}
    assert encode_json(data) == '{"a":"\\ud800","b":"x\U0001f600","c":["\\udfff"]}'
    assert encode_json("\udc00") == '"\\udc00"'


@given(
    st.dictionaries(
        st.text(), st.text(st.characters(min_codepoint=0xD700, max_codepoint=0xE000)), max_size=4
    )
)
def test_any_text_encodes_to_utf8_and_reads_back(data: dict[str, str]) -> None:
    import json

    text = encode_json(data)
    text.encode()  # every stored session is valid UTF-8
    assert json.loads(text) == {
        key: value.encode("utf-16", "surrogatepass").decode("utf-16", "surrogatepass")
        for key, value in data.items()
    }
