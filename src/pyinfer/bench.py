"""The benchmark suite's old module path, kept for one release; import from :mod:`pyinfer.suite`.

Re-exports the public API of :mod:`pyinfer.suite` (``run_suite``, ``compare_formats``,
``SuiteConfig`` and the results).
"""

from __future__ import annotations

from pyinfer.suite import *  # noqa: F403
from pyinfer.suite import __all__  # noqa: F401
