#!/usr/bin/env bash
# Runs a command with DATABASE_URL pointing at PgBouncer in transaction
# pooling mode in front of the private PostgreSQL of tests/with-servers.sh
# (MEMO_DB_UNNAMED=1: memo configured for it; =0: memo must find out by
# itself), then stops PgBouncer:
#   MEMO_DB_UNNAMED=1 tests/with-servers.sh tests/through-pgbouncer.sh COMMAND...
set -euo pipefail
top=$(cd "$(dirname "$0")/.." && pwd)
dir=${MEMO_SERVERS_DIR:?run under tests/with-servers.sh}
trap '"$top/tests/servers.sh" pgbouncer-stop "$dir"' EXIT
trap 'exit 130' INT TERM
eval "$("$top/tests/servers.sh" pgbouncer-start "$dir")"
export DATABASE_URL=$MEMO_TEST_PGBOUNCER_URL
export MEMO_DB_UNNAMED=${MEMO_DB_UNNAMED:?say MEMO_DB_UNNAMED=1 or 0}
echo "through PgBouncer (transaction pooling, MEMO_DB_UNNAMED=$MEMO_DB_UNNAMED):" \
    "$DATABASE_URL" >&2
"$@"
