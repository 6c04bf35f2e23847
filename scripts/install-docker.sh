#!/bin/sh
# Install what the Docker tests need, if missing: the Docker engine (Debian's docker.io:
# dockerd, containerd, runc), busybox-static and debootstrap (to make the local base image,
# since no registry is reachable from CI). The tests start their own dockerd on a private
# socket (tests/docker_engine.py); this script only installs, it starts nothing.
# Idempotent: does nothing when dockerd, busybox and debootstrap are all there. Runs
# `apt-get update` only when apt does not know the packages yet. Needs root (or sudo).
# Quiet unless something fails.
set -eu

have() { command -v "$1" >/dev/null 2>&1 || [ -x "/usr/sbin/$1" ] || [ -x "/sbin/$1" ]; }

missing=""
have dockerd || missing="$missing docker.io"
have containerd || case "$missing" in *docker.io*) ;; *) missing="$missing containerd" ;; esac
# busybox-static, not busybox: the tiny test image copies the binary into an empty root
dpkg-query -W -f '${Status}' busybox-static 2>/dev/null | grep -q 'ok installed' || missing="$missing busybox-static"
have debootstrap || missing="$missing debootstrap"

if [ -z "$missing" ]; then
    exit 0
fi

if [ "$(id -u)" -eq 0 ]; then
    SUDO=""
elif command -v sudo >/dev/null 2>&1; then
    SUDO="sudo -n"
else
    echo "install-docker: missing:$missing and this is not root (and no sudo); install them with apt-get" >&2
    exit 1
fi

if ! command -v apt-get >/dev/null 2>&1; then
    echo "install-docker: no apt-get here; install a Docker engine, busybox and debootstrap by hand" >&2
    exit 1
fi

export DEBIAN_FRONTEND=noninteractive
log=$(mktemp)
trap 'rm -f "$log"' EXIT

# `apt-get update` only when apt has no candidate for a package (fresh image, empty lists).
first=$(echo "$missing" | awk '{print $1}')
if ! apt-cache policy "$first" 2>/dev/null | grep -q 'Candidate: [0-9]'; then
    if ! $SUDO apt-get update -qq >"$log" 2>&1; then
        cat "$log" >&2
        echo "install-docker: apt-get update failed (see above)" >&2
        exit 1
    fi
fi

# --no-install-recommends: no apparmor, cgroupfs-mount, git or xz from docker.io's recommends.
# shellcheck disable=SC2086
if ! $SUDO apt-get install -y -qq --no-install-recommends $missing >"$log" 2>&1; then
    cat "$log" >&2
    echo "install-docker: apt-get install$missing failed (see above)" >&2
    exit 1
fi

if ! have dockerd; then
    echo "install-docker: docker.io installed but dockerd is still missing" >&2
    exit 1
fi
