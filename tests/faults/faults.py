"""Faults injected into chosen model versions, for the rollout stack tests only.

This module is in the test image ``modelfleet/model-server-faults`` (tests/faults/Dockerfile)
and never in the served image. ``MODELFLEET_FAULTS`` names the faulty versions:

    MODELFLEET_FAULTS="diabetes/1.3.0=error:0.3 diabetes/1.4.0=delay:0.2"

``error:P``: a prediction of that version raises with probability P, so the server answers 500
as it does for any model that fails; ``delay:S``: every prediction of that version takes S
seconds longer. Both happen inside the request, where the server measures it, so its metrics
(and the rollout gates) see them as they would see a bad model.
"""

from __future__ import annotations

import random
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Fault:
    """What goes wrong with one model version."""

    error: float = 0.0
    delay: float = 0.0


def parse(spec: str) -> dict[tuple[str, str], Fault]:
    """``MODELFLEET_FAULTS`` as {(model, version): Fault}; ValueError naming a bad item."""
    faults = {}
    for item in spec.split():
        try:
            target, kinds = item.split("=", 1)
            name, version = target.split("/", 1)
            values = dict(kind.split(":", 1) for kind in kinds.split(","))
            fault = Fault(float(values.pop("error", 0)), float(values.pop("delay", 0)))
        except ValueError:
            raise ValueError(f"MODELFLEET_FAULTS: cannot read {item!r}") from None
        if values:
            raise ValueError(f"MODELFLEET_FAULTS: unknown fault {sorted(values)} in {item!r}")
        faults[(name, version)] = fault
    return faults


class InjectedFault(RuntimeError):
    """The error a faulty version's prediction raises."""


def install(faults: Mapping[tuple[str, str], Fault]) -> None:
    """Make ``Predictor.predict`` of the faulty versions fail or lag, in this process.

    Called in each worker after its models loaded (their golden rows were checked faultless).
    """
    from model_server.core.predict import Predictor

    if not faults or getattr(Predictor.predict, "injected", False):
        return
    predict = Predictor.predict

    def faulty_predict(self: Predictor, x: Any) -> Any:
        manifest = self.bundle.manifest
        fault = faults.get((manifest.name, manifest.version))
        if fault is not None:
            if fault.delay:
                time.sleep(fault.delay)
            if fault.error and random.random() < fault.error:
                raise InjectedFault(f"fault injected into {manifest.name} {manifest.version}")
        return predict(self, x)

    faulty_predict.injected = True  # type: ignore[attr-defined]
    Predictor.predict = faulty_predict  # type: ignore[method-assign]
