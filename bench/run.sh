#!/usr/bin/env bash
# Runs a command (the benchmark) against the private servers of
# tests/with-servers.sh. With BENCH_PIN=N the command, redis-server and every
# PostgreSQL process are pinned to CPU N: on small VMs unpinned round trips
# mostly measure cross-CPU wake-ups and swing between runs.
set -euo pipefail
# PgBouncer (transaction mode) in front of the same PostgreSQL, for the row
# through it; stopped with the servers (tests/servers.sh stop)
if [ -n "${MEMO_TEST_SERVERS_DIR:-}" ] &&
    { command -v pgbouncer >/dev/null || [ -x /usr/sbin/pgbouncer ]; }; then
    eval "$("$(dirname "$0")/../tests/servers.sh" pgbouncer-start "$MEMO_TEST_SERVERS_DIR")"
    export MEMO_BENCH_PGBOUNCER_URL=$MEMO_TEST_PGBOUNCER_URL
fi
# a Redis Cluster of 3 masters and 3 replicas, for the rows on a cluster;
# stopped with the servers too
if [ -n "${MEMO_TEST_SERVERS_DIR:-}" ] && command -v redis-cli >/dev/null &&
    [ -z "${MEMO_BENCH_NO_CLUSTER:-}" ]; then
    eval "$("$(dirname "$0")/../tests/servers.sh" cluster-start "$MEMO_TEST_SERVERS_DIR")"
    export MEMO_BENCH_CLUSTER_URL=$MEMO_TEST_CLUSTER_URL
fi
if [ -n "${BENCH_PIN:-}" ]; then
    dir=${MEMO_TEST_SERVERS_DIR:?run under tests/with-servers.sh}
    pin() { taskset -a -p -c "$BENCH_PIN" "$1" >/dev/null; }
    pin "$(cat "$dir/redis.pid")"
    pm=$(head -n 1 "$dir/pg/data/postmaster.pid")
    pin "$pm"
    # the postmaster's children (new backends inherit its CPU)
    for p in $(pgrep -P "$pm"); do pin "$p"; done
    [ -s "$dir/pgbouncer/pgbouncer.pid" ] && pin "$(cat "$dir/pgbouncer/pgbouncer.pid")"
    for f in "$dir"/cluster/*/redis.pid; do [ -s "$f" ] && pin "$(cat "$f")"; done
    echo "pinned the benchmark, the Redis servers and PostgreSQL to CPU $BENCH_PIN"
    exec taskset -c "$BENCH_PIN" "$@"
fi
exec "$@"
