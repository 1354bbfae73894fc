"""Testing helpers for projects that use pyinfer: the pytest plugin.

:mod:`pyinfer.testing.plugin` is registered with pytest through the ``pytest11`` entry point, so
a project with pyinfer installed gets the ``pyinfer_benchmark`` fixture and the ``--pyinfer-*``
options without configuring anything. Loading the plugin imports only pytest and the standard
library; pyinfer's profiler is imported when a test first uses the fixture.
"""

from __future__ import annotations
