"""Shared test configuration: hypothesis profiles and a non-interactive matplotlib backend.

`make test` and CI run the same thing: the derandomized ``ci`` profile (the same examples on
every run, no example database). ``HYPOTHESIS_PROFILE=dev`` (``make test-explore``) explores
randomly and keeps failing examples in ``.hypothesis/`` so that they replay until fixed; add
``--hypothesis-seed=N`` to repeat one exploration.
"""

from __future__ import annotations

import os

import matplotlib
from hypothesis import HealthCheck, settings

matplotlib.use("Agg")

_COMMON = {"max_examples": 30, "deadline": None, "suppress_health_check": [HealthCheck.too_slow]}
settings.register_profile("dev", **_COMMON)
settings.register_profile("ci", **_COMMON, derandomize=True, database=None, print_blob=True)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))
