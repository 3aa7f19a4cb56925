"""``manage.py sessionware ACTION``: the ``sessionware store`` commands on the project's store
(``count``, ``ids``, ``list``, ``show``, ``destroy``, ``clear``, ``gc``; ``--json``)."""

from __future__ import annotations

import sys
from typing import Any

from django.core.management.base import BaseCommand, CommandParser

from .....cli import run_on_store
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
        code = run_on_store(runtime().store, list(options["words"]))
        if code:
            sys.exit(code)
