"""The ``sessionware`` command: the demo app, and an operator's look into any session store.

    sessionware demo [--store URL] [--host 127.0.0.1] [--port 8000]
    sessionware store --url URL [--json] ACTION      (or SESSIONWARE_STORE=URL; --redis URL too)
    sessionware migrate --from SOURCE --to URL [--dry-run] [--keep] [--user-key KEY]

    SOURCE: flask-session+redis://... | starsessions+redis://... | django[:ENGINE]
            (the app's secret in SESSIONWARE_SECRET, or --secret)

    ACTION: count | ids | list [--user U] | show SID... | destroy SID... | clear [--yes] | gc
            | user USER | revoke USER [--keep SID]     (the per-user index: needs --user-key)

SESSIONWARE_ENCRYPTION_KEYS (comma-separated) opens a store that encrypts its sessions.

Exit codes: 0 done; 1 an id that is not in the store; 2 a bad URL, an unreachable store or a
refused command (one line on stderr, never a traceback).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import logging
import os
import sys
from collections.abc import Callable, Iterator, Sequence
from typing import Any

from .devices import device_of

USER_KEYS = ("user", "user_id", "userId", "_user_id", "_auth_user_id", "username", "email")
"""Where a session usually keeps its signed-in user (Flask-Login, Django, common app code)."""


class CommandError(Exception):
    """A one-line failure: the message is printed, the exit code returned."""

    def __init__(self, message: str, code: int = 2) -> None:
        super().__init__(message)
        self.code = code


def _demo(args: argparse.Namespace) -> int:
    try:
        import uvicorn

        from .demo import create_app
    except ImportError:
        raise CommandError("the demo needs: pip install 'sessionware[demo]'") from None
    app = create_app(store_url=args.store)
    print(f"sessionware demo on http://{args.host}:{args.port}", flush=True)
    uvicorn.run(app, host=args.host, port=args.port, log_level="warning")
    return 0


def _open_store(
    url: str | None, *, prefix: str | None, cluster: bool = False, user_key: str | None = None
) -> Any:
    """The sync store ``url`` (or SESSIONWARE_STORE) names; ``user_key`` indexes its writes."""
    from .stores.urls import from_url

    url = url or os.environ.get("SESSIONWARE_STORE")
    if not url:
        raise CommandError("no store: pass --url URL or set SESSIONWARE_STORE")
    options: dict[str, Any] = {}
    if prefix is not None:
        options["prefix"] = prefix
    if user_key:
        options["user_key"] = user_key
    keys = os.environ.get("SESSIONWARE_ENCRYPTION_KEYS")
    if keys:
        options["encryption_keys"] = keys.split(",")
    if cluster and url.startswith(("redis://", "rediss://")):
        url = url.replace("://", "+cluster://", 1)
    try:
        store = from_url(url, sync=True, **options)
    except (ValueError, TypeError, ImportError) as exc:
        raise CommandError(f"bad store URL {url!r}: {exc}") from None
    store.cli_url = url
    return store


def _migrate(args: argparse.Namespace) -> int:
    """Copy a server-side source's sessions ahead of the deploy that sets ``migrate_from``."""
    from .migrate import source_from_url
    from .options import secrets_option

    with _logs_shown(args.verbose):
        try:
            source = source_from_url(args.source)
        except (ValueError, ImportError) as exc:
            raise CommandError(f"bad source {args.source!r}: {exc}") from None
        secret = args.secret or os.environ.get("SESSIONWARE_SECRET") or _django_secret(source)
        if not secret:
            raise CommandError(
                "no secret: pass --secret or set SESSIONWARE_SECRET to the app's (its first) "
                "secret; the app finds each copy with it"
            )
        store = _open_store(args.to, prefix=args.prefix, user_key=args.user_key)
        try:
            done = _copied(source, store, secrets_option(secret)[0], args)
        finally:
            with contextlib.suppress(Exception):
                store.close()
            with contextlib.suppress(Exception):
                getattr(source, "close", lambda: None)()
    _say_copied(args, done, store.cli_url)
    return 0


def _copied(source: Any, store: Any, secret: bytes, args: argparse.Namespace) -> Any:
    """``copy_all`` into ``store`` (sync or async: through its driver), failures one line."""
    from ._driver import StoreDriver
    from .migrate import copy_all

    try:
        return copy_all(
            source,
            StoreDriver.for_store(store).call,
            secret,
            keep=args.keep,
            dry_run=args.dry_run,
            progress=_counter("copied"),
        )
    except CommandError:
        raise
    except Exception as exc:
        reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise CommandError(f"cannot copy {args.source} to {store.cli_url}: {reason}") from None


def _say_copied(args: argparse.Namespace, done: Any, where: str) -> None:
    if sys.stderr.isatty() and done.copied:
        sys.stderr.write("\n")
    verb = "would copy" if args.dry_run else "copied"
    noun = "session" if done.copied == 1 else "sessions"
    text = f"{verb} {done.copied} {noun} to {where}"
    if done.already:
        text += f"; {done.already} already copied"
    if done.unreadable:
        text += f"; {done.unreadable} not readable (pickled or corrupt), left in place"
    _emit(args, {**done._asdict(), "dry_run": args.dry_run}, text)


def run_migrate_on_store(store: Any, secret: bytes, words: list[str]) -> int:
    """``manage.py sessionware migrate [--dry-run] [--keep] [--json]``: the project's Django
    sessions (its ``SESSION_ENGINE``) copied into the project's store, with its secret."""
    from .migrate import source_from_url

    argv = ["migrate", "--from", "django", "--to", "given://", *words]
    try:
        args = parser().parse_args(argv)
        store.cli_url = type(store).__name__
        with _logs_shown(args.verbose):
            source = source_from_url(args.source)
            done = _copied(source, store, secret, args)
        _say_copied(args, done, store.cli_url)
        return 0
    except (CommandError, ValueError) as exc:
        print(f"sessionware: {exc}", file=sys.stderr)
        return getattr(exc, "code", 2)
    except SystemExit as exc:
        return int(exc.code or 0)


def _django_secret(source: object) -> str | bytes | None:
    """Django's sources sign with what the Django integration does: ``SESSIONWARE["secret"]``,
    else ``SECRET_KEY``."""
    from .migrate import DjangoSessions

    if not isinstance(source, DjangoSessions):
        return None
    from django.conf import settings

    secret = (getattr(settings, "SESSIONWARE", None) or {}).get("secret", settings.SECRET_KEY)
    first: str | bytes | None = (
        secret if isinstance(secret, (str, bytes)) else next(iter(secret), None)
    )
    return first


def _user_of(data: dict[str, Any], user_key: str | None) -> Any:
    key = user_key or _user_key_in(data)
    return None if key is None else data.get(key)


def _user_key_in(data: dict[str, Any]) -> str | None:
    """Without ``--user-key``, the key that names the user is the first of ``USER_KEYS`` a
    session holds: the one rule of ``list --user``, ``user`` and ``revoke``."""
    return next((key for key in USER_KEYS if data.get(key) is not None), None)


def _location(store: Any) -> str:
    """What the command read: the URL, and the prefix or table within it."""
    where = getattr(getattr(store, "rules", None), "location", None)
    return f"{store.cli_url}, {where}" if where else store.cli_url


def _rows(store: Any, args: argparse.Namespace) -> list[dict[str, Any]]:
    rows = []
    for sid, data in sorted(store.all().items()):
        user = _user_of(data, args.user_key)
        if args.user is not None and str(user) != args.user:
            continue
        cookie = data.get("cookie") if isinstance(data.get("cookie"), dict) else {}
        rows.append(
            {
                "id": sid,
                "user": user,
                "expires": cookie.get("expires"),
                "size": len(json.dumps(data, separators=(",", ":"), ensure_ascii=False)),
            }
        )
    return rows


def _table(rows: list[dict[str, Any]], columns: Sequence[str]) -> str:
    cells = [[("-" if row[c] is None else str(row[c])) for c in columns] for row in rows]
    widths = [max([len(c), *(len(line[i]) for line in cells)]) for i, c in enumerate(columns)]
    lines = ["  ".join(c.upper().ljust(w) for c, w in zip(columns, widths, strict=True))]
    lines += ["  ".join(v.ljust(w) for v, w in zip(line, widths, strict=True)) for line in cells]
    return "\n".join(line.rstrip() for line in lines)


def _progress(total: int) -> Callable[[int], None]:
    """A progress bar on stderr when it is a terminal (and nothing otherwise)."""
    if not sys.stderr.isatty() or total < 1000:
        return lambda done: None

    def show(done: int) -> None:
        filled = int(30 * done / max(total, 1))
        end = "\n" if done >= total else ""
        sys.stderr.write(f"\r[{'#' * filled}{' ' * (30 - filled)}] {done}/{total}{end}")
        sys.stderr.flush()

    return show


def _counter(verb: str) -> Callable[[int], None] | None:
    """A running count on stderr for work whose total is not known in advance (a terminal
    only)."""
    if not sys.stderr.isatty():
        return None

    def show(done: int) -> None:
        sys.stderr.write(f"\r{verb} {done}...")
        sys.stderr.flush()

    return show


def _emit(args: argparse.Namespace, value: Any, text: str) -> None:
    print(json.dumps(value, ensure_ascii=False) if args.json else text)


def _store_command(store: Any, args: argparse.Namespace) -> int:
    action = args.action
    if action == "count":
        count = store.length()
        noun = "session" if count == 1 else "sessions"
        _emit(args, {"count": count}, f"{count} {noun} ({_location(store)})")
    elif action == "ids":
        ids = sorted(store.ids())
        _emit(args, ids, "\n".join(ids))
    elif action == "list":
        rows = _rows(store, args)
        _emit(args, rows, _table(rows, ("id", "user", "expires", "size")) if rows else "")
    elif action == "show":
        return _show(store, args)
    elif action == "destroy":
        return _destroy(store, args)
    elif action == "clear":
        return _clear(store, args)
    elif action in ("user", "revoke"):
        return _user_command(store, args)
    elif action == "gc":
        prune = getattr(store, "prune", None)
        if prune is None:
            _emit(args, {"pruned": 0}, "nothing to prune: this store expires sessions itself")
        else:
            pruned = prune(_counter("pruned"))
            _emit(args, {"pruned": pruned}, f"pruned {pruned} expired sessions")
    return 0


def _user_command(store: Any, args: argparse.Namespace) -> int:
    """A user's sessions through the store's per-user index: list them, or revoke them."""
    from .stores.base import index_users

    user_key = args.user_key or getattr(store, "user_key", None) or _guess_user_key(store, args)
    try:
        index_users(store, user_key)
    except (TypeError, ValueError) as exc:
        raise CommandError(str(exc)) from None
    if args.action == "revoke":
        destroyed = store.destroy_user_sessions(args.name, args.keep)
        noun = "session" if destroyed == 1 else "sessions"
        _emit(args, {"destroyed": destroyed}, f"destroyed {destroyed} {noun} of {args.name}")
        return 0
    rows = [_device_row(sid, data) for sid, data in sorted(store.user_sessions(args.name).items())]
    columns = ["id", "expires", "size"]
    if any(row["last_seen"] or row["address"] or row["agent"] for row in rows):
        columns += ["last_seen", "address", "agent"]
    _emit(args, rows, _table(rows, columns) if rows else "")
    return 0


def _device_row(sid: str, data: dict[str, Any]) -> dict[str, Any]:
    """A user's session as ``user`` lists it: with the device it is on, where the app's
    ``device_info`` recorded one."""
    device = device_of(sid, data)
    seen = device.last_seen
    return {
        "id": sid,
        "expires": (data.get("cookie") or {}).get("expires"),
        "size": len(json.dumps(data, separators=(",", ":"), ensure_ascii=False)),
        "last_seen": None if seen is None else seen.isoformat(timespec="seconds"),
        "address": device.address,
        "agent": device.user_agent,
    }


def _guess_user_key(store: Any, args: argparse.Namespace) -> str:
    """The key that names ``args.name`` in a stored session, by ``list --user``'s rule."""
    for data in store.all().values():
        key = _user_key_in(data)
        if key is not None and str(data[key]) == args.name:
            print(
                f"sessionware: the user key is {key!r} (--user-key to name another)",
                file=sys.stderr,
            )
            return key
    raise CommandError(
        f"no session names {args.name!r} under {', '.join(USER_KEYS)} in {_location(store)}: "
        "pass --user-key KEY"
    )


def _sids(args: argparse.Namespace) -> list[str]:
    sids = [sid for sid in args.sids if sid != "--"]
    if not sids:
        raise CommandError(f"{args.action} needs at least one session id")
    return sids


def _show(store: Any, args: argparse.Namespace) -> int:
    found, missing = {}, []
    for sid in _sids(args):
        data = store.get(sid)
        if data is None:
            missing.append(sid)
        else:
            found[sid] = data
    if found:
        value = found if len(found) > 1 else next(iter(found.values()))
        print(json.dumps(value, indent=None if args.json else 2, ensure_ascii=False))
    for sid in missing:
        print(f"no session {sid!r}", file=sys.stderr)
    return 1 if missing else 0


def _destroy(store: Any, args: argparse.Namespace) -> int:
    destroyed, missing = [], []
    for sid in _sids(args):
        if store.get(sid) is None:
            missing.append(sid)
            continue
        store.destroy(sid)
        destroyed.append(sid)
    for sid in missing:
        print(f"no session {sid!r}", file=sys.stderr)
    noun = "session" if len(destroyed) == 1 else "sessions"
    _emit(args, {"destroyed": destroyed, "missing": missing}, f"destroyed {len(destroyed)} {noun}")
    return 1 if missing else 0


def _clear(store: Any, args: argparse.Namespace) -> int:
    total = store.length()
    if not args.yes:
        if not sys.stdin.isatty():
            raise CommandError("clear deletes every session in the store; add --yes")
        answer = input(f"Delete all {total} sessions in {store.cli_url}? [y/N] ")
        if answer.strip().lower() not in ("y", "yes"):
            raise CommandError("nothing deleted", code=1)
    show = _progress(total)
    if total >= 1000 and hasattr(store, "ids"):
        sids = store.ids()
        for done, sid in enumerate(sids, 1):
            store.destroy(sid)
            if done % 100 == 0 or done == len(sids):
                show(done)
    store.clear()
    noun = "session" if total == 1 else "sessions"
    _emit(args, {"cleared": total}, f"cleared {total} {noun}")
    return 0


def _store(args: argparse.Namespace) -> int:
    with _logs_shown(args.verbose):
        store = _open_store(args.url or args.redis, prefix=args.prefix, cluster=args.cluster)
        try:
            return _store_command(store, args)
        except (CommandError, BrokenPipeError):
            raise
        except Exception as exc:
            reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
            raise CommandError(f"cannot use the store at {store.cli_url}: {reason}") from None
        finally:
            with contextlib.suppress(Exception):  # closing an unreachable store may fail too
                store.close()


@contextlib.contextmanager
def _logs_shown(verbose: bool) -> Iterator[None]:
    """A command says one line of its own: the drivers' and the store's log lines (a pool's
    retries, an outage warning) are for ``-v``."""
    if verbose:
        logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
        yield
        return
    before = logging.root.manager.disable
    logging.disable(logging.CRITICAL)
    try:
        yield
    finally:
        logging.disable(before)


def parser() -> argparse.ArgumentParser:
    root = argparse.ArgumentParser(prog="sessionware", description="sessionware's command line")
    commands = root.add_subparsers(dest="command", required=True)
    demo = commands.add_parser("demo", help="run the demo app (needs the [demo] extra)")
    demo.add_argument("--store", help="store URL (default: SQLite in the cache folder)")
    demo.add_argument("--host", default="127.0.0.1")
    demo.add_argument("--port", type=int, default=8000)
    demo.set_defaults(run=_demo)
    store = commands.add_parser("store", help="inspect or clean a session store")
    store.add_argument("--url", help="store URL (or SESSIONWARE_STORE): redis://, sqlite:///...")
    store.add_argument("--redis", help="same as --url (a redis:// URL)")
    store.add_argument("--prefix", help="Redis key prefix (default sess:)")
    store.add_argument("--cluster", action="store_true", help="the Redis URL is a cluster")
    store.add_argument("--json", action="store_true", help="JSON output, for scripts")
    store.add_argument("--user-key", help="the session key that holds the user")
    store.add_argument("-v", "--verbose", action="store_true", help="show the log lines too")
    store.set_defaults(run=_store)
    actions = store.add_subparsers(dest="action", required=True)
    actions.add_parser("count", help="how many sessions there are")
    actions.add_parser("ids", help="every session id")
    listing = actions.add_parser("list", help="sessions: id, user, expiry, size")
    listing.add_argument("--user", help="only this user's sessions")
    for name, text in (("show", "sessions' JSON"), ("destroy", "delete sessions (log out)")):
        action = actions.add_parser(name, help=text)
        action.add_argument("sids", nargs="*", metavar="SID")
    user = actions.add_parser("user", help="a user's sessions, from the per-user index")
    user.add_argument("name", metavar="USER")
    revoke = actions.add_parser("revoke", help="destroy a user's sessions (sign out everywhere)")
    revoke.add_argument("name", metavar="USER")
    revoke.add_argument("--keep", metavar="SID", help="keep this session (the current device)")
    clear = actions.add_parser("clear", help="delete every session in the store")
    clear.add_argument("--yes", action="store_true", help="do not ask")
    actions.add_parser("gc", help="delete expired sessions now (SQL stores)")
    migrate = commands.add_parser(
        "migrate", help="copy another library's stored sessions into a sessionware store"
    )
    migrate.add_argument(
        "--from",
        dest="source",
        required=True,
        help="flask-session+redis://..., starsessions+redis://... or django[:ENGINE]",
    )
    migrate.add_argument("--to", help="the sessionware store's URL (or SESSIONWARE_STORE)")
    migrate.add_argument("--secret", help="the app's first secret (or SESSIONWARE_SECRET)")
    migrate.add_argument("--prefix", help="the sessionware Redis store's prefix (default sess:)")
    migrate.add_argument("--user-key", help="index the copies by this user key, as the app does")
    migrate.add_argument("--keep", action="store_true", help="leave the source's sessions")
    migrate.add_argument("--dry-run", action="store_true", help="count, copy nothing")
    migrate.add_argument("--json", action="store_true", help="JSON output, for scripts")
    migrate.add_argument("-v", "--verbose", action="store_true", help="show the log lines too")
    migrate.set_defaults(run=_migrate)
    return root


def run_on_store(store: Any, words: list[str]) -> int:
    """A ``store`` command on a store the caller already has (Django's ``manage.py sessionware``
    passes the project's)."""
    argv = _ids_are_positional(["store", "--url", "given://", *words])
    try:
        args = parser().parse_args(argv)
        if not hasattr(args, "user"):
            args.user = None
        store.cli_url = type(store).__name__
        return _store_command(store, args)
    except CommandError as exc:
        print(f"sessionware: {exc}", file=sys.stderr)
        return exc.code
    except SystemExit as exc:
        return int(exc.code or 0)


_STORE_VALUES = ("--url", "--redis", "--prefix", "--user-key")
_STORE_FLAGS = ("--cluster", "--json", "-v", "--verbose")


def _ids_are_positional(argv: list[str]) -> list[str]:
    """The ``store`` words as argparse can read them, however people type them: the store's
    options may come after the command (``list --json``) and go before it; a session id may
    start with '-' (base64url ids do, 1 in 64), so ``--keep ID`` becomes ``--keep=ID`` and a
    ``--`` goes in before the ids of ``show`` and ``destroy``."""
    if "store" not in argv:
        return argv
    start = argv.index("store") + 1
    options: list[str] = []
    rest: list[str] = []
    words = argv[start:]
    index = 0
    while index < len(words):
        word = words[index]
        if word == "--":
            rest += words[index:]
            break
        taken = 1
        if word.split("=", 1)[0] in _STORE_VALUES:
            taken = 1 if "=" in word else 2
            options += words[index : index + taken]
        elif word in _STORE_FLAGS:
            options.append(word)
        elif word == "--keep" and index + 1 < len(words):
            rest.append("--keep=" + words[index + 1])
            taken = 2
        else:
            rest.append(word)
        index += taken
    for position, word in enumerate(rest):
        if word in ("show", "destroy"):
            ids = rest[position + 1 :]
            rest = [*rest[: position + 1], *([] if ids[:1] == ["--"] else ["--"]), *ids]
            break
    return [*argv[:start], *options, *rest]


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(_ids_are_positional(list(sys.argv[1:] if argv is None else argv)))
    if not hasattr(args, "user"):
        args.user = None
    try:
        return int(args.run(args))
    except CommandError as exc:
        print(f"sessionware: {exc}", file=sys.stderr)
        return exc.code
    except BrokenPipeError:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return 0
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
