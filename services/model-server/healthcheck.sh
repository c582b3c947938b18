#!/usr/bin/env bash
# The container healthcheck: 0 when GET /readyz answers 200 (every model loaded and verified),
# asked on the probe port (model_server/probes.py: never behind predictions), else on the
# serving port when MODELFLEET_PROBE_PORT is 0.
# bash's /dev/tcp rather than a Python one-liner: starting an interpreter costs tens of ms of
# CPU, and under full load on a small machine that alone ran past the 3 s timeout and marked
# busy but healthy replicas unhealthy.
port="${MODELFLEET_PROBE_PORT:-8081}"
[ "$port" = 0 ] && port="${MODELFLEET_PORT:-8080}"
exec 3<>/dev/tcp/127.0.0.1/"$port" || exit 1
printf 'GET /readyz HTTP/1.0\r\nHost: localhost\r\n\r\n' >&3
read -r -t 2 status_line <&3 || exit 1
[[ $status_line == "HTTP/1."?" 200 "* ]]
