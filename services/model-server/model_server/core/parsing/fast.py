"""The one switch for the parsers' fast paths.

Every fast path in this package (C-level loops over lists of JSON numbers, numpy's text
reader for number-only CSV, the one-row range check without numpy) only *accepts* input
that is well-formed everywhere and returns ``None`` otherwise, so the exact per-row,
per-cell path finds and names the problem. They change the cost, never the answer or the
error: ``tests/unit/test_parsing_fast_paths.py`` sets ``ENABLED`` to ``False`` and compares
every outcome, bit for bit.
"""

from __future__ import annotations

#: Whether the fast paths run (only the differential tests switch them off).
ENABLED: bool = True
