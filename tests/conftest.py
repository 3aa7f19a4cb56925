from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest

from .harness import TRANSPORTS, Client, Handler, default_handler, express_options, middleware_for


@pytest.fixture(params=TRANSPORTS)
def transport(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def make(transport: str) -> Iterator[Callable[..., Client]]:
    """``make(handler, **options)``: a client for a session app on this test's transport,
    with express's test-suite defaults for options the test does not give."""
    clients: list[Client] = []

    def build(handler: Handler = default_handler, **options: Any) -> Client:
        app = middleware_for(transport, handler, **express_options(**options))
        client = Client(app, transport)
        client.middleware = app  # type: ignore[attr-defined]
        clients.append(client)
        return client

    yield build
    for client in clients:
        client.close()
