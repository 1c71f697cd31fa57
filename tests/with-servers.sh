#!/usr/bin/env bash
# Runs a command with a private Redis and PostgreSQL of its own, then stops them:
#   tests/with-servers.sh COMMAND [ARGS...]
set -euo pipefail
top=$(cd "$(dirname "$0")/.." && pwd)
export MEMO_SERVERS_DIR=${MEMO_SERVERS_DIR:-$top/build/servers/run.$$}
trap '"$top/tests/servers.sh" stop "$MEMO_SERVERS_DIR"' EXIT
trap 'exit 130' INT TERM
eval "$("$top/tests/servers.sh" start "$MEMO_SERVERS_DIR")"
"$@"
