"""ModelFleet's benchmark toolkit: one small library and the harnesses built on it.

Library (each module tested in tests/unit/test_bench_*.py):

- :mod:`bench.procs`: start a server process in its own session, wait until it is ready, stop it
  and everything it forked; free ports, ``taskset`` pinning, resident memory of a process tree.
- :mod:`bench.wrk`: one bounded wrk run through ``bench/request.lua``, whose ``done()`` prints the
  figures as one JSON line, parsed into :class:`bench.wrk.WrkResult`.
- :mod:`bench.cpu`: CPU time from ``/proc`` (a process tree, the whole machine) and from cgroups
  (a container).
- :mod:`bench.compose`: the project's Compose (``scripts/compose``) for one project name: up,
  down, build, ``config --format json``.
- :mod:`bench.prom`: Prometheus HTTP API queries and their results as numbers.
- :mod:`bench.docker`: the Docker engine's API (containers of a project, CPU, memory) and a
  background CPU sampler.
- :mod:`bench.models`: feature lists from the models' own metadata (a bundle's manifest, or a
  running server's ``GET /models``) and rows of the vendored data.

- :mod:`bench.fleet`: a running stack driven from outside (compose, its containers and processes,
  the load balancer's upstream state); :mod:`bench.traffic`: bounded client traffic through it.
  The stack tests use both.
- :mod:`bench.faults`: the fault matrix of ``make chaos``, each fault one table row.

- :mod:`bench.generic`: ``make bench``'s generic model (a packaged scikit-learn Pipeline in a
  temporary copy of the repository) and its figures.

Harnesses, run as modules from the repository root (the Makefile does): ``python -m bench.run``
(``make bench``), ``python -m bench.memory`` (``make bench-memory``), ``python -m bench.peers``
(``make bench-peers``), ``python -m bench.scaling`` (``make scaling-report``), ``python -m
bench.chaos`` (``make chaos``).
"""

from __future__ import annotations

from pathlib import Path

#: The repository's root directory.
ROOT = Path(__file__).resolve().parents[1]


class BenchError(RuntimeError):
    """Something a harness cannot carry on after; the message says what and where to look."""
