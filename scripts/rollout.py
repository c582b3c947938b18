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
import json
import os
import subprocess
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

from model_server.repository import (
    Index,
    ModelEntry,
    RepositoryError,
    load_index,
    model_entry,
    set_current,
)

from scripts import rollout_history
from scripts.rollout_history import Action, Entry

OK, FAILED, REFUSED = 0, 1, 2

#: SIGHUP to the container's init (docker-init, which passes it to the gunicorn master), sent
#: from inside. Not ``docker kill --signal HUP``: Docker marks a container signalled that way as
#: stopped by hand, so its ``unless-stopped`` policy no longer restarts it when it later crashes
#: (moby/moby#41302, still so in Docker 20.10 here: a replica killed after a rollout stayed
#: down). bash's builtin ``kill``: the slim image has no /bin/kill.
HUP = ("bash", "-c", "kill -HUP 1")
LOCK_FILE = ".rollout.lock"
DEFAULT_TIMEOUT = 60.0
SERVICE = "model"
#: Seconds between two probes of a replica that does not serve the version yet.
POLL_INTERVAL = 0.5
#: Seconds one docker command may take (a probe is at most 9 requests of at most 2 s each).
DOCKER_TIMEOUT = 30.0
#: Answers asked per probe: a replica's old workers finish their requests after its new ones
#: start, so one answer says nothing about the replica's other workers.
PROBE_REQUESTS = 8
# Run inside a replica as `python3 -c PROBE NAME`; prints {"ready": bool, "versions": [...]}. A
# refused or failed request (workers being replaced) is an answer too (None, or the HTTP status
# and error code of a refusal, e.g. "HTTP 503 model_unavailable" for a version that did not
# load), never an error, so that the caller keeps polling until its timeout.
PROBE = f"""
import json, sys, urllib.error, urllib.request
def get(path):
    try:
        with urllib.request.urlopen("http://127.0.0.1:8080" + path, timeout=2) as answer:
            return answer.status, json.load(answer)
    except urllib.error.HTTPError as refused:
        try:
            return refused.code, json.load(refused)
        except Exception:
            return refused.code, {{}}
    except Exception:
        return None, {{}}
def version(status, body):
    if status == 200:
        return body.get("version")
    error = body.get("error")
    code = error.get("code") if isinstance(error, dict) else None
    return None if status is None else f"HTTP {{status}} {{code or ''}}".strip()
ready = get("/readyz")[0] == 200
versions = [version(*get("/models/" + sys.argv[1])) for _ in range({PROBE_REQUESTS})]
print(json.dumps({{"ready": ready, "versions": versions}}))
"""

#: ``docker(args, timeout)``: the standard output of ``docker <args>``; DockerError if it fails.
Docker = Callable[[Sequence[str], float], str]


class Refused(Exception):
    """A rollout that cannot start; nothing was changed. The message is one line."""


class DockerError(RuntimeError):
    """A docker command failed or timed out; the message is one line."""


class NotServing(RuntimeError):
    """A replica did not serve the version in time; the message says what it answered."""


def run_docker(args: Sequence[str], timeout: float) -> str:
    """Run ``docker <args>`` (an argument list, no shell) and return its standard output."""
    try:
        proc = subprocess.run(
            ["docker", *args], capture_output=True, text=True, timeout=timeout, check=False
        )
    except subprocess.TimeoutExpired:
        raise DockerError(f"docker {args[0]} timed out after {timeout:g} s") from None
    except OSError as exc:
        raise DockerError(f"docker: {exc.strerror or exc}") from None
    if proc.returncode != 0:
        lines = proc.stderr.strip().splitlines() or [f"exit status {proc.returncode}"]
        raise DockerError(f"docker {args[0]}: {lines[-1]}")
    return proc.stdout


@dataclass(frozen=True)
class Fleet:
    """A compose project's replicas: docker, the wait per replica, and the clock to wait by."""

    docker: Docker
    project: str
    timeout: float
    clock: Callable[[], float] = time.monotonic
    sleep: Callable[[float], None] = time.sleep

    def replicas(self) -> list[str]:
        """The ids of the project's running model containers (compose labels them)."""
        filters = [
            f"label=com.docker.compose.project={self.project}",
            f"label=com.docker.compose.service={SERVICE}",
        ]
        args = ["ps", "-q", *(a for f in filters for a in ("--filter", f))]
        return self.docker(args, DOCKER_TIMEOUT).split()

    def switch(self, replica: str, name: str, version: str) -> float:
        """SIGHUP ``replica``, then probe it until it is ready and every answer names ``version``.

        Returns the seconds it took. Raises DockerError if the signal cannot be sent, NotServing
        after ``timeout`` seconds, saying what the replica answered last.
        """
        start = self.clock()
        self.docker(["exec", replica, *HUP], DOCKER_TIMEOUT)
        probe = ["exec", replica, "python3", "-c", PROBE, name]
        while True:
            try:
                answer = json.loads(self.docker(probe, DOCKER_TIMEOUT))
                versions = set(answer["versions"])
                if answer["ready"] and versions == {version}:
                    return self.clock() - start
                served = ", ".join(sorted("no answer" if v is None else str(v) for v in versions))
                last = f"answers {served}" if answer["ready"] else "not ready (/readyz)"
            except (DockerError, ValueError, KeyError, TypeError) as exc:
                # A container being restarted, or a garbled probe: poll on until the timeout.
                last = str(exc)
            if self.clock() - start >= self.timeout:
                raise NotServing(f"not serving {version} after {self.timeout:g} s ({last})")
            self.sleep(POLL_INTERVAL)


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


def rollout(repo: Path, name: str, version: str, fleet: Fleet, action: Action = "rollout") -> int:
    """Roll ``name`` ``version`` out to every replica; the exit status (Refused: nothing done)."""
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

        def history(outcome: rollout_history.Outcome, verdict: str) -> None:
            seconds = fleet.clock() - started
            entry = Entry(name, previous, version, action, outcome, verdict, len(ids), seconds)
            rollout_history.record(repo, entry)

        for done, replica in enumerate(ids, 1):
            try:
                seconds = fleet.switch(replica, name, version)
            except (DockerError, NotServing, KeyboardInterrupt) as exc:
                outcome = roll_back(repo, name, previous, version, ids[:done], fleet)
                why = str(exc) or "interrupted"
                verdict = (
                    f"{action} {name} {version}: FAILED on replica {replica}: {why}; {outcome}"
                )
                print(verdict, file=sys.stderr, flush=True)
                history("FAILED", verdict)
                return FAILED
            print(f"  replica {replica}: serves {name} {version} after {seconds:.1f} s", flush=True)
        elapsed = fleet.clock() - started
        verdict = f"{action} {name} {version}: OK on {len(ids)} replicas in {elapsed:.1f} s"
        print(verdict)
        history("OK", verdict)
        return OK


def roll_back(
    repo: Path, name: str, previous: str, version: str, switched: Sequence[str], fleet: Fleet
) -> str:
    """Make ``previous`` current again and bring ``switched`` back to it; says how it went."""
    if previous == version:
        return f"{version} was current already, nothing to roll back"
    try:
        set_current(repo, name, previous)
    except RepositoryError as exc:  # e.g. the previous version was removed meanwhile
        return f"rollback to {previous} FAILED: {exc}"
    problems = []
    for replica in switched:
        try:
            fleet.switch(replica, name, previous)
        except (DockerError, NotServing) as exc:
            problems.append(f"replica {replica}: {exc}")
    if problems:
        return f"rolled back to {previous} in the index, but " + "; ".join(problems)
    return f"rolled back to {previous}"


def main(argv: Sequence[str] | None = None, docker: Docker = run_docker) -> int:
    """Command-line entry point; the exit status (0 rolled out, 1 rolled back, 2 refused)."""
    p = argparse.ArgumentParser(prog="rollout", description=(__doc__ or "").split("\n\n")[0])
    p.add_argument("--repository", type=Path, default=Path("models"))
    p.add_argument("--rollback", action="store_true", help="back to the version NAME came from")
    p.add_argument("name")
    p.add_argument("version", nargs="?")
    args = p.parse_args(argv)
    if args.rollback == (args.version is not None):
        p.error("give NAME and VERSION, or --rollback and NAME alone")
    # The same default as compose.yaml's `name:`, so that `make up` and `make rollout` agree.
    project = os.environ.get("COMPOSE_PROJECT_NAME") or "modelfleet"
    raw = os.environ.get("ROLLOUT_TIMEOUT") or str(DEFAULT_TIMEOUT)
    try:
        timeout = float(raw)
        if not timeout > 0:  # also refuses nan
            raise ValueError(raw)
    except ValueError:
        print(
            f"rollout: ROLLOUT_TIMEOUT must be a positive number of seconds, not {raw!r}",
            file=sys.stderr,
        )
        return REFUSED
    fleet = Fleet(docker, project, timeout)
    try:
        if args.rollback:
            target = rollback_target(args.repository, args.name)
            return rollout(args.repository, args.name, target, fleet, action="rollback")
        return rollout(args.repository, args.name, args.version, fleet)
    except (Refused, RepositoryError) as exc:
        print(f"{'rollback' if args.rollback else 'rollout'}: {exc}", file=sys.stderr)
        return REFUSED


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
