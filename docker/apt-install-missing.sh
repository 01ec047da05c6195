#!/bin/sh
# apt-install-missing PACKAGE...
# Installs with apt-get only the packages that are not installed yet. A base image that already has
# them all (the tests' debootstrap image) then needs no package lists, no network and no time.
set -eu

missing=""
for package in "$@"; do
    dpkg-query -W -f='${db:Status-Status}' "$package" 2>/dev/null | grep -qx installed \
        || missing="$missing $package"
done

if [ -z "$missing" ]; then
    echo "apt-install-missing: already installed: $*"
    exit 0
fi

echo "apt-install-missing: installing:$missing"
export DEBIAN_FRONTEND=noninteractive
apt-get update
# shellcheck disable=SC2086 # one word per package
apt-get install -y --no-install-recommends $missing
rm -rf /var/lib/apt/lists/*
