#!/usr/bin/env bash
# Runs a command with REDIS_URL pointing at a Redis Cluster of 3 masters and
# 3 replicas on loopback (tests/servers.sh cluster-start, in the directory of
# tests/with-servers.sh), then stops the cluster by PID:
#   tests/with-servers.sh tests/on-cluster.sh COMMAND...
set -euo pipefail
top=$(cd "$(dirname "$0")/.." && pwd)
dir=${MEMO_SERVERS_DIR:?run under tests/with-servers.sh}
trap '"$top/tests/servers.sh" cluster-stop "$dir"' EXIT
trap 'exit 130' INT TERM
eval "$("$top/tests/servers.sh" cluster-start "$dir")"
export REDIS_URL=$MEMO_TEST_CLUSTER_URL MEMO_REDIS_URL=$MEMO_TEST_CLUSTER_URL
echo "on a Redis Cluster: $REDIS_URL" >&2
"$@"
