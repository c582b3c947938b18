#!/usr/bin/env bash
# The host's prerequisites, checked (and installed where that is possible) in one place.
#
#   scripts/host.sh packages CMD[:DEBIAN_PACKAGE] ...   install the Debian packages of missing commands
#   scripts/host.sh python-venv                         python3 can make a venv (python3-venv)
#   scripts/host.sh docker                              the Docker CLI and engine answer this user
#   scripts/host.sh ports                               the stack's published ports are free (or ours)
#
# Packages are installed with apt-get as root, with `sudo -n` otherwise; where neither works the
# script stops with one line naming the command to run. Every failure is one line starting "!!".
set -euo pipefail
cd "$(dirname "$0")/.."

die() { echo "!! $*" >&2; exit 1; }

apt_install() {
  local pkgs=("$@") runner=()
  command -v apt-get >/dev/null 2>&1 ||
    die "missing: ${pkgs[*]}; install them with your system's package manager"
  if [ "$(id -u)" != 0 ]; then
    sudo -n true >/dev/null 2>&1 || die "missing: ${pkgs[*]}; run: sudo apt-get install -y ${pkgs[*]}"
    runner=(sudo -n)
  fi
  echo ">> installing ${pkgs[*]} (Debian packages)"
  # Wait for another apt or dpkg run (an unattended upgrade, a parallel make) to finish
  # rather than failing on its lock.
  local wait=(-o DPkg::Lock::Timeout=600)
  "${runner[@]}" apt-get "${wait[@]}" update -qq >/dev/null
  DEBIAN_FRONTEND=noninteractive "${runner[@]}" apt-get "${wait[@]}" install -y -qq \
    --no-install-recommends "${pkgs[@]}" >/dev/null
}

cmd_packages() {
  local spec missing=()
  for spec in "$@"; do
    command -v "${spec%%:*}" >/dev/null 2>&1 || missing+=("${spec#*:}")
  done
  [ ${#missing[@]} -eq 0 ] || apt_install "${missing[@]}"
}

cmd_python_venv() {
  command -v python3 >/dev/null 2>&1 || die "python3 is not installed; run: sudo apt-get install -y python3"
  python3 -c 'import venv, ensurepip' >/dev/null 2>&1 || apt_install python3-venv
}

cmd_docker() {
  command -v docker >/dev/null 2>&1 ||
    die "Docker is not installed; install Docker Engine (https://docs.docker.com/engine/install/), then run this again"
  local err
  if ! err="$(docker info 2>&1 >/dev/null)"; then
    case "$err" in
      *"permission denied"*)
        die "user $(id -un) may not use Docker; run: sudo usermod -aG docker $(id -un), then log in again" ;;
      *"Cannot connect"* | *"Is the docker daemon running"* | *"connection refused"*)
        die "the Docker engine is not running; start it: sudo systemctl start docker" ;;
      *) die "Docker does not answer: $(echo "$err" | tail -1)" ;;
    esac
  fi
}

# The project's name, then every port the stack publishes as "ADDRESS PORT SERVICE" lines, from
# one `compose config` (the defaults live in compose.yaml only).
published_ports() {
  scripts/compose config --format json | python3 -c '
import json, sys
config = json.load(sys.stdin)
print(config["name"])
for name, svc in config["services"].items():
    for p in svc.get("ports", []):
        if p.get("published"):
            print(p.get("host_ip") or "0.0.0.0", p["published"], name)
'
}

cmd_ports() {
  local ports project
  ports="$(published_ports)"
  project="${ports%%$'\n'*}"
  local addr port service owner
  while read -r addr port service; do
    python3 - "$addr" "$port" <<'PY' && continue
import socket, sys
s = socket.socket()
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
try:
    s.bind((sys.argv[1], int(sys.argv[2])))
except OSError:
    sys.exit(1)
PY
    # Taken: fine when it is this project's own container (make up converges it again).
    owner="$(docker ps --filter "publish=$port" --format '{{.Label "com.docker.compose.project"}} {{.Names}}' | head -1)"
    [ "${owner%% *}" = "$project" ] && continue
    local var="LB_PORT"
    case "$service" in prometheus) var=PROMETHEUS_PORT ;; grafana) var=GRAFANA_PORT ;; esac
    die "port $addr:$port (for $service) is taken by ${owner:+container ${owner#* }}${owner:-another program}; stop it, or choose another: make up $var=$((port + 1))"
  done < <(tail -n +2 <<<"$ports")
}

case "${1:-}" in
  packages) shift; cmd_packages "$@" ;;
  python-venv) cmd_python_venv ;;
  docker) cmd_docker ;;
  ports) cmd_ports ;;
  *) echo "usage: $0 packages CMD[:PKG]... | python-venv | docker | ports" >&2; exit 2 ;;
esac
