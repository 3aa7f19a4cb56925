"""A framework session interface's two moments, written once as steps (generators of store
calls): open the request's session, and store it at the end. Flask and Django drive them with
plain calls, Quart and Django's async path with ``await``."""

from __future__ import annotations

from .._engine import Outcome
from .._records import Steps, StoreCall
from .._runtime import NOT_HERE, STORE_DOWN, Failure, NoSession, SessionRuntime
from ..session import SessionBase


def open_steps(
    runtime: SessionRuntime,
    request: object,
    facts: tuple[str, str | bytes | None, str, str | None],
) -> Steps[StoreCall, SessionBase | NoSession]:
    """The request's session (``facts``: path, Cookie header, scheme, X-Forwarded-Proto), or a
    ``NoSession`` that says why there is none (store down, path outside the cookie path,
    skipped). An error that is not an outage propagates: the framework answers 500."""
    engine = runtime.engine
    if not runtime.store_ready and not engine.lazy:
        return NoSession(STORE_DOWN, unavailable=True)
    try:
        flow = engine.begin(request, *facts)
        if flow is None:
            return NoSession(NOT_HERE)
        if engine.lazy:
            return flow.pending()
        load = flow.load_call()
        data = (yield load) if load is not None else None
        return flow.loaded(data)
    except Exception as exc:
        failure = runtime.load_failed(exc)
        if failure is not None and failure.status != 503:
            raise
        return NoSession(STORE_DOWN, unavailable=True)


def save_steps(
    runtime: SessionRuntime, session: SessionBase, *, failed: bool
) -> Steps[StoreCall, Outcome | Failure | None]:
    """Store the session at the end of the request; nothing when the view raised."""
    if failed:
        return None
    try:
        outcome = session._state.flow.finish(session)  # type: ignore[attr-defined]
        if outcome.call is not None:
            yield outcome.call
    except Exception as exc:
        return runtime.save_failed(exc)
    return outcome  # type: ignore[no-any-return]
