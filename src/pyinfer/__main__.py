"""``python -m pyinfer``: the same as the ``pyinfer`` command."""

from __future__ import annotations

import sys

from pyinfer.cli import main

if __name__ == "__main__":
    sys.exit(main())
