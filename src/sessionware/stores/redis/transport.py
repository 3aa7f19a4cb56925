"""How ``RedisStore`` sends commands: automatic pipelining over connections of the client's pool,
through redis-py's public connection API only (``get_connection``, ``pack_commands``,
``send_packed_command``, ``read_response``, ``disconnect``, ``retry``).

The rule that keeps every request's reply its own: a batch whose round trip fails in any way
(a lost connection, a timeout, a cancelled request, an unreadable reply) disconnects its
connection before the connection is used again, so no reply of that batch is ever read as
another command's. A command that cannot be packed fails alone, before anything is sent.
"""

from __future__ import annotations

import asyncio
import inspect
import sys
from collections.abc import Awaitable, Callable
from typing import Any

from redis.exceptions import ResponseError

if sys.version_info >= (3, 11):
    from asyncio import timeout as _deadline
else:  # redis-py depends on async-timeout on these versions, for the same use
    from async_timeout import timeout as _deadline  # type: ignore[import-not-found,unused-ignore]


def connection_getter(pool: Any) -> Callable[[], Awaitable[Any]]:
    """``pool.get_connection`` as each redis-py calls it: before 5.3 it requires a command name
    (which its pools ignore); from 6.0 passing one is deprecated. Probed once, at construction."""
    try:
        parameter = inspect.signature(pool.get_connection).parameters.get("command_name")
    except (TypeError, ValueError):
        parameter = None
    if parameter is not None and parameter.default is inspect.Parameter.empty:
        return lambda: pool.get_connection("_")
    return pool.get_connection  # type: ignore[no-any-return]


class Pipeliner:
    """Automatic pipelining: while commands are on their way, the commands that concurrent
    requests issue in the meantime go to Redis together, as one pipeline (one write, one read of
    every reply) at the end of the event loop's turn, instead of one round trip each, as
    node-redis does. With nothing on its way, a command goes at once, as it is: a quiet server
    pays nothing for this. Each command still gets its own reply or error; a connection error
    fails the commands sent with it, after the connection's retry, so every outage guarantee
    holds per request.

    Batches go straight to connections the pipeliner keeps from the client's pool (at most
    ``IDLE`` of them between batches): redis-py's client and ``Pipeline`` objects cost more per
    command than the round trip itself. The pool's ``socket_timeout`` bounds each batch once,
    from the moment it waits for a connection to its last reply."""

    IDLE = 4

    def __init__(self, client: Any) -> None:
        self.pool = client.connection_pool
        self.get_connection = connection_getter(self.pool)
        self.timeout: float | None = self.pool.connection_kwargs.get("socket_timeout")
        self.callbacks: dict[str, Any] = client.response_callbacks
        self.queue: list[tuple[tuple[Any, ...], asyncio.Future[Any]]] = []
        self.busy = 0
        """Batches on their way."""
        self.idle: list[tuple[Any, float | None]] = []
        """Connections kept between batches, each with the socket timeout it came with."""
        self.flushing: set[asyncio.Task[None]] = set()

    async def send(self, *command: Any) -> Any:
        if self.busy:
            return await self._queued(command)
        (reply,) = await self._batch([command])
        if isinstance(reply, BaseException):
            raise reply
        return reply

    def _queued(self, command: tuple[Any, ...]) -> asyncio.Future[Any]:
        loop = asyncio.get_running_loop()
        future = loop.create_future()
        if not self.queue:
            task = loop.create_task(self._flush())
            self.flushing.add(task)
            task.add_done_callback(self.flushing.discard)
        self.queue.append((command, future))
        return future

    async def _flush(self) -> None:
        batch, self.queue = self.queue, []
        try:
            replies = await self._batch([command for command, _ in batch])
        except BaseException as exc:
            for _, future in batch:
                settle(future, exc)
            if not isinstance(exc, Exception):
                raise
            return
        for (_, future), reply in zip(batch, replies, strict=True):
            settle(future, reply)

    async def _batch(self, commands: list[tuple[Any, ...]]) -> list[Any]:
        """Every command's reply (or its error, as an exception): one write, one read."""
        self.busy += 1
        try:
            async with _deadline(self.timeout):
                connection, timeout = self.idle.pop() if self.idle else await self._acquire()
                try:
                    return await connection.retry.call_with_retry(  # type: ignore[no-any-return]
                        lambda: self._round_trip(connection, commands),
                        lambda _error: connection.disconnect(),
                    )
                except BaseException:
                    await connection.disconnect(nowait=True)
                    raise
                finally:
                    await self._keep(connection, timeout)
        finally:
            self.busy -= 1

    async def _round_trip(self, connection: Any, commands: list[tuple[Any, ...]]) -> list[Any]:
        packed, unpackable = _pack(connection, commands)
        if packed:
            await connection.send_packed_command(packed)
        read: list[Any] = []
        for _ in range(len(commands) - len(unpackable)):
            try:
                read.append(await connection.read_response())
            except ResponseError as error:
                read.append(error)
        replies: list[Any] = []
        answers = iter(read)
        for index, command in enumerate(commands):
            reply = unpackable[index] if index in unpackable else next(answers)
            callback = self.callbacks.get(command[0])
            if callback is not None and not isinstance(reply, BaseException):
                try:
                    reply = callback(reply)
                except Exception as error:
                    reply = error
            replies.append(reply)
        return replies

    async def _acquire(self) -> tuple[Any, float | None]:
        connection = await self.get_connection()
        timeout = connection.socket_timeout
        connection.socket_timeout = None
        return connection, timeout

    async def _keep(self, connection: Any, timeout: float | None) -> None:
        if len(self.idle) < self.IDLE:
            self.idle.append((connection, timeout))
        else:
            await self._release(connection, timeout)

    async def _release(self, connection: Any, timeout: float | None) -> None:
        connection.socket_timeout = timeout
        await self.pool.release(connection)

    async def close(self) -> None:
        """Give the kept connections back to the client's pool."""
        idle, self.idle = self.idle, []
        for connection, timeout in idle:
            await self._release(connection, timeout)


def _pack(
    connection: Any, commands: list[tuple[Any, ...]]
) -> tuple[list[bytes], dict[int, BaseException]]:
    """The batch packed, and the commands that cannot be (each with its error), left out."""
    try:
        return connection.pack_commands(commands), {}
    except Exception:  # noqa: S110 - the loop below finds which command it was
        pass
    unpackable: dict[int, BaseException] = {}
    sendable = []
    for index, command in enumerate(commands):
        try:
            connection.pack_command(*command)
        except Exception as error:
            unpackable[index] = error
        else:
            sendable.append(command)
    return (connection.pack_commands(sendable) if sendable else []), unpackable


def settle(future: asyncio.Future[Any], outcome: Any) -> None:
    """Give a waiting command its reply, or its error (a request that gave up is skipped)."""
    if future.done():
        return
    if isinstance(outcome, BaseException):
        future.set_exception(outcome)
    else:
        future.set_result(outcome)
