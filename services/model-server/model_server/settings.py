"""Server settings: one frozen object, read from the environment once at start-up.

Every field is set by an environment variable named ``MODELFLEET_<FIELD NAME IN CAPS>``
(``PROMETHEUS_MULTIPROC_DIR`` keeps the name prometheus-client defines). Invalid values stop
the server at start-up with a message naming the variable; nothing is read per request.
"""

from __future__ import annotations

import logging
import os
import socket
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any, Final, get_type_hints

PREFIX: Final = "MODELFLEET_"
_LOG_LEVELS: Final = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")


@dataclass(frozen=True, kw_only=True)
class Settings:
    """Typed configuration of the model server (see the module docstring for the env names)."""

    model_dir: Path = Path("/opt/modelfleet/models")
    """The model repository: ``index.json`` and one bundle directory per model version
    (``<name>/<version>/manifest.json`` and ``model.skops``), mounted read-only. Every version
    the index lists is loaded and verified at start-up."""

    index_file: Path | None = None
    """The index this process serves (default: ``<model_dir>/index.json``). gunicorn.conf.py
    sets it to a copy of the repository's index that the master pins at start and on SIGHUP,
    so the versions a replica serves change only when it is told to (``make rollout``)."""

    # In the container /tmp is its own tmpfs, writable by the server's user only (compose.yaml).
    drain_file: Path = Path("/tmp/modelfleet.drain")  # nosec B108
    """While this file exists the replica drains: readiness answers 503 ``draining`` (its
    models stay loaded and it answers whatever it is still sent), so the load balancer stops
    sending it requests. ``make rollout`` creates it before it switches a replica's version
    and removes it once the replica serves the new one (scripts/rollout_fleet.py)."""

    default_model: str = "diabetes"
    """Model used by routes that name none: ``/predict_data``, ``/invocations`` without
    ``X-Amzn-SageMaker-Target-Model``."""

    max_rows: int = 10_000
    """Largest number of rows one request may carry; more is refused with 413."""

    max_body_bytes: int = 4 * 1024 * 1024
    """Largest request body in bytes (Flask ``MAX_CONTENT_LENGTH``); more is refused with 413."""

    replica_id: str = field(default_factory=socket.gethostname)
    """Identity of this replica: the ``X-Served-By`` response header and the ``replica``
    label of ``modelfleet_replica_info``. Defaults to the host name (the container id)."""

    release: str = ""
    """What this replica runs, as the ``release`` label of ``modelfleet_replica_info``: the
    rollout gates compare the replicas of a new release with the others on the same traffic
    (monitoring/prometheus/rules/rollout.yml). ``make swarm-up`` sets the image's unique tag;
    empty (no label) on Compose, where rollouts change versions, not images."""

    log_level: str = "INFO"
    """Level of the ``model_server`` loggers: DEBUG, INFO, WARNING, ERROR or CRITICAL."""

    port: int = 8080
    """TCP port gunicorn binds on 0.0.0.0 (gunicorn.conf.py)."""

    probe_port: int = 8081
    """TCP port of the probes (``/readyz``, ``/healthz``), answered by a thread of each worker
    outside the prediction threads, so they never wait behind predictions
    (model_server/probes.py); the load balancer and the container healthcheck use it. 0: no
    probe port (the probes stay on the serving port only)."""

    workers: int = 2
    """Number of gunicorn worker processes (gunicorn.conf.py)."""

    threads: int = 4
    """Threads per gunicorn gthread worker (gunicorn.conf.py)."""

    worker_timeout: int = 10
    """Seconds a gunicorn worker may go without a heartbeat before the master kills and
    replaces it (a hung or stopped process). gthread workers beat from their main loop while
    requests run in threads, so a long batch does not count against it."""

    max_requests: int = 100_000
    """Requests after which a gunicorn worker is recycled (replaced by a fresh one, after it
    finished its current requests), bounding what a slow leak can grow to; 0: never. With
    ``max_requests_jitter``; at 2,000 requests/s per worker a worker lives about a minute."""

    max_requests_jitter: int = 10_000
    """Random extra requests (0 to this) per worker before recycling, so that the workers of
    a replica, started together, are not recycled together."""

    access_log: bool = False
    """Write a JSON access-log line per request to stdout (gunicorn.conf.py). Off by default:
    nginx already logs every request, and the metrics carry the aggregates."""

    prometheus_multiproc_dir: str | None = None
    """``PROMETHEUS_MULTIPROC_DIR`` (no prefix): where prometheus-client's multiprocess mode
    keeps per-worker metric files. Set by docker-entrypoint.sh under gunicorn; unset in unit
    tests and ``make serve``, where the in-process registry is used."""

    def __post_init__(self) -> None:
        for name in ("max_rows", "max_body_bytes", "port", "workers", "threads", "worker_timeout"):
            if getattr(self, name) < 1:
                raise ValueError(f"{PREFIX}{name.upper()} must be a positive integer")
        if not 0 <= self.probe_port <= 65535 or self.probe_port == self.port:
            raise ValueError(f"{PREFIX}PROBE_PORT must be 0 or a TCP port other than {PREFIX}PORT")
        for name in ("max_requests", "max_requests_jitter"):
            if getattr(self, name) < 0:
                raise ValueError(f"{PREFIX}{name.upper()} must be 0 or a positive integer")
        if self.log_level not in _LOG_LEVELS:
            raise ValueError(f"{PREFIX}LOG_LEVEL must be one of {', '.join(_LOG_LEVELS)}")
        if not self.replica_id:
            raise ValueError(f"{PREFIX}REPLICA_ID must not be empty")

    @property
    def log_level_number(self) -> int:
        """``log_level`` as a ``logging`` constant."""
        return logging.getLevelNamesMapping()[self.log_level]

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> Settings:
        """Build settings from ``environ`` (default ``os.environ``); unset vars keep defaults.

        Raises:
            ValueError: naming the variable, if a value cannot be converted or is invalid.
        """
        env = os.environ if environ is None else environ
        types = get_type_hints(cls)  # the annotations are strings (from __future__)
        values: dict[str, Any] = {}
        for f in fields(cls):
            key = (
                "PROMETHEUS_MULTIPROC_DIR"
                if f.name == "prometheus_multiproc_dir"
                else PREFIX + f.name.upper()
            )
            raw = env.get(key)
            if raw is None or raw == "":
                continue
            values[f.name] = _convert(key, types[f.name], raw)
        return cls(**values)


def _parse_bool(raw: str) -> bool:
    lowered = raw.strip().lower()
    if lowered in ("1", "true", "yes", "on"):
        return True
    if lowered in ("0", "false", "no", "off"):
        return False
    raise ValueError(raw)


#: How a variable's text becomes each field type. A field of any other type is a programming
#: error that ``from_env`` reports, rather than passing the text through unconverted.
_CONVERTERS: dict[Any, Callable[[str], Any]] = {
    int: int,
    bool: _parse_bool,
    Path: Path,
    Path | None: Path,
    str: str,
    str | None: str,
}


def _convert(key: str, field_type: Any, raw: str) -> Any:
    converter = _CONVERTERS.get(field_type)
    if converter is None:
        raise TypeError(f"{key}: settings have no converter for fields of type {field_type!r}")
    try:
        value = converter(raw)
    except ValueError:
        raise ValueError(
            f"{key}={raw!r} is not a valid {getattr(field_type, '__name__', field_type)}"
        ) from None
    return value.strip().upper() if key.endswith("LOG_LEVEL") else value
