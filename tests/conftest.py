"""Settings shared by every test tier."""

from __future__ import annotations

import os

# Before any test module imports numpy: the package pins OpenBLAS's kernels when it is first
# imported (model_server/blas.py), and the recorded answers and the committed models are theirs.
import model_server  # noqa: F401
from hypothesis import settings

# On CI the property tests run derandomized: the same examples every run, so a submission is
# judged on its code, not on the draw. Locally they explore new examples each run.
settings.register_profile("ci", derandomize=True, print_blob=True)
if os.environ.get("CI", "").lower() in ("1", "true", "yes"):
    settings.load_profile("ci")
