"""The Session: a mutable mapping of JSON values, its cookie, and the lifecycle methods.

The lifecycle methods (save, reload, destroy, regenerate) are written once, as generators that
yield the store calls they need; ``Session`` runs them with ``await``, ``SyncSession`` runs the
very same steps with plain calls. No rule of the lifecycle exists twice.
"""

from __future__ import annotations

import json
from collections.abc import Generator
from datetime import date, datetime, timezone
from typing import TYPE_CHECKING, Any, NamedTuple

from .cookie import Cookie
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
encode_json = _encoder.encode
"""Serialize the way JavaScript's JSON.stringify does: compact, UTF-8, no NaN, datetimes as ISO."""


class SessionRecord(dict[str, Any]):
    """What a store's ``set`` receives: a plain dict that also carries its JSON, already encoded.

    Built-in stores write ``record.json`` instead of encoding the session a second time; custom
    stores can treat it as the dict it is.
    """

    __slots__ = ("cookie_json", "data_json", "expires_ms", "json")

    json: str
    data_json: str
    cookie_json: str
    expires_ms: int | None


def session_json(data: dict[str, Any]) -> str:
    """The JSON a store writes for ``data``, reusing the encoding when ``data`` is a record."""
    if isinstance(data, SessionRecord):
        return data.json
    return encode_json(data)


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
        """Whether this request changed the data (or the id) since the session was loaded."""
        return self._flow.is_modified(self)

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
        record = self._flow.record(self)
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
        await _run_async(self._save_steps(), self._flow.driver)

    async def reload(self) -> None:
        """Replace the data with the stored copy; raises ``SessionError`` if it is gone."""
        await _run_async(self._reload_steps(), self._flow.driver)

    async def destroy(self) -> None:
        """Delete the session from the store and expire the browser cookie."""
        await _run_async(self._destroy_steps(), self._flow.driver)

    async def regenerate(self) -> None:
        """Destroy the stored session and start a new, empty one with a new id (login hygiene)."""
        await _run_async(self._regenerate_steps(), self._flow.driver)


class SyncSession(SessionBase):
    """The session under WSGI: the same steps as ``Session``, run with plain calls."""

    __slots__ = ()

    def save(self) -> None:
        _run_sync(self._save_steps(), self._flow.driver)

    def reload(self) -> None:
        _run_sync(self._reload_steps(), self._flow.driver)

    def destroy(self) -> None:
        _run_sync(self._destroy_steps(), self._flow.driver)

    def regenerate(self) -> None:
        _run_sync(self._regenerate_steps(), self._flow.driver)
