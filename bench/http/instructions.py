"""Instructions per request over real HTTP: a contender's whole server process (uvicorn, the
app, sessionware) under ``valgrind --tool=callgrind``, driven by a keep-alive client on the read
or write route. Where ``run.py``'s requests/s move with the machine's load, these counts do not,
so they say whether a gap in requests/s is work the process does or time it spends otherwise.

    .venv/bin/python bench/http/instructions.py [--only starlette-bare,sessionware-memory]

Per request = (I(N2) - I(N1)) / (N2 - N1): each phase ends with a callgrind dump, which also
resets the count. The kernel's work (syscalls) is not counted. ASGI contenders only.
"""

from __future__ import annotations

import argparse
import asyncio
import subprocess
import sys
import tempfile
from pathlib import Path

from run import (
    ASGI,
    command_for,
    environment,
    free_port,
    lookalike_cookie,
    new_session_cookie,
    wait_for,
)

N1, N2 = 400, 1600
CONNECTIONS = 4


async def load(port: int, path: str, cookie: str, count: int) -> None:
    request = f"GET {path} HTTP/1.1\r\nHost: bench\r\nCookie: {cookie}\r\n\r\n".encode()

    async def connection(times: int) -> None:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        for _ in range(times):
            writer.write(request)
            head = await reader.readuntil(b"\r\n\r\n")
            length = next(
                int(line.split(b":", 1)[1])
                for line in head.split(b"\r\n")
                if line.lower().startswith(b"content-length:")
            )
            await reader.readexactly(length)
        writer.close()

    await asyncio.gather(*(connection(count // CONNECTIONS) for _ in range(CONNECTIONS)))


def dumped_total(path: Path) -> int:
    for line in path.read_text(errors="replace").splitlines():
        if line.startswith(("summary:", "totals:")):
            return int(line.split()[1])
    raise RuntimeError(f"no total in {path}")


def measure(contender: str, path: str, workdir: Path) -> float:
    port = free_port()
    out = workdir / f"{contender}{path.replace('/', '-')}.out"
    process = subprocess.Popen(
        [
            "valgrind",
            "--tool=callgrind",
            f"--callgrind-out-file={out}",
            *command_for(contender, port),
        ],
        env=environment(contender, port, workdir),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        cwd=Path(__file__).resolve().parent,
    )
    try:
        wait_for(port, process, seconds=120)  # valgrind starts Python slowly
        cookie = new_session_cookie(port, timeout=60) or lookalike_cookie()
        for count in (N1, N1, N2):  # a warm-up, then the two measured phases
            asyncio.run(load(port, path, cookie, count))
            subprocess.run(
                ["callgrind_control", "--dump", str(process.pid)], check=True, capture_output=True
            )
        dumps = sorted(workdir.glob(out.name + ".*"), key=lambda dump: int(dump.suffix[1:]))
        phase_n1, phase_n2 = dumped_total(dumps[-2]), dumped_total(dumps[-1])
        return (phase_n2 - phase_n1) / (N2 - N1)
    finally:
        process.terminate()
        process.wait(timeout=60)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--only", help="comma-separated ASGI contenders")
    args = parser.parse_args()
    default = ["starlette-bare", "headers-only", "sessionware-memory"]
    contenders = args.only.split(",") if args.only else default
    workdir = Path(tempfile.mkdtemp(prefix="sessionware-http-instructions-"))
    for contender in contenders:
        if contender not in ASGI:
            sys.exit(f"{contender}: not an ASGI contender")
        counts = [measure(contender, path, workdir) for path in ("/read", "/write")]
        print(f"{contender:26} read {counts[0]:10,.0f}  write {counts[1]:10,.0f}", flush=True)


if __name__ == "__main__":
    main()
