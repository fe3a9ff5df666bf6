#!/usr/bin/env bash
# Checks the operator-facing files that make check does not compile: the man pages render
# without mandoc warnings, and the systemd unit passes systemd-analyze verify where
# systemd-analyze is installed (it is skipped with a message where it is not).
set -euo pipefail
cd "$(dirname "$0")/.."

status=0
for page in man/qmux.8 man/qmux.conf.5 man/qmux-passwd.1; do
    if ! mandoc -T lint -W warning "$page"; then
        echo "check-docs: $page has mandoc warnings (above)" >&2
        status=1
    fi
done

if command -v systemd-analyze >/dev/null 2>&1; then
    # verify needs the binaries the unit names; point it at the built ones.
    unit_dir=$(mktemp -d)
    sed "s|/usr/local/bin/qmux|$PWD/build/qmux|g" systemd/qmux.service >"$unit_dir/qmux.service"
    # --man=no: the man pages the unit names are not installed in a build tree.
    if ! systemd-analyze verify --man=no "$unit_dir/qmux.service"; then
        echo "check-docs: systemd/qmux.service fails systemd-analyze verify" >&2
        status=1
    fi
    rm -rf "$unit_dir"
else
    echo "check-docs: SKIP systemd-analyze verify (systemd-analyze is not installed)"
fi
exit $status
