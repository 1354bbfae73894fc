"""Preprocessing pipelines (kept for one release; import from :mod:`pyinfer.preprocess` instead).

Every public name this module had is re-exported from :mod:`pyinfer.preprocess`, where the
items, image, ImageNet and text steps now live in one module each.
"""

from __future__ import annotations

from pyinfer import preprocess as _preprocess
from pyinfer.preprocess import *  # noqa: F403  (every public name, as listed in its __all__)

__all__ = list(_preprocess.__all__)
