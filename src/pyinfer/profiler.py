"""The profiler (kept for one release; import from :mod:`pyinfer.profiling` instead).

Every public name this module had is re-exported from :mod:`pyinfer.profiling`, where the
profiler's jobs (settings, inputs, timing, memory, GPU sampling, sweeps) live in one module each.
"""

from __future__ import annotations

from pyinfer import profiling as _profiling
from pyinfer.profiling import *  # noqa: F403  (every public name, as listed in its __all__)

__all__ = list(_profiling.__all__)
