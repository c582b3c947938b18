"""The small PromQL name extractor in queries.py."""

from __future__ import annotations

import pytest

from tests.monitoring import queries


@pytest.mark.parametrize(
    ("expr", "names"),
    [
        ("up", {"up"}),
        ('sum by (le, model) (rate(x_bucket{job="model", le="0.1"}[5m]))', {"x_bucket"}),
        ("a * on (instance) group_left (replica) b", {"a", "b"}),
        ("histogram_quantile(0.99, sum(rate(h_bucket[1m])) by (le))", {"h_bucket"}),
        ('label_replace(m, "replica", "$1", "id", "(.*)")', {"m"}),
        ("max_over_time(count(up == 1)[15m:1m]) offset 5m > 1e3", {"up"}),
        (
            "model:modelfleet_requests:rate1m / on () group_left () sum(y)",
            {"model:modelfleet_requests:rate1m", "y"},
        ),
        ("absent(z == 1) or vector(0) unless bool_metric", {"z", "bool_metric"}),
    ],
)
def test_promql_metric_names(expr, names):
    assert queries.promql_metric_names(expr) == names


def test_substitute_variables_leaves_regex_group_references():
    expr = 'label_replace(m{model=~"$model"}, "r", "$1", "id", "(.*)")'
    assert (
        queries.substitute_variables(expr)
        == 'label_replace(m{model=~".*"}, "r", "$1", "id", "(.*)")'
    )


def test_substitute_variables():
    expr = 'rate(x{model=~"$model", r=~"${replica}"}[$__rate_interval])'
    assert queries.substitute_variables(expr) == 'rate(x{model=~".*", r=~".*"}[1m])'


def test_metric_names_used_excludes_recording_rules_and_covers_the_contract():
    used = queries.metric_names_used()
    assert not {n for n in used if ":" in n}
    for name in (
        "modelfleet_requests_total",
        "modelfleet_request_duration_seconds_bucket",
        "modelfleet_replica_info",
        "nginx_up",
        "modelfleet_container_memory_working_set_bytes",
        "up",
    ):
        assert name in used
    assert "ALERTS" not in used


def test_only_the_gate_panels_need_two_versions_answering():
    """The rollout dashboard's gate panels read the gates' series, which exist only during a
    bake (tests/stack/test_stack_rollout_gates.py checks them then); every other panel has data
    on any loaded stack."""
    assert queries.two_version_panels() == {
        "loadbalancer": set(),
        "overview": set(),
        "prometheus": set(),
        "replicas": set(),
        "rollouts": {"Gate excess: candidate - stable", "Gates failing"},
    }
    two = queries.dashboard_queries(two_versions=True)
    one = queries.dashboard_queries(two_versions=False)
    assert sorted(two + one) == sorted(queries.dashboard_queries())
    assert {title for _, title, _ in two} == {
        "Gate excess: candidate - stable",
        "Gates failing",
        "Requests judged (smaller side, 30 s)",
    }
    assert ("modelfleet-rollouts", "Requests judged (smaller side, 30 s)",
            "modelfleet:rollout_gate_min_requests") in one  # fmt: skip
