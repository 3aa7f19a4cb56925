"""OpenTelemetry: spans for store calls after the database conventions, counters for what
happens to sessions, store call durations and availability; read back through the SDK's
in-memory readers, and once through a real Prometheus scrape. Never a session id in any of it."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from sessionware import MemoryStore, SessionEvent
from sessionware._records import OBSERVERS
from sessionware.errors import sid_tag
from sessionware.integrations.opentelemetry import SessionwareInstrumentor, db_system
from sessionware.stores.redis import SyncRedisStore
from sessionware.stores.sqlite import SQLiteStore

from .harness import SECRET, Client, account_handler, middleware_for
from .services import RedisServer, free_port


class Telemetry:
    def __init__(self, meter_reader: Any = None) -> None:
        self.spans = InMemorySpanExporter()
        tracer_provider = TracerProvider()
        tracer_provider.add_span_processor(SimpleSpanProcessor(self.spans))
        self.metrics = meter_reader or InMemoryMetricReader()
        self.meter_provider = MeterProvider(metric_readers=[self.metrics])
        self.instrumentor = SessionwareInstrumentor()
        self.instrumentor.instrument(
            tracer_provider=tracer_provider, meter_provider=self.meter_provider
        )

    def close(self) -> None:
        self.instrumentor.uninstrument()
        self.meter_provider.shutdown()

    def points(self) -> dict[str, list[tuple[dict[str, Any], Any]]]:
        """Each metric's data points as (attributes, value or count)."""
        found: dict[str, list[tuple[dict[str, Any], Any]]] = {}
        data = self.metrics.get_metrics_data()
        for resource in data.resource_metrics if data else ():
            for scope in resource.scope_metrics:
                for metric in scope.metrics:
                    found[metric.name] = [
                        (
                            dict(point.attributes or {}),
                            getattr(point, "value", getattr(point, "count", None)),
                        )
                        for point in metric.data.data_points
                    ]
        return found

    def text(self) -> str:
        """Everything recorded, as text: where a session id must never appear."""
        spans = [span.to_json() for span in self.spans.get_finished_spans()]
        data = self.metrics.get_metrics_data()
        return "\n".join(spans) + (data.to_json() if data else "")


def _value(point: Any) -> Any:
    """A sum's or gauge's value, a histogram's count."""
    return point.value if hasattr(point, "value") else point.count


@pytest.fixture
def telemetry() -> Iterator[Telemetry]:
    recorded = Telemetry()
    yield recorded
    recorded.close()


_app = account_handler


def _sid(cookie: str) -> str:
    return cookie.split("=", 1)[1].replace("s%3A", "", 1).rsplit(".", 1)[0]


def _wait_for(condition: Callable[[], bool], what: str) -> None:
    deadline = time.monotonic() + 10
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.05)


def test_login_logout_timeout_bad_cookie_and_a_redis_outage(
    telemetry: Telemetry, tmp_path: Path
) -> None:
    server = RedisServer(tmp_path / "redis").start()
    store = SyncRedisStore(url=server.url, timeout=0.5, retry_interval=0.1)
    clock = [1000.0]
    events: list[SessionEvent] = []
    app = middleware_for(
        "wsgi",
        _app,
        secret=SECRET,
        store=store,
        user_key="user",
        idle_timeout=60,
        clock=lambda: clock[0],
        on_event=events.append,
    )
    client = Client(app, "wsgi")
    try:
        login = client.get("/login")
        client.get("/logout", cookie=login.cookie())
        timed = client.get("/login")
        clock[0] += 61
        client.get("/write", cookie=timed.cookie())
        client.get("/", cookie="connect.sid=s%3Aforged.signature")
        server.kill()
        down = client.get("/write")
        _wait_for(lambda: ("store_unavailable", 0) in _available(telemetry), "the gauge at 0")
        server = RedisServer(tmp_path / "redis2", port=server.port).start()
        _wait_for(lambda: ("store_available", 1) in _available(telemetry), "the gauge at 1")
        after = client.get("/write")
    finally:
        client.close()
        store.close()
        server.stop()
    assert (down.status, after.status) == (503, 200)

    points = telemetry.points()
    assert _counts(points["sessionware.session.regenerated"]) == {None: 2}
    assert _counts(points["sessionware.session.destroyed"]) == {"logout": 1, "idle_timeout": 1}
    assert _counts(points["sessionware.cookie.invalid"]) == {"bad_signature": 1}
    assert _counts(points["sessionware.session.created"]) == {None: 2}
    assert sum(count for _, count in points["sessionware.store.outages"]) == 1

    durations = {
        (
            attributes["db.system.name"],
            attributes["db.operation.name"],
            attributes.get("error.type"),
        )
        for attributes, _ in points["db.client.operation.duration"]
    }
    assert {("redis", "get", None), ("redis", "set", None), ("redis", "destroy", None)} <= durations
    assert any(error == "StoreUnavailable" for _, _, error in durations), durations

    spans = telemetry.spans.get_finished_spans()
    names = {span.name for span in spans}
    assert {"get redis", "set redis", "destroy redis"} <= names
    failed = [span for span in spans if span.attributes.get("error.type") == "StoreUnavailable"]
    assert failed and all(span.status.status_code.name == "ERROR" for span in failed)
    assert all(span.kind.name == "CLIENT" for span in spans)
    assert all(
        set(span.attributes)
        <= {"db.system.name", "db.operation.name", "sessionware.store", "error.type"}
        for span in spans
    )
    assert all(not span.events for span in spans), "an exception event carries its message"

    recorded = telemetry.text()
    for response in (login, timed, after):
        sid = _sid(response.cookie())
        assert sid not in recorded, "a session id in the telemetry"
        assert sid_tag(sid) not in recorded
    assert [e.kind for e in events].count("store_unavailable") == 1


def _available(telemetry: Telemetry) -> set[tuple[str, int]]:
    values = [value for _, value in telemetry.points().get("sessionware.store.available", [])]
    return {("store_unavailable" if value == 0 else "store_available", value) for value in values}


def _counts(points: list[tuple[dict[str, Any], Any]]) -> dict[str | None, int]:
    return {attributes.get("sessionware.reason"): value for attributes, value in points}


def test_a_merge_is_counted(telemetry: Telemetry) -> None:
    from .test_merge import Harness

    harness = Harness("asgi", MemoryStore())
    harness.run([("/set?key=a&value=1&wait=0.3", 0), ("/set?key=b&value=2", 0.1)])
    assert _counts(telemetry.points()["sessionware.session.merged"]) == {None: 1}
    assert ("memory", "merge") in {
        (span.attributes["db.system.name"], span.attributes["db.operation.name"])
        for span in telemetry.spans.get_finished_spans()
    }


def test_uninstrument_stops_spans_and_events(telemetry: Telemetry) -> None:
    app = middleware_for("asgi", _app, secret=SECRET)
    client = Client(app, "asgi")
    client.get("/write")
    assert len(telemetry.spans.get_finished_spans()) == 1
    telemetry.instrumentor.uninstrument()
    assert OBSERVERS.store_call is None and OBSERVERS.event is None
    client.get("/write")
    assert len(telemetry.spans.get_finished_spans()) == 1
    assert _counts(telemetry.points()["sessionware.session.created"]) == {None: 1}
    client.close()
    telemetry.instrumentor.instrument(meter_provider=telemetry.meter_provider)


def test_each_store_names_its_database(tmp_path: Path) -> None:
    assert db_system(MemoryStore()) == "memory"
    sqlite = SQLiteStore(str(tmp_path / "s.db"))
    assert db_system(sqlite) == "sqlite"
    sqlite.close()
    redis_store = SyncRedisStore(url="redis://127.0.0.1:1/0")
    assert db_system(redis_store) == "redis"
    redis_store.close()
    assert db_system(object()) == "object"


def test_prometheus_scrapes_the_metrics(tmp_path: Path) -> None:
    from opentelemetry.exporter.prometheus import PrometheusMetricReader
    from prometheus_client import start_http_server

    port = free_port()
    server, thread = start_http_server(port, addr="127.0.0.1")
    telemetry = Telemetry(PrometheusMetricReader())
    try:
        app = middleware_for("wsgi", _app, secret=SECRET, store=MemoryStore(), user_key="user")
        client = Client(app, "wsgi")
        client.get("/write")
        login = client.get("/login")
        client.get("/logout", cookie=login.cookie())
        client.get("/", cookie="connect.sid=s%3Aforged.signature")
        client.close()
        scraped = httpx.get(f"http://127.0.0.1:{port}/metrics").text
    finally:
        telemetry.close()
        server.shutdown()
        thread.join(timeout=10)
    assert _sample(scraped, "sessionware_session_destroyed_total", 'sessionware_reason="logout"')
    assert _sample(scraped, "sessionware_cookie_invalid_total", 'reason="bad_signature"')
    assert _sample(scraped, "sessionware_session_created_total", "")
    assert "db_client_operation_duration_seconds_bucket" in scraped
    assert 'db_operation_name="set"' in scraped and 'db_system_name="memory"' in scraped
    assert _sid(login.cookie()) not in scraped


def _sample(scraped: str, name: str, label: str) -> bool:
    """Whether the scrape has ``name`` at 1 with ``label`` among its labels (newer exporters add
    their scope's labels beside ours; older ones write a counter without labels bare)."""
    return any(
        line.startswith((name + "{", name + " ")) and line.endswith(" 1.0") and label in line
        for line in scraped.splitlines()
    )
