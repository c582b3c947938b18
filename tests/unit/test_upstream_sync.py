"""upstream-sync's discovery fails safe, checks every reload and exports its state.

The script is sourced in bash for its functions; DNS (``resolve``), the readiness probe and
nginx are replaced by stubs driven by files in a temporary directory, so each round is a
real run of the script's own ``render``/``apply``/``write_metrics``.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[2] / "nginx" / "upstream-sync.sh"

#: Stubs: DNS answers the lines of dns.txt; an address is ready when listed in ready.txt;
#: `nginx -t` fails when nginx-t-fails exists, `nginx -s reload` when reload-fails exists.
STUBS = r"""
source "$SCRIPT"
resolve() { cat "$DIR/dns.txt" 2>/dev/null; }
probe() { grep -qx "$1" "$DIR/ready.txt" 2>/dev/null; }
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

    def round(self) -> None:
        """Queue one round (render, apply, write_metrics); ``run`` executes them all."""
        self.rounds.append('render "$CONF.new"; apply "$CONF.new"; write_metrics')

    def run(self, first: str = 'render "$CONF"; write_metrics') -> None:
        script = STUBS + first + "\n" + "\n".join(self.rounds) + "\n"
        env = {
            "SCRIPT": str(SCRIPT),
            "DIR": str(self.dir),
            "UPSTREAM_CONF": str(self.conf),
            "UPSTREAM_METRICS_FILE": str(self.metrics),
            "PATH": "/usr/bin:/bin",
        }
        subprocess.run(["bash", "-c", script], env=env, check=True, timeout=30)

    def servers(self) -> list[str]:
        return [line.split()[1] for line in self.conf.read_text().splitlines()]

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
