"""The ``pyinfer`` command line, the only place in pyinfer that prints or picks exit statuses.

The argument tree, and one module per command group.

Commands: ``info`` (:mod:`.inspect`), ``run`` (:mod:`.run`), ``profile`` and ``sweep``
(:mod:`.profile`), ``compare`` (:mod:`.compare`), ``env`` (:mod:`.env`), ``demo`` (:mod:`.demo`),
``bench`` and ``formats`` (:mod:`.bench`); each has one ``cmd_<name>()`` and an ``add_parser()``.

Exit statuses (:mod:`.common`): 0 done; 1 a failed run (a model that cannot be loaded, an input
that cannot be read, an item that failed, a damaged report); 2 bad usage (an unknown option, a
malformed value, an option the model cannot take); 3 measured, but not stable; 130 interrupted by
Ctrl-C and 143 by SIGTERM, with what was measured printed and written (a second signal stops the
writing at once; every file is written atomically). Errors are one line on stderr; ``--verbose``
adds the traceback. Frameworks are imported only by the commands that load a model, so
``pyinfer --help`` stays light.
"""

from __future__ import annotations

from pyinfer.cli.app import build_parser, main
from pyinfer.cli.common import (
    EXIT_FAILED,
    EXIT_INTERRUPTED,
    EXIT_OK,
    EXIT_TERMINATED,
    EXIT_UNSTABLE,
    EXIT_USAGE,
    CommandError,
)
from pyinfer.cli.parser import MODEL_FORMATS

__all__ = [
    "EXIT_FAILED",
    "EXIT_INTERRUPTED",
    "EXIT_OK",
    "EXIT_TERMINATED",
    "EXIT_UNSTABLE",
    "EXIT_USAGE",
    "MODEL_FORMATS",
    "CommandError",
    "build_parser",
    "main",
]
