#!/usr/bin/env bash
# The README's first command: install, build, and run warrend on 127.0.0.1:8080 with
# SQLite and the base template under /var/lib/warren. The admin key is printed on first
# start and kept in /var/lib/warren/admin.key.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/deps.sh
scripts/build.sh release
exec build/warrend --listen "${WARREN_LISTEN:-127.0.0.1:8080}" --data-dir "${WARREN_DATA_DIR:-/var/lib/warren}" "$@"
