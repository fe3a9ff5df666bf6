#!/usr/bin/env bash
# Install what building and testing qmux needs and is missing on a Debian machine:
# the C libraries (libevent, libconfig, zlib, OpenSSL, Check), pkg-config, clang for the fuzz
# targets, mandoc for the man page checks, Node.js with npm for the node-q tests, and the
# openssl command that the TLS tests use to make throwaway certificates.
# make bench also needs valgrind for its instruction count, because perf has no hardware
# counters in many virtual machines. chromium runs the browser test of the query page
# (tests/integration/browser.test.js), which is skipped without it.
# Run as root (or with sudo available). Prints nothing when everything is present.
set -euo pipefail

packages=(build-essential pkg-config libevent-dev libconfig-dev zlib1g-dev libssl-dev openssl
          check clang libclang-rt-dev mandoc nodejs npm procps curl valgrind chromium)

missing=()
for package in "${packages[@]}"; do
    if ! dpkg-query -W -f='${Status}' "$package" 2>/dev/null | grep -q 'install ok installed'; then
        missing+=("$package")
    fi
done

# Node.js may come from outside Debian (nodesource, nvm): a working node and npm is enough.
if command -v node >/dev/null && command -v npm >/dev/null; then
    filtered=()
    for package in "${missing[@]}"; do
        case "$package" in nodejs|npm) ;; *) filtered+=("$package") ;; esac
    done
    missing=("${filtered[@]+"${filtered[@]}"}")
fi

[ ${#missing[@]} -eq 0 ] && exit 0

sudo_cmd=()
if [ "$(id -u)" -ne 0 ]; then
    if ! command -v sudo >/dev/null; then
        echo "install-deps: missing Debian packages: ${missing[*]}; run this script as root or install them" >&2
        exit 1
    fi
    sudo_cmd=(sudo)
fi

echo "install-deps: installing ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
if ! "${sudo_cmd[@]}" apt-get install -y --no-install-recommends "${missing[@]}"; then
    "${sudo_cmd[@]}" apt-get update
    "${sudo_cmd[@]}" apt-get install -y --no-install-recommends "${missing[@]}"
fi
