"""`make rollout NAME=<model> VERSION=<version>`: make VERSION the model's current version and
switch the running replicas to it one at a time, rolling back on the first failure.

    python -m scripts.rollout [--repository models] NAME VERSION   (services/model-server on
                                                                     PYTHONPATH, as make sets it)

1. NAME and VERSION must be in the repository's index.json; else one line, exit status 2, and
   nothing changed. A VERSION that is current already is rolled out all the same, so that every
   replica serves it (e.g. after `model-repository set-current`, which signals no replica).
2. One rollout at a time: the advisory lock ``<repo>/.rollout.lock`` (flock, non-blocking) holds
   the running rollout's name, version and pid; a second rollout is refused naming it.
3. ``set_current``, then each replica (the compose project's ``model`` containers) in turn gets
   SIGHUP (sent from inside, see ``HUP``): its gunicorn master pins the index again, starts
   workers serving the new current versions and stops the old ones gracefully. It is probed
   from inside (``docker exec ... python3``: the image has no curl) until /readyz is 200 and
   every answer of GET /models/NAME names VERSION, for at most ROLLOUT_TIMEOUT seconds (60).
4. On the first failure the previous version is made current again, and every replica already
   switched, the failing one included, gets SIGHUP and is waited for: exit status 1.
5. Every rollout that changed something is appended to the history ``<repo>/rollouts.jsonl``
   (scripts/rollout_history.py). ``--rollback NAME`` (`make rollback NAME=`) rolls out, with
   the same care, the version NAME came from when it last became current; a second rollback
   returns to where the first started, as ``kubectl rollout undo`` does.

One replica at a time, so that at most one is between versions at any moment and a version that
does not load is caught on the first replica, before it reaches the others.
"""

from __future__ import annotations

import argparse
import contextlib
import fcntl
import functools
import os
import sys
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from model_server.repository import (
    Index,
    ModelEntry,
    RepositoryError,
    load_index,
    model_entry,
    set_current,
)

from scripts import rollout_gates, rollout_history
from scripts.rollout_fleet import HUP as HUP
from scripts.rollout_fleet import PROBE as PROBE
from scripts.rollout_fleet import SERVICE, DockerError, Fleet, NotServing
from scripts.rollout_fleet import Docker as Docker
from scripts.rollout_fleet import run_docker as run_docker
from scripts.rollout_gates import GATES, GateFailed, Query, seconds_setting
from scripts.rollout_gates import Bake as Bake
from scripts.rollout_history import Action, Entry

OK, FAILED, REFUSED = 0, 1, 2
LOCK_FILE = ".rollout.lock"
DEFAULT_TIMEOUT = 60.0


class Refused(Exception):
    """A rollout that cannot start; nothing was changed. The message is one line."""


def known_model(index: Index, name: str, version: str | None = None) -> ModelEntry:
    """``repository.model_entry``, refusing (nothing changed yet) what it does not find."""
    try:
        return model_entry(index, name, version)
    except RepositoryError as exc:
        raise Refused(str(exc)) from None


def current_version(index: Index, name: str, version: str) -> str:
    """The current version of ``name``, after checking ``version`` is one of its versions."""
    return known_model(index, name, version).current


@contextlib.contextmanager
def rollout_lock(repo: Path, what: str) -> Iterator[None]:
    """Hold ``<repo>/.rollout.lock`` with ``what`` and the pid in it; Refused if it is held."""
    with open(repo / LOCK_FILE, "a+", encoding="utf-8") as lock:
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            lock.seek(0)
            holder = lock.read().strip() or "pid unknown"
            raise Refused(f"another rollout is running: {holder}; nothing changed") from None
        lock.truncate(0)
        lock.write(f"{what} (pid {os.getpid()})\n")
        lock.flush()
        try:
            yield
        finally:
            # Emptied, not removed: removing it would race with the next rollout's open.
            lock.truncate(0)
            fcntl.flock(lock, fcntl.LOCK_UN)


def rollback_target(repo: Path, name: str) -> str:
    """The version ``make rollback NAME=`` rolls out: the one ``name`` came from when it last
    became current (the history's); Refused when there is none or it was removed since."""
    model = known_model(load_index(repo), name)
    current = model.current
    previous = rollout_history.previous_version(repo, name, current)
    if previous is None:
        raise Refused(
            f"the rollout history ({rollout_history.HISTORY_FILE}) has no rollout that made "
            f"{name} {current} current; roll out a version by name: make rollout NAME={name} "
            "VERSION=<version>"
        )
    if previous not in model.versions:
        raise Refused(f"{name} came from version {previous!r}, which was removed since")
    return previous


def rollout(
    repo: Path,
    name: str,
    version: str,
    fleet: Fleet,
    action: Action = "rollout",
    gates: Bake | None = None,
) -> int:
    """Roll ``name`` ``version`` out to every replica; the exit status (Refused: nothing done).

    With ``gates``, every step but the last bakes (rollout_gates.bake): the candidate replicas
    are compared with the stable ones on the same traffic, and a failing gate rolls back. The
    last step has no stable replica left to compare with; it waits for readiness only.
    """
    current_version(load_index(repo), name, version)
    with rollout_lock(repo, f"{action} {name} {version}"):
        try:
            ids = fleet.replicas()
        except DockerError as exc:
            raise Refused(f"{exc}; nothing changed") from None
        if not ids:
            raise Refused(
                f"no running {SERVICE} replicas in compose project {fleet.project!r} "
                "(make up first); nothing changed"
            )
        # Read again under the lock: another rollout may have moved it since the check above.
        previous = current_version(load_index(repo), name, version)
        set_current(repo, name, version)
        started = fleet.clock()

        steps: list[dict[str, Any]] = []

        def history(outcome: rollout_history.Outcome, verdict: str, **details: Any) -> None:
            seconds = fleet.clock() - started
            entry = Entry(name, previous, version, action, outcome, verdict, len(ids), seconds)
            recorded = rollout_history.record(repo, entry, {"steps": steps, **details})
            print(f"  report: {repo / recorded.report}", flush=True)

        baking = gates if gates is not None and gates.seconds > 0 else None
        if baking is not None and (previous == version or len(ids) < 2):
            why = f"{version} was current already" if previous == version else "one replica"
            print(f"  gates not run: {why}, no stable version to compare with", flush=True)
            baking = None
        passed = ""
        # One replica has nowhere to send its traffic while it switches: switched in place.
        drain = len(ids) > 1
        for done, replica in enumerate(ids, 1):
            try:
                seconds = fleet.switch(replica, name, version, drain)
                print(
                    f"  replica {replica}: serves {name} {version} after {seconds:.1f} s",
                    flush=True,
                )
                steps.append({"replica": replica, "switched_seconds": round(seconds, 1)})
                if baking is not None and done < len(ids):
                    reading, baked = rollout_gates.bake(
                        lambda: rollout_gates.read(
                            baking.query, {"model": name, "version": version}
                        ),
                        baking.seconds,
                        baking.limit,
                        fleet.clock,
                        fleet.sleep,
                    )
                    steps[-1]["bake"] = reading.to_record(baked)
                    passed = ", ".join(reading.describe(g) for g in GATES)
                    print(f"  baked {baked:.0f} s on {done} of {len(ids)}: {passed}", flush=True)
            except (DockerError, NotServing, GateFailed, KeyboardInterrupt) as exc:
                back = roll_back(repo, name, previous, version, ids[:done], fleet, drain)
                why = str(exc) or "interrupted"
                verdict = f"{action} {name} {version}: FAILED on replica {replica}: {why}; {back}"
                failure: dict[str, Any] = {"replica": replica, "reason": why}
                if isinstance(exc, GateFailed) and exc.record is not None:
                    failure["bake"] = exc.record
                history("FAILED", verdict, failure=failure, rollback=back.to_record())
                print(verdict, file=sys.stderr, flush=True)
                return FAILED
        elapsed = fleet.clock() - started
        verdict = f"{action} {name} {version}: OK on {len(ids)} replicas in {elapsed:.1f} s"
        if passed:
            verdict += f" (gates at the last bake: {passed})"
        history("OK", verdict)
        print(verdict)
        return OK


@dataclass(frozen=True)
class Rollback:
    """How a rollback went: its verdict (``str``), the seconds it took (None when it did not
    complete) and the seconds until the failed version was sent no more requests (None
    without a drain)."""

    text: str
    seconds: float | None = None
    out: float | None = None

    def __str__(self) -> str:
        return self.text

    def to_record(self) -> dict[str, Any]:
        """For the report."""
        return {
            "verdict": self.text,
            "seconds": None if self.seconds is None else round(self.seconds, 1),
            "no_requests_after_seconds": None if self.out is None else round(self.out, 1),
        }


def roll_back(
    repo: Path,
    name: str,
    previous: str,
    version: str,
    switched: Sequence[str],
    fleet: Fleet,
    drain: bool = False,
) -> Rollback:
    """Make ``previous`` current again and bring ``switched`` back to it; says how it went.

    With ``drain``, every switched replica is drained at once first, so the load balancer
    sends the failed version nothing more while they switch back one by one, and put back
    after (also when there is nothing to roll back: a failed step leaves its replica drained).
    """
    problems: list[str] = []
    started = fleet.clock()

    def attempt(what: str, step: Callable[[], object]) -> None:
        try:
            step()
        except (DockerError, NotServing) as exc:
            problems.append(f"{what}: {exc}")

    if previous == version:
        if drain:
            attempt("undraining", lambda: fleet.undrain(switched))
        return Rollback(
            f"{version} was current already, nothing to roll back"
            + "".join(f"; {p}" for p in problems)
        )
    try:
        set_current(repo, name, previous)
    except RepositoryError as exc:  # e.g. the previous version was removed meanwhile
        if drain:
            attempt("undraining", lambda: fleet.undrain(switched))
        return Rollback(
            f"rollback to {previous} FAILED: {exc}" + "".join(f"; {p}" for p in problems)
        )
    out = None
    if drain:
        attempt("draining", lambda: fleet.drain(switched))
        out = fleet.clock() - started
    for replica in switched:
        attempt(f"replica {replica}", functools.partial(fleet.switch, replica, name, previous))
    if drain:
        attempt("undraining", lambda: fleet.undrain(switched))
    if problems:
        return Rollback(f"rolled back to {previous} in the index, but " + "; ".join(problems))
    # Until every switched replica answers with the previous version only; with drain, the
    # load balancer sent the failed version nothing more after the first figure.
    seconds = fleet.clock() - started
    took = f"rolled back to {previous} in {seconds:.1f} s"
    if out is not None:
        took += f" (no requests to {version} after {out:.1f} s)"
    return Rollback(took, seconds, out)


def fleet_and_gates(docker: Docker, query: Query | None = None) -> tuple[Fleet, Bake]:
    """The running stack's replicas (``COMPOSE_PROJECT_NAME``) and the gates of its Prometheus
    (``PROMETHEUS_PORT``), with the ROLLOUT_* settings; ValueError naming a bad setting."""
    # The same default as compose.yaml's `name:`, so that `make up` and `make rollout` agree.
    project = os.environ.get("COMPOSE_PROJECT_NAME") or "modelfleet"
    timeout = seconds_setting("ROLLOUT_TIMEOUT", DEFAULT_TIMEOUT)
    bake, limit = rollout_gates.bake_settings()
    prometheus = f"http://127.0.0.1:{os.environ.get('PROMETHEUS_PORT') or '9090'}"
    gates = Bake(bake, limit, query or rollout_gates.prometheus_query(prometheus))
    return Fleet(docker, project, timeout), gates


def main(
    argv: Sequence[str] | None = None, docker: Docker = run_docker, query: Query | None = None
) -> int:
    """Command-line entry point; the exit status (0 rolled out, 1 rolled back, 2 refused)."""
    p = argparse.ArgumentParser(prog="rollout", description=(__doc__ or "").split("\n\n")[0])
    p.add_argument("--repository", type=Path, default=Path("models"))
    p.add_argument("--rollback", action="store_true", help="back to the version NAME came from")
    p.add_argument("name")
    p.add_argument("version", nargs="?")
    args = p.parse_args(argv)
    if args.rollback == (args.version is not None):
        p.error("give NAME and VERSION, or --rollback and NAME alone")
    try:
        fleet, gates = fleet_and_gates(docker, query)
    except ValueError as exc:
        print(f"rollout: {exc}", file=sys.stderr)
        return REFUSED
    try:
        if args.rollback:
            target = rollback_target(args.repository, args.name)
            return rollout(args.repository, args.name, target, fleet, "rollback", gates)
        return rollout(args.repository, args.name, args.version, fleet, gates=gates)
    except (Refused, RepositoryError) as exc:
        print(f"{'rollback' if args.rollback else 'rollout'}: {exc}", file=sys.stderr)
        return REFUSED


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
