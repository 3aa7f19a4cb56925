"""Which Redis client a session store should use: the same request mix on each, in one run.

A read is what sessionware sends for a read-only request (``GETEX key EX ttl``), a write what it
sends for a changed session (``GETEX``, then ``SET key value EX ttl``), on a 300-byte session.
Each client runs the mix one request at a time (latency) and as 16 concurrent requests (what a
busy server sees), on uvloop; reported: wall time and process CPU per request, interleaved over
rounds, medians.

Contenders: redis-py asyncio with its connection pool (the store's default), redis-py on one
dedicated connection, redis-py with automatic pipelining (concurrent requests' commands sent
together, a small layer written here to measure the idea), sessionware's own pipelining (what
``RedisStore`` sends through: multiplexed over one connection for the client it makes itself,
batched over a given client's connections), coredis, and valkey-glide.

    pip install 'sessionware[bench]'; .venv/bin/python bench/bench_redis_clients.py
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import time
import uuid
from collections.abc import Awaitable, Callable
from typing import Any

import uvloop

HOST, PORT = "127.0.0.1", 6379
TTL = 3600
VALUE = (
    '{"cookie":{"originalMaxAge":3600000,"expires":"2026-11-29T12:00:00.000Z","httpOnly":true,'
    '"path":"/"},"user":{"id":42,"name":"Ann"},"cart":[1,2,3],"n":' + "7" * 150 + "}"
).encode()
Command = Callable[[str], Awaitable[Any]]


class Client:
    """One contender: ``getex`` and ``set`` as coroutines (by default through ``send``, a
    command's words in, its reply out), ``close``."""

    name = ""

    async def send(self, *command: Any) -> Any:
        raise NotImplementedError

    async def getex(self, key: str) -> Any:
        return await self.send("GETEX", key, "EX", TTL)

    async def set(self, key: str, value: bytes) -> Any:
        return await self.send("SET", key, value, "EX", TTL)

    async def close(self) -> None:
        raise NotImplementedError


class RedisPy(Client):
    def __init__(self, single: bool) -> None:
        import redis.asyncio

        self.name = "redis-py, one connection" if single else "redis-py, pool"
        self.client = redis.asyncio.Redis(
            host=HOST, port=PORT, single_connection_client=single, socket_timeout=2
        )

    async def send(self, *command: Any) -> Any:
        return await self.client.execute_command(*command)

    async def close(self) -> None:
        await self.client.aclose()


class AutoPipelined(Client):
    """redis-py with the commands of concurrent requests sent as one pipeline: each command
    waits for the current loop iteration to end, then every queued command goes at once."""

    name = "redis-py, auto-pipelined"

    def __init__(self) -> None:
        import redis.asyncio

        self.client = redis.asyncio.Redis(host=HOST, port=PORT, socket_timeout=2)
        self.queue: list[tuple[tuple[Any, ...], asyncio.Future[Any]]] = []
        self.flushing = False

    async def send(self, *command: Any) -> Any:
        future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self.queue.append((command, future))
        if not self.flushing:
            self.flushing = True
            asyncio.get_running_loop().call_soon(lambda: asyncio.ensure_future(self._flush()))
        return await future

    async def _flush(self) -> None:
        batch, self.queue = self.queue, []
        self.flushing = False
        pipe = self.client.pipeline(transaction=False)
        for command, _ in batch:
            pipe.execute_command(*command)
        try:
            results = await pipe.execute(raise_on_error=False)
        except Exception as exc:
            for _, future in batch:
                future.set_exception(exc)
            return
        for (_, future), result in zip(batch, results, strict=True):
            future.set_result(result)

    async def close(self) -> None:
        await self.client.aclose()


class RawPipelined(AutoPipelined):
    """The same batching on one redis-py connection, without its Pipeline object: pack every
    queued command, one write, then read the replies in order."""

    name = "redis-py connection, auto-pipelined"

    async def start(self) -> None:
        self.connection = self.client.connection_pool.make_connection()
        await self.connection.connect()
        self.busy = asyncio.Lock()

    async def _flush(self) -> None:
        batch, self.queue = self.queue, []
        self.flushing = False
        connection = self.connection
        async with self.busy:
            await connection.send_packed_command(
                connection.pack_commands([command for command, _ in batch])
            )
            for _, future in batch:
                try:
                    future.set_result(await connection.read_response())
                except Exception as exc:
                    future.set_exception(exc)

    async def close(self) -> None:
        await self.connection.disconnect()
        await self.client.aclose()


class Sessionware(Client):
    """sessionware's own pipelining (``RedisStore``'s transport): with the client the store
    makes itself, one connection redis-py opened, multiplexed, its replies read with hiredis;
    with a client passed in, batches on a few of that client's connections."""

    def __init__(self, own: bool) -> None:
        import redis.asyncio

        from sessionware.stores.redis import RedisStore

        if own:
            self.name = "sessionware, own client (multiplexed)"
            self.given = None
            self.store = RedisStore(url=f"redis://{HOST}:{PORT}/0")
        else:
            self.name = "sessionware, given client (pipelined)"
            self.given = redis.asyncio.Redis(host=HOST, port=PORT, socket_timeout=2)
            self.store = RedisStore(self.given)
        assert self.store.pipeliner is not None
        self.pipeliner = self.store.pipeliner

    async def send(self, *command: Any) -> Any:
        return await self.pipeliner.send(*command)

    async def close(self) -> None:
        await self.store.aclose()
        if self.given is not None:
            await self.given.aclose()


class Coredis(Client):
    name = "coredis"

    def __init__(self) -> None:
        import coredis

        self.client = coredis.Redis(host=HOST, port=PORT, stream_timeout=2)

    async def start(self) -> None:
        await self.client.__aenter__()  # coredis 6 pools live inside the client's context

    async def getex(self, key: str) -> Any:
        return await self.client.getex(key, ex=TTL)

    async def set(self, key: str, value: bytes) -> Any:
        return await self.client.set(key, value, ex=TTL)

    async def close(self) -> None:
        await self.client.__aexit__(None, None, None)


class Glide(Client):
    name = "valkey-glide"

    async def start(self) -> None:
        from glide import GlideClient, GlideClientConfiguration, NodeAddress

        self.client = await GlideClient.create(
            GlideClientConfiguration([NodeAddress(HOST, PORT)], request_timeout=2000)
        )

    async def getex(self, key: str) -> Any:
        from glide import ExpiryGetEx, ExpiryTypeGetEx

        return await self.client.getex(key, ExpiryGetEx(ExpiryTypeGetEx.SEC, TTL))

    async def set(self, key: str, value: bytes) -> Any:
        from glide import ExpirySet, ExpiryType

        return await self.client.set(key, value, expiry=ExpirySet(ExpiryType.SEC, TTL))

    async def close(self) -> None:
        await self.client.close()


async def one_request(client: Client, key: str, write: bool) -> None:
    await client.getex(key)
    if write:
        await client.set(key, VALUE)


async def run(
    client: Client, keys: list[str], write: bool, concurrency: int
) -> tuple[float, float]:
    """Wall and CPU microseconds per request."""
    started_wall, started_cpu = time.perf_counter(), time.process_time()
    if concurrency == 1:
        for key in keys:
            await one_request(client, key, write)
    else:

        async def worker(share: list[str]) -> None:
            for key in share:
                await one_request(client, key, write)

        await asyncio.gather(*(worker(keys[i::concurrency]) for i in range(concurrency)))
    wall = (time.perf_counter() - started_wall) / len(keys) * 1e6
    cpu = (time.process_time() - started_cpu) / len(keys) * 1e6
    return wall, cpu


async def measure(count: int, rounds: int) -> dict[tuple[str, str, int], tuple[float, float]]:
    clients: list[Client] = [
        RedisPy(False),
        RedisPy(True),
        AutoPipelined(),
        RawPipelined(),
        Sessionware(own=False),
        Sessionware(own=True),
        Coredis(),
        Glide(),
    ]
    for client in clients:
        start = getattr(client, "start", None)
        if start is not None:
            await start()
    prefix = f"bench-clients:{uuid.uuid4().hex[:8]}:"
    keys = [f"{prefix}{index % 64}" for index in range(count)]
    for key in set(keys):
        await clients[0].set(key, VALUE)
    samples: dict[tuple[str, str, int], list[tuple[float, float]]] = {}
    for round_index in range(rounds + 1):
        for client in clients:
            for kind in ("read", "write"):
                for concurrency in (1, 16):
                    result = await run(client, keys, kind == "write", concurrency)
                    if round_index:  # the first round warms up
                        samples.setdefault((client.name, kind, concurrency), []).append(result)
    for client in clients:
        await client.close()
    import redis

    cleanup = redis.Redis(host=HOST, port=PORT)
    cleanup.delete(*set(keys))
    cleanup.close()
    return {
        key: (statistics.median(v[0] for v in values), statistics.median(v[1] for v in values))
        for key, values in samples.items()
    }


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--count", type=int, default=2000)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    results = uvloop.run(measure(args.count, args.rounds))
    print("client                      request  concurrency  wall us/req  CPU us/req")
    for (name, kind, concurrency), (wall, cpu) in results.items():
        print(f"{name:27} {kind:8} {concurrency:11}  {wall:11.1f}  {cpu:10.1f}")


if __name__ == "__main__":
    main()
