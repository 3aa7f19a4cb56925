"""Django integration: ``request.session`` is a sessionware session with Django's session API.

Two settings::

    # in place of Django's own SessionMiddleware:
    MIDDLEWARE = [..., "sessionware.integrations.django.SessionMiddleware", ...]
    # what the test client and clearsessions import:
    SESSION_ENGINE = "sessionware.integrations.django"

Django's own settings map as Django users expect: ``SECRET_KEY`` and ``SECRET_KEY_FALLBACKS``
(rotation), ``SESSION_COOKIE_NAME`` / ``_AGE`` / ``_DOMAIN`` / ``_PATH`` / ``_SECURE`` /
``_HTTPONLY`` / ``_SAMESITE``, ``SESSION_EXPIRE_AT_BROWSER_CLOSE`` and
``SESSION_SAVE_EVERY_REQUEST``. The ``SESSIONWARE`` dict holds the store (an object, or a URL for
``from_url``) and any sessionware option; it wins over the Django settings. Everything in Django
that uses sessions works unchanged: ``auth.login`` / ``logout`` (and ``alogin``...), messages,
``CSRF_USE_SESSIONS``, the admin, ``django.test.Client``.
"""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Container
from datetime import datetime, timedelta, timezone
from http.cookies import Morsel
from typing import Any, TypeVar

from ..._driver import StoreDriver
from ..._engine import Engine, Outcome
from ..._records import Get, Steps, StoreCall, arun_steps, run_steps
from ..._runtime import Failure, NoSession, SessionRuntime
from ..._wire import adds_cache_control
from ...devices import Device
from ...errors import SessionError, StoreUnavailable, extra_needed
from ...session import SyncSession, run_on_loop, running_loop
from ...stores.urls import from_url
from .._steps import open_steps, save_steps

with extra_needed("django", "django", "asgiref"):
    from asgiref.sync import iscoroutinefunction, markcoroutinefunction
    from django.conf import settings
    from django.contrib.sessions.middleware import SessionMiddleware as DjangoSessionMiddleware
    from django.core.signals import got_request_exception, setting_changed
    from django.http import HttpRequest, HttpResponse, HttpResponseBase
    from django.utils.cache import patch_vary_headers
    from django.utils.deprecation import MiddlewareMixin

T = TypeVar("T")
_state: dict[str, SessionRuntime] = {}
TEST_COOKIE_NAME = "testcookie"
TEST_COOKIE_VALUE = "worked"


def settings_options() -> dict[str, Any]:
    """The sessionware options Django's settings amount to; ``SESSIONWARE`` wins."""
    overrides: dict[str, Any] = dict(getattr(settings, "SESSIONWARE", {}) or {})
    store = overrides.pop("store", None)
    cookie: dict[str, Any] = {
        "max_age": None
        if settings.SESSION_EXPIRE_AT_BROWSER_CLOSE
        else settings.SESSION_COOKIE_AGE,
        "path": settings.SESSION_COOKIE_PATH,
        "domain": settings.SESSION_COOKIE_DOMAIN,
        "secure": bool(settings.SESSION_COOKIE_SECURE),
        "httponly": bool(settings.SESSION_COOKIE_HTTPONLY),
        "samesite": settings.SESSION_COOKIE_SAMESITE or None,
    }
    cookie.update(overrides.pop("cookie", {}) or {})
    every_request = bool(settings.SESSION_SAVE_EVERY_REQUEST)
    options: dict[str, Any] = {
        "secret": [settings.SECRET_KEY, *getattr(settings, "SECRET_KEY_FALLBACKS", [])],
        "name": settings.SESSION_COOKIE_NAME,
        "cookie": cookie,
        "resave": every_request,
        "rolling": every_request,
        "lazy": not every_request,
        **overrides,
    }
    options["store"] = from_url(store) if isinstance(store, str) else store
    return options


def runtime() -> SessionRuntime:
    """The runtime the settings describe, built once (again after a settings change)."""
    found = _state.get("runtime")
    if found is None:
        found = _state["runtime"] = SessionRuntime.from_options(settings_options(), DjangoSession)
    return found


def _forget_runtime(*, setting: str, **kwargs: Any) -> None:
    if setting.startswith(("SESSION", "SECRET_KEY")):
        _state.pop("runtime", None)


setting_changed.connect(_forget_runtime)


class DjangoSession(SyncSession):
    """A sessionware session that speaks Django's ``SessionBase`` API.

    In a sync view the I/O methods are plain calls (``cycle_key()``, ``flush()``, ``save()``);
    in an async view, their ``a``-prefixed twins (``await acycle_key()``...), as Django 5 calls
    them. Under ASGI a plain call from a sync view runs on the request's event loop.
    """

    __slots__ = ()
    accessed = True

    def attach_loop(self, loop: asyncio.AbstractEventLoop) -> None:
        self._state.loop = loop

    def _perform(self, steps: Steps[StoreCall, T]) -> T:
        state = self._state
        if state.loop is not None:
            return run_on_loop(state.loop, steps, state.runner)
        return run_steps(steps, state.runner.call)

    async def _aperform(self, steps: Steps[StoreCall, T]) -> T:
        return await arun_steps(steps, self._state.runner.acall)

    def user_sessions(self) -> dict[str, dict[str, Any]]:
        """The stored sessions of the signed-in user (with ``user_key="_auth_user_id"``)."""
        return self._perform(self._user_sessions_steps())

    def destroy_other_sessions(self) -> int:
        """Sign the user out everywhere else; how many sessions went."""
        return self._perform(self._destroy_others_steps())

    def login(self, user: str | int) -> None:
        """sessionware's ``login()`` (a new id, the user under ``user_key``, the time), for apps
        that sign users in without ``django.contrib.auth``."""
        self._perform(self._login_steps(user))

    def logout(self) -> None:
        self._perform(self._destroy_steps())

    async def alogin(self, user: str | int) -> None:
        await self._aperform(self._login_steps(user))

    async def alogout(self) -> None:
        await self._aperform(self._destroy_steps())

    async def auser_sessions(self) -> dict[str, dict[str, Any]]:
        return await self._aperform(self._user_sessions_steps())

    async def adestroy_other_sessions(self) -> int:
        return await self._aperform(self._destroy_others_steps())

    def devices(self) -> list[Device]:
        """The signed-in user's sessions as devices (the ``device_info`` setting)."""
        return self._perform(self._devices_steps())

    def end_device(self, handle: str) -> bool:
        """End the user's session on the device ``handle`` names."""
        return self._perform(self._end_device_steps(handle))

    async def adevices(self) -> list[Device]:
        return await self._aperform(self._devices_steps())

    async def aend_device(self, handle: str) -> bool:
        return await self._aperform(self._end_device_steps(handle))

    # -- the lifecycle, Django's names -------------------------------------------------------

    def save(self, must_create: bool = False) -> None:
        self._perform(self._save_steps())

    def reload(self) -> None:
        self._perform(self._reload_steps())

    def destroy(self) -> None:
        self._perform(self._destroy_steps())

    def regenerate(self, *, keep: bool = False) -> None:
        self._perform(self._regenerate_steps(keep))

    def cycle_key(self) -> None:
        """A new id, the data kept: what ``auth.login`` calls."""
        self.regenerate(keep=True)

    def flush(self) -> None:
        """What ``auth.logout`` calls: the stored session destroyed and its cookie expired, as
        Django does; nothing is stored unless the request writes again (then a new session,
        under a new id, as after Django's flush)."""
        self._perform(self._destroy_steps())

    def __setitem__(self, key: str, value: Any) -> None:
        state = self._state
        if state.destroyed:
            state.flow.regenerate(self, keep=False)
        super().__setitem__(key, value)

    def delete(self, session_key: str | None = None) -> None:
        self.destroy()

    def create(self) -> None:
        self.regenerate()
        self.save()

    async def asave(self, must_create: bool = False) -> None:
        await self._aperform(self._save_steps())

    async def acycle_key(self) -> None:
        await self._aperform(self._regenerate_steps(True))

    async def aflush(self) -> None:
        await self._aperform(self._destroy_steps())

    async def adelete(self, session_key: str | None = None) -> None:
        await self._aperform(self._destroy_steps())

    async def acreate(self) -> None:
        await self.aflush()
        await self.asave()

    def exists(self, session_key: str) -> bool:
        return _stored(session_key)[1] is not None

    async def aexists(self, session_key: str) -> bool:
        return self.exists(session_key)

    # -- what Django reads ----------------------------------------------------------------------

    @property
    def session_key(self) -> str:
        """The cookie's value (signed): what the browser sends, and what the test client sets."""
        return runtime().engine.cookie_value(self.id)

    def is_empty(self) -> bool:
        return not self and self._state.flow.cookie_id != self.id

    def has_key(self, key: str) -> bool:
        return key in self

    def load(self) -> dict[str, Any]:  # type: ignore[override]
        """Django's ``load()``: the data (read from the store first when lazy)."""
        return dict(self)

    async def aload(self) -> dict[str, Any]:
        await self._aready()
        return dict(self)

    def _load_now(self) -> None:
        state = self._state
        if state.loop is not None and running_loop() is state.loop:
            raise SessionError(
                "the session is not loaded yet and an async view cannot read the store "
                "synchronously: use the a-methods (await request.session.aget(...)) or "
                "await request.session.aload() first"
            )
        self._perform(self._load_steps())

    async def _aready(self) -> None:
        if self._state.lazy:
            await self._aperform(self._load_steps())

    def get_session_cookie_age(self) -> int:
        return int(settings.SESSION_COOKIE_AGE)

    def set_expiry(self, value: int | float | datetime | timedelta | None) -> None:
        """Django's meanings: a number of seconds (0: when the browser closes), a datetime, a
        timedelta, or ``None`` for the default."""
        cookie = self.cookie
        if value is None:
            default = runtime().options.cookie
            age = getattr(default, "max_age_ms", None)
            cookie.max_age = None if age is None else age / 1000
        elif isinstance(value, datetime):
            cookie.expires = value if value.tzinfo else value.replace(tzinfo=timezone.utc)
        elif isinstance(value, timedelta) or value:
            cookie.max_age = value
        else:
            cookie.max_age = None
        self.modified = True

    def get_expiry_age(self, **kwargs: Any) -> int:
        age = self.cookie.max_age
        return self.get_session_cookie_age() if age is None else max(0, round(age))

    def get_expiry_date(self, **kwargs: Any) -> datetime:
        expires = self.cookie.expires
        if expires is not None:
            return expires
        return datetime.now(timezone.utc) + timedelta(seconds=self.get_session_cookie_age())

    def get_expire_at_browser_close(self) -> bool:
        return self.cookie.expires_ms is None

    def set_test_cookie(self) -> None:
        self[TEST_COOKIE_NAME] = TEST_COOKIE_VALUE

    def test_cookie_worked(self) -> bool:
        return self.get(TEST_COOKIE_NAME) == TEST_COOKIE_VALUE

    def delete_test_cookie(self) -> None:
        self.pop(TEST_COOKIE_NAME, None)

    # -- the async twins of the mapping Django 5 calls -------------------------------------------

    async def aget(self, key: str, default: Any = None) -> Any:
        await self._aready()
        return self.get(key, default)

    async def aset(self, key: str, value: Any) -> None:
        await self._aready()
        self[key] = value

    async def asetdefault(self, key: str, value: Any) -> Any:
        await self._aready()
        return self.setdefault(key, value)

    async def apop(self, key: str, *default: Any) -> Any:
        await self._aready()
        return self.pop(key, *default)

    async def ahas_key(self, key: str) -> bool:
        await self._aready()
        return key in self

    async def akeys(self) -> Any:
        await self._aready()
        return self.keys()

    async def avalues(self) -> Any:
        await self._aready()
        return self.values()

    async def aitems(self) -> Any:
        await self._aready()
        return self.items()

    async def aupdate(self, values: dict[str, Any]) -> None:
        await self._aready()
        self.update(values)

    async def aset_expiry(self, value: Any) -> None:
        await self._aready()
        self.set_expiry(value)

    async def aget_expiry_age(self, **kwargs: Any) -> int:
        await self._aready()
        return self.get_expiry_age()

    async def aget_expiry_date(self, **kwargs: Any) -> datetime:
        await self._aready()
        return self.get_expiry_date()

    async def aget_expire_at_browser_close(self) -> bool:
        await self._aready()
        return self.get_expire_at_browser_close()

    async def ais_empty(self) -> bool:
        await self._aready()
        return self.is_empty()

    async def aset_test_cookie(self) -> None:
        await self._aready()
        self.set_test_cookie()

    async def atest_cookie_worked(self) -> bool:
        await self._aready()
        return self.test_cookie_worked()

    async def adelete_test_cookie(self) -> None:
        await self._aready()
        self.delete_test_cookie()


class SessionStore:
    """``SESSION_ENGINE``'s ``SessionStore``: a session outside a request, by its cookie value
    (``SessionStore(key)``) or new (``SessionStore()``), as ``django.test.Client`` uses it."""

    def __new__(cls, session_key: str | None = None) -> DjangoSession:  # type: ignore[misc]
        sid, data = _stored(session_key)
        current = runtime()
        session = current.engine.flow_for(sid).loaded(data)
        assert isinstance(session, DjangoSession)
        return session

    @classmethod
    def clear_expired(cls) -> None:
        """``manage.py clearsessions``: prune where the store keeps expired rows."""
        prune = getattr(runtime().store, "prune", None)
        if prune is not None:
            result = prune()
            if asyncio.iscoroutine(result):
                asyncio.run(result)


def _stored(session_key: str | None) -> tuple[str | None, Any]:
    """The session id a cookie value carries (if its signature checks out) and what the store
    holds for it."""
    current = runtime()
    engine = current.engine
    sid = engine.read_sid(f"{engine.name}={session_key}") if session_key else None
    data = StoreDriver.for_store(current.store).call(Get(sid)) if sid else None
    return sid, data


def _request_facts(request: HttpRequest) -> tuple[str, str | None, str, str | None]:
    """What the engine reads of a Django request (Django works out the scheme itself)."""
    meta = request.META
    return (
        (meta.get("SCRIPT_NAME") or "") + request.path_info,
        meta.get("HTTP_COOKIE"),
        request.scheme or "http",
        meta.get("HTTP_X_FORWARDED_PROTO"),
    )


def _render(
    response: HttpResponseBase,
    result: Outcome | Failure | None,
    engine: Engine | None = None,
) -> HttpResponseBase:
    if result is None:
        return response
    if isinstance(result, Failure):
        return HttpResponse(
            result.body, status=result.status, content_type="text/plain; charset=utf-8"
        )
    assert engine is not None
    app_set_one = response.has_header("Cache-Control")
    if result.set_cookie is not None:
        _set_cookie(response, result.set_cookie)
    for name, value in result.headers:
        if name.lower() == "set-cookie":
            _set_cookie(response, value)
        else:
            response[name] = value
    cache_control = engine.options.cache_control
    if cache_control is not None and adds_cache_control(result.private, app_set_one):
        response["Cache-Control"] = cache_control
    if result.vary:
        patch_vary_headers(response, engine.vary_on)
    return response


_OUTAGE = "_sessionware_outage"


def _note_outage(sender: object, request: HttpRequest | None = None, **extra: object) -> None:
    """Django turns a view's exception into a 500 before the middleware sees it: a store
    outage the request ran into (its session, or a session method) is noted on the request, for
    the middleware to answer with the failure policy instead."""
    error = sys.exc_info()[1]
    if request is not None and isinstance(error, StoreUnavailable):
        setattr(request, _OUTAGE, error)


got_request_exception.connect(_note_outage, dispatch_uid="sessionware-outage")


def _outage_met(
    current: SessionRuntime, request: HttpRequest, response: HttpResponseBase
) -> Failure | None:
    error = getattr(request, _OUTAGE, None)
    if error is None or response.status_code < 500:
        return None
    return current.app_ran_into(error)


class _RenderedCookie(Morsel[str]):
    """A cookie that Django sends as the engine rendered it. Django's ``set_cookie`` knows six
    attributes (no ``Partitioned``, no ``Priority``), and re-parsing our header into it dropped
    the rest; its cookie jar still holds the name and value, where the test client reads them."""

    def __init__(self, header: str) -> None:
        super().__init__()
        pair, *attributes = header.split("; ")
        name, _, value = pair.partition("=")
        self.set(name, value, value)
        for attribute in attributes:  # readable as Django's own cookies are (["expires"]...)
            key, equals, setting = attribute.partition("=")
            if self.isReservedKey(key):
                self[key.lower()] = setting if equals else True
        self.header = header

    def OutputString(self, attrs: Container[str] | None = None) -> str:
        return self.header

    def __reduce__(self) -> tuple[type[_RenderedCookie], tuple[str]]:
        return _RenderedCookie, (self.header,)


def _set_cookie(response: HttpResponseBase, header: str) -> None:
    cookie = _RenderedCookie(header)
    response.cookies[cookie.key] = cookie


class SessionMiddleware(DjangoSessionMiddleware):
    """Replaces ``django.contrib.sessions.middleware.SessionMiddleware`` (and is a subclass of
    it, for Django's checks): the session is loaded before the view and stored after it, with
    native async I/O on the async path."""

    sync_capable = True
    async_capable = True

    def __init__(self, get_response: Any) -> None:
        MiddlewareMixin.__init__(self, get_response)
        self.is_async = iscoroutinefunction(get_response)
        if self.is_async:
            markcoroutinefunction(self)

    def __call__(self, request: HttpRequest) -> Any:
        if self.is_async:
            return self.__acall__(request)
        current = runtime()
        opened = run_steps(
            open_steps(current, request, _request_facts(request)), current.driver.call
        )
        if isinstance(opened, NoSession):
            failure = current.when_down() if opened.unavailable else None
            if failure is not None:
                return _render(HttpResponse(), failure)
        request.session = opened  # type: ignore[assignment]
        try:
            response = self.get_response(request)
        except StoreUnavailable as exc:  # raised again by Django's own 500 view (its CSRF check)
            return _render(HttpResponse(), current.app_ran_into(exc))
        assert isinstance(response, HttpResponseBase)
        outage = _outage_met(current, request, response)
        if outage is not None or isinstance(opened, NoSession):
            return _render(response, outage)
        steps = save_steps(current, opened, failed=response.status_code >= 500)
        outcome = run_steps(steps, current.driver.call)
        return _render(response, outcome, current.engine)

    async def __acall__(self, request: HttpRequest) -> Any:
        current = runtime()
        opened = await arun_steps(
            open_steps(current, request, _request_facts(request)), current.driver.acall
        )
        if isinstance(opened, NoSession):
            failure = current.when_down() if opened.unavailable else None
            if failure is not None:
                return _render(HttpResponse(), failure)
        else:
            assert isinstance(opened, DjangoSession)
            opened.attach_loop(asyncio.get_running_loop())
        request.session = opened  # type: ignore[assignment]
        try:
            response = await self._respond(request)
        except StoreUnavailable as exc:
            return _render(HttpResponse(), current.app_ran_into(exc))
        outage = _outage_met(current, request, response)
        if outage is not None or isinstance(opened, NoSession):
            return _render(response, outage)
        steps = save_steps(current, opened, failed=response.status_code >= 500)
        outcome = await arun_steps(steps, current.driver.acall)
        return _render(response, outcome, current.engine)

    async def _respond(self, request: HttpRequest) -> HttpResponseBase:
        response = self.get_response(request)
        assert not isinstance(response, HttpResponseBase)
        return await response
