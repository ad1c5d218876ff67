#!/usr/bin/env bash
# Warren benchmark suite ("Speed at scale"): starts real warrend daemons (release build) on
# 127.0.0.1 with temporary data dirs and measures create (cold, warm, bubblewrap side by side),
# time to first output, exec, burst, density, file transfer, idle connections, and the
# streaming of background jobs (WebSocket attach and long-poll throughput, attach latency).
# Prints a table and writes bench/results.json. See docs/performance.md.
#
# Usage: sudo bench/run.sh [--quick] [--bin-dir DIR] [--only SECTIONS] [--out FILE] [...]
#   --quick       smoke run: 30 samples per row, density N = 50, 64 MiB streams (about 2 minutes)
#   --only stream the streaming rows only (bench/bench_stream.py; about 1 minute)
#   --bin-dir DIR directory holding warrend and warren-init (default build/, built with
#                 scripts/build.sh release when missing)
#   other flags go to bench/bench.py (--help lists them)
set -euo pipefail
cd "$(dirname "$0")/.."
[ "$(id -u)" = 0 ] || { echo "run.sh: needs root (sandboxes need it): sudo bench/run.sh" >&2; exit 1; }
bin_dir=build
args=()
while [ $# -gt 0 ]; do
        case "$1" in
        --bin-dir) bin_dir=$2; shift 2 ;;
        --bin-dir=*) bin_dir=${1#--bin-dir=}; shift ;;
        *) args+=("$1"); shift ;;
        esac
done
if ! command -v bwrap >/dev/null; then
        DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends bubblewrap >/dev/null
fi
if [ ! -x "$bin_dir/warrend" ] || [ ! -x "$bin_dir/warren-init" ]; then
        if [ "$bin_dir" = build ]; then
                scripts/build.sh release
        else
                echo "run.sh: no warrend / warren-init in $bin_dir" >&2
                exit 1
        fi
fi
exec /usr/bin/python3 bench/bench.py --bin-dir "$bin_dir" "${args[@]}"
