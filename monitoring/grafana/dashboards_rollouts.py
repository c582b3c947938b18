"""The rollouts dashboard: which version each replica serves over time, and the gates of
`make rollout` (monitoring/prometheus/rules/rollout.yml) while a model has two versions
answering."""

from __future__ import annotations

from panels import MODEL_VAR, REPLICA_JOIN, M, dashboard, row, table, target, timeseries

#: The prediction requests the gates judge (rules/rollout.yml): a model's, on its endpoints.
PREDICTIONS = 'model!="none", endpoint=~"plumber|predict|invocations|infer"'
#: Each replica's current version of each model (1), with the replica's name.
CURRENT = (
    f'max by (replica, model, version) (modelfleet_model_info{{job="model", current="true", {M}}}'
    f" {REPLICA_JOIN})"
)
GATE = "{{model}} {{version}} {{gate}}"


def rollouts():
    panels = [
        row("Versions"),
        timeseries(
            "Replicas per current version",
            [target(f"count by (model, version) ({CURRENT})", "{{model}} {{version}}")],
            stack=True,
            description="How many replicas serve each version as the model's current one: a "
            'rollout moves them over one at a time (modelfleet_model_info, current="true").',
        ),
        table(
            "Current version per replica",
            CURRENT,
            description="What each replica's workers serve on the unversioned routes now.",
        ),
        timeseries(
            "Predictions/s by answering version",
            [
                target(
                    "sum by (model, version) (rate(modelfleet_requests_total"
                    f'{{job="model", {M}, {PREDICTIONS}}}[1m]))',
                    "{{model}} {{version}}",
                )
            ],
            unit="reqps",
            description="Prediction requests by the version that answered them (the gates' "
            "traffic): during a bake the candidate's share is its replicas' share.",
        ),
        timeseries(
            "Rollouts by outcome",
            [
                target(
                    f'max by (model, outcome) (modelfleet_rollouts_total{{job="model", {M}}})',
                    "{{model}} {{outcome}}",
                )
            ],
            description="Rollouts and rollbacks that changed something, counted from the "
            "repository's history (rollouts.jsonl): OK, or FAILED and rolled back.",
        ),
        row("Gates (while two versions of a model answer)"),
        timeseries(
            "Gate excess: candidate - stable",
            [target(f"model_version_release_gate:modelfleet_rollout_gate:excess30s{{{M}}}", GATE)],
            description="Per version against the model's other versions, over 30 s: 5xx share "
            "and p99 seconds (errors, latency), the largest class-share difference "
            "(prediction_mix). A gate fails above its tolerance. Only while two versions "
            "answer.",
        ),
        timeseries(
            "Gates failing",
            [target(f"model_version_release_gate:modelfleet_rollout_gate:failing30s{{{M}}}", GATE)],
            max_=1,
            description="1: the gate fails, and `make rollout` rolls back; 0: it passes; no "
            "line: too little traffic on either side to judge.",
        ),
        timeseries(
            "Requests judged (smaller side, 30 s)",
            [
                target(
                    f"model_version_release:modelfleet_rollout_judged_requests:increase30s{{{M}}}",
                    "{{model}} {{version}}",
                ),
                target("modelfleet:rollout_gate_min_requests", "needed to judge", ref="B"),
            ],
            description="Prediction requests of the smaller side (candidate or stable) in the "
            "gates' 30 s window; the gates judge from the minimum up.",
        ),
        timeseries(
            "Gate tolerances",
            [target("modelfleet:rollout_gate_tolerance", "{{gate}}")],
            description="The largest excess each gate accepts (rules/rollout.yml, the only "
            "place they live).",
        ),
    ]
    return dashboard(
        "modelfleet-rollouts",
        "ModelFleet / Rollouts",
        "Versions per replica over time, and the gates a rollout bakes against.",
        panels,
        [MODEL_VAR],
    )
