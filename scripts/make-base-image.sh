#!/bin/sh
# Make a local base image from Debian packages, for engines that cannot pull from a registry
# (the tests build dockerfiles/* on it with --build-arg BASE=IMAGE):
#
#   scripts/make-base-image.sh [--suite bookworm] [--mirror URL] IMAGE      (about 2 minutes)
#       debootstrap --variant=minbase with python3 and pip, then `docker import`
#   scripts/make-base-image.sh --busybox IMAGE                              (a second)
#       busybox only (no Python): for engine-level tests
#
# Talks to the engine named by DOCKER_HOST, as the docker CLI does. Needs root (debootstrap)
# and scripts/install-docker.sh's packages. The mirror defaults to the one apt uses here.
# Quiet unless something fails; prints the image id at the end.
set -eu

usage() {
    echo "usage: $0 [--busybox] [--suite SUITE] [--mirror URL] [--packages LIST] IMAGE" >&2
    exit 2
}

mode=debootstrap
suite=bookworm
mirror=""
packages="python3,python3-pip,ca-certificates"
image=""
while [ $# -gt 0 ]; do
    case "$1" in
        --busybox) mode=busybox ;;
        --suite) suite="$2"; shift ;;
        --mirror) mirror="$2"; shift ;;
        --packages) packages="$2"; shift ;;
        -h|--help) usage ;;
        -*) echo "make-base-image: unknown option $1" >&2; usage ;;
        *) [ -z "$image" ] || usage; image="$1" ;;
    esac
    shift
done
[ -n "$image" ] || usage

DOCKER="${DOCKER:-docker}"
command -v "$DOCKER" >/dev/null 2>&1 || { echo "make-base-image: no docker CLI; run scripts/install-docker.sh" >&2; exit 1; }

# The Debian mirror apt uses (deb822 .sources, then sources.list), else the public redirector.
apt_mirror() {
    for f in /etc/apt/sources.list.d/*.sources; do
        [ -f "$f" ] || continue
        uri=$(awk '/^URIs:/ {for (i = 2; i <= NF; i++) if ($i ~ /\/debian\/?$/) {print $i; exit}}' "$f")
        [ -n "$uri" ] && { echo "$uri"; return; }
    done
    if [ -f /etc/apt/sources.list ]; then
        uri=$(awk '$1 == "deb" {for (i = 2; i <= NF; i++) if ($i ~ /^https?:\/\/.*\/debian\/?$/) {print $i; exit}}' /etc/apt/sources.list)
        [ -n "$uri" ] && { echo "$uri"; return; }
    fi
    echo "http://deb.debian.org/debian"
}

work=$(mktemp -d "${TMPDIR:-/tmp}/mlops-base.XXXXXX")
log="$work/log"
cleanup() { rm -rf "$work"; }
trap cleanup EXIT INT TERM
rootfs="$work/rootfs"
mkdir -p "$rootfs"

if [ "$mode" = busybox ]; then
    bb=$(command -v busybox || true)
    [ -n "$bb" ] || { echo "make-base-image: busybox is missing; run scripts/install-docker.sh" >&2; exit 1; }
    if ldd "$bb" >/dev/null 2>&1; then
        echo "make-base-image: $bb is linked dynamically; install busybox-static (scripts/install-docker.sh)" >&2
        exit 1
    fi
    mkdir -p "$rootfs/bin" "$rootfs/etc" "$rootfs/tmp" "$rootfs/proc" "$rootfs/sys" "$rootfs/dev"
    chmod 1777 "$rootfs/tmp"
    cp "$bb" "$rootfs/bin/busybox"
    for applet in $("$bb" --list); do
        [ "$applet" = busybox ] || ln -sf busybox "$rootfs/bin/$applet"
    done
    printf 'root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/:/bin/sh\n' > "$rootfs/etc/passwd"
    printf 'root:x:0:\nnogroup:x:65534:\n' > "$rootfs/etc/group"
    cmd='CMD ["sh"]'
else
    command -v debootstrap >/dev/null 2>&1 || [ -x /usr/sbin/debootstrap ] || {
        echo "make-base-image: debootstrap is missing; run scripts/install-docker.sh" >&2; exit 1; }
    [ "$(id -u)" -eq 0 ] || { echo "make-base-image: debootstrap needs root" >&2; exit 1; }
    [ -n "$mirror" ] || mirror=$(apt_mirror)
    if ! PATH="$PATH:/usr/sbin:/sbin" debootstrap --variant=minbase --include="$packages" \
            "$suite" "$rootfs" "$mirror" >"$log" 2>&1; then
        tail -n 20 "$log" >&2
        echo "make-base-image: debootstrap $suite from $mirror failed (see above)" >&2
        exit 1
    fi
    # A smaller image: no package lists or caches (apt-get update works again if wanted).
    rm -rf "$rootfs/var/cache/apt/archives/"*.deb "$rootfs/var/lib/apt/lists/"* "$rootfs/usr/share/doc" \
           "$rootfs/usr/share/man" "$rootfs/usr/share/locale"
    cmd='CMD ["python3"]'
fi

if ! tar -C "$rootfs" -c . | "$DOCKER" import -c "$cmd" -c 'ENV LANG=C.UTF-8' \
        -m "mlops local base ($mode${suite:+ $suite})" - "$image" >"$log" 2>&1; then
    cat "$log" >&2
    echo "make-base-image: docker import of $image failed (see above)" >&2
    exit 1
fi
cat "$log"
