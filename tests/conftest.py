"""Settings for the whole suite."""

from __future__ import annotations

import os
from datetime import timedelta

from hypothesis import HealthCheck, settings

# Two profiles for hypothesis. "ci" (the default) is derandomized, so a run on CI is the
# same run every time, and has a deadline that holds on 2 shared cores; "dev" explores new
# examples on every run (HYPOTHESIS_PROFILE=dev pytest ...).
settings.register_profile(
    "ci",
    deadline=timedelta(seconds=5),
    derandomize=True,
    suppress_health_check=[HealthCheck.too_slow],
    print_blob=True,
)
settings.register_profile("dev", deadline=timedelta(seconds=2))
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))
