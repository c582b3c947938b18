"""``modelfleet_rollouts_total``: the rollout history beside the model repository, counted.

``make rollout`` and ``make rollback`` run on the host and are gone when Prometheus next
scrapes, so they export nothing themselves. What they leave is the history
``<repository>/rollouts.jsonl`` (one JSON object a line, written by scripts/rollout_history.py),
and every replica has the repository mounted: each replica counts its lines by model and
outcome at scrape time. The replicas agree, so queries take ``max by (model, outcome)``.
The file is read again only when its size or modification time changed.
"""

from __future__ import annotations

import os
import threading
from collections import Counter
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Final

from prometheus_client.core import CounterMetricFamily, Metric
from prometheus_client.registry import Collector

from model_server.repository import HISTORY_FILE, history_entries

#: The outcomes a history line records; every model has a series of each, from 0.
OUTCOMES: Final = ("OK", "FAILED")


class RolloutHistoryCollector(Collector):
    """Counts the rollouts in the history of the repository ``repo`` by model and outcome;
    ``models`` start at 0."""

    def __init__(self, repo: Path, models: Iterable[str]) -> None:
        self.repo = repo
        self.path = repo / HISTORY_FILE
        self.models = tuple(models)
        self._lock = threading.Lock()
        self._seen: tuple[int, int] | None = None
        self._counts: dict[tuple[str, str], int] = {}

    def counts(self) -> dict[tuple[str, str], int]:
        """Rollouts by (model, outcome) as the history says now (empty without a history)."""
        try:
            stat = os.stat(self.path)
        except OSError:
            return {}
        seen = (stat.st_mtime_ns, stat.st_size)
        with self._lock:
            if seen != self._seen:
                self._counts, self._seen = _count(self.repo), seen
            return self._counts

    def collect(self) -> Iterator[Metric]:
        """One counter family: every model and outcome, those of the history too."""
        counts = self.counts()
        family = CounterMetricFamily(
            "modelfleet_rollouts",
            "Rollouts and rollbacks of a model that changed something, by outcome (the "
            "history beside the model repository).",
            labels=["model", "outcome"],
        )
        for model, outcome in sorted({*((m, o) for m in self.models for o in OUTCOMES), *counts}):
            family.add_metric([model, outcome], counts.get((model, outcome), 0))
        yield family


def _count(repo: Path) -> dict[tuple[str, str], int]:
    counts: Counter[tuple[str, str]] = Counter()
    try:
        for item in history_entries(repo):
            model, outcome = item.get("model"), item.get("outcome")
            if isinstance(model, str) and model and outcome in OUTCOMES:
                counts[(model, outcome)] += 1
    except OSError:
        return {}
    return dict(counts)
