#!/usr/bin/env bash
# Entrypoint of the model server image.
#
#   docker run IMAGE            -> serve (gunicorn)
#   docker run IMAGE serve      -> serve (the SageMaker container contract)
#   docker run IMAGE CMD ...    -> exec CMD (e.g. python -m model_server.train ...)
set -euo pipefail

# prometheus-client multiprocess mode: the directory must be set before Python starts (the
# client reads it at import) and must be empty at start, or stale files from a previous run
# would be summed into the new metrics.
export PROMETHEUS_MULTIPROC_DIR="${PROMETHEUS_MULTIPROC_DIR:-/tmp/prometheus-multiproc}"
rm -rf "${PROMETHEUS_MULTIPROC_DIR}"
mkdir -p "${PROMETHEUS_MULTIPROC_DIR}"

if [[ $# -eq 0 || "$1" == "serve" ]]; then
    exec gunicorn -c /app/gunicorn.conf.py 'model_server.app:create_app()'
fi
exec "$@"
