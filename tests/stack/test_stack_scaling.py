"""Scaling and failure under load: the load balancer follows replicas with zero failed requests.

These tests change the replica count; each one restores three replicas when it ends.
"""

from __future__ import annotations

import subprocess
import time

from tests.stack.stackctl import Load, Stack


def _assert_lb_follows(stack: Stack, n: int) -> float:
    """After a scale step: within 20 s the replicas answering equal the replicas running.

    upstream-sync probes every 2 s; the rest of the budget is for a busy 2-core CI machine,
    where a replica that `--wait` calls healthy can take a few more seconds to pass /readyz
    from nginx's side. A balancer that does not follow misses this by far.
    """
    started = time.monotonic()
    stack.wait_for_replicas(n, timeout=20)
    return time.monotonic() - started


def test_scaling_3_to_5_to_2_under_load_fails_no_request(three_replicas: Stack) -> None:
    stack = three_replicas
    with Load(stack.lb_url, threads=4, max_requests=200_000, max_seconds=240) as load:
        time.sleep(2)
        stack.scale(5)
        _assert_lb_follows(stack, 5)
        time.sleep(2)
        stack.scale(2)
        _assert_lb_follows(stack, 2)
        time.sleep(2)
    result = load.result
    print(f"scale 3->5->2: {result.total} requests, {result.failed} failed {dict(result.failures)}")
    assert result.total > 200
    assert result.failed == 0, dict(result.failures)
    # Every replica that existed at some point got traffic: 5 distinct at the peak.
    assert len(result.served_by) >= 5


def test_docker_kill_of_one_replica_under_load_fails_no_request(three_replicas: Stack) -> None:
    stack = three_replicas
    victim = stack.container_ids()[0]
    victim_host = stack.inspect([victim])[0]["Config"]["Hostname"]
    with Load(stack.lb_url, threads=4, max_requests=100_000, max_seconds=120) as load:
        time.sleep(2)
        subprocess.run(["docker", "kill", "--signal", "KILL", victim], check=True)
        # Docker treats `docker kill` as a deliberate stop, so its restart policy leaves the
        # container down; compose brings it back, as `make up` does.
        time.sleep(3)
        stack.scale(3)
        stack.wait_for_replicas(3, timeout=20)
        time.sleep(2)
    result = load.result
    print(f"docker kill: {result.total} requests, {result.failed} failed {dict(result.failures)}")
    assert victim_host in stack.replica_hostnames()
    assert victim_host in stack.served_by(30)
    assert result.total > 100
    assert result.failed == 0, dict(result.failures)


def test_crashed_replica_is_restarted_by_docker_under_load_failing_no_request(
    three_replicas: Stack,
) -> None:
    stack = three_replicas
    # Every replica has been through a rollout first: the SIGHUP a rollout sends must leave the
    # restart policy in force (Docker turns it off for a `docker kill --signal HUP`).
    rolled = stack.make("rollout", "NAME=diabetes", "VERSION=1.0.0")
    assert rolled.returncode == 0, rolled.stdout + rolled.stderr
    victim = stack.container_ids()[1]
    info = stack.inspect([victim])[0]
    victim_host, restarts_before = info["Config"]["Hostname"], info["RestartCount"]
    with Load(stack.lb_url, threads=4, max_requests=100_000, max_seconds=120) as load:
        time.sleep(2)
        # SIGKILL to the container's init from the host: a crash, not a deliberate stop, so
        # the restart policy (unless-stopped) restarts the same container by itself.
        subprocess.run(["kill", "-KILL", str(info["State"]["Pid"])], check=True)
        # Docker restarts it after 0.1 s (its delay only grows for a container that keeps
        # failing within 10 s of starting); the replica then boots in a few seconds.
        started = time.monotonic()
        deadline = started + 60
        while time.monotonic() < deadline and victim_host not in stack.replica_hostnames():
            time.sleep(0.5)
        print(f"crash: the victim was healthy again after {time.monotonic() - started:.0f} s")
        stack.wait_for_replicas(3, timeout=30)
        time.sleep(2)
    result = load.result
    print(f"crash: {result.total} requests, {result.failed} failed {dict(result.failures)}")
    assert stack.inspect([victim])[0]["RestartCount"] == restarts_before + 1
    assert victim_host in stack.served_by(30)
    assert result.total > 100
    assert result.failed == 0, dict(result.failures)
