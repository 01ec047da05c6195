#!/usr/bin/env bash
# Build the offline test base image: Debian bookworm (debootstrap minbase) with the few packages the
# Dockerfiles otherwise install with apt-get, imported with `docker import`. CI machines have no
# container registry, so this stands in for the CUDA/Ubuntu base images of the production builds.
#
#   docker/build-test-base.sh [--force]
#
# Environment: TEST_BASE_IMAGE (default comfy-init-test-base:bookworm),
#              DEBIAN_MIRROR (default: debootstrap's own default mirror).
set -euo pipefail

image="${TEST_BASE_IMAGE:-comfy-init-test-base:bookworm}"
mirror="${DEBIAN_MIRROR:-}"  # empty: debootstrap picks its default
# Keep in step with docker/apt-install-missing.sh callers: when every package a Dockerfile asks for is
# here, its apt-get step is a no-op and the test builds never touch the network for it.
packages="python3,python3-venv,ca-certificates,curl,git"

if [[ "${1:-}" != "--force" ]] && docker image inspect "$image" >/dev/null 2>&1; then
    echo "build-test-base: $image exists, reusing it (--force rebuilds)"
    exit 0
fi

workdir="$(mktemp -d /var/tmp/comfy-init-base.XXXXXX)"
cleanup() {
    # debootstrap can leave /proc mounted inside the target when it fails half-way.
    umount -R "$workdir/rootfs/proc" 2>/dev/null || true
    rm -rf "$workdir"
}
trap cleanup EXIT

echo "build-test-base: debootstrap bookworm (minbase + $packages) from ${mirror:-the default mirror}"
start=$SECONDS
debootstrap --variant=minbase --include="$packages" bookworm "$workdir/rootfs" ${mirror:+"$mirror"} \
    >"$workdir/debootstrap.log" 2>&1 || { tail -n 40 "$workdir/debootstrap.log"; exit 1; }

# The image should not carry package lists or caches: a Dockerfile that needs more runs apt-get update.
chroot "$workdir/rootfs" apt-get clean
rm -rf "$workdir/rootfs/var/lib/apt/lists/"* "$workdir/rootfs/var/log/"*.log

echo "build-test-base: importing as $image"
tar --numeric-owner -C "$workdir/rootfs" \
    --exclude='./dev/*' --exclude='./proc/*' --exclude='./sys/*' -c . \
    | docker import \
        -c 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
        -c 'ENV LANG=C.UTF-8' \
        -c 'CMD ["/bin/bash"]' \
        -m "debootstrap bookworm minbase + $packages" \
        - "$image" >/dev/null
echo "build-test-base: done in $((SECONDS - start)) s ($(docker image inspect -f '{{.Size}}' "$image") bytes)"
