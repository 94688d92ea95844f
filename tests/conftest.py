"""Settings every test tier shares."""

from __future__ import annotations

from hypothesis import settings

# Examples are judged by what they assert, not by how fast a loaded machine runs them: a
# per-example deadline only turns a busy CI runner into flaky failures.
settings.register_profile("gridedge", deadline=None)
settings.load_profile("gridedge")
