"""express-session's test/cookie.js (C001-C018), for the Python Cookie (seconds, datetimes)."""

from __future__ import annotations

import time
from datetime import datetime, timedelta, timezone

import pytest

from sessionware import Cookie


def test_C001_creates_a_cookie() -> None:
    assert isinstance(Cookie(), Cookie)


def test_C002_defaults_expires_to_none() -> None:
    assert Cookie().expires is None


def test_C003_defaults_httponly_to_true() -> None:
    assert Cookie().httponly is True


def test_C004_defaults_path_to_root() -> None:
    assert Cookie().path == "/"


def test_C005_defaults_max_age_to_none() -> None:
    assert Cookie().max_age is None


def test_C006_creates_a_cookie_with_options() -> None:
    cookie = Cookie(path="/foo", httponly=False)
    assert (cookie.path, cookie.httponly) == ("/foo", False)


@pytest.mark.parametrize("value", [42, "foo", True, lambda: None])
def test_C007_rejects_positional_non_options(value: object) -> None:
    with pytest.raises(TypeError):
        Cookie(value)  # type: ignore[misc]


def test_C008_rejects_unknown_options_such_as_data() -> None:
    with pytest.raises(TypeError):
        Cookie(data={"path": "/"})  # type: ignore[call-arg]


def test_C009_expires_sets_expires() -> None:
    expires = datetime.now(timezone.utc).replace(microsecond=0) + timedelta(seconds=60)
    assert Cookie(expires=expires).expires == expires


def test_C010_expires_sets_max_age() -> None:
    expires = datetime.now(timezone.utc) + timedelta(seconds=60)
    max_age = Cookie(expires=expires).max_age
    assert max_age is not None
    assert 59 < max_age <= 60.01


def test_C011_sets_httponly() -> None:
    assert Cookie(httponly=False).httponly is False


def test_C012_max_age_sets_expires() -> None:
    before = time.time()
    expires = Cookie(max_age=60).expires
    assert expires is not None
    assert before + 60 - 0.01 <= expires.timestamp() <= time.time() + 60 + 0.01


def test_C013_max_age_sets_max_age() -> None:
    max_age = Cookie(max_age=60).max_age
    assert max_age is not None
    assert 59.9 < max_age <= 60


def test_C014_max_age_accepts_a_timedelta() -> None:
    cookie = Cookie(max_age=timedelta(minutes=1))
    assert cookie.original_max_age == 60
    assert cookie.original_max_age_ms == 60_000


@pytest.mark.parametrize("value", ["42", True, object(), float("nan"), float("inf")])
def test_C015_max_age_rejects_invalid_types(value: object) -> None:
    with pytest.raises(TypeError, match="max_age"):
        Cookie(max_age=value)  # type: ignore[arg-type]


def test_C016_sets_partitioned() -> None:
    assert Cookie(partitioned=True).partitioned is True


def test_C017_sets_path() -> None:
    assert Cookie(path="/foo").path == "/foo"


def test_C018_sets_priority() -> None:
    assert Cookie(priority="high").priority == "high"


def test_negative_max_age_is_rejected() -> None:
    with pytest.raises(ValueError, match="max_age"):
        Cookie(max_age=-1)


def test_max_age_and_expires_together_are_rejected() -> None:
    with pytest.raises(ValueError, match="not both"):
        Cookie(max_age=1, expires=datetime.now(timezone.utc))


def test_naive_expires_is_rejected() -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        Cookie(expires=datetime(2030, 1, 1))


def test_json_shape_matches_express_default() -> None:
    assert Cookie().to_json() == {
        "originalMaxAge": None,
        "expires": None,
        "httpOnly": True,
        "path": "/",
    }


def test_json_shape_with_every_option_in_express_key_order() -> None:
    cookie = Cookie(
        max_age=60,
        partitioned=True,
        priority="low",
        secure=False,
        domain="example.com",
        samesite="strict",
    )
    data = cookie.to_json()
    assert list(data) == [
        "originalMaxAge",
        "partitioned",
        "priority",
        "expires",
        "secure",
        "httpOnly",
        "domain",
        "path",
        "sameSite",
    ]
    assert data["originalMaxAge"] == 60000
    assert data["expires"].endswith("Z")
    assert len(data["expires"]) == len("2026-11-28T05:22:14.579Z")


def test_json_round_trip_keeps_every_field() -> None:
    stored = {
        "originalMaxAge": 3600000,
        "partitioned": True,
        "priority": "high",
        "expires": "2026-11-28T06:21:04.162Z",
        "secure": True,
        "httpOnly": False,
        "domain": "example.com",
        "path": "/app",
        "sameSite": "lax",
    }
    assert Cookie.from_json(stored).to_json() == stored


def test_from_json_accepts_datetimes_and_tolerates_bad_expires() -> None:
    when = datetime(2026, 11, 28, 6, 21, 4, 162000, tzinfo=timezone.utc)
    cookie = Cookie.from_json({"originalMaxAge": 1000, "expires": when, "path": "/"})
    assert cookie.to_json()["expires"] == "2026-11-28T06:21:04.162Z"
    assert Cookie.from_json({"originalMaxAge": None, "expires": "garbage"}).expires is None


def test_from_json_rejects_a_string_original_max_age() -> None:
    with pytest.raises(ValueError, match="originalMaxAge"):
        Cookie.from_json({"originalMaxAge": "60000", "expires": None})


def test_touch_restarts_the_lifetime_and_keeps_original_max_age() -> None:
    cookie = Cookie(max_age=60)
    cookie.expires_ms = 0
    cookie.reset_max_age()
    assert cookie.original_max_age == 60
    assert cookie.max_age is not None
    assert 59.9 < cookie.max_age <= 60


@pytest.mark.parametrize(
    ("attribute", "value"),
    [
        ("domain", "not a domain"),
        ("path", "no-slash"),
        ("path", "/a;b"),
        ("samesite", "sometimes"),
        ("priority", "urgent"),
        ("secure", "yes"),
    ],
)
def test_invalid_attributes_fail_on_assignment(attribute: str, value: object) -> None:
    with pytest.raises(ValueError, match=attribute):
        setattr(Cookie(), attribute, value)
