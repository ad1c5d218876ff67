#!/usr/bin/env bash
# Baseline latency benchmark: starts a real warrend (release build) on a random port with a
# temporary data dir and measures, over loopback:
#   - cold create (API call -> running), with bubblewrap `--unshare-all ... true` side by side
#   - exec round trip of `echo hi` in a running sandbox
# Prints a table (median, p90, p99, max) and writes bench/results.json.
# Usage: sudo bench/run.sh [N]     (N samples per measurement, default 200)
set -euo pipefail
cd "$(dirname "$0")/.."
if ! command -v bwrap >/dev/null; then
        DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends bubblewrap >/dev/null
fi
[ -x build/warrend ] || scripts/build.sh release
exec /usr/bin/python3 bench/bench_core.py --bin-dir build --samples "${1:-200}" --out bench/results.json
