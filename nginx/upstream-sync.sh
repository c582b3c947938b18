#!/usr/bin/env bash
# Runs the load balancer's two nginx tiers and keeps the balancer tier's upstream equal to the
# set of healthy model replicas.
#
# Every UPSTREAM_SYNC_INTERVAL seconds: resolve the compose service name through Docker's DNS,
# probe each address's readiness endpoint, render the `server` lines, and reload the balancer
# tier gracefully only when the set changed. This keeps a static upstream with keep-alive and
# passive health checks, which a `resolver` + variable proxy_pass would lose. The front tier
# (nginx.conf) is never reloaded, so clients' keep-alive connections are never cut.
set -uo pipefail

SERVICE="${UPSTREAM_SERVICE:-model}"
PORT="${UPSTREAM_PORT:-8080}"
INTERVAL="${UPSTREAM_SYNC_INTERVAL:-2}"
PROBE_PATH="${UPSTREAM_PROBE_PATH:-/readyz}"
# Passive health: one failure takes a server out for FAIL_TIMEOUT (nginx retries elsewhere).
SERVER_OPTS="${UPSTREAM_SERVER_OPTS:-max_fails=1 fail_timeout=5s}"
CONF=/run/nginx/upstream.conf

log() { printf '{"time":"%s","component":"upstream-sync","message":"%s"}\n' "$(date -u +%FT%TZ)" "$*"; }

resolve() { getent ahostsv4 "$SERVICE" 2>/dev/null | awk '{print $1}' | sort -u; }

# A replica is healthy when its readiness endpoint answers 200 within a second.
probe() {
  timeout 1 bash -c '
    exec 3<>"/dev/tcp/$1/$2" || exit 1
    printf "GET %s HTTP/1.0\r\nHost: upstream-sync\r\n\r\n" "$3" >&3
    head -c 12 <&3' _ "$1" "$PORT" "$PROBE_PATH" 2>/dev/null | grep -q ' 200'
}

render() {
  local ips healthy=() ip
  ips="$(resolve)"
  for ip in $ips; do
    probe "$ip" && healthy+=("$ip")
  done
  # No healthy replica but some resolved: keep trying them rather than failing every request.
  if [ ${#healthy[@]} -eq 0 ] && [ -n "$ips" ]; then
    read -r -a healthy <<<"$(echo $ips)"
  fi
  if [ ${#healthy[@]} -eq 0 ]; then
    # An upstream block needs one server; this one is never used.
    echo "server 127.0.0.1:9 down;"
    return
  fi
  for ip in "${healthy[@]}"; do
    echo "server $ip:$PORT $SERVER_OPTS;"
  done
}

render >"$CONF"
log "initial upstream: $(grep -c '^server [0-9.]*:'"$PORT" "$CONF") replica(s)"
BALANCER=(nginx -e stderr -c /etc/nginx/balancer.conf)
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
  new="$(render)"
  if [ "$new" != "$(cat "$CONF")" ]; then
    printf '%s\n' "$new" >"$CONF.new"
    cp "$CONF" "$CONF.old"
    mv "$CONF.new" "$CONF"
    if "${BALANCER[@]}" -t -q 2>/dev/null; then
      "${BALANCER[@]}" -s reload
      log "upstream now: $(echo $new | sed 's/ max_fails=[^;]*;/;/g')"
    else
      mv "$CONF.old" "$CONF"
      log "rendered upstream rejected by nginx -t; kept the previous one"
    fi
  fi
done
# One tier died: exit non-zero so the restart policy replaces the container.
log "an nginx tier exited; stopping"
kill -QUIT "$front_pid" "$balancer_pid" 2>/dev/null
exit 1
