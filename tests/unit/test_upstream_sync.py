"""upstream-sync's discovery fails safe, checks every reload and exports its state.

The script is sourced in bash for its functions; DNS (``resolve``), the readiness probe and
nginx are replaced by stubs driven by files in a temporary directory, so each round is a
real run of the script's own ``render``/``apply``/``write_metrics``.
"""

from __future__ import annotations

import socket
import subprocess
import threading
from pathlib import Path

import pytest
import yaml

SCRIPT = Path(__file__).resolve().parents[2] / "nginx" / "upstream-sync.sh"

#: Stubs: DNS answers the lines of dns.txt; an address is ready when listed in ready.txt, its
#: probe times out (busy) when listed in busy.txt;
#: `nginx -t` fails when nginx-t-fails exists, `nginx -s reload` when reload-fails exists.
STUBS = r"""
source "$SCRIPT"
resolve() { cat "$DIR/dns.txt" 2>/dev/null; }
probe() {
  grep -qx "$1" "$DIR/ready.txt" 2>/dev/null && return 0
  grep -qx "$1" "$DIR/busy.txt" 2>/dev/null && return 2
  return 1
}
BALANCER=(fake_nginx)
fake_nginx() {
  case "$*" in
    *-t*) [ ! -e "$DIR/nginx-t-fails" ] ;;
    *reload*) [ ! -e "$DIR/reload-fails" ] && echo reload >>"$DIR/reloads.txt" ;;
  esac
}
log() { :; }
"""


class Sync:
    """One upstream-sync state (upstream file, counters) across rounds in one bash process."""

    def __init__(self, tmp: Path) -> None:
        self.dir = tmp
        self.conf = tmp / "upstream.conf"
        self.metrics = tmp / "upstream-sync.prom"
        self.rounds: list[str] = []

    def dns(self, *ips: str) -> None:
        (self.dir / "dns.txt").write_text("".join(f"{ip}\n" for ip in ips))

    def ready(self, *ips: str) -> None:
        (self.dir / "ready.txt").write_text("".join(f"{ip}\n" for ip in ips))

    def busy(self, *ips: str) -> None:
        (self.dir / "busy.txt").write_text("".join(f"{ip}\n" for ip in ips))

    def round(self) -> None:
        """Queue one round (render, apply, write_metrics); ``run`` executes them all."""
        self.rounds.append('render "$CONF.new"; apply "$CONF.new"; write_metrics')

    def run(self, first: str = 'render "$CONF"; write_metrics', **env: str) -> None:
        script = STUBS + first + "\n" + "\n".join(self.rounds) + "\n"
        env = {
            "SCRIPT": str(SCRIPT),
            "DIR": str(self.dir),
            "UPSTREAM_CONF": str(self.conf),
            "UPSTREAM_METRICS_FILE": str(self.metrics),
            "PATH": "/usr/bin:/bin",
            **env,
        }
        subprocess.run(["bash", "-c", script], env=env, check=True, timeout=30)

    def servers(self) -> list[str]:
        """The upstream's servers; the large bodies' group always lists the same ones."""
        servers = [line.split()[1] for line in self.lines()]
        assert [line.split()[1] for line in self.large_lines()] == servers
        return servers

    def lines(self) -> list[str]:
        return self.conf.read_text().splitlines()

    def large_lines(self) -> list[str]:
        """The large bodies' group (model_large in balancer.conf)."""
        return (self.dir / "upstream-large.conf").read_text().splitlines()

    def metric(self, name: str) -> float:
        for line in self.metrics.read_text().splitlines():
            if line.startswith(name + " "):
                return float(line.split()[1])
        raise KeyError(name)

    def reloads(self) -> int:
        path = self.dir / "reloads.txt"
        return len(path.read_text().splitlines()) if path.exists() else 0


@pytest.fixture
def sync(tmp_path: Path) -> Sync:
    s = Sync(tmp_path)
    s.dns("10.0.0.2", "10.0.0.3")
    s.ready("10.0.0.2", "10.0.0.3")
    return s


def test_the_upstream_lists_the_ready_replicas_dns_returns(sync: Sync) -> None:
    sync.run()
    assert sync.servers() == ["10.0.0.2:8080", "10.0.0.3:8080"]
    assert sync.metric("modelfleet_upstream_replicas") == 2
    assert sync.metric("modelfleet_upstream_resolved_replicas") == 2
    assert sync.metric("modelfleet_upstream_lookup_failures_total") == 0


def test_a_dns_blip_keeps_the_replicas_that_still_pass_their_probes(sync: Sync) -> None:
    sync.run()
    sync.dns()  # DNS fails or answers nothing
    sync.round()
    sync.run(first=":")
    assert sync.servers() == ["10.0.0.2:8080", "10.0.0.3:8080"]
    assert sync.metric("modelfleet_upstream_lookup_failures_total") == 1
    assert sync.metric("modelfleet_upstream_resolved_replicas") == 0
    assert sync.reloads() == 0  # nothing changed, nothing reloaded


def test_a_real_scale_to_zero_still_empties_the_upstream(sync: Sync) -> None:
    sync.run()
    sync.dns()
    sync.ready()  # the replicas are gone: their addresses answer nothing
    sync.round()
    sync.run(first=":")
    assert sync.servers() == ["127.0.0.1:9"]  # the placeholder, marked down
    assert sync.metric("modelfleet_upstream_replicas") == 0
    assert sync.reloads() == 1


def test_during_a_dns_failure_a_replica_that_turns_unready_leaves(sync: Sync) -> None:
    sync.run()
    sync.dns()
    sync.ready("10.0.0.3")
    sync.round()
    sync.run(first=":")
    assert sync.servers() == ["10.0.0.3:8080"]


def test_a_new_replica_joins_and_an_unready_one_leaves(sync: Sync) -> None:
    sync.run()
    sync.dns("10.0.0.2", "10.0.0.3", "10.0.0.4")
    sync.ready("10.0.0.2", "10.0.0.4")
    sync.round()
    sync.run(first=":")
    assert sync.servers() == ["10.0.0.2:8080", "10.0.0.4:8080"]
    assert sync.reloads() == 1
    assert sync.metric("modelfleet_upstream_last_change_timestamp_seconds") > 0


def test_when_no_resolved_replica_is_ready_they_are_all_kept(sync: Sync) -> None:
    """Probes time out behind an overload: trying the replicas beats refusing every request."""
    sync.ready()
    sync.run()
    assert sync.servers() == ["10.0.0.2:8080", "10.0.0.3:8080"]


@pytest.mark.parametrize("failure", ["nginx-t-fails", "reload-fails"])
def test_a_rejected_or_failed_reload_keeps_the_previous_upstream_and_is_counted(
    sync: Sync, failure: str
) -> None:
    sync.run()
    (sync.dir / failure).touch()
    sync.dns("10.0.0.2")
    sync.round()
    sync.run(first=":")
    assert sync.servers() == ["10.0.0.2:8080", "10.0.0.3:8080"]
    assert sync.metric("modelfleet_upstream_reload_failures_total") == 1


def test_the_metrics_file_is_prometheus_text_with_help_and_type(sync: Sync) -> None:
    sync.run()
    lines = sync.metrics.read_text().splitlines()
    names = {line.split()[0] for line in lines if not line.startswith("#")}
    for name in names:
        assert f"# HELP {name} " in "\n".join(lines)
        kind = "counter" if name.endswith("_total") else "gauge"
        assert f"# TYPE {name} {kind}" in lines
    assert sync.metric("modelfleet_upstream_sync_timestamp_seconds") > 1.7e9


def _deadlines(tmp_path: Path, **env: str) -> subprocess.CompletedProcess[str]:
    script = f'source "{SCRIPT}"; log() {{ echo "$*"; }}; render_deadlines'
    return subprocess.run(
        ["bash", "-c", script],
        env={"UPSTREAM_CONF": str(tmp_path / "upstream.conf"), "PATH": "/usr/bin:/bin", **env},
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )


def test_deadlines_are_rendered_for_small_and_large_requests(tmp_path: Path) -> None:
    done = _deadlines(tmp_path, UPSTREAM_DEADLINE="4", UPSTREAM_DEADLINE_LARGE="25")
    assert done.returncode == 0, done.stdout
    assert (tmp_path / "deadline.conf").read_text().split("\n")[:2] == [
        "proxy_read_timeout 4s;",
        "proxy_next_upstream_timeout 12s;",
    ]
    assert (tmp_path / "deadline-large.conf").read_text().split("\n")[:2] == [
        "proxy_read_timeout 25s;",
        "proxy_next_upstream_timeout 50s;",
    ]


def test_default_deadlines(tmp_path: Path) -> None:
    assert _deadlines(tmp_path).returncode == 0
    assert "proxy_read_timeout 10s;" in (tmp_path / "deadline.conf").read_text()
    assert "proxy_read_timeout 20s;" in (tmp_path / "deadline-large.conf").read_text()


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("UPSTREAM_DEADLINE", "0"),
        ("UPSTREAM_DEADLINE", "3s"),
        ("UPSTREAM_DEADLINE", "010"),
        ("UPSTREAM_DEADLINE", "20"),  # 3 x 20 s reaches the front tier's 60 s
        ("UPSTREAM_DEADLINE_LARGE", "30"),
        ("UPSTREAM_DEADLINE_LARGE", "abc"),
    ],
)
def test_a_deadline_out_of_range_is_refused_naming_the_variable(
    tmp_path: Path, name: str, value: str
) -> None:
    done = _deadlines(tmp_path, **{name: value})
    assert done.returncode == 1
    assert name in done.stdout
    assert not (tmp_path / "deadline.conf").exists()


# ---- admission: max_conns per replica --------------------------------------------------------

RENDER_ADMITTED = 'render_max_conns; render "$CONF"; write_metrics'


def test_each_replica_admits_workers_times_threads_by_default(sync: Sync) -> None:
    """compose.yaml passes the replicas' MODELFLEET_WORKERS and MODELFLEET_THREADS (2 x 4)."""
    sync.run(first=RENDER_ADMITTED)
    assert sync.lines() == [
        "server 10.0.0.2:8080 max_conns=8 max_fails=1 fail_timeout=5s;",
        "server 10.0.0.3:8080 max_conns=8 max_fails=1 fail_timeout=5s;",
    ]


def test_each_replica_admits_one_large_body_per_core_of_its_cpu_limit_by_default(
    sync: Sync,
) -> None:
    sync.run(first=RENDER_ADMITTED)
    assert sync.large_lines() == [
        "server 10.0.0.2:8080 max_conns=1 max_fails=1 fail_timeout=5s;",
        "server 10.0.0.3:8080 max_conns=1 max_fails=1 fail_timeout=5s;",
    ]


@pytest.mark.parametrize(
    ("cpus", "workers", "admitted"),
    [("0.25", "2", 1), ("1.0", "2", 1), ("1.5", "4", 2), ("2", "4", 2), ("3", "2", 2)],
)
def test_large_admission_is_the_cpu_limit_rounded_up_and_at_most_the_workers(
    sync: Sync, cpus: str, workers: str, admitted: int
) -> None:
    sync.run(first=RENDER_ADMITTED, MODEL_CPUS=cpus, MODELFLEET_WORKERS=workers)
    assert all(f" max_conns={admitted} " in line for line in sync.large_lines())


def test_max_conns_follows_the_replicas_workers_and_threads(sync: Sync) -> None:
    sync.run(first=RENDER_ADMITTED, MODELFLEET_WORKERS="3", MODELFLEET_THREADS="5", MODEL_CPUS="4")
    assert all(" max_conns=15 " in line for line in sync.lines())
    assert all(" max_conns=3 " in line for line in sync.large_lines())


def test_upstream_max_conns_overrides_and_zero_switches_admission_off(sync: Sync) -> None:
    sync.run(
        first=RENDER_ADMITTED,
        UPSTREAM_MAX_CONNS="3",
        UPSTREAM_MAX_CONNS_LARGE="1",
        MODELFLEET_WORKERS="4",
    )
    assert all(" max_conns=3 " in line for line in sync.lines())
    assert all(" max_conns=1 " in line for line in sync.large_lines())
    sync.run(first=RENDER_ADMITTED, UPSTREAM_MAX_CONNS="0", UPSTREAM_MAX_CONNS_LARGE="0")
    unlimited = [
        "server 10.0.0.2:8080 max_fails=1 fail_timeout=5s;",
        "server 10.0.0.3:8080 max_fails=1 fail_timeout=5s;",
    ]
    assert sync.lines() == sync.large_lines() == unlimited


def test_max_conns_survives_a_change_of_the_replica_set(sync: Sync) -> None:
    sync.run(first=RENDER_ADMITTED)
    sync.dns("10.0.0.2", "10.0.0.3", "10.0.0.4")
    sync.ready("10.0.0.2", "10.0.0.3", "10.0.0.4")
    sync.round()
    sync.run(first=RENDER_ADMITTED)
    assert sync.servers() == ["10.0.0.2:8080", "10.0.0.3:8080", "10.0.0.4:8080"]
    assert all(" max_conns=8 " in line for line in sync.lines())
    assert all(" max_conns=1 " in line for line in sync.large_lines())


def _render(tmp_path: Path, function: str, **env: str) -> subprocess.CompletedProcess[str]:
    script = f'source "{SCRIPT}"; log() {{ echo "$*"; }}; {function}; echo "opt=[$MAX_CONNS_OPT]"'
    return subprocess.run(
        ["bash", "-c", script],
        env={"UPSTREAM_CONF": str(tmp_path / "upstream.conf"), "PATH": "/usr/bin:/bin", **env},
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("UPSTREAM_MAX_CONNS", "-1"),
        ("UPSTREAM_MAX_CONNS", "8x"),
        ("UPSTREAM_MAX_CONNS", "08"),
        ("UPSTREAM_MAX_CONNS_LARGE", "two"),
        ("MODELFLEET_WORKERS", "two"),
        ("MODELFLEET_THREADS", "1.5"),
        ("MODEL_CPUS", "0"),
        ("MODEL_CPUS", "0.000"),
        ("MODEL_CPUS", "one"),
        ("MODEL_CPUS", "1,5"),
    ],
)
def test_an_invalid_max_conns_is_refused_naming_the_variable(
    tmp_path: Path, name: str, value: str
) -> None:
    done = _render(tmp_path, "render_max_conns || exit 1", **{name: value})
    assert done.returncode == 1
    assert name in done.stdout


# ---- per-client caps -------------------------------------------------------------------------


def _limits(tmp_path: Path) -> tuple[str, str]:
    return (
        (tmp_path / "client-limits-http.conf").read_text(),
        (tmp_path / "client-limits.conf").read_text(),
    )


def test_client_caps_render_zones_and_limits(tmp_path: Path) -> None:
    done = _render(tmp_path, "render_client_limits", CLIENT_MAX_CONNS="100", CLIENT_RATE="500")
    assert done.returncode == 0, done.stdout
    http, server = _limits(tmp_path)
    assert http.splitlines() == [
        "limit_conn_zone $binary_remote_addr zone=client_conns:4m;",
        "limit_req_zone $binary_remote_addr zone=client_rate:4m rate=500r/s;",
    ]
    assert server.splitlines() == [
        "limit_conn client_conns 100;",
        "limit_req zone=client_rate burst=500 nodelay;",
    ]


@pytest.mark.parametrize("off", ["0", ""])
def test_a_client_cap_of_zero_or_empty_is_off(tmp_path: Path, off: str) -> None:
    done = _render(tmp_path, "render_client_limits", CLIENT_MAX_CONNS=off, CLIENT_RATE="50")
    assert done.returncode == 0, done.stdout
    http, server = _limits(tmp_path)
    assert "limit_conn" not in http + server
    assert "limit_req zone=client_rate burst=50 nodelay;" in server
    _render(tmp_path, "render_client_limits", CLIENT_MAX_CONNS="5", CLIENT_RATE=off)
    http, server = _limits(tmp_path)
    assert "limit_req" not in http + server
    assert server.splitlines() == ["limit_conn client_conns 5;"]


@pytest.mark.parametrize("name", ["CLIENT_MAX_CONNS", "CLIENT_RATE"])
def test_an_invalid_client_cap_is_refused_naming_the_variable(tmp_path: Path, name: str) -> None:
    done = _render(tmp_path, "render_client_limits || exit 1", **{name: "10r/s"})
    assert done.returncode == 1
    assert name in done.stdout


def test_compose_sizes_admission_from_the_replicas_own_workers_and_threads() -> None:
    """One place for the defaults: the model and lb services read the same anchor."""
    compose = yaml.safe_load((SCRIPT.parents[1] / "compose.yaml").read_text())
    model = compose["services"]["model"]["environment"]
    lb = compose["services"]["lb"]["environment"]
    for name in ("MODELFLEET_WORKERS", "MODELFLEET_THREADS", "MODEL_CPUS"):
        assert lb[name] == model[name] == compose["x-replica-shape"][name]
    limits = compose["services"]["model"]["deploy"]["resources"]["limits"]
    assert limits["cpus"] == compose["x-replica-shape"]["MODEL_CPUS"]
    assert lb["UPSTREAM_MAX_CONNS"] == "${UPSTREAM_MAX_CONNS:-}"
    assert lb["CLIENT_MAX_CONNS"] == "${CLIENT_MAX_CONNS:-1000}"
    assert lb["CLIENT_RATE"] == "${CLIENT_RATE:-20000}"


def test_only_connection_errors_and_missed_deadlines_are_retried_and_counted() -> None:
    """nginx counts what proxy_next_upstream lists towards max_fails: a replica's 503 must not
    take it out of the balancer."""
    conf = (SCRIPT.parent / "proxy-upstream.conf").read_text()
    directive = [line for line in conf.splitlines() if line.startswith("proxy_next_upstream ")]
    assert directive == ["proxy_next_upstream error timeout non_idempotent;"]


def test_the_shed_answer_is_json_503_with_retry_after_and_only_for_no_live_upstreams() -> None:
    errors = (SCRIPT.parent / "json-errors.conf").read_text()
    common = (SCRIPT.parent / "common.conf").read_text()
    assert (
        "error_page 502 = $bad_gateway_page;"
        in (SCRIPT.parent / "json-error-pages.conf").read_text()
    )
    assert '"~(^|, )model(_large)?$" /_errors/overloaded;' in common
    assert "default         /_errors/upstream_unavailable;" in common
    for page, status in (("overloaded", 503), ("too_many_requests", 429)):
        body = errors.split(f"location = /_errors/{page} {{")[1].split("\n}")[0]
        assert "add_header Retry-After 1 always;" in body
        assert body.count(f"return {status} '{{") == 2


# ---- busy is not unready ---------------------------------------------------------------------


def test_a_busy_replica_stays_in_the_upstream_for_five_rounds_then_leaves(
    sync: Sync, tmp_path: Path
) -> None:
    """Under overload a probe can time out behind predictions: that alone must not rewrite the
    upstream (issue 11), but a replica that never answers again does leave."""
    sync.run()
    snapshot = 'cp "$CONF" "$DIR/after-$n.conf"'
    sync.ready("10.0.0.2")
    sync.busy("10.0.0.3")
    sync.rounds = [f'n={n}; render "$CONF.new"; apply "$CONF.new"; {snapshot}' for n in range(6)]
    sync.run(first=":")
    after = [(tmp_path / f"after-{n}.conf").read_text().count("server ") for n in range(6)]
    assert after == [2, 2, 2, 2, 2, 1]
    assert sync.servers() == ["10.0.0.2:8080"]
    assert sync.reloads() == 1


def test_an_answer_resets_the_busy_rounds(sync: Sync) -> None:
    sync.run()
    busy = 'echo 10.0.0.3 >"$DIR/busy.txt"; echo 10.0.0.2 >"$DIR/ready.txt"'
    ready = 'printf "10.0.0.2\\n10.0.0.3\\n" >"$DIR/ready.txt"'
    sync.rounds = [
        *[f'{busy}; render "$CONF.new"; apply "$CONF.new"'] * 4,
        f'{ready}; render "$CONF.new"; apply "$CONF.new"',
        *[f'{busy}; render "$CONF.new"; apply "$CONF.new"'] * 4,
    ]
    sync.run()
    assert sync.servers() == ["10.0.0.2:8080", "10.0.0.3:8080"]
    assert sync.reloads() == 0


def test_a_busy_replica_does_not_join_and_an_unready_one_leaves_at_once(sync: Sync) -> None:
    sync.ready("10.0.0.2")
    sync.busy("10.0.0.3")
    sync.run()  # 10.0.0.3 was never in the upstream
    assert sync.servers() == ["10.0.0.2:8080"]
    sync.ready("10.0.0.2", "10.0.0.3")
    sync.busy()
    sync.round()
    sync.run(first=":")
    assert sync.servers() == ["10.0.0.2:8080", "10.0.0.3:8080"]
    sync.ready("10.0.0.2")  # 10.0.0.3 now answers non-200 or refuses: not ready
    sync.rounds = []
    sync.round()
    sync.run(first=":")
    assert sync.servers() == ["10.0.0.2:8080"]


def _server(answer: bytes | None) -> tuple[socket.socket, int]:
    """A loopback listener that answers each connection with ``answer``, or never (None)."""
    listener = socket.create_server(("127.0.0.1", 0))
    held: list[socket.socket] = []

    def serve() -> None:
        while True:
            try:
                conn, _ = listener.accept()
            except OSError:
                return
            request = b""
            while b"\r\n\r\n" not in request:  # the whole request: no reset on close
                chunk = conn.recv(4096)
                if not chunk:
                    break
                request += chunk
            if answer is None:
                held.append(conn)  # read, never answered: busy
            else:
                conn.sendall(answer)
                conn.close()

    threading.Thread(target=serve, daemon=True).start()
    return listener, listener.getsockname()[1]


def _probe(env: dict[str, str]) -> str:
    """upstream-sync's probe of 127.0.0.1 with these settings: "rc=<its status>"."""
    done = subprocess.run(
        ["bash", "-c", f'source "{SCRIPT}"; probe 127.0.0.1; echo "rc=$?"'],
        env={"PATH": "/usr/bin:/bin", **env},
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    return done.stdout.strip()


@pytest.mark.parametrize(
    ("answer", "expected"),
    [
        (b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n", 0),
        (b"HTTP/1.1 503 Service Unavailable\r\nContent-Length: 0\r\n\r\n", 1),
        (None, 2),
        ("closed", 1),
    ],
)
def test_the_probe_tells_ready_unready_and_busy_apart(
    answer: bytes | str | None, expected: int
) -> None:
    if answer == "closed":
        listener, port = _server(b"")
        listener.close()
    else:
        assert not isinstance(answer, str)
        listener, port = _server(answer)
    try:
        # The probe port, not the serving port (9: nothing listens there).
        rc = _probe({"MODELFLEET_PROBE_PORT": str(port), "UPSTREAM_PORT": "9"})
    finally:
        listener.close()
    assert rc == f"rc={expected}"


def test_with_probe_port_0_the_serving_port_is_probed() -> None:
    listener, port = _server(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n")
    try:
        rc = _probe({"MODELFLEET_PROBE_PORT": "0", "UPSTREAM_PORT": str(port)})
    finally:
        listener.close()
    assert rc == "rc=0"


def test_a_gateway_timeout_without_any_connection_is_unavailable_not_a_timeout() -> None:
    """Replicas removed before upstream-sync's next round make connects time out (504); with
    no try connected, no replica could take the request (503), unlike a missed deadline."""
    pages = (SCRIPT.parent / "json-error-pages.conf").read_text()
    common = (SCRIPT.parent / "common.conf").read_text()
    assert "error_page 504 = $gateway_timeout_page;" in pages
    mapping = common.split("map $upstream_connect_time $gateway_timeout_page {")[1].split("}")[0]
    assert '"~^[-,: ]*$" /_errors/upstream_unavailable;' in mapping
    assert "default      /_errors/upstream_timeout;" in mapping
