#!/usr/bin/env bash
# Print where the running stack answers, as compose reports it (ports may be overridden).
set -euo pipefail
compose="$(dirname "$0")/compose"
lb="$("$compose" port lb 8080)"
prom="$("$compose" port prometheus 9090)"
replicas="$("$compose" ps -q model | wc -l)"
cat <<MSG

  ModelFleet is up ($replicas model replicas; make scale REPLICAS=N to change).
  load balancer  http://$lb/predict_data?pregnant=1&glucose=3&pressure=1
  API docs       http://$lb/docs
  Prometheus     http://$prom
  Dashboards     http://$prom/consoles/index.html  (the Grafana dashboards' panels; Grafana: make dashboards)
MSG
