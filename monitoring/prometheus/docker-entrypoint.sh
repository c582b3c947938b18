#!/usr/bin/env bash
# Start Prometheus with /etc/prometheus/prometheus.yml, after applying environment overrides.
#
# Prometheus 2.42 does not expand variables in its configuration. Lines of prometheus.yml that
# end in `# env: NAME` take their value from $NAME when it is set (the file itself stays a
# valid config with its defaults, so promtool checks it as is). The rendered copy lives on
# tmpfs: the root filesystem is read-only.
set -euo pipefail
src=/etc/prometheus/prometheus.yml
out=/tmp/prometheus.yml
re='^([[:space:]-]*[a-z_]+:)[[:space:]]*[^#]*#[[:space:]]*env:[[:space:]]*([A-Z_][A-Z0-9_]*)[[:space:]]*$'
: >"$out"
while IFS= read -r line || [ -n "$line" ]; do
  if [[ $line =~ $re ]] && [ -n "${!BASH_REMATCH[2]:-}" ]; then
    line="${BASH_REMATCH[1]} ${!BASH_REMATCH[2]} # env: ${BASH_REMATCH[2]}"
  fi
  printf '%s\n' "$line" >>"$out"
done <"$src"
exec /usr/bin/prometheus --config.file="$out" "$@"
