"""The inference engine (kept for one release; import from :mod:`pyinfer.engine` instead).

Every public name this module had is re-exported from :mod:`pyinfer.engine`, where the engine's
jobs (dataset listing, prefetch, batching, out-of-memory back-off, upload, batch-size choice)
now live in one module each.
"""

from __future__ import annotations

from pyinfer import engine as _engine
from pyinfer.engine import *  # noqa: F403  (every public name, as listed in its __all__)

__all__ = list(_engine.__all__)
