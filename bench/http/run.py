"""End-to-end HTTP benchmark: every contender on a loopback port in turn, loaded by wrk with an
existing session cookie on a read route and a write route; requests/s and p99 per contender,
each one's ratio to its bare app in the same run, and a PNG chart. Requests cycle through 64
existing sessions, as many users' traffic does; a bare app gets cookies of the same shape, so
every contender receives the same requests.

    pip install '.[bench]' && apt-get install wrk nodejs npm
    .venv/bin/python bench/http/run.py [--seconds 5] [--rounds 3] [--only sessionware-memory,...]

Contenders: sessionware on uvicorn (one worker, uvloop + httptools) with MemoryStore, RedisStore,
RedisStore with client_cache + touch_after, SQLiteStore and PostgresStore; the same Starlette app
bare, with two references (``headers-only``: a pass-through middleware that adds only the headers
a session write adds; ``floor-memory``: the least a session middleware does, in floor.py), with
Starlette's cookie SessionMiddleware and with starsessions (memory, Redis); Node's
express bare, with express-session + MemoryStore and + connect-redis; Flask on gunicorn (one sync
worker) bare, with Flask's cookie session, Flask-Session on Redis, and sessionware's Flask
integration on MemoryStore and on Redis. Needs Redis and PostgreSQL on their usual ports; the
Node packages come from tests/node (npm ci there). Stops by itself; not part of CI.
"""

from __future__ import annotations

import argparse
import os
import platform
import re
import secrets
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from datetime import datetime, timezone
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent.parent
NODE_MODULES = ROOT / "tests" / "node" / "node_modules"

ASGI = [
    "starlette-bare",
    "sessionware-memory",
    "sessionware-redis",
    "sessionware-redis-unpipelined",
    "sessionware-redis-cache",
    "sessionware-sqlite",
    "sessionware-sqlite-throttled",
    "sessionware-postgres",
    "floor-memory",
    "headers-only",
    "starlette-cookie",
    "starsessions-memory",
    "starsessions-redis",
]
NODE = ["express-bare", "express-memory", "express-redis"]
FLASK = [
    "flask-bare",
    "flask-cookie",
    "flask-session-redis",
    "flask-sessionware-memory",
    "flask-sessionware-redis",
]
BARE = {**dict.fromkeys(ASGI, "starlette-bare"), **dict.fromkeys(NODE, "express-bare")}
BARE.update(dict.fromkeys(FLASK, "flask-bare"))


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def command_for(contender: str, port: int) -> list[str]:
    if contender in NODE:
        return ["node", str(HERE / "server.js")]
    if contender in FLASK:
        return [
            str(Path(sys.executable).parent / "gunicorn"),
            "-w",
            "1",
            "-b",
            f"127.0.0.1:{port}",
            "--chdir",
            str(HERE),
            "apps:app",
        ]
    return [
        sys.executable,
        "-m",
        "uvicorn",
        "apps:app",
        "--app-dir",
        str(HERE),
        "--port",
        str(port),
        "--loop",
        "uvloop",
        "--http",
        "httptools",
        "--log-level",
        "warning",
        "--no-access-log",
    ]


def environment(contender: str, port: int, workdir: Path) -> dict[str, str]:
    env = {
        **os.environ,
        "CONTENDER": contender,
        "PORT": str(port),
        "NODE_PATH": str(NODE_MODULES),
        "REDIS_URL": "redis://127.0.0.1:6379/0",
    }
    if contender.startswith("sessionware-sqlite"):
        env["BENCH_SQLITE"] = str(workdir / f"{contender}.db")
    return env


def wait_for(port: int, process: subprocess.Popen[bytes], seconds: float = 20) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError("the contender exited at start")
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            return
        except OSError:
            time.sleep(0.1)
    raise RuntimeError("the contender did not start")


SESSIONS = 64
"""Each request carries one of this many sessions in turn, as traffic from many users does (one
shared session would measure concurrent writes to a single session instead)."""


def new_session_cookie(port: int, timeout: float = 10) -> str | None:
    """The ``name=value`` of the cookie a first write sets (``None``: the app sets none)."""
    url = f"http://127.0.0.1:{port}/write"
    with urllib.request.urlopen(url, timeout=timeout) as response:
        header = response.headers.get("Set-Cookie")
    return None if header is None else header.split(";", 1)[0]


def session_cookies(port: int, workdir: Path) -> Path:
    """A wrk script that sends the cookies of ``SESSIONS`` sessions in turn. An app that sets
    no cookie (a bare app) gets cookies of the same name and shape all the same: every contender
    of a stack receives the same requests, and wrk does the same work for each."""
    cookies = []
    for _ in range(SESSIONS):
        cookie = new_session_cookie(port)
        if cookie is None:
            cookie = lookalike_cookie()
        cookies.append(cookie)
    script = workdir / f"cookies-{port}.lua"
    listed = ",\n".join(f'  "{cookie}"' for cookie in cookies)
    script.write_text(
        f"local cookies = {{\n{listed}\n}}\nlocal i = 0\n"
        "request = function()\n  i = i % #cookies + 1\n"
        '  return wrk.format(nil, nil, {["Cookie"] = cookies[i]})\nend\n'
    )
    return script


def lookalike_cookie() -> str:
    """A signed session cookie's name and shape (express's and sessionware's default name, a
    32-character sid, a 43-character signature), for an app that sets none."""
    signature = secrets.token_urlsafe(32)[:43]
    return f"connect.sid=s%3A{secrets.token_urlsafe(24)}.{signature}"


def pinned(command: list[str], core: int | None) -> list[str]:
    """``command`` bound to one core (``None``: left to the scheduler)."""
    return command if core is None else ["taskset", "-c", str(core), *command]


def wrk(
    port: int, path: str, cookies: Path, seconds: float, core: int | None = None
) -> tuple[float, float]:
    """Requests/s and p99 latency (ms) of wrk on ``path``."""
    command = ["wrk", "-t1", "-c8", f"-d{max(1, round(seconds))}s", "--latency", "-s", str(cookies)]
    command = pinned(command, core)
    output = subprocess.run(
        [*command, f"http://127.0.0.1:{port}{path}"], capture_output=True, text=True, check=True
    ).stdout
    rate = float(re.search(r"Requests/sec:\s+([\d.]+)", output).group(1))  # type: ignore[union-attr]
    p99 = re.search(r"99%\s+([\d.]+)(us|ms|s)", output)
    assert p99 is not None, output
    scale = {"us": 0.001, "ms": 1.0, "s": 1000.0}[p99.group(2)]
    return rate, float(p99.group(1)) * scale


def measure(
    contender: str, seconds: float, workdir: Path, pin: bool = False
) -> dict[str, tuple[float, float]]:
    """With ``pin``, the server runs on core 1 and wrk on core 0, so no run shares a core with
    the load generator or moves between cores. Measured here, it did not remove the scatter
    between rounds, and it slows Node, whose helper threads then share the server's core: so it
    is not the default."""
    server_core, wrk_core = (1, 0) if pin else (None, None)
    port = free_port()
    process = subprocess.Popen(
        pinned(command_for(contender, port), server_core),
        env=environment(contender, port, workdir),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        cwd=HERE,
    )
    try:
        wait_for(port, process)
        cookies = session_cookies(port, workdir)
        results = {}
        for path in ("/read", "/write"):
            wrk(port, path, cookies, 2, wrk_core)
            results[path] = wrk(port, path, cookies, seconds, wrk_core)
        return results
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()


def versions() -> str:
    import starlette
    import uvicorn

    import sessionware

    node = subprocess.run(
        ["node", "--version"], capture_output=True, text=True, check=False
    ).stdout.strip()
    return (
        f"{platform.node()} ({os.cpu_count()} cores), {datetime.now(timezone.utc):%Y-%m-%d}, "
        f"Python {platform.python_version()}, uvicorn {uvicorn.__version__}, "
        f"Starlette {starlette.__version__}, Node {node}, sessionware "
        f"{'compiled (mypyc)' if sessionware.compiled else 'pure Python'}"
    )


def chart(results: dict[str, dict[str, tuple[float, float]]], path: Path, setting: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = list(results)
    figure, axis = plt.subplots(figsize=(11, 0.45 * len(names) + 1.8))
    positions = range(len(names))
    for offset, route, color in ((-0.2, "/read", "#4c78a8"), (0.2, "/write", "#f58518")):
        axis.barh(
            [p + offset for p in positions],
            [results[n][route][0] for n in names],
            height=0.4,
            label=route,
            color=color,
        )
    axis.set_yticks(list(positions), names)
    axis.invert_yaxis()
    axis.set_xlabel(
        f"requests/s (wrk, 1 thread, 8 connections, each request one of {SESSIONS} sessions)"
    )
    axis.legend()
    figure.text(0.01, 0.01, f"{versions()}, {setting}", fontsize=8, color="#555")
    figure.tight_layout(rect=(0, 0.03, 1, 1))
    figure.savefig(path, dpi=110)


def report(contender: str, by_route: dict[str, tuple[float, float]]) -> None:
    read, write = by_route["/read"], by_route["/write"]
    print(
        f"{contender:26} read {read[0]:8.0f}/s p99 {read[1]:6.2f} ms   "
        f"write {write[0]:8.0f}/s p99 {write[1]:6.2f} ms",
        flush=True,
    )


def median_of(runs: list[dict[str, tuple[float, float]]]) -> dict[str, tuple[float, float]]:
    """Per route, the run with the median requests/s (its p99 with it): on a shared machine one
    round can be slowed by a neighbour, and interleaved rounds' medians compare fairly."""
    return {
        route: sorted((run[route] for run in runs), key=lambda measured: measured[0])[
            len(runs) // 2
        ]
        for route in ("/read", "/write")
    }


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--seconds", type=float, default=5)
    parser.add_argument("--only", help="comma-separated contenders")
    parser.add_argument(
        "--rounds",
        type=int,
        default=1,
        help="measure every contender this many times, in turn; report each one's median",
    )
    parser.add_argument(
        "--pin",
        action="store_true",
        help="the server on core 1, wrk on core 0 (Node's helper threads then share one core)",
    )
    args = parser.parse_args()
    pin = args.pin and (os.cpu_count() or 1) >= 2 and shutil.which("taskset") is not None
    for tool in ("wrk", "node"):
        if shutil.which(tool) is None:
            sys.exit(f"{tool} is needed (apt-get install {tool if tool == 'wrk' else 'nodejs'})")
    contenders = [*ASGI, *NODE, *FLASK]
    if args.only:
        contenders = [c for c in contenders if c in args.only.split(",")]
    setting = "server on core 1, wrk on core 0" if pin else "unpinned"
    print(f"{versions()}, {setting}", flush=True)
    workdir = Path(tempfile.mkdtemp(prefix="sessionware-bench-"))
    runs: dict[str, list[dict[str, tuple[float, float]]]] = {}
    for _ in range(args.rounds):
        for contender in contenders:
            try:
                by_route = measure(contender, args.seconds, workdir, pin)
            except Exception as exc:
                print(f"{contender}: skipped ({exc})", file=sys.stderr)
                continue
            runs.setdefault(contender, []).append(by_route)
            report(contender, by_route)
    results = {contender: median_of(measured) for contender, measured in runs.items()}
    if args.rounds > 1:
        print(f"\nmedian of {args.rounds} rounds:")
        for contender, by_route in results.items():
            report(contender, by_route)
    print("\nratio to the bare app of the same stack (requests/s):")
    for contender, by_route in results.items():
        bare = results.get(BARE[contender])
        if bare is None or contender == BARE[contender]:
            continue
        ratios = [by_route[r][0] / bare[r][0] for r in ("/read", "/write")]
        print(f"{contender:26} read {ratios[0]:.2f}x  write {ratios[1]:.2f}x")
    if results:
        chart(results, HERE / "results.png", setting)
        print(f"\nchart: {HERE / 'results.png'}")


if __name__ == "__main__":
    main()
