"""The rollout gates on Swarm: `make swarm-up` judges a new model-server image as `make rollout`
judges a new model version, with the same gates and the same code (scripts/rollout_gates.py).

Swarm replaces the replicas one at a time (compose.yaml's ``update_config``: start-first,
rolled back by Swarm when a new task fails or never becomes healthy). Each replica reports
what it runs as the ``release`` label of ``modelfleet_replica_info`` (``MODELFLEET_RELEASE``,
set to the image's unique tag), so the gates of rules/rollout.yml compare the replicas of
the new release with those still on the old one, on the same traffic, for every model.

Swarm does not wait for a verdict, so the stack file makes it wait: ``update_config.delay``
between two replicas is the bake plus the gates' window (:func:`update_delay`). While the
first new replica serves, the gates bake for ``ROLLOUT_BAKE`` seconds
(``rollout_gates.bake``: fail at the first failing gate, fail closed when they cannot judge
within ``ROLLOUT_BAKE_LIMIT`` or Prometheus does not answer); after that every reading until
Swarm completes the update is checked again. A failure is answered with
``docker service rollback``: Swarm puts the old image back, one replica at a time.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from scripts import rollout_gates
from scripts.rollout_gates import GateFailed
from scripts.swarm_services import (
    STACK,
    UPDATE_DONE,
    SwarmError,
    docker,
    say,
    service_status,
    wait_for,
)

#: Seconds the gates need beyond the bake before they can judge a new replica: their 30 s
#: window (rules/rollout.yml) and a scrape and an evaluation after it.
WINDOW = 40.0


class SwarmFinished(Exception):
    """Swarm ended the update itself (rolled it back, or paused it): nothing left to judge."""


@dataclass(frozen=True)
class Update:
    """The update being judged: the new release, how many replicas the service runs, and
    ``state()``, the state of Swarm's update of the service (``docker service inspect``'s
    ``UpdateStatus.State``: updating, completed, rollback_started, ...)."""

    release: str
    replicas: int
    state: Callable[[], str]
    #: Seconds after which the judgement stops waiting for Swarm to complete the update.
    timeout: float = 3600.0


def update_delay(bake: float) -> float:
    """``update_config.delay`` of the replicas, in seconds: long enough for the gates to judge
    each new replica before Swarm replaces the next old one; none without gates."""
    return bake + WINDOW if bake > 0 else 0.0


def _ended(state: str) -> bool:
    """Whether Swarm ended the update itself: rolling or rolled back, or paused."""
    return state.startswith("rollback") or state == "paused"


def judge(
    update: Update,
    gates: rollout_gates.Bake,
    clock: Callable[[], float],
    sleep: Callable[[float], None],
) -> str:
    """Judge ``update`` until Swarm completes it; what was judged, one line. GateFailed (the
    verdict) when a gate fails or the gates cannot judge in time: the caller rolls back.
    SwarmFinished when Swarm ended the update itself."""
    if gates.seconds <= 0:
        return "gates not run (ROLLOUT_BAKE=0)"
    if update.replicas < 2:
        return "gates not run: one replica, no old image to compare with"

    def check() -> None:
        if _ended(state := update.state()):
            raise SwarmFinished(state)

    start = clock()
    verdict = rollout_gates.bake_release(gates, update.release, clock, sleep, check)
    # Swarm goes on with the next replicas: each reading until it completes must pass too.
    while update.state() == "updating" and clock() - start < update.timeout:
        rollout_gates.recheck(gates.query, {"release": update.release}, clock() - start)
        sleep(rollout_gates.POLL_INTERVAL)
    return verdict


class RolledBackByGates(SwarmError):
    """The rollout gates failed a new image and Swarm rolled it back."""


def release(image: str) -> str:
    """What a replica of ``image`` reports as its release: the image's unique tag."""
    return image.rsplit(":", 1)[-1]


def judge_update(
    before: dict[str, str],
    new: str,
    replicas: dict[str, Any],
    gates: rollout_gates.Bake,
    timeout: float,
    clock: Callable[[], float] = time.monotonic,
    sleep: Callable[[float], None] = time.sleep,
) -> None:
    """Judge Swarm's update of the replicas (``before``: their service's status before the
    deploy) to release ``new`` for at most ``timeout`` seconds, and say the verdict; on a
    failing gate roll the update back and raise RolledBackByGates with the verdict."""

    def state() -> str:
        now = service_status()["model"]
        return "updating" if now["started"] == before["started"] else now["state"]

    update = Update(new, int(replicas["deploy"]["replicas"]), state, timeout)
    try:
        say(f"model: {judge(update, gates, clock, sleep)}")
    except SwarmFinished:
        return  # Swarm rolled back by itself: wait_for_updates says why
    except GateFailed as e:
        say(f"model: {e}: rolling back")
        docker("service", "rollback", "--detach", f"{STACK}_model")
        wait_for("the gates' rollback", lambda: None if state() in UPDATE_DONE else state())
        now = service_status()["model"]
        raise RolledBackByGates(
            f"model: rolled back by the gates ({now['state']}): {e}; it serves {now['image']}"
        ) from None
