"""The ``sessionware`` command."""

from __future__ import annotations

import argparse
import sys


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="sessionware", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    demo = commands.add_parser("demo", help="run the demo app (needs the [demo] extra)")
    demo.add_argument("--host", default="127.0.0.1")
    demo.add_argument("--port", type=int, default=8000)
    args = parser.parse_args(argv)
    if args.command == "demo":
        try:
            import uvicorn

            from .demo import create_app
        except ImportError:
            print("the demo needs: pip install 'sessionware[demo]'", file=sys.stderr)
            return 2
        print(f"sessionware demo on http://{args.host}:{args.port}", flush=True)
        uvicorn.run(create_app(), host=args.host, port=args.port, log_level="warning")
    return 0


if __name__ == "__main__":
    sys.exit(main())
