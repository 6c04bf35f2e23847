#!/bin/sh
# Install headless Chromium (Debian package) for the report's browser test, if missing.
# Idempotent: does nothing when /usr/bin/chromium exists. Runs `apt-get update` only when
# the package is not known to apt yet. Needs root (or sudo). Quiet unless something fails.
set -eu

CHROMIUM=/usr/bin/chromium

if [ -x "$CHROMIUM" ]; then
    exit 0
fi

if [ "$(id -u)" -eq 0 ]; then
    SUDO=""
elif command -v sudo >/dev/null 2>&1; then
    SUDO="sudo -n"
else
    echo "install-chromium: $CHROMIUM is missing and this is not root (and no sudo); install the 'chromium' package" >&2
    exit 1
fi

if ! command -v apt-get >/dev/null 2>&1; then
    echo "install-chromium: no apt-get here; install Chromium so that $CHROMIUM exists" >&2
    exit 1
fi

export DEBIAN_FRONTEND=noninteractive
log=$(mktemp)
trap 'rm -f "$log"' EXIT

# `apt-get update` only when apt has no candidate for the package (fresh image, empty lists).
if ! apt-cache policy chromium 2>/dev/null | grep -q 'Candidate: [0-9]'; then
    if ! $SUDO apt-get update -qq >"$log" 2>&1; then
        cat "$log" >&2
        echo "install-chromium: apt-get update failed (see above)" >&2
        exit 1
    fi
fi

if ! $SUDO apt-get install -y -qq --no-install-recommends chromium fonts-dejavu-core >"$log" 2>&1; then
    cat "$log" >&2
    echo "install-chromium: apt-get install chromium failed (see above)" >&2
    exit 1
fi

if [ ! -x "$CHROMIUM" ]; then
    echo "install-chromium: package installed but $CHROMIUM is still missing" >&2
    exit 1
fi
