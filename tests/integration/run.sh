#!/usr/bin/env bash
# Runs the integration suite with Node.js's built-in test runner against build/qmux and
# build/qmux-standin (run `make` first). When a q binary is on PATH, runs the suite a
# second time with q and standin.q as the upstream. Extra arguments are passed to
# `node --test`, e.g. `run.sh --test-name-pattern=ordering`.
set -euo pipefail

cd "$(dirname "$0")"

# Install node-q from the lock file when node_modules is missing or older than the lock.
if [ ! -d node_modules ] || [ package-lock.json -nt node_modules ]; then
    npm ci --no-audit --no-fund
    touch node_modules
fi

test_files=(*.test.js)

# One test file at a time: several tests measure timing, and the machine has 2 cores.
run_suite() {
    node --test --test-concurrency=1 --test-reporter=spec "$@" "${test_files[@]}"
}

status=0
echo "integration: upstream = build/qmux-standin"
run_suite "$@" || status=$?

if command -v q >/dev/null 2>&1; then
    echo "integration: upstream = q standin.q"
    QMUX_TEST_UPSTREAM=q run_suite "$@" || status=$?
fi

exit "$status"
