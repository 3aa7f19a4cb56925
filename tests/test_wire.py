"""The wire format: signing vectors, Cookie header parsing, Set-Cookie serialization."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from sessionware._wire import (
    CookieAttributes,
    decode_uri_component,
    encode_uri_component,
    find_cookie,
    serialize_set_cookie,
)
from sessionware.signing import sign, unsign

SECRET = b"keyboard cat"


def cookie_value(sid: str) -> str:
    return encode_uri_component("s:" + sign(sid, SECRET))


def test_spec_vectors() -> None:
    assert cookie_value("apple") == "s%3Aapple.D8Y%2BpkTAmeR0PobOhY4G97PRW%2Bj7bUnP%2F5m6%2FOn1MCU"
    assert cookie_value("%") == "s%3A%25.kzQ6x52kKVdF35Qh62AWk4ZekS28K5XYCXKa%2FOTZ01g"
    assert cookie_value("/foo") == "s%3A%2Ffoo.paEKBtAHbV5s1IB8B2zPnzAgYmmnRPIqObW4VRYj%2FMQ"


def test_unsign_checks_every_secret_in_order() -> None:
    signed = sign("apple", b"old")
    assert unsign(signed, [b"new", b"old"]) == "apple"
    assert unsign(signed, [b"new"]) is None


def test_unsign_splits_at_the_last_dot() -> None:
    assert unsign(sign("a.b.c", SECRET), [SECRET]) == "a.b.c"


def test_unsign_refuses_padding_missing_dot_and_tampering() -> None:
    signed = sign("apple", SECRET)
    assert unsign(signed + "=", [SECRET]) is None
    assert unsign("apple", [SECRET]) is None
    assert unsign(signed[:-1] + ("A" if signed[-1] != "A" else "B"), [SECRET]) is None
    assert unsign("pear" + signed[5:], [SECRET]) is None


def test_find_cookie_first_occurrence_wins() -> None:
    assert find_cookie("a=1; a=2", "a") == "1"


def test_find_cookie_trims_unquotes_and_decodes() -> None:
    assert find_cookie(' x=y ;\ta = "s%3Afoo" ', "a") == "s:foo"
    assert find_cookie("a=%zz", "a") == "%zz"
    assert find_cookie("a=%E9", "a") == "%E9"
    assert find_cookie("a=%C3%A9", "a") == "\u00e9"


def test_find_cookie_skips_pairs_without_equals() -> None:
    assert find_cookie("foo; a=1", "a") == "1"
    assert find_cookie("a", "a") is None
    assert find_cookie("", "a") is None


def test_find_cookie_value_keeps_later_equals_signs() -> None:
    assert find_cookie("a=b=c", "a") == "b=c"


def test_set_cookie_attribute_order() -> None:
    attributes = CookieAttributes(
        domain="example.com",
        path="/",
        httponly=True,
        secure=True,
        partitioned=True,
        priority="low",
        samesite="strict",
    )
    assert serialize_set_cookie("connect.sid", "v", attributes, 1795843334579) == (
        "connect.sid=v; Domain=example.com; Path=/; Expires=Sat, 28 Nov 2026 05:22:14 GMT; "
        "HttpOnly; Secure; Partitioned; Priority=Low; SameSite=Strict"
    )


def test_set_cookie_defaults() -> None:
    attributes = CookieAttributes(path="/", secure=False, httponly=True, partitioned=False)
    assert serialize_set_cookie("connect.sid", "v", attributes, None) == (
        "connect.sid=v; Path=/; HttpOnly"
    )


def test_samesite_true_is_strict() -> None:
    attributes = CookieAttributes(path="/", httponly=False, samesite=True)
    assert serialize_set_cookie("n", "v", attributes, None) == "n=v; Path=/; SameSite=Strict"


@given(st.text())
def test_encode_then_decode_round_trips(value: str) -> None:
    try:
        value.encode()
    except UnicodeEncodeError:
        return
    assert decode_uri_component(encode_uri_component(value)) == value


@given(st.text(alphabet=st.characters(min_codepoint=0, max_codepoint=255)), st.text(min_size=1))
def test_find_cookie_never_raises(header: str, name: str) -> None:
    result = find_cookie(header, name)
    assert result is None or isinstance(result, str)


@given(st.text(min_size=1, max_size=64), st.text(max_size=200))
def test_a_tampered_value_never_unsigns(sid: str, tampered: str) -> None:
    signed = sign(sid, SECRET)
    assert unsign(signed, [SECRET]) == sid
    if tampered != signed:
        assert unsign(tampered, [SECRET]) is None
