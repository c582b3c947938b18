#!/usr/bin/env bash
# Runs the load balancer's two nginx tiers and keeps the balancer tier's upstream equal to the
# set of healthy model replicas.
#
# Every UPSTREAM_SYNC_INTERVAL seconds: resolve the compose service name through Docker's DNS,
# probe each address's readiness endpoint, render the `server` lines, and reload the balancer
# tier gracefully only when the set changed. This keeps a static upstream with keep-alive and
# passive health checks, which a `resolver` + variable proxy_pass would lose. The front tier
# (nginx.conf) is never reloaded, so clients' keep-alive connections are never cut.
#
# Discovery fails safe: when DNS fails or answers nothing, the addresses of the current
# upstream are probed instead, and those still ready stay. A DNS blip changes nothing; a real
# scale to 0 still empties the upstream, because the removed replicas stop answering. (getent
# reports a failed lookup and an unknown name alike, so the two cannot be told apart.)
#
# State for Prometheus (job `upstream-sync`, lb:8081/upstream-sync/metrics) is written to
# METRICS_FILE after every round: replicas in the upstream, resolved addresses, the time of the
# last change and of the last round, and counters of empty lookups and failed reloads.
set -uo pipefail

SERVICE="${UPSTREAM_SERVICE:-model}"
PORT="${UPSTREAM_PORT:-8080}"
INTERVAL="${UPSTREAM_SYNC_INTERVAL:-2}"
PROBE_PATH="${UPSTREAM_PROBE_PATH:-/readyz}"
# Passive health: one failure takes a server out for FAIL_TIMEOUT (nginx retries elsewhere).
SERVER_OPTS="${UPSTREAM_SERVER_OPTS:-max_fails=1 fail_timeout=5s}"
# Deadlines in whole seconds (see balancer.conf): a replica that has not answered a request
# within its deadline is given up and the request retried on another replica, for at most
# 3x (2x for large bodies) the deadline in all. The front tier waits up to 60 s for the
# balancer tier, so 2 x UPSTREAM_DEADLINE_LARGE must stay below that.
DEADLINE="${UPSTREAM_DEADLINE:-10}"
DEADLINE_LARGE="${UPSTREAM_DEADLINE_LARGE:-20}"
CONF="${UPSTREAM_CONF:-/run/nginx/upstream.conf}"
CONF_DIR="$(dirname "$CONF")"
METRICS_FILE="${UPSTREAM_METRICS_FILE:-/run/nginx/upstream-sync.prom}"
BALANCER=(nginx -e stderr -c /etc/nginx/balancer.conf)

# State exported by write_metrics.
resolved_count=0
lookup_failures=0
reload_failures=0
last_change=0

log() { printf '{"time":"%s","component":"upstream-sync","message":"%s"}\n' "$(date -u +%FT%TZ)" "$*"; }

resolve() { getent ahostsv4 "$SERVICE" 2>/dev/null | awk '{print $1}' | sort -u; }

# A replica is healthy when its readiness endpoint answers 200 within a second.
probe() {
  timeout 1 bash -c '
    exec 3<>"/dev/tcp/$1/$2" || exit 1
    printf "GET %s HTTP/1.0\r\nHost: upstream-sync\r\n\r\n" "$3" >&3
    head -c 12 <&3' _ "$1" "$PORT" "$PROBE_PATH" 2>/dev/null | grep -q ' 200'
}

# The addresses in the current upstream (none for the placeholder `down` server).
current_addresses() {
  [ -f "$CONF" ] || return 0
  sed -n "s/^server \([0-9.]*\):$PORT .*/\1/p" "$CONF"
}

# The upstream's server lines for the healthy replicas. Sets resolved_count and counts empty
# lookups; must run in the main shell (not in $(...)) for those to stick, so it writes to a file.
render() {
  local out="$1" ips healthy=() ip
  ips="$(resolve)"
  resolved_count=$(printf '%s' "$ips" | grep -c .)
  if [ -z "$ips" ]; then
    lookup_failures=$((lookup_failures + 1))
    ips="$(current_addresses)"
  fi
  for ip in $ips; do
    probe "$ip" && healthy+=("$ip")
  done
  # No healthy replica but some resolved: keep trying them rather than failing every request.
  if [ ${#healthy[@]} -eq 0 ] && [ "$resolved_count" -gt 0 ]; then
    read -r -a healthy <<<"$(echo $ips)"
  fi
  if [ ${#healthy[@]} -eq 0 ]; then
    # An upstream block needs one server; this one is never used.
    echo "server 127.0.0.1:9 down;" >"$out"
    return
  fi
  for ip in "${healthy[@]}"; do
    echo "server $ip:$PORT $SERVER_OPTS;"
  done >"$out"
}

# Install the rendered upstream if it differs, and reload the balancer tier; a config nginx
# rejects, or a reload that fails, keeps the previous upstream and is counted.
apply() {
  local new="$1"
  cmp -s "$new" "$CONF" && return 0
  cp "$CONF" "$CONF.old" 2>/dev/null
  mv "$new" "$CONF"
  if ! "${BALANCER[@]}" -t -q 2>/dev/null; then
    mv "$CONF.old" "$CONF"
    reload_failures=$((reload_failures + 1))
    log "rendered upstream rejected by nginx -t; kept the previous one"
  elif ! "${BALANCER[@]}" -s reload 2>/dev/null; then
    mv "$CONF.old" "$CONF"
    reload_failures=$((reload_failures + 1))
    log "reloading the balancer tier failed; kept the previous upstream"
  else
    last_change=$(date +%s)
    log "upstream now: $(tr '\n' ' ' <"$CONF" | sed 's/ max_fails=[^;]*;/;/g')"
  fi
}

# The balancer tier's deadline includes, from DEADLINE and DEADLINE_LARGE; refuses values
# that are not whole seconds in range, naming the variable.
render_deadlines() {
  local name value
  for name in DEADLINE DEADLINE_LARGE; do
    value="${!name}"
    if ! [[ "$value" =~ ^[1-9][0-9]?$ ]]; then
      log "UPSTREAM_$name=$value must be a whole number of seconds from 1 to 99"
      return 1
    fi
  done
  # The front tier waits 60 s for the balancer tier: every retry window must end before.
  if [ $((3 * DEADLINE)) -ge 60 ] || [ $((2 * DEADLINE_LARGE)) -ge 60 ]; then
    log "UPSTREAM_DEADLINE must be below 20 and UPSTREAM_DEADLINE_LARGE below 30 (the front tier waits 60 s)"
    return 1
  fi
  printf 'proxy_read_timeout %ss;\nproxy_next_upstream_timeout %ss;\n' \
    "$DEADLINE" "$((3 * DEADLINE))" >"$CONF_DIR/deadline.conf"
  printf 'proxy_read_timeout %ss;\nproxy_next_upstream_timeout %ss;\n' \
    "$DEADLINE_LARGE" "$((2 * DEADLINE_LARGE))" >"$CONF_DIR/deadline-large.conf"
}

write_metrics() {
  local replicas
  replicas=$(current_addresses | grep -c .)
  cat >"$METRICS_FILE.new" <<EOF
# HELP modelfleet_upstream_replicas Model replicas in the load balancer's upstream.
# TYPE modelfleet_upstream_replicas gauge
modelfleet_upstream_replicas $replicas
# HELP modelfleet_upstream_resolved_replicas Addresses the last DNS lookup of the model service returned.
# TYPE modelfleet_upstream_resolved_replicas gauge
modelfleet_upstream_resolved_replicas $resolved_count
# HELP modelfleet_upstream_last_change_timestamp_seconds When the upstream last changed (0: never since start).
# TYPE modelfleet_upstream_last_change_timestamp_seconds gauge
modelfleet_upstream_last_change_timestamp_seconds $last_change
# HELP modelfleet_upstream_sync_timestamp_seconds When upstream-sync last finished a round.
# TYPE modelfleet_upstream_sync_timestamp_seconds gauge
modelfleet_upstream_sync_timestamp_seconds $(date +%s)
# HELP modelfleet_upstream_lookup_failures_total DNS lookups that failed or answered nothing (the last upstream was probed instead).
# TYPE modelfleet_upstream_lookup_failures_total counter
modelfleet_upstream_lookup_failures_total $lookup_failures
# HELP modelfleet_upstream_reload_failures_total Rendered upstreams that nginx rejected or failed to reload.
# TYPE modelfleet_upstream_reload_failures_total counter
modelfleet_upstream_reload_failures_total $reload_failures
EOF
  mv "$METRICS_FILE.new" "$METRICS_FILE"
}

main() {
  render_deadlines || exit 2
  render "$CONF"
  last_change=$(date +%s)
  write_metrics
  log "initial upstream: $(current_addresses | grep -c .) replica(s)"
  "${BALANCER[@]}" -g 'daemon off;' &
  balancer_pid=$!
  nginx -e stderr -c /etc/nginx/nginx.conf -g 'daemon off;' &
  front_pid=$!

  stop() {
    log "stopping nginx gracefully"
    # Front first: it stops accepting and finishes its requests, which need the balancer.
    kill -QUIT "$front_pid" 2>/dev/null
    wait "$front_pid"
    kill -QUIT "$balancer_pid" 2>/dev/null
    wait "$balancer_pid"
    exit 0
  }
  trap stop TERM INT QUIT

  while kill -0 "$front_pid" 2>/dev/null && kill -0 "$balancer_pid" 2>/dev/null; do
    sleep "$INTERVAL" &
    wait $!
    render "$CONF.new"
    apply "$CONF.new"
    write_metrics
  done
  # One tier died: exit non-zero so the restart policy replaces the container.
  log "an nginx tier exited; stopping"
  kill -QUIT "$front_pid" "$balancer_pid" 2>/dev/null
  exit 1
}

# Sourced by the unit tests (tests/unit/test_upstream_sync.py) for its functions only.
if [ "${BASH_SOURCE[0]}" = "$0" ]; then
  main
fi
