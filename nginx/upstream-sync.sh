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
# The replicas answer probes on a port of their own, outside their prediction threads
# (model_server/probes.py), so a probe never waits behind predictions; 0: the serving port.
PROBE_PORT="${MODELFLEET_PROBE_PORT:-8081}"
[ "$PROBE_PORT" = 0 ] && PROBE_PORT="$PORT"
# Rounds in a row a replica in the upstream may fail its probe by timing out (busy, see render)
# before it is taken out: 5 rounds, 10 s at the default interval.
BUSY_ROUNDS="${UPSTREAM_PROBE_BUSY_ROUNDS:-5}"
# Passive health: one failure takes a server out for FAIL_TIMEOUT (nginx retries elsewhere).
# nginx counts as failures what proxy_next_upstream lists (proxy-upstream.conf: only a connection
# error or a missed deadline), never a replica's answer and never nginx's own shed answer.
SERVER_OPTS="${UPSTREAM_SERVER_OPTS:-max_fails=1 fail_timeout=5s}"
# Admission (nginx's max_conns): at most this many requests in flight on one replica. A request
# goes only to a replica with room; when every replica is full, nginx sheds it at once (503
# "overloaded" with Retry-After, json-errors.conf) instead of queueing it behind gunicorn's busy
# threads. Empty: the replica's workers x threads (MODELFLEET_WORKERS x MODELFLEET_THREADS, the
# same variables the model service gets, default 2 x 4); 0: no limit (everything queues).
MAX_CONNS="${UPSTREAM_MAX_CONNS:-}"
# Admission of large bodies (100,000 bytes and more), in a group of their own (model_large in
# balancer.conf): empty, one per core the replica may use (its CPU limit MODEL_CPUS, rounded up)
# and at most one per worker; 0: no limit. A batch is CPU work: a second one on the same core
# only takes turns with the first, so both wait longer (measured with make chaos, README
# "Overload").
MAX_CONNS_LARGE="${UPSTREAM_MAX_CONNS_LARGE:-}"
WORKERS="${MODELFLEET_WORKERS:-2}"
THREADS="${MODELFLEET_THREADS:-4}"
MODEL_CPUS="${MODEL_CPUS:-1.0}"
# Per-client caps at the front tier, keyed on the client address (429 with Retry-After): at
# most CLIENT_MAX_CONNS requests in flight and CLIENT_RATE requests a second (with a burst of
# one second's worth) per address; 0 or empty switches a cap off. Behind Docker's published
# port every host client may arrive from the same address (the bridge gateway), so the
# defaults (compose.yaml) are far above what the project's own load tests send.
CLIENT_MAX_CONNS="${CLIENT_MAX_CONNS:-0}"
CLIENT_RATE="${CLIENT_RATE:-0}"
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
# Set by render_max_conns.
MAX_CONNS_OPT=""
MAX_CONNS_LARGE_OPT=""
# Rounds in a row each address's probe timed out (render).
declare -A busy_rounds=()

log() { printf '{"time":"%s","component":"upstream-sync","message":"%s"}\n' "$(date -u +%FT%TZ)" "$*"; }

resolve() { getent ahostsv4 "$SERVICE" 2>/dev/null | awk '{print $1}' | sort -u; }

# A replica is healthy when its readiness endpoint answers 200 within a second. Returns 0 then,
# 2 when it did not answer in time (busy: its threads are all running predictions), and 1 for
# anything else (another status, a refused or failed connection).
probe() {
  local answer rc
  answer=$(timeout 1 bash -c '
    exec 3<>"/dev/tcp/$1/$2" || exit 1
    printf "GET %s HTTP/1.0\r\nHost: upstream-sync\r\n\r\n" "$3" >&3
    head -c 12 <&3' _ "$1" "$PROBE_PORT" "$PROBE_PATH" 2>/dev/null)
  rc=$?
  [[ $answer == *" 200"* ]] && return 0
  [ "$rc" -eq 124 ] && return 2
  return 1
}

# Whether an address is in the current upstream.
in_upstream() { current_addresses | grep -qx "$1"; }

# The addresses in the current upstream (none for the placeholder `down` server).
current_addresses() {
  [ -f "$CONF" ] || return 0
  sed -n "s/^server \([0-9.]*\):$PORT .*/\1/p" "$CONF"
}

# The large group's file beside an upstream file: upstream.conf(.new) -> upstream-large.conf(.new).
large_of() {
  local dir="${1%/*}" base="${1##*/}"
  printf '%s/%s' "$dir" "${base/.conf/-large.conf}"
}

# The upstream's server lines for the healthy replicas, in `out` and in the large group's file
# beside it (the same replicas, their own max_conns). Sets resolved_count and counts empty
# lookups; must run in the main shell (not in $(...)) for those to stick, so it writes to files.
render() {
  local out="$1" ips healthy=() ip
  ips="$(resolve)"
  resolved_count=$(printf '%s' "$ips" | grep -c .)
  if [ -z "$ips" ]; then
    lookup_failures=$((lookup_failures + 1))
    ips="$(current_addresses)"
  fi
  for ip in $ips; do
    probe "$ip"
    case $? in
      0) healthy+=("$ip"); busy_rounds[$ip]=0 ;;
      # Busy is not unready: a replica already in the upstream whose probe only timed out
      # (queued behind predictions under overload) stays for BUSY_ROUNDS rounds, so overload
      # does not rewrite the upstream exactly when capacity is needed. Not ready (503) or
      # gone (refused) leaves at once; passive health covers a replica that died meanwhile.
      2) if in_upstream "$ip" && [ "${busy_rounds[$ip]:-0}" -lt "$BUSY_ROUNDS" ]; then
           busy_rounds[$ip]=$(( ${busy_rounds[$ip]:-0} + 1 ))
           healthy+=("$ip")
         fi ;;
      *) busy_rounds[$ip]=0 ;;
    esac
  done
  # No healthy replica but some resolved: keep trying them rather than failing every request.
  if [ ${#healthy[@]} -eq 0 ] && [ "$resolved_count" -gt 0 ]; then
    read -r -a healthy <<<"$(echo $ips)"
  fi
  if [ ${#healthy[@]} -eq 0 ]; then
    # An upstream block needs one server; this one is never used.
    echo "server 127.0.0.1:9 down;" | tee "$(large_of "$out")" >"$out"
    return
  fi
  for ip in "${healthy[@]}"; do
    echo "server $ip:$PORT ${MAX_CONNS_OPT}$SERVER_OPTS;"
  done >"$out"
  for ip in "${healthy[@]}"; do
    echo "server $ip:$PORT ${MAX_CONNS_LARGE_OPT}$SERVER_OPTS;"
  done >"$(large_of "$out")"
}

# Install the rendered upstream if it differs, and reload the balancer tier; a config nginx
# rejects, or a reload that fails, keeps the previous upstream and is counted.
apply() {
  local new="$1" large
  large="$(large_of "$CONF")"
  cmp -s "$new" "$CONF" && cmp -s "$(large_of "$new")" "$large" && return 0
  cp "$CONF" "$CONF.old" 2>/dev/null
  cp "$large" "$large.old" 2>/dev/null
  mv "$new" "$CONF"
  mv "$(large_of "$new")" "$large"
  if ! "${BALANCER[@]}" -t -q 2>/dev/null; then
    mv "$CONF.old" "$CONF"
    mv "$large.old" "$large"
    reload_failures=$((reload_failures + 1))
    log "rendered upstream rejected by nginx -t; kept the previous one"
  elif ! "${BALANCER[@]}" -s reload 2>/dev/null; then
    mv "$CONF.old" "$CONF"
    mv "$large.old" "$large"
    reload_failures=$((reload_failures + 1))
    log "reloading the balancer tier failed; kept the previous upstream"
  else
    last_change=$(date +%s)
    log "upstream now: $(tr '\n' ' ' <"$CONF" | sed "s/:$PORT [^;]*;/:$PORT;/g")"
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

# A whole number from 0 to 999999, or else a message naming the variable.
count_setting() {
  local name="$1" value="$2"
  if ! [[ "$value" =~ ^(0|[1-9][0-9]{0,5})$ ]]; then
    log "$name=$value must be a whole number from 0 to 999999 (0: no limit)"
    return 1
  fi
}

# Sets CORES to the replica's CPU limit (MODEL_CPUS, Compose's `cpus`: 1.0, 0.25, 2) rounded up
# to whole cores; refuses a value that is not a number of cores above 0, naming the variable.
whole_cores() {
  local whole fraction
  if [[ "$MODEL_CPUS" =~ ^([0-9]{1,3})(\.([0-9]{1,3}))?$ ]]; then
    whole=$((10#${BASH_REMATCH[1]}))
    fraction="${BASH_REMATCH[3]}"
    [[ "$fraction" =~ [1-9] ]] && whole=$((whole + 1))
    if [ "$whole" -gt 0 ]; then
      CORES="$whole"
      return 0
    fi
  fi
  log "MODEL_CPUS=$MODEL_CPUS must be a number of cores above 0, such as 1.0 or 0.5"
  return 1
}

# Sets MAX_CONNS_OPT and MAX_CONNS_LARGE_OPT, the max_conns option of every rendered server
# line of each group, from UPSTREAM_MAX_CONNS and UPSTREAM_MAX_CONNS_LARGE, or when they are
# empty from the replicas' workers x threads, and their cores (at most their workers).
render_max_conns() {
  local n="$MAX_CONNS" large="$MAX_CONNS_LARGE"
  count_setting MODELFLEET_WORKERS "$WORKERS" && count_setting MODELFLEET_THREADS "$THREADS" \
    || return 1
  [ -z "$n" ] && n=$((WORKERS * THREADS))
  if [ -z "$large" ]; then
    whole_cores || return 1
    large=$((CORES < WORKERS ? CORES : WORKERS))
  fi
  count_setting UPSTREAM_MAX_CONNS "$n" && count_setting UPSTREAM_MAX_CONNS_LARGE "$large" \
    || return 1
  MAX_CONNS_OPT=""
  MAX_CONNS_LARGE_OPT=""
  [ "$n" -gt 0 ] && MAX_CONNS_OPT="max_conns=$n "
  [ "$large" -gt 0 ] && MAX_CONNS_LARGE_OPT="max_conns=$large "
  return 0
}

# The front tier's per-client caps (nginx.conf includes both files): the zones at http level,
# the limits in the public server. A cap of 0 renders nothing.
render_client_limits() {
  count_setting CLIENT_MAX_CONNS "$CLIENT_MAX_CONNS" || return 1
  count_setting CLIENT_RATE "$CLIENT_RATE" || return 1
  : >"$CONF_DIR/client-limits-http.conf"
  : >"$CONF_DIR/client-limits.conf"
  if [ "$CLIENT_MAX_CONNS" -gt 0 ]; then
    echo 'limit_conn_zone $binary_remote_addr zone=client_conns:4m;' \
      >>"$CONF_DIR/client-limits-http.conf"
    echo "limit_conn client_conns $CLIENT_MAX_CONNS;" >>"$CONF_DIR/client-limits.conf"
  fi
  if [ "$CLIENT_RATE" -gt 0 ]; then
    echo "limit_req_zone \$binary_remote_addr zone=client_rate:4m rate=${CLIENT_RATE}r/s;" \
      >>"$CONF_DIR/client-limits-http.conf"
    echo "limit_req zone=client_rate burst=$CLIENT_RATE nodelay;" >>"$CONF_DIR/client-limits.conf"
  fi
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
  render_max_conns || exit 2
  render_client_limits || exit 2
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
