#!/usr/bin/env bash
# Runs every check Drape's CI runs: stale API stubs and OpenAPI document, buf lint, ruff, and the
# test suite (unit, real PostgreSQL, the whole stack on loopback, grpcurl, kill -9).
# Extra arguments go to pytest, e.g. `bash scripts/test.sh -k events`.
set -euo pipefail
cd "$(dirname "$0")/.."
VENV=${VENV:-.venv}
if [ ! -x "$VENV/bin/python" ]; then
  echo "no virtual environment at $VENV: run 'bash scripts/install.sh' first" >&2
  exit 2
fi
export PATH="$PWD/$VENV/bin:$PATH" OPENBLAS_NUM_THREADS=1

echo "== API stubs";  python tools/protogen.py --check && python tools/openapi.py --check
echo "== buf lint";   buf lint && echo "clean"
echo "== ruff";       ruff check . && ruff format --check .
echo "== pip check";  python -m pip check
echo "== pytest"
python -m pytest -p no:cacheprovider "$@"
