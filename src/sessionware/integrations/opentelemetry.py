"""OpenTelemetry traces and metrics for sessionware, as OpenTelemetry's instrumentation packages
do it: ``pip install 'sessionware[otel]'``, then ``SessionwareInstrumentor().instrument()``.

Each store call is a client span named and attributed after OpenTelemetry's database conventions
(``db.system.name``, ``db.operation.name``; never a key, a session id or data), and its duration
goes to the ``db.client.operation.duration`` histogram. What happens to sessions (the events
``on_event`` is told) is counted; whether each store is up is a gauge. An error is recorded by
its type only: some messages name a session id.
"""

from __future__ import annotations

import logging
import threading
import time
import weakref
from collections.abc import Callable, Collection, Iterator
from types import TracebackType
from typing import Any

from .. import __version__
from .._records import (
    OBSERVERS,
    Calls,
    Destroy,
    DestroyUserSessions,
    Get,
    ReadOld,
    Set,
    StoreCall,
    Touch,
    UserSessions,
)
from ..errors import StoreUnavailable, extra_needed
from ..events import SessionEvent

with extra_needed("otel", "opentelemetry"):
    from opentelemetry import context, metrics, trace
    from opentelemetry.instrumentation.instrumentor import (  # type: ignore[attr-defined]
        BaseInstrumentor,
    )

__all__ = ["SessionwareInstrumentor", "db_system"]

logger = logging.getLogger("sessionware")

SCHEMA_URL = "https://opentelemetry.io/schemas/1.28.0"
DURATION_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5)
"""Seconds: a session store answers in well under a millisecond to a few (the convention's
default buckets start at 5 ms, where this one would all fall in the first)."""

_SYSTEMS = {"postgres": "postgresql", "mysql": "mysql", "sqlite": "sqlite"}


def db_system(store: object) -> str:
    """The database a store keeps sessions in, in OpenTelemetry's ``db.system.name`` words
    (``redis``, ``postgresql``, ``mysql``, ``sqlite``; ``other_sql`` for another SQL database
    behind SQLAlchemy; ``memory`` for ``MemoryStore``; else the store's class name)."""
    from ..stores.memory import MemoryStore

    if isinstance(store, MemoryStore):
        return "memory"
    rules = getattr(store, "rules", None)
    dialect = getattr(rules, "dialect", None)
    if dialect is not None:
        return _SYSTEMS.get(getattr(dialect, "name", ""), "other_sql")
    if type(rules).__name__ == "RedisRules":
        return "redis"
    return type(store).__name__


def _operation(call: StoreCall) -> str:
    if type(call) is Get:
        return "get"
    if type(call) is Set:
        return "set" if call.base is None else "merge"
    if type(call) is Touch:
        return "touch"
    if isinstance(call, Destroy):
        return "destroy"
    if isinstance(call, UserSessions):
        return "user_sessions"
    if isinstance(call, DestroyUserSessions):
        return "destroy_user_sessions"
    if isinstance(call, ReadOld):
        return "migrate"
    assert not isinstance(call, Calls)
    return type(call).__name__.lower()


class _StoreCall:
    """One store call: its span (the current one while it runs, so a client's own
    instrumentation nests under it) and its duration."""

    __slots__ = ("attributes", "span", "started", "store", "telemetry", "token")

    def __init__(self, telemetry: _Telemetry, store: object, call: StoreCall) -> None:
        self.telemetry = telemetry
        self.store = store
        system = telemetry.system_of(store)
        operation = _operation(call)
        self.attributes: dict[str, str] = {
            "db.system.name": system,
            "db.operation.name": operation,
            "sessionware.store": type(store).__name__,
        }
        self.span = telemetry.tracer.start_span(
            f"{operation} {system}", kind=trace.SpanKind.CLIENT, attributes=self.attributes
        )
        self.token = context.attach(trace.set_span_in_context(self.span))
        self.started = time.perf_counter()

    def __enter__(self) -> _StoreCall:
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        elapsed = time.perf_counter() - self.started
        attributes = self.attributes
        if kind is not None:
            attributes = {**attributes, "error.type": kind.__qualname__}
            self.span.set_attribute("error.type", kind.__qualname__)
            self.span.set_status(trace.Status(trace.StatusCode.ERROR))
        context.detach(self.token)
        self.span.end()
        self.telemetry.duration.record(elapsed, attributes)
        availability = self.telemetry.availability
        if isinstance(error, StoreUnavailable):
            availability.set(self.store, False)
        elif kind is None and availability.is_down(self.store):
            availability.set(self.store, True)


class _Availability:
    """Whether each store is up, as its own ``disconnect`` / ``connect`` events say (or a call
    that found it unavailable): the ``sessionware.store.available`` gauge, 1 or 0."""

    def __init__(self) -> None:
        self.stores: weakref.WeakKeyDictionary[Any, tuple[dict[str, str], bool]] = (
            weakref.WeakKeyDictionary()
        )
        self.lock = threading.Lock()

    def watch(self, store: object, attributes: dict[str, str]) -> None:
        with self.lock:
            if store in self.stores:
                return
            self.stores[store] = (attributes, True)
        on = getattr(store, "on", None)
        if callable(on):
            on("disconnect", lambda *args: self.set(store, False))
            on("connect", lambda *args: self.set(store, True))

    def set(self, store: object, up: bool) -> None:
        with self.lock:
            known = self.stores.get(store)
            if known is not None:
                self.stores[store] = (known[0], up)

    def is_down(self, store: object) -> bool:
        known = self.stores.get(store)
        return known is not None and not known[1]

    def observe(self, options: object) -> Iterator[metrics.Observation]:
        with self.lock:
            states = list(self.stores.values())
        for attributes, up in states:
            yield metrics.Observation(1 if up else 0, attributes)


_COUNTED = {
    "created": ("sessionware.session.created", "sessions created (stored for the first time)"),
    "regenerated": ("sessionware.session.regenerated", "sessions given a new id (login)"),
    "destroyed": ("sessionware.session.destroyed", "sessions ended, by reason"),
    "invalid_cookie": ("sessionware.cookie.invalid", "cookies refused, by reason"),
    "merged": ("sessionware.session.merged", "saves merged onto concurrent changes"),
    "conflict": ("sessionware.session.conflicts", 'saves refused by on_conflict="error"'),
}


class _Telemetry:
    """The tracer, the instruments, and what they are told."""

    def __init__(self, tracer: trace.Tracer, meter: metrics.Meter) -> None:
        self.tracer = tracer
        self.duration = meter.create_histogram(
            "db.client.operation.duration",
            unit="s",
            description="Duration of session store calls",
            explicit_bucket_boundaries_advisory=list(DURATION_BUCKETS),
        )
        self.counters = {
            kind: meter.create_counter(name, unit="{session}", description=description)
            for kind, (name, description) in _COUNTED.items()
        }
        self.outages = meter.create_counter(
            "sessionware.store.outages", unit="{outage}", description="store outages seen"
        )
        self.availability = _Availability()
        meter.create_observable_gauge(
            "sessionware.store.available",
            callbacks=[self.availability.observe],
            description="1 while the session store is up, 0 while it is unavailable",
        )
        self.systems: weakref.WeakKeyDictionary[Any, str] = weakref.WeakKeyDictionary()

    def system_of(self, store: object) -> str:
        try:
            return self.systems[store]
        except (KeyError, TypeError):
            system = db_system(store)
        try:
            self.systems[store] = system
        except TypeError:  # a store that cannot be weakly referenced is not remembered
            return system
        self.availability.watch(
            store, {"db.system.name": system, "sessionware.store": type(store).__name__}
        )
        return system

    def store_call(self, store: object, call: StoreCall) -> _StoreCall:
        return _StoreCall(self, store, call)

    def event(self, event: SessionEvent) -> None:
        counter = self.counters.get(event.kind)
        if counter is not None:
            counter.add(1, {} if event.reason is None else {"sessionware.reason": event.reason})
        elif event.kind == "store_unavailable":
            self.outages.add(1)


class SessionwareInstrumentor(BaseInstrumentor):  # type: ignore[misc]
    """Traces and metrics for every sessionware middleware and store in the process.

    ``instrument(tracer_provider=..., meter_provider=...)`` takes OpenTelemetry's usual
    keywords (the global providers otherwise); ``uninstrument()`` stops it.
    """

    def instrumentation_dependencies(self) -> Collection[str]:
        return ()

    def _instrument(self, **kwargs: Any) -> None:
        tracer = trace.get_tracer(
            "sessionware", __version__, kwargs.get("tracer_provider"), schema_url=SCHEMA_URL
        )
        meter = metrics.get_meter(
            "sessionware", __version__, kwargs.get("meter_provider"), schema_url=SCHEMA_URL
        )
        telemetry = _Telemetry(tracer, meter)
        OBSERVERS.store_call = telemetry.store_call
        OBSERVERS.event = _safely(telemetry.event)

    def _uninstrument(self, **kwargs: Any) -> None:
        OBSERVERS.store_call = None
        OBSERVERS.event = None


def _safely(listener: Callable[[SessionEvent], None]) -> Callable[[SessionEvent], None]:
    """Telemetry never fails a request."""

    def told(event: SessionEvent) -> None:
        try:
            listener(event)
        except Exception:
            logger.exception("OpenTelemetry failed on a %r event", event.kind)

    return told
