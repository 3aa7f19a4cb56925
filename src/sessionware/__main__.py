"""``python -m sessionware demo`` (and every other ``sessionware`` command)."""

import sys

from .cli import main

sys.exit(main())
