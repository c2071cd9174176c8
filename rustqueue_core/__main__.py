"""``python -m rustqueue_core``: the ``rustqueue`` command."""

from __future__ import annotations

import sys

from rustqueue_core.cli import main

if __name__ == "__main__":
    sys.exit(main())
