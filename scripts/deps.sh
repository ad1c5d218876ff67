#!/usr/bin/env bash
# Install every Debian 12 package Warren needs to build, run and test. Idempotent.
# Usage: scripts/deps.sh            (as root)
set -euo pipefail
if [ "$(id -u)" != 0 ]; then
        echo "deps.sh: run as root (apt-get)" >&2
        exit 1
fi
export DEBIAN_FRONTEND=noninteractive
echo "deps: apt-get update" >&2
apt-get update -q >/dev/null
echo "deps: installing packages" >&2
apt-get install -y -q --no-install-recommends \
        build-essential pkg-config cmake ninja-build clang \
        libuv1-dev libhttp-parser-dev libwslay-dev libssl-dev libjansson-dev \
        libsqlite3-dev sqlite3 libseccomp-dev libcap-dev libcurl4-openssl-dev libcmocka-dev \
        libnl-3-dev libnl-route-3-dev libnftables-dev nftables \
        e2fsprogs util-linux procps iproute2 ca-certificates \
        python3 python3-pytest python3-requests python3-websockets python3-cryptography \
        >/dev/null
echo "deps: done" >&2
