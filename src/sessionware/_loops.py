"""The running event loop, found without a system call on every request.

Up to Python 3.11, ``asyncio.get_running_loop()`` (and everything in asyncio that calls it:
``current_task()``, ``timeout()``) asks the kernel for the process id on each call, to notice a
fork. Under virtualization a system call can cost microseconds (5 us on the benchmark machine,
a sixth of what a whole request costs there), so the hot path asks at most once per thread
and event loop. Python 3.12 made the call itself cheap and is used as it is.
"""

from __future__ import annotations

import asyncio
import os
import sys
import threading

_last = threading.local()


def running_loop() -> asyncio.AbstractEventLoop:
    """``asyncio.get_running_loop()``. A loop last found running in this thread that is still
    running is the one running here: a thread runs one loop at a time, and asyncio refuses to
    start a second one inside it."""
    if sys.version_info >= (3, 12):
        return asyncio.get_running_loop()
    loop: asyncio.AbstractEventLoop | None = getattr(_last, "loop", None)
    if loop is None or not loop.is_running():
        loop = _last.loop = asyncio.get_running_loop()
    return loop


def _forget() -> None:
    """A forked child inherits this thread's record of a loop that is not running in it."""
    _last.loop = None


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_forget)
