"""Loading models of every common format (kept for one release; import from pyinfer.loading).

The detection and the loaders live in :mod:`pyinfer.loading` (:mod:`pyinfer.loading.detect`,
:mod:`pyinfer.loading.loaders`); this module re-exports its public names.
"""

from __future__ import annotations

from pyinfer import loading as _loading
from pyinfer.loading import *  # noqa: F403  (every public name, as listed in its __all__)

__all__ = list(_loading.__all__)
