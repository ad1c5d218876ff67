#!/usr/bin/env bash
# Build Warren. Usage: scripts/build.sh [release|asan] (default release).
#   release -> build/       warrend, warren-init, warren, unit tests
#   asan    -> build-asan/  the same with ASan+UBSan on the daemon, CLI and unit tests
#                           (warren-init, which runs inside sandboxes, is never sanitized)
set -euo pipefail
cd "$(dirname "$0")/.."
kind=${1:-release}
case "$kind" in
release) dir=build; flags=(-DCMAKE_BUILD_TYPE=RelWithDebInfo) ;;
asan) dir=build-asan; flags=(-DCMAKE_BUILD_TYPE=Debug -DWARREN_SANITIZE=ON) ;;
*) echo "build.sh: unknown kind $kind" >&2; exit 2 ;;
esac
echo "build: configuring $dir ($kind)" >&2
cmake -S . -B "$dir" -G Ninja "${flags[@]}" >/dev/null
echo "build: compiling $dir" >&2
ninja -C "$dir" >&2
echo "build: $dir ready" >&2
