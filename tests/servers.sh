#!/usr/bin/env bash
# Private Redis and PostgreSQL servers for memo's tests, demo and benchmark.
#
#   tests/servers.sh start [DIR]    start both on free loopback ports, print the env
#   tests/servers.sh env   [DIR]    print the env of running servers (export lines)
#   tests/servers.sh stop  [DIR]    stop exactly what start started, by PID
#   tests/servers.sh redis-start|redis-stop [DIR]   just Redis, same port (fault tests)
#   tests/servers.sh pg-start|pg-stop [DIR]         just PostgreSQL, same port
#   tests/servers.sh pgbouncer-start|pgbouncer-stop [DIR]
#       PgBouncer in transaction pooling mode in front of that PostgreSQL, on a
#       loopback port of its own; start prints MEMO_TEST_PGBOUNCER_URL
#   tests/servers.sh cluster-start|cluster-stop [DIR]
#       a Redis Cluster of 3 masters and 3 replicas on loopback ports of its
#       own (their bus ports, +10000, free too); start prints
#       MEMO_TEST_CLUSTER_URL (the masters, comma-separated) once every slot
#       is served
#
# DIR defaults to $MEMO_SERVERS_DIR, else build/servers. Servers listen on
# 127.0.0.1 and unix sockets only, on ports that are neither the defaults nor
# taken. PostgreSQL refuses to run as root, so as root it runs as `postgres`.
set -euo pipefail

top=$(cd "$(dirname "$0")/.." && pwd)
cmd=${1:-}
dir=${2:-${MEMO_SERVERS_DIR:-$top/build/servers}}

die() { echo "servers.sh: $*" >&2; exit 1; }

pg_bin() {
    local d
    for d in $(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V -r); do
        [ -x "$d/pg_ctl" ] && { echo "$d"; return; }
    done
    command -v pg_ctl >/dev/null && { dirname "$(command -v pg_ctl)"; return; }
    die "PostgreSQL server binaries not found (run tests/deps.sh)"
}

# As root, PostgreSQL runs as the unprivileged `postgres` user.
as_pg() {
    if [ "$(id -u)" -eq 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi
}

port_free() { ! (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

pick_port() {
    local p i
    for i in $(seq 1 50); do
        p=$((20000 + (RANDOM * 32768 + RANDOM) % 12000))  # below the ephemeral range
        if port_free "$p"; then echo "$p"; return; fi
    done
    die "no free port found"
}

# PID is a live NAME process. A killed daemon whose parent never reaps it
# stays a zombie: that is dead too; and once it is reaped, its PID may soon
# belong to another program (PIDs wrap at 32768 here), which is not ours.
alive() {
    [ -n "${1:-}" ] && kill -0 "$1" 2>/dev/null || return 1
    local state comm
    state=$(sed -e 's/^.*) //' "/proc/$1/stat" 2>/dev/null | cut -d' ' -f1)
    comm=$(cat "/proc/$1/comm" 2>/dev/null || true)
    [ "$state" != "Z" ] && [ "${comm#"$2"}" != "$comm" ]
}

# Waits for PID (a NAME process, $3) to exit; SIGKILL after $2 seconds.
wait_gone() {
    local pid=$1 i
    for i in $(seq 1 $(($2 * 10))); do alive "$pid" "$3" || return 0; sleep 0.1; done
    kill -KILL "$pid" 2>/dev/null || true
    for i in $(seq 1 50); do alive "$pid" "$3" || return 0; sleep 0.1; done
}

redis_pid() { cat "$dir/redis.pid" 2>/dev/null || true; }
pg_pid() { head -n 1 "$dir/pg/data/postmaster.pid" 2>/dev/null || true; }

redis_start() {
    local port
    port=$(cat "$dir/redis.port")
    alive "$(redis_pid)" redis-server && return 0
    rm -f "$dir/redis.pid"
    redis-server --port "$port" --bind 127.0.0.1 --protected-mode yes \
        --unixsocket "$dir/redis.sock" --unixsocketperm 700 \
        --save '' --appendonly no --dir "$dir" \
        --daemonize yes --pidfile "$dir/redis.pid" --logfile "$dir/redis.log" \
        || return 1
    local i
    for i in $(seq 1 100); do
        if [ -s "$dir/redis.pid" ] && ! port_free "$port"; then return 0; fi
        sleep 0.05
    done
    return 1
}

redis_stop() {
    local pid
    pid=$(redis_pid)
    if alive "$pid" redis-server; then kill -TERM "$pid" 2>/dev/null || true; wait_gone "$pid" 10 redis-server; fi
    rm -f "$dir/redis.pid"
}

pg_start() {
    local port bin pgdir
    port=$(cat "$dir/pg.port")
    bin=$(pg_bin)
    pgdir=$(readlink -f "$dir/pg")
    alive "$(pg_pid)" postgres && return 0
    as_pg "$bin/pg_ctl" -D "$pgdir/data" -l "$pgdir/log" -w -t 30 -s \
        -o "-p $port -k $pgdir -c listen_addresses=127.0.0.1 -c shared_preload_libraries=pg_stat_statements -c max_connections=200 -c wal_level=logical -c max_replication_slots=16 -c max_wal_senders=16" \
        start >/dev/null
}

pg_stop() {
    local pid
    pid=$(pg_pid)
    # SIGINT is PostgreSQL's fast shutdown: clients are disconnected.
    if alive "$pid" postgres; then kill -INT "$pid" 2>/dev/null || true; wait_gone "$pid" 20 postgres; fi
}

bouncer_pid() { cat "$dir/pgbouncer/pgbouncer.pid" 2>/dev/null || true; }

# PgBouncer refuses to run as root: as root it runs as `postgres`, in a
# directory of its own.
pgbouncer_start() {
    [ -f "$dir/pg.port" ] || die "no PostgreSQL in $dir (run: tests/servers.sh start)"
    command -v pgbouncer >/dev/null || [ -x /usr/sbin/pgbouncer ] ||
        die "pgbouncer not found (run tests/deps.sh)"
    local bin port pport bdir try
    bin=$(command -v pgbouncer || echo /usr/sbin/pgbouncer)
    pport=$(cat "$dir/pg.port")
    bdir="$dir/pgbouncer"
    if alive "$(bouncer_pid)" pgbouncer; then
        port=$(cat "$bdir/port")
    else
        rm -rf "$bdir"
        mkdir -p "$bdir"
        [ "$(id -u)" -eq 0 ] && chown postgres: "$bdir"
        port=
        for try in 1 2 3 4 5; do
            port=$(pick_port)
            [ "$port" = "$pport" ] && continue
            cat >"$bdir/pgbouncer.ini" <<INI
[databases]
memo = host=127.0.0.1 port=$pport dbname=memo user=memo

[pgbouncer]
listen_addr = 127.0.0.1
listen_port = $port
unix_socket_dir =
; loopback only; any user name (PostgreSQL trusts 127.0.0.1 anyway)
auth_type = any
pool_mode = transaction
max_client_conn = 400
default_pool_size = 20
logfile = $bdir/pgbouncer.log
pidfile = $bdir/pgbouncer.pid
INI
            [ "$(id -u)" -eq 0 ] && chown postgres: "$bdir/pgbouncer.ini"
            if as_pg "$bin" -d "$bdir/pgbouncer.ini" >>"$bdir/start.log" 2>&1; then
                local i
                for i in $(seq 1 100); do
                    if [ -s "$bdir/pgbouncer.pid" ] && alive "$(bouncer_pid)" pgbouncer &&
                        ! port_free "$port"; then break 2; fi
                    sleep 0.05
                done
            fi
            port=
        done
        [ -n "$port" ] || die "pgbouncer did not start (see $bdir)"
        echo "$port" >"$bdir/port"
    fi
    echo "export MEMO_TEST_PGBOUNCER_URL=postgresql://memo@127.0.0.1:$port/memo"
}

pgbouncer_stop() {
    local pid
    pid=$(bouncer_pid)
    if alive "$pid" pgbouncer; then kill -TERM "$pid" 2>/dev/null || true; wait_gone "$pid" 10 pgbouncer; fi
    rm -rf "$dir/pgbouncer"
}

cluster_pids() { cat "$dir"/cluster/*/redis.pid 2>/dev/null || true; }

cluster_stop() {
    local pid pids
    pids=$(cluster_pids) # once: a node removes its pid file as it exits
    for pid in $pids; do
        if alive "$pid" redis-server; then kill -TERM "$pid" 2>/dev/null || true; fi
    done
    for pid in $pids; do wait_gone "$pid" 10 redis-server; done
    rm -rf "$dir/cluster"
}

# A port for a cluster node whose bus port (+10000) is below the ephemeral
# range (32768) too.
pick_cluster_port() {
    local p i
    for i in $(seq 1 50); do
        p=$((20000 + (RANDOM * 32768 + RANDOM) % 2700))
        if port_free "$p" && port_free $((p + 10000)); then echo "$p"; return; fi
    done
    return 1
}

cluster_start() {
    command -v redis-cli >/dev/null || die "redis-cli not found (run tests/deps.sh)"
    local cdir="$dir/cluster" ports=() p i n=0 try
    if [ -f "$cdir/url" ]; then
        # reused only whole: six live nodes (a node that shut down cleanly
        # removed its pid file) and the first master answering
        local up=0 first
        for p in $(cluster_pids); do alive "$p" redis-server && up=$((up + 1)); done
        first=$(sed -e 's|^redis://||' -e 's|,.*||' -e 's|.*:||' -e 's|/.*||' "$cdir/url")
        if [ "$up" -ge 6 ] &&
            redis-cli -p "$first" cluster info 2>/dev/null | grep -q '^cluster_state:ok'; then
            echo "export MEMO_TEST_CLUSTER_URL=$(cat "$cdir/url")"
            return
        fi
        cluster_stop
    fi
    mkdir -p "$cdir"
    for try in $(seq 1 50); do
        [ "$n" -eq 6 ] && break
        p=$(pick_cluster_port) || break
        for i in "${ports[@]:-}"; do [ "$i" = "$p" ] && continue 2; done
        mkdir -p "$cdir/$p"
        if redis-server --port "$p" --bind 127.0.0.1 --protected-mode yes \
            --cluster-enabled yes --cluster-config-file "$cdir/$p/nodes.conf" \
            --cluster-node-timeout 2000 --cluster-require-full-coverage no \
            --repl-diskless-sync-delay 0 \
            --save '' --appendonly no --dir "$cdir/$p" \
            --daemonize yes --pidfile "$cdir/$p/redis.pid" \
            --logfile "$cdir/$p/redis.log"; then
            for i in $(seq 1 100); do
                [ -s "$cdir/$p/redis.pid" ] && ! port_free "$p" && break
                sleep 0.05
            done
            if ! port_free "$p"; then ports+=("$p"); n=$((n + 1)); continue; fi
            # not listening: stopped by PID before its directory goes
            local stray
            stray=$(cat "$cdir/$p/redis.pid" 2>/dev/null || true)
            if alive "$stray" redis-server; then
                kill -TERM "$stray" 2>/dev/null || true
                wait_gone "$stray" 10 redis-server
            fi
        fi
        rm -rf "${cdir:?}/$p"
    done
    [ "$n" -eq 6 ] || { cluster_stop; die "the cluster's redis-servers did not start"; }
    local nodes=()
    for p in "${ports[@]}"; do nodes+=("127.0.0.1:$p"); done
    redis-cli --cluster create "${nodes[@]}" --cluster-replicas 1 --cluster-yes \
        >"$cdir/create.log" 2>&1 || { cluster_stop; die "redis-cli --cluster create failed"; }
    # every node agrees that all slots are served (30 s at most)
    for i in $(seq 1 300); do
        local ok=1
        for p in "${ports[@]}"; do
            redis-cli -p "$p" cluster info 2>/dev/null | grep -q '^cluster_state:ok' || ok=0
        done
        [ "$ok" = 1 ] && break
        sleep 0.1
    done
    [ "$ok" = 1 ] || { cluster_stop; die "the cluster did not come up (see $cdir)"; }
    # every replica has its master's data (a replica that never synced
    # refuses to take over: the failover tests need one that can)
    for i in $(seq 1 300); do
        local synced=0
        for p in "${ports[@]}"; do
            redis-cli -p "$p" info replication 2>/dev/null |
                grep -q '^master_link_status:up' && synced=$((synced + 1))
        done
        [ "$synced" -ge 3 ] && break
        sleep 0.1
    done
    [ "$synced" -ge 3 ] || { cluster_stop; die "the replicas did not sync (see $cdir)"; }
    local masters=()
    for p in "${ports[@]}"; do
        redis-cli -p "$p" role 2>/dev/null | head -n 1 | grep -q '^master$' &&
            masters+=("127.0.0.1:$p")
    done
    local IFS=,
    echo "redis://${masters[*]}/" >"$cdir/url"
    echo "export MEMO_TEST_CLUSTER_URL=$(cat "$cdir/url")"
}

print_env() {
    [ -f "$dir/env" ] || die "no servers in $dir (run: tests/servers.sh start)"
    cat "$dir/env"
}

start() {
    if [ -f "$dir/env" ] && alive "$(redis_pid)" redis-server && alive "$(pg_pid)" postgres; then
        print_env; return
    fi
    mkdir -p "$dir"
    dir=$(cd "$dir" && pwd)

    # PostgreSQL's files must be reachable by the user it runs as, and its
    # socket path must fit in sun_path: else the data lives under /tmp.
    rm -rf "$dir/pg"
    local pgdir="$dir/pg"
    mkdir -p "$pgdir"
    if [ "$(id -u)" -eq 0 ]; then chown postgres: "$pgdir"; fi
    if ! as_pg test -w "$pgdir" 2>/dev/null || [ ${#pgdir} -gt 80 ]; then
        rmdir "$pgdir"
        local tmp
        tmp=$(mktemp -d /tmp/memo-pg.XXXXXX)
        [ "$(id -u)" -eq 0 ] && chown postgres: "$tmp"
        ln -s "$tmp" "$pgdir"
        pgdir=$tmp
    fi
    local bin
    bin=$(pg_bin)
    as_pg "$bin/initdb" -D "$pgdir/data" -U memo --auth=trust -E UTF8 --no-locale \
        >"$dir/initdb.log" 2>&1 || { cat "$dir/initdb.log" >&2; die "initdb failed"; }

    local try rport pport
    for try in 1 2 3 4 5; do
        rport=$(pick_port); echo "$rport" >"$dir/redis.port"
        redis_start && break
        rport=
    done
    [ -n "$rport" ] || die "redis-server did not start (see $dir/redis.log)"
    for try in 1 2 3 4 5; do
        pport=$(pick_port)
        [ "$pport" = "$rport" ] && continue
        echo "$pport" >"$dir/pg.port"
        pg_start && break
        pport=
    done
    [ -n "$pport" ] || { redis_stop; die "PostgreSQL did not start (see $pgdir/log)"; }
    "$bin/createdb" -h 127.0.0.1 -p "$pport" -U memo memo

    cat >"$dir/env" <<ENV
export REDIS_URL=redis://127.0.0.1:$rport/0
export DATABASE_URL=postgresql://memo@127.0.0.1:$pport/memo
export MEMO_TEST_SERVERS_DIR=$dir
export MEMO_TEST_REDIS_SOCKET=$dir/redis.sock
export MEMO_TEST_PG_BIN=$bin
ENV
    print_env
}

stop() {
    [ -d "$dir" ] || return 0
    cluster_stop
    pgbouncer_stop
    redis_stop
    pg_stop
    local target
    target=$(readlink "$dir/pg" 2>/dev/null || true)
    [ -n "$target" ] && rm -rf "$target"
    rm -rf "$dir"
}

case "$cmd" in
    start) start ;;
    stop) stop ;;
    env) print_env ;;
    redis-start) redis_start || die "redis-server did not restart" ;;
    redis-stop) redis_stop ;;
    pg-start) pg_start || die "PostgreSQL did not restart" ;;
    pg-stop) pg_stop ;;
    pgbouncer-start) pgbouncer_start ;;
    pgbouncer-stop) pgbouncer_stop ;;
    cluster-start) cluster_start ;;
    cluster-stop) cluster_stop ;;
    *) echo "usage: $0 start|stop|env|redis-start|redis-stop|pg-start|pg-stop|pgbouncer-start|pgbouncer-stop|cluster-start|cluster-stop [DIR]" >&2; exit 2 ;;
esac
