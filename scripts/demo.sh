#!/usr/bin/env bash
# The demo: one worker and one producer on the embedded SQLite default (no server needed).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
workdir=$(mktemp -d)
trap 'kill "$worker" 2>/dev/null || true; wait "$worker" 2>/dev/null || true; rm -rf "$workdir"' EXIT
cp demo/tasks.py demo/produce.py "$workdir"/
cd "$workdir"
"$OLDPWD"/.venv/bin/celeriac -A tasks worker -l info -c 2 -P threads > worker.log 2>&1 &
worker=$!
for _ in $(seq 1 100); do grep -q " ready." worker.log 2>/dev/null && break; sleep 0.1; done
"$OLDPWD"/.venv/bin/python produce.py
kill -TERM "$worker"; wait "$worker" || true
echo "--- worker log ---"
cat worker.log
