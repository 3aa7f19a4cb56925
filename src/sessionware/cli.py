"""The ``sessionware`` command: the demo app, and a look into a session store.

sessionware demo [--host 127.0.0.1] [--port 8000]
sessionware store --redis URL [--prefix sess:] [--cluster] count | ids | show SID |
                  destroy SID | clear --yes
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any


def _demo(args: argparse.Namespace) -> int:
    try:
        import uvicorn

        from .demo import create_app
    except ImportError:
        print("the demo needs: pip install 'sessionware[demo]'", file=sys.stderr)
        return 2
    print(f"sessionware demo on http://{args.host}:{args.port}", flush=True)
    uvicorn.run(create_app(), host=args.host, port=args.port, log_level="warning")
    return 0


def _store(args: argparse.Namespace) -> int:
    try:
        from .stores.redis import SyncRedisStore
    except ImportError:
        print("the store commands need: pip install 'sessionware[redis]'", file=sys.stderr)
        return 2
    store = SyncRedisStore(url=args.redis, cluster=args.cluster, prefix=args.prefix)
    try:
        return _store_command(store, args)
    finally:
        store.close()


def _store_command(store: Any, args: argparse.Namespace) -> int:
    if args.action == "count":
        print(store.length())
    elif args.action == "ids":
        for sid in sorted(store.ids()):
            print(sid)
    elif args.action == "show":
        data = store.get(args.sid)
        if data is None:
            print(f"no session {args.sid!r}", file=sys.stderr)
            return 1
        print(json.dumps(data, indent=2, ensure_ascii=False))
    elif args.action == "destroy":
        store.destroy(args.sid)
    elif args.action == "clear":
        if not args.yes:
            print("clear deletes every session under the prefix; add --yes", file=sys.stderr)
            return 2
        store.clear()
    return 0


def parser() -> argparse.ArgumentParser:
    root = argparse.ArgumentParser(prog="sessionware", description="sessionware's command line")
    commands = root.add_subparsers(dest="command", required=True)
    demo = commands.add_parser("demo", help="run the demo app (needs the [demo] extra)")
    demo.add_argument("--host", default="127.0.0.1")
    demo.add_argument("--port", type=int, default=8000)
    demo.set_defaults(run=_demo)
    store = commands.add_parser("store", help="inspect or clean a Redis session store")
    store.add_argument("--redis", required=True, help="redis://, rediss:// or unix:// URL")
    store.add_argument("--prefix", default="sess:")
    store.add_argument("--cluster", action="store_true")
    store.set_defaults(run=_store)
    actions = store.add_subparsers(dest="action", required=True)
    actions.add_parser("count", help="how many sessions there are")
    actions.add_parser("ids", help="every session id")
    actions.add_parser("show", help="one session's JSON").add_argument("sid")
    actions.add_parser("destroy", help="delete one session").add_argument("sid")
    clear = actions.add_parser("clear", help="delete every session under the prefix")
    clear.add_argument("--yes", action="store_true")
    return root


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    return int(args.run(args))


if __name__ == "__main__":
    sys.exit(main())
