"""Gunicorn configuration for the model server (settings: https://docs.gunicorn.org/en/stable/settings.html).

Sizes and the port come from the same ``Settings`` object the app uses (MODELFLEET_PORT,
MODELFLEET_WORKERS, MODELFLEET_THREADS, MODELFLEET_ACCESS_LOG), so there is one source of
truth for configuration.
"""

from __future__ import annotations

import ctypes
import gc
import logging
import os
import sys
import tempfile
from pathlib import Path

# The config file is executed before the app is imported: make the package importable from
# the directory this file lives in (/app in the image), whatever the working directory.
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from model_server import gunicorn_errors, gunicorn_response, probes
from model_server.metrics import mark_process_dead
from model_server.repository import pin_index
from model_server.settings import Settings

_settings = Settings.from_env()

# The versions this replica serves: the repository's index as it is now, copied, and that copy
# named to the workers. gunicorn executes this file at start and again on SIGHUP, so a worker
# recycled later (max_requests, a crash) serves what its siblings serve, and only a SIGHUP
# (`make rollout`, replica by replica) changes it. Earlier pins are kept (a kilobyte each): a
# worker of the previous generation may still be booting from one when the next SIGHUP comes.
os.environ["MODELFLEET_INDEX_FILE"] = str(
    pin_index(_settings.model_dir, Path(tempfile.gettempdir()))
)

# gunicorn's own refusals (malformed HTTP, limits below) answer JSON, not an HTML page.
gunicorn_errors.install()
# An answer's head and body leave in one write, so a replica dying mid-answer leaves none half
# sent (model_server/gunicorn_response.py).
gunicorn_response.install()
# The same limits as nginx's (nginx/common.conf: a request line or header line fits in 8 KiB,
# all headers in 32 KiB), so a request the load balancer accepts is never refused here. The
# field count is not limited by nginx, only the total size: allow the most gunicorn can.
limit_request_line = 8190
limit_request_field_size = 8190
limit_request_fields = 32768

# Bind inside the container on all interfaces; compose only `expose`s the port to nginx.
bind = f"0.0.0.0:{_settings.port}"

# gthread: a few processes (CPU-bound numpy/sklearn work, one GIL each) with a few threads
# each (cheap concurrency while a request is reading its body or writing its response).
worker_class = "gthread"
workers = _settings.workers
threads = _settings.threads

# Worker heartbeat files in RAM: a disk-backed /tmp can stall heartbeats under I/O load and
# make the arbiter kill healthy workers (gunicorn docs, "Blocking OS calls"). bandit's B108
# (shared temporary directory) does not apply: /dev/shm is a private tmpfs per container.
worker_tmp_dir = "/dev/shm"  # nosec B108

# On SIGTERM, finish in-flight requests for up to 20 s; compose's stop_grace_period is 30 s,
# so gunicorn always exits on its own before Docker sends SIGKILL.
graceful_timeout = 20
# Recycling: a worker that served max_requests (+ up to the jitter) finishes its requests and
# is replaced; nginx retries on another replica a request sent on a keep-alive connection the
# old worker was closing.
max_requests = _settings.max_requests
max_requests_jitter = _settings.max_requests_jitter
# A worker without a heartbeat for this long is hung or stopped: the master kills and replaces
# it. Meanwhile the load balancer's deadline (UPSTREAM_DEADLINE) has already sent its requests
# to other replicas.
timeout = _settings.worker_timeout

# Keep idle client connections longer than nginx's upstream keepalive_timeout (60 s): the
# side that closes an idle keep-alive connection must be nginx, otherwise nginx may send a
# request on a connection gunicorn is closing at that moment and return 502.
keepalive = 75

# No preload_app: every worker runs create_app() itself after the fork, so each worker loads
# and verifies the bundles (readiness is honest per worker), prometheus-client's
# multiprocess files are keyed by the worker's own pid from the start, and no open file is
# inherited across fork; and a SIGHUP makes new workers load the newly pinned index.
preload_app = False
# But the modules are imported here, once, in the master: numpy, scipy, scikit-learn, Flask
# and skops take about 3 s of CPU to import (with the image's bytecode) and the bundles 0.6 s
# to load, so a worker forked from a master that imported them boots in about a second
# instead of four (ten times that on a busy machine), which is what a rollout or a recycled
# worker waits for; their pages are also shared copy-on-write between the workers. No model,
# metric or thread exists yet at this point, and BLAS is single-threaded
# (OPENBLAS_NUM_THREADS=1), so nothing is forked that must not be.
import model_server.app  # noqa: E402, F401
import skops.io  # noqa: E402, F401

# Keep those shared pages shared: a collection in a worker writes to the header of every object
# it walks, which copies the page holding it into that worker. Frozen here, before the fork, the
# imports' objects sit in the permanent generation no collection walks (the worker's own
# gc.freeze in post_worker_init then covers its models). Measured on `make up`'s replicas
# after the same traffic: 254-256 MiB RSS (anonymous) each without this, 178-183 MiB with it;
# a worker's private memory went from 84 to about 30 MiB.
gc.collect()
gc.freeze()

# gunicorn >= 25 opens a control socket under $XDG_RUNTIME_DIR or $HOME/.gunicorn by
# default; the container user has no home directory and nothing uses gunicornc.
control_socket_disable = True

# Access log: off by default (nginx logs every request; metrics hold the aggregates). When
# enabled, one JSON object per request to stdout.
if _settings.access_log:
    accesslog = "-"
    access_log_format = (
        '{"time":"%(t)s","remote":"%(h)s","method":"%(m)s","path":"%(U)s",'
        '"status":%(s)s,"bytes":"%(B)s","duration_us":%(D)s,'
        '"request_id":"%({x-request-id}i)s","user_agent":"%(a)s"}'
    )
else:
    accesslog = None
errorlog = "-"
loglevel = _settings.log_level.lower()


def _keep_request_buffers_on_the_heap() -> None:
    """Stop glibc from mapping and unmapping every large request buffer.

    A 10,000-row batch is a body of 0.5-1 MB, and parsing it makes a few dozen temporary
    buffers of that size (numpy arrays, translated bytes). Above its mmap threshold glibc
    gives each one fresh pages from the kernel and returns them on free, and the top of the
    heap is trimmed as soon as 2x the threshold is free: every request then pays a page fault
    per 4 kB touched. Measured on a 1.1 MB records batch: 11.7 ms to parse, 7.6 ms with these
    thresholds. Up to 32 MB stays with a worker between requests instead. Set here, in the
    gunicorn master before it forks, so every worker inherits it; glibc's own
    ``MALLOC_MMAP_THRESHOLD_``/``MALLOC_TRIM_THRESHOLD_`` variables take precedence if set.
    """
    if "MALLOC_MMAP_THRESHOLD_" in os.environ or "MALLOC_TRIM_THRESHOLD_" in os.environ:
        return
    try:
        mallopt = ctypes.CDLL(None).mallopt
    except (OSError, AttributeError):
        return  # not glibc (e.g. musl): leave its allocator alone
    m_trim_threshold, m_mmap_threshold = -1, -3  # <malloc.h>
    mallopt(m_mmap_threshold, 16 * 1024 * 1024)
    mallopt(m_trim_threshold, 32 * 1024 * 1024)


_keep_request_buffers_on_the_heap()


#: gunicorn's exit status for a worker that cannot boot: the master then stops too.
WORKER_BOOT_ERROR = 3


#: Where the master leaves the probe port's file descriptor for its workers (when_ready).
PROBE_FD = "MODELFLEET_PROBE_FD"


def when_ready(server: object) -> None:
    """Open the probe port in the master, once: the workers answer on it (post_worker_init).

    Opened here, not in each worker, so that it stays open while workers are replaced: a probe
    then waits in its backlog for the next worker rather than being refused, which would take
    the replica out of the load balancer during every recycle or rollout. On the serving
    address's host (all interfaces in the container, loopback for ``make serve``). gunicorn
    calls this once, before the first workers, and not again on SIGHUP, when this file is read
    again; the descriptor's number survives in the master's environment.
    """
    if _settings.probe_port and PROBE_FD not in os.environ:
        host = str(server.cfg.bind[0]).rsplit(":", 1)[0]  # type: ignore[attr-defined]
        os.environ[PROBE_FD] = str(probes.listen(host, _settings.probe_port))


def post_worker_init(worker: object) -> None:
    """Stop the replica if it serves no model; answer probes on their own port; take the
    loaded app out of the GC's sight.

    A replica whose workers load no model at all (no readable index, every bundle broken)
    cannot serve anything: exiting with gunicorn's boot-error status stops the master, so the
    container exits and Docker's restart policy starts it again, with its growing back-off,
    rather than leaving an unready replica up forever. One broken model only makes that
    model unready (``/readyz`` names it); the replica keeps serving the others.

    A worker holds about 160,000 GC-tracked objects once numpy, scipy, scikit-learn and the
    models are loaded, and every full collection walks all of them: about 100 ms, measured.
    Batch requests allocate thousands of short-lived lists, which trigger full collections
    every few requests: 10,000-row predictions averaged 16 ms instead of 5.5 ms, with 100 ms
    outliers at p90. ``gc.freeze()`` (after one last collection, so no garbage is kept) moves
    everything alive now into a permanent generation that collections skip; objects created
    by requests are collected as before.
    """
    app = getattr(worker, "wsgi", None)
    state = getattr(app, "extensions", {}).get("modelfleet")
    if state is not None and not state.registry.models:
        logging.getLogger("model_server").critical(
            "no model could be loaded from %s; exiting so that the replica is restarted",
            state.settings.model_dir,
        )
        sys.exit(WORKER_BOOT_ERROR)
    probe_fd = os.environ.get(PROBE_FD)
    if state is not None and probe_fd:

        def alive() -> bool:
            return bool(worker.alive)  # type: ignore[attr-defined]

        probes.serve(state.registry, int(probe_fd), alive, state.settings.drain_file)
    gc.collect()
    gc.freeze()


def child_exit(server: object, worker: object) -> None:
    """Drop a dead worker's live gauges from the multiprocess metric files.

    Without this, ``livesum``/``livemax`` gauges (in-flight requests, model info) would keep
    the values of workers that no longer exist. See prometheus client_python's multiprocess
    documentation.
    """
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        mark_process_dead(worker.pid)  # type: ignore[attr-defined]
