"""``manage.py sessionware ACTION``: the ``sessionware store`` commands on the project's store
(``count``, ``ids``, ``list``, ``show``, ``destroy``, ``clear``, ``gc``; ``--json``), and
``migrate [--dry-run] [--keep]``: Django's own sessions copied into it ahead of the deploy."""

from __future__ import annotations

import sys
from typing import Any

from django.core.management.base import BaseCommand, CommandParser

from .....cli import run_migrate_on_store, run_on_store
from ... import runtime


class Command(BaseCommand):
    help = "Inspect or clean the session store (the `sessionware store` commands)."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("words", nargs="*", help="count | ids | list | show SID... | ...")

    def run_from_argv(self, argv: list[str]) -> None:
        """Everything after the command name goes to sessionware's own parser untouched (ids
        may start with '-')."""
        self.execute(
            words=argv[2:], traceback=False, no_color=False, force_color=False, skip_checks=True
        )

    def handle(self, *args: Any, **options: Any) -> None:
        words = list(options["words"])
        current = runtime()
        if words[:1] == ["migrate"]:
            code = run_migrate_on_store(current.store, current.engine.secrets[0], words[1:])
        else:
            code = run_on_store(current.store, words)
        if code:
            sys.exit(code)
