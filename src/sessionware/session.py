"""The Session: a mutable mapping of JSON values, its cookie, and the lifecycle methods.

The lifecycle methods (save, reload, destroy, regenerate) are written once, as generators that
yield the store calls they need; ``Session`` runs them with ``await``, ``SyncSession`` runs the
very same steps with plain calls. No rule of the lifecycle exists twice.
"""

from __future__ import annotations

import json
from collections.abc import Generator
from datetime import date, datetime, timezone
from json.encoder import c_make_encoder, encode_basestring  # type: ignore[attr-defined]
from typing import TYPE_CHECKING, Any, NamedTuple

from .cookie import Cookie, ms_from_iso
from .errors import SessionDestroyed, SessionError, SessionNotFound

if TYPE_CHECKING:
    from .engine import Flow
    from .stores.base import StoreDriver


class StoreCall(NamedTuple):
    """One store method call, described as data so sync and async runners can share the steps."""

    method: str
    args: tuple[Any, ...]


Steps = Generator[StoreCall, Any, None]


def _json_default(value: object) -> object:
    if isinstance(value, datetime):
        if value.tzinfo is not None:
            value = value.astimezone(timezone.utc).replace(tzinfo=None)
        return value.isoformat(timespec="milliseconds") + "Z"
    if isinstance(value, date):
        return value.isoformat()
    raise TypeError(
        f"session values must be JSON types (dict, list, str, int, float, bool, None, datetime); "
        f"got {type(value).__name__}"
    )


_encoder = json.JSONEncoder(
    separators=(",", ":"), ensure_ascii=False, allow_nan=False, default=_json_default
)
_c_encode = (
    c_make_encoder(None, _json_default, encode_basestring, None, ":", ",", False, False, False)
    if c_make_encoder is not None
    else None
)


def encode_json(value: object) -> str:
    """Serialize the way JavaScript's JSON.stringify does: compact, UTF-8, no NaN, datetimes
    as ISO. The C encoder is built once (``JSONEncoder.encode`` builds one per call)."""
    if _c_encode is None or isinstance(value, str):
        return _encoder.encode(value)
    return "".join(_c_encode(value, 0))


_c_scan = json.JSONDecoder().scan_once  # type: ignore[attr-defined]


def decode_own_json(text: str) -> Any:
    """Parse JSON this module encoded (no surrounding white space), skipping the generic checks."""
    value, end = _c_scan(text, 0)
    if end != len(text):
        raise ValueError(f"trailing data after JSON at {end}")
    return value


class SessionRecord:
    """A session on its way to or from a store that speaks records, its JSON already encoded.

    The middleware encodes the data once anyway (to see whether it changed); a store that
    implements ``get_record`` / ``set_record`` / ``touch_record`` reuses that text instead of
    encoding again, and hands back the text it loaded so the middleware need not encode it
    either. The cookie travels as a ``Cookie`` (an in-process store keeps a copy, no JSON at
    all) or as its stored dict, whichever the other side has. Every other store gets and returns
    plain dicts (``as_dict()``).
    """

    __slots__ = ("_cookie", "_cookie_json", "_cookie_object", "data", "data_json")

    def __init__(
        self,
        cookie: Cookie | dict[str, Any] | None,
        data: dict[str, Any],
        data_json: str,
        cookie_json: str | None = None,
    ) -> None:
        self._cookie_object = cookie if isinstance(cookie, Cookie) else None
        self._cookie = None if isinstance(cookie, Cookie) else cookie
        self.data = data
        self.data_json = data_json
        self._cookie_json = cookie_json

    @classmethod
    def from_dict(cls, stored: dict[str, Any]) -> SessionRecord:
        """A record of a plain stored dict (``{"cookie": {...}, **data}``)."""
        cookie = stored.get("cookie")
        data = {key: value for key, value in stored.items() if key != "cookie"}
        return cls(dict(cookie) if isinstance(cookie, dict) else None, data, encode_json(data))

    @property
    def has_cookie(self) -> bool:
        return self._cookie_object is not None or self._cookie is not None

    @property
    def cookie(self) -> dict[str, Any] | None:
        """The cookie in express's stored shape."""
        if self._cookie is None and self._cookie_object is not None:
            self._cookie = self._cookie_object.to_json()
        return self._cookie

    def cookie_object(self) -> Cookie:
        """A Cookie of this record's own (a copy: neither side can change the other's)."""
        if self._cookie_object is not None:
            return self._cookie_object.copy()
        return Cookie.from_json(self._cookie)

    def cookie_copy(self) -> Cookie | dict[str, Any] | None:
        """The cookie in whichever form the record holds, copied, for a store to keep."""
        if self._cookie_object is not None:
            return self._cookie_object.copy()
        return None if self._cookie is None else dict(self._cookie)

    @property
    def expires_ms(self) -> int | None:
        """When the session expires (epoch ms), from the cookie."""
        if self._cookie_object is not None:
            return self._cookie_object.expires_ms
        expires = self._cookie.get("expires") if self._cookie is not None else None
        return ms_from_iso(expires) if isinstance(expires, str) else None

    @property
    def cookie_json(self) -> str:
        if self._cookie_json is None:
            self._cookie_json = encode_json(self.cookie)
        return self._cookie_json

    @property
    def json(self) -> str:
        """The whole session as express stores it: the cookie first, then the data."""
        if not self.has_cookie:
            return self.data_json
        return join_json(self.cookie_json, self.data_json)

    def as_dict(self) -> dict[str, Any]:
        cookie = self.cookie
        if cookie is None:
            return dict(self.data)
        return {"cookie": cookie, **self.data}


def join_json(cookie_json: str, data_json: str) -> str:
    """``{"cookie": ..., **data}`` as text, from the cookie's JSON and the data's JSON."""
    if data_json == "{}":
        return '{"cookie":' + cookie_json + "}"
    return '{"cookie":' + cookie_json + "," + data_json[1:]


class SessionBase(dict[str, Any]):
    """The data of one session (a dict of JSON values) with its id and cookie.

    Top-level ``cookie`` is reserved for the cookie object, as in express's stored shape.
    """

    __slots__ = ("_destroyed", "_flow", "_id", "cookie")

    def __init__(self, flow: Flow, sid: str, cookie: Cookie, data: dict[str, Any] | None = None):
        super().__init__()
        if data:
            dict.update(self, data)
        self._id = sid
        self.cookie = cookie
        self._flow = flow
        self._destroyed = False

    @property
    def id(self) -> str:
        """The session id; it changes only through ``regenerate()``."""
        return self._id

    @property
    def destroyed(self) -> bool:
        return self._destroyed

    @property
    def modified(self) -> bool:
        """Whether this request changed the data (or the id) since the session was loaded.

        Changes are found by content, nested ones included; setting ``modified = True`` forces
        the save anyway (for example after changing only the cookie).
        """
        return self._flow.is_modified(self)

    @modified.setter
    def modified(self, value: bool) -> None:
        self._flow.force_modified = self._flow.force_save = bool(value)

    def __setitem__(self, key: str, value: Any) -> None:
        if self._destroyed:
            raise SessionDestroyed(
                "the session was destroyed; call regenerate() to start a new one"
            )
        if key == "cookie":
            raise KeyError("'cookie' is reserved: use session.cookie to change the cookie")
        super().__setitem__(key, value)

    def update(self, *args: Any, **kwargs: Any) -> None:
        for key, value in dict(*args, **kwargs).items():
            self[key] = value

    def setdefault(self, key: str, default: Any = None) -> Any:
        if key not in self:
            self[key] = default
        return self[key]

    def touch(self) -> SessionBase:
        """Restart the cookie's lifetime (express's ``touch()``); the store is not called."""
        self.cookie.reset_max_age()
        return self

    reset_max_age = touch

    def to_json(self) -> dict[str, Any]:
        """The stored shape: the cookie first, then the data."""
        return {"cookie": self.cookie.to_json(), **self}

    def __repr__(self) -> str:
        return f"{type(self).__name__}(id={self._id!r}, data={dict(self)!r})"

    def __ior__(self, other: Any) -> SessionBase:  # type: ignore[override,misc]
        self.update(other)
        return self

    def _replace(self, sid: str, cookie: Cookie, data: dict[str, Any]) -> None:
        dict.clear(self)
        dict.update(self, data)
        self._id = sid
        self.cookie = cookie
        self._destroyed = False

    def _mark_destroyed(self) -> None:
        dict.clear(self)
        self._destroyed = True

    def _save_steps(self) -> Steps:
        if self._destroyed:
            raise SessionDestroyed("the session was destroyed; saving it would bring it back")
        record = self._flow.record(self, check_size=True)
        yield StoreCall("set", (self._id, record))
        self._flow.mark_saved(self._id, record.data_json)

    def _reload_steps(self) -> Steps:
        try:
            data = yield StoreCall("get", (self._id,))
        except SessionNotFound:
            data = None
        if not data:
            raise SessionError("failed to load session: it is no longer in the store")
        self._flow.reload(self, data)

    def _destroy_steps(self) -> Steps:
        yield StoreCall("destroy", (self._id,))
        self._mark_destroyed()

    def _regenerate_steps(self) -> Steps:
        try:
            yield StoreCall("destroy", (self._id,))
        finally:
            self._flow.regenerate(self)


def _run_sync(steps: Steps, driver: StoreDriver) -> None:
    try:
        call = next(steps)
        while True:
            try:
                result = driver.call(call)
            except Exception as exc:
                call = steps.throw(exc)
            else:
                call = steps.send(result)
    except StopIteration:
        return


async def _run_async(steps: Steps, driver: StoreDriver) -> None:
    try:
        call = next(steps)
        while True:
            try:
                result = await driver.acall(call)
            except Exception as exc:
                call = steps.throw(exc)
            else:
                call = steps.send(result)
    except StopIteration:
        return


class Session(SessionBase):
    """The session under ASGI (``scope["session"]``): lifecycle methods are coroutines."""

    __slots__ = ()

    async def save(self) -> None:
        """Write the session now, e.g. before a long-lived response; the end of request skips it."""
        await _run_async(self._save_steps(), self._flow.engine.driver)

    async def reload(self) -> None:
        """Replace the data with the stored copy; raises ``SessionError`` if it is gone."""
        await _run_async(self._reload_steps(), self._flow.engine.driver)

    async def destroy(self) -> None:
        """Delete the session from the store and expire the browser cookie."""
        await _run_async(self._destroy_steps(), self._flow.engine.driver)

    async def regenerate(self) -> None:
        """Destroy the stored session and start a new, empty one with a new id (login hygiene)."""
        await _run_async(self._regenerate_steps(), self._flow.engine.driver)


class SyncSession(SessionBase):
    """The session under WSGI: the same steps as ``Session``, run with plain calls."""

    __slots__ = ()

    def save(self) -> None:
        _run_sync(self._save_steps(), self._flow.engine.driver)

    def reload(self) -> None:
        _run_sync(self._reload_steps(), self._flow.engine.driver)

    def destroy(self) -> None:
        _run_sync(self._destroy_steps(), self._flow.engine.driver)

    def regenerate(self) -> None:
        _run_sync(self._regenerate_steps(), self._flow.engine.driver)
