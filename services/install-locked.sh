#!/bin/sh
# install-locked.sh VENV DEPS: create the venv VENV with exactly the hash-locked dependencies in
# DEPS/requirements.lock. Used by the builder stage of every Python image (model server, loadgen).
#
# Where the wheels come from, decided by what the build context held:
#   - DEPS/.complete exists: DEPS is a wheelhouse that `make wheels` / `make wheels-loadgen`
#     downloaded on the host (build/wheelhouse*). Installed with --no-index: the air-gapped
#     path, for machines whose builds cannot reach a package index.
#   - no wheels at all (a fresh clone): from the package index PIP_INDEX_URL (a build arg,
#     PyPI's by default), so `docker compose up --build` works without make.
#   - wheels without .complete: an interrupted download. Refused, so a half wheelhouse never
#     silently turns into network access or an opaque pip error.
# Both paths are --require-hashes and --only-binary: the same files, checked the same way.
set -eu
venv=$1
deps=$2

if [ -e "$deps/.complete" ]; then
  echo "install-locked: from the wheelhouse (no index)"
  set -- --no-index --find-links "$deps"
elif ls "$deps"/*.whl >/dev/null 2>&1; then
  echo "install-locked: the wheelhouse has wheels but no .complete marker (an interrupted" \
    "download): run make wheels / make wheels-loadgen again, or remove it to use the index" >&2
  exit 1
else
  echo "install-locked: no wheelhouse in the build context, from the index ${PIP_INDEX_URL:?}"
  set -- --index-url "$PIP_INDEX_URL"
fi

python3 -m venv "$venv"
PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_NO_CACHE_DIR=1 "$venv/bin/pip" install \
  --require-hashes --only-binary=:all: "$@" -r "$deps/requirements.lock"
# Test suites shipped inside wheels are dead weight in a runtime image; pip itself is not needed
# at run time either.
find "$venv" -depth -name tests -type d -exec rm -rf {} +
"$venv/bin/pip" uninstall -y pip setuptools >/dev/null 2>&1 || true
# Bytecode for every module, made once here: the containers run with a read-only root and
# PYTHONDONTWRITEBYTECODE, so without it every process start compiled numpy, scipy, sklearn and
# Flask from source again (8.5 s of CPU to import the model server, 3.2 s with bytecode,
# measured; a new replica under load then missed its healthcheck's start period).
# unchecked-hash: the image's files never change, so Python need not stat or hash the sources
# at import; -f rewrites the timestamp-checked files pip compiled at install in that mode.
"$venv/bin/python" -m compileall -q -f -j 0 --invalidation-mode unchecked-hash "$venv/lib" \
  >/dev/null
