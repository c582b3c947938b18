"""The gates a rollout bakes against: Prometheus' rollout rules, read and judged.

The gates themselves (what is compared, the tolerances, the traffic a judgement needs) are
recording rules in ``monitoring/prometheus/rules/rollout.yml``, tested with promtool; this
module repeats none of their numbers. It reads, for a candidate (the labels that select it:
``model`` and ``version`` for `make rollout`, ``release`` for a Swarm image update, whose
every model is judged), the worst of its series:

* ``model_version_release_gate:modelfleet_rollout_gate:failing30s`` by ``gate``: 1 failing,
  0 passing, absent while the gate cannot judge (too little traffic on either side);
* the excess, the tolerance and the traffic, to say why;
* on a failure, the candidate's and the stable side's figures of the failing gate.

A step bakes (:func:`bake`) for ``ROLLOUT_BAKE`` seconds. It fails at the first reading with a
failing gate; it passes when the bake time is over and every gate judged and passed in the
last reading; while some gate cannot judge it waits on, up to ``ROLLOUT_BAKE_LIMIT`` seconds,
and then fails closed. Prometheus not answering fails closed too.
"""

from __future__ import annotations

import json
import math
import os
import urllib.parse
import urllib.request
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from typing import Any

#: The gates of rules/rollout.yml, in the order a verdict names them.
GATES = ("errors", "latency", "prediction_mix")
DEFAULT_BAKE = 30.0
DEFAULT_LIMIT = 120.0
#: Seconds between two readings: the rules are evaluated every 5 s by default.
POLL_INTERVAL = 2.0
#: Seconds one query may take.
QUERY_TIMEOUT = 5.0

#: ``query(expr)``: the result of an instant query (a list of samples); GateError if it fails.
Query = Callable[[str], list[dict[str, Any]]]


class GateError(RuntimeError):
    """Prometheus could not be read; the message is one line."""


class GateFailed(RuntimeError):
    """A gate failed, or the gates could not judge in time; the message is the verdict, and
    ``record`` the last reading for the report (None when Prometheus could not be read)."""

    def __init__(self, verdict: str, record: dict[str, Any] | None = None) -> None:
        super().__init__(verdict)
        self.record = record


@dataclass(frozen=True)
class Bake:
    """How each step bakes: ``seconds`` (ROLLOUT_BAKE; 0 bakes nothing), ``limit`` (seconds a
    step waits for enough traffic to judge, ROLLOUT_BAKE_LIMIT) and the gates' Prometheus."""

    seconds: float
    limit: float
    query: Query


def prometheus_query(url: str) -> Query:
    """A Query against the Prometheus at ``url`` (its HTTP API)."""

    def query(expr: str) -> list[dict[str, Any]]:
        target = f"{url}/api/v1/query?{urllib.parse.urlencode({'query': expr})}"
        try:
            # The URL is the operator's own Prometheus (PROMETHEUS_PORT), http on loopback.
            with urllib.request.urlopen(target, timeout=QUERY_TIMEOUT) as answer:  # nosec B310
                body = json.load(answer)
        except (OSError, ValueError) as exc:
            raise GateError(f"Prometheus at {url} did not answer: {exc}") from None
        if body.get("status") != "success":
            raise GateError(f"Prometheus refused {expr!r}: {body.get('error', body)}")
        result = body["data"]["result"]
        return result if isinstance(result, list) else []

    return query


def selector(labels: Mapping[str, str]) -> str:
    """The PromQL label matchers ``{k="v", ...}`` of ``labels``."""
    # PromQL strings take JSON's escapes.
    return "{" + ", ".join(f"{k}={json.dumps(v)}" for k, v in labels.items()) + "}"


def _by(result: list[dict[str, Any]], label: str) -> dict[str, float]:
    out = {}
    for sample in result:
        value = float(sample["value"][1])
        if label in sample["metric"] and not math.isnan(value):
            out[sample["metric"][label]] = value
    return out


def _one(result: list[dict[str, Any]]) -> float | None:
    values = [float(s["value"][1]) for s in result]
    return values[0] if values and not math.isnan(values[0]) else None


@dataclass(frozen=True)
class Reading:
    """The gates of one model version at one moment."""

    failing: Mapping[str, bool]
    excess: Mapping[str, float]
    tolerance: Mapping[str, float]
    requests: float | None
    min_requests: float | None
    figures: Mapping[str, str] = field(default_factory=dict)

    @property
    def failed(self) -> list[str]:
        """The failing gates."""
        return [g for g in GATES if self.failing.get(g)]

    def describe_failed(self) -> str:
        """The failing gates' figures, ``; ``-separated."""
        return "; ".join(self.describe(g) for g in self.failed)

    @property
    def judged(self) -> bool:
        """Whether every gate judged (enough traffic on both sides)."""
        return all(g in self.failing for g in GATES)

    def describe(self, gate: str) -> str:
        """One gate's figures: ``errors 0.300 > 0.02 (candidate 0.300, stable 0.000)``."""
        if gate not in self.excess:
            return f"{gate} not judged"
        op = ">" if self.failing.get(gate) else "<="
        line = f"{gate} {self.excess[gate]:+.3f} {op} {self.tolerance.get(gate, math.nan):g}"
        return f"{line} ({self.figures[gate]})" if gate in self.figures else line

    def to_record(self, seconds: float) -> dict[str, Any]:
        """The reading after ``seconds`` of bake, as a rollout report keeps it (JSON-ready)."""
        return {
            "baked_seconds": round(seconds, 1),
            "requests": self.requests,
            "min_requests": self.min_requests,
            "gates": {
                gate: {
                    "judged": gate in self.failing,
                    "failing": bool(self.failing.get(gate)),
                    "excess": self.excess.get(gate),
                    "tolerance": self.tolerance.get(gate),
                    **({"figures": self.figures[gate]} if gate in self.figures else {}),
                }
                for gate in GATES
            },
        }

    def traffic(self) -> str:
        """Why a gate cannot judge: the smaller side's requests against the minimum."""
        seen = "none" if self.requests is None else f"{self.requests:.0f}"
        need = "?" if self.min_requests is None else f"{self.min_requests:.0f}"
        return f"{seen} prediction requests on the smaller side in 30 s, the gates need {need}"


def read(query: Query, candidate: Mapping[str, str]) -> Reading:
    """The gates of the candidate now (``candidate``: the labels that select its series, e.g.
    ``{"model": "diabetes", "version": "2.0.0"}`` or ``{"release": "swarm-1a2b3c4d5e6f"}``);
    of several series (models) each gate reads the worst; the figures of the failing ones."""
    sel = selector(candidate)
    gate_series = "model_version_release_gate:modelfleet_rollout_gate"
    failing_now = query(f"max by (gate) ({gate_series}:failing30s{sel})")
    judged = "model_version_release:modelfleet_rollout_judged_requests:increase30s"
    reading = Reading(
        failing={gate: value == 1 for gate, value in _by(failing_now, "gate").items()},
        excess=_by(query(f"max by (gate) ({gate_series}:excess30s{sel})"), "gate"),
        tolerance=_by(query("modelfleet:rollout_gate_tolerance"), "gate"),
        requests=_one(query(f"max({judged}{sel})")),
        min_requests=_one(query("modelfleet:rollout_gate_min_requests")),
    )
    if not reading.failed:
        return reading
    figures = {gate: _failing_figures(query, gate, candidate) for gate in reading.failed}
    return replace(reading, figures=figures)


def _failing_figures(query: Query, gate: str, candidate: Mapping[str, str]) -> str:
    """The figures of the series (one model's) that fails ``gate``, named by the labels the
    candidate's selector left open (the model, for a release)."""
    sel = selector({**candidate, "gate": gate})
    failing = query(f"model_version_release_gate:modelfleet_rollout_gate:failing30s{sel} == 1")
    if not failing:  # passed again between the two queries
        return "no longer failing"
    labels = {k: failing[0]["metric"][k] for k in ("model", "version", "release")
              if k in failing[0]["metric"]}  # fmt: skip
    figures = _figures(query, gate, selector(labels))
    opened = [labels[k] for k in ("model", "version") if k in labels and k not in candidate]
    return f"{' '.join(opened)}: {figures}" if opened else figures


#: The candidate's and the stable side's series behind each gate.
_SIGNALS = {
    "errors": (
        "model_version_release:modelfleet_requests_5xx:ratio_increase30s",
        "model_version_release:modelfleet_requests_5xx_stable:ratio_increase30s",
    ),
    "latency": (
        "model_version_release:modelfleet_request_duration_seconds:p99_increase30s",
        "model_version_release:modelfleet_request_duration_seconds_stable:p99_increase30s",
    ),
    "prediction_mix": (
        "model_version_release_class:modelfleet_predictions:share_increase30s",
        "model_version_release_class:modelfleet_predictions_stable:share_increase30s",
    ),
}


def _figures(query: Query, gate: str, sel: str) -> str:
    candidate, stable = (query(f"{series}{sel}") for series in _SIGNALS[gate])
    if gate == "prediction_mix":

        def shares(result: list[dict[str, Any]]) -> str:
            by_class = _by(result, "class")
            return ", ".join(f"{c} {v:.2f}" for c, v in sorted(by_class.items())) or "none"

        return f"class shares: candidate {shares(candidate)}; stable {shares(stable)}"
    unit = " s p99" if gate == "latency" else " 5xx share"

    def figure(result: list[dict[str, Any]]) -> str:
        value = _one(result)
        return "none" if value is None else f"{value:.3f}{unit}"

    return f"candidate {figure(candidate)}, stable {figure(stable)}"


def scraped(query: Query, release: str) -> bool:
    """Whether Prometheus scrapes a replica of ``release`` yet (GateFailed when it cannot
    be read: fail closed)."""
    matchers = selector({"job": "model", "release": release})
    try:
        return bool(query(f"modelfleet_replica_info{matchers}"))
    except GateError as exc:
        raise GateFailed(f"gates unreadable: {exc}") from None


def bake_release(
    gates: Bake,
    release: str,
    clock: Callable[[], float],
    sleep: Callable[[float], None],
    check: Callable[[], None] = lambda: None,
) -> str:
    """Wait until a replica of ``release`` is scraped, then bake it against the other
    releases (:func:`bake`); what passed, one line. GateFailed when none is scraped within
    ``gates.limit`` or the bake fails. ``check`` runs before each reading and may raise to
    stop (a Swarm update that Swarm ended itself)."""
    start = clock()
    while not scraped(gates.query, release):
        check()
        if clock() - start >= gates.limit:
            raise GateFailed(f"no replica of {release} was scraped in {gates.limit:.0f} s")
        sleep(POLL_INTERVAL)
    candidate = {"release": release}

    def reading() -> Reading:
        check()
        return read(gates.query, candidate)

    passed, baked = bake(reading, gates.seconds, gates.limit, clock, sleep)
    figures = ", ".join(passed.describe(g) for g in GATES)
    return f"gates passed after {baked:.0f} s of bake on {release}: {figures}"


def recheck(query: Query, candidate: Mapping[str, str], elapsed: float) -> None:
    """One reading after the bake, ``elapsed`` seconds into the step: GateFailed when a gate
    fails or the gates cannot be read (fail closed)."""
    try:
        now = read(query, candidate)
    except GateError as exc:
        raise GateFailed(f"gates unreadable: {exc}") from None
    if now.failed:
        raise GateFailed(f"gate {now.describe_failed()} after the bake", now.to_record(elapsed))


def bake(
    read_now: Callable[[], Reading],
    seconds: float,
    limit: float,
    clock: Callable[[], float],
    sleep: Callable[[float], None],
) -> tuple[Reading, float]:
    """Bake one step: the last reading and the seconds it took. GateFailed (its message the
    verdict) when a gate fails, when the gates cannot judge within ``limit`` seconds, or when
    Prometheus cannot be read (fail closed)."""
    start = clock()
    while True:
        try:
            reading = read_now()
        except GateError as exc:
            raise GateFailed(f"gates unreadable: {exc}") from None
        elapsed = clock() - start
        if reading.failed:
            verdict = f"gate {reading.describe_failed()} after {elapsed:.1f} s of bake"
            raise GateFailed(verdict, reading.to_record(elapsed))
        if reading.judged and elapsed >= seconds:
            return reading, elapsed
        if elapsed >= max(limit, seconds):
            verdict = f"gates could not judge in {elapsed:.0f} s: {reading.traffic()}"
            raise GateFailed(verdict, reading.to_record(elapsed))
        sleep(POLL_INTERVAL)


def seconds_setting(name: str, default: float, zero: bool = False) -> float:
    """The environment variable ``name`` as seconds (``default`` when unset or empty);
    ValueError saying what is wrong unless it is positive (or 0, with ``zero``)."""
    raw = os.environ.get(name) or str(default)
    try:
        value = float(raw)
    except ValueError:
        value = math.nan
    if not (value >= 0 if zero else value > 0):  # also refuses nan
        kind = "0 or a positive" if zero else "a positive"
        raise ValueError(f"{name} must be {kind} number of seconds, not {raw!r}")
    return value


def bake_settings() -> tuple[float, float]:
    """``ROLLOUT_BAKE`` (0: no gates) and ``ROLLOUT_BAKE_LIMIT`` in seconds; ValueError
    naming the setting when one is not a number of seconds."""
    return (
        seconds_setting("ROLLOUT_BAKE", DEFAULT_BAKE, zero=True),
        seconds_setting("ROLLOUT_BAKE_LIMIT", DEFAULT_LIMIT),
    )
