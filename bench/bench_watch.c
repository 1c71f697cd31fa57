/* memo watch's benchmark (issue 11): how long after COMMIT the cache is
 * clean, how fast a backlog is caught up, and what the watch costs the
 * database's writers. Writes are plain SQL (libpq), as another program's
 * would be; the watch runs in a thread of this process (memo_watch_run).
 *
 *   REDIS_URL=... DATABASE_URL=... bench_watch --sql FILE [--json FILE] [--quick]
 *
 * - Lag: writer threads update users at a steady rate, one row a
 *   transaction, each row once; before its UPDATE a writer SETs the row's
 *   cache key. A subscriber to Redis' keyspace notifications sees the key's
 *   DEL. The lag is from the writer's COMMIT returning to the DEL seen: what
 *   an application that wrote and then reads waits for. The watch's own
 *   histogram (from the commit's timestamp to Redis acknowledging the DEL)
 *   is printed beside it.
 * - Catch-up: with the watch stopped, 200 000 rows change (UPDATEs of 1000
 *   rows a transaction); then it starts, and the time to confirm them all
 *   gives changes/s.
 * - Writers' throughput: 4 connections updating single rows as fast as they
 *   can, with the tables as memoc makes them (REPLICA IDENTITY FULL where
 *   invalidation needs old values) and the watch streaming, against the
 *   same with REPLICA IDENTITY DEFAULT and no watch; the middle case (FULL,
 *   no watch) shows which of the two costs. Rounds alternate the order;
 *   medians.
 *
 * `make bench` runs it after bench/bench.c, on the same private servers. */
#define _GNU_SOURCE 1
#include <inttypes.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <hiredis/hiredis.h>
#include <libpq-fe.h>

#include "blog.h"

enum { USERS = 100000, WRITERS = 8, TPUT_THREADS = 4, TPUT_ROUNDS = 5 };

static const char *redis_url, *db_url;
static bool quick;
static const char *only; /* one row: lag, catch-up or writers */
static FILE *json_out;

static double now_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1e6 + (double)ts.tv_nsec / 1e3;
}

static void die(const char *what, const char *why)
{
    fprintf(stderr, "bench_watch: %s: %s\n", what, why);
    exit(1);
}

static PGconn *pg_connect(void)
{
    PGconn *pg = PQconnectdb(db_url);
    if (PQstatus(pg) != CONNECTION_OK)
        die("PostgreSQL", PQerrorMessage(pg));
    PGresult *r = PQexec(pg, "SET client_min_messages = warning");
    PQclear(r);
    return pg;
}

static void sql(PGconn *pg, const char *q)
{
    PGresult *r = PQexec(pg, q);
    if (PQresultStatus(r) != PGRES_COMMAND_OK && PQresultStatus(r) != PGRES_TUPLES_OK)
        die(q, PQresultErrorMessage(r));
    PQclear(r);
}

/* One value, malloc'd. */
static char *sql_value(PGconn *pg, const char *q)
{
    PGresult *r = PQexec(pg, q);
    if (PQresultStatus(r) != PGRES_TUPLES_OK || PQntuples(r) != 1)
        die(q, PQresultErrorMessage(r));
    char *v = strdup(PQgetisnull(r, 0, 0) ? "" : PQgetvalue(r, 0, 0));
    PQclear(r);
    return v;
}

static redisContext *redis_connect(void)
{
    /* redis://127.0.0.1:PORT/0, as the servers script writes it */
    char host[64];
    int port;
    if (sscanf(redis_url, "redis://%63[^:]:%d", host, &port) != 2)
        die("REDIS_URL", "not redis://HOST:PORT/...");
    redisContext *c = redisConnect(host, port);
    if (!c || c->err)
        die("Redis", c ? c->errstr : "no memory");
    return c;
}

static void apply_file(PGconn *pg, const char *path)
{
    FILE *f = fopen(path, "r");
    if (!f)
        die(path, "cannot read");
    static char buf[1 << 16];
    size_t n = fread(buf, 1, sizeof buf - 1, f);
    fclose(f);
    buf[n] = '\0';
    sql(pg, buf);
}

/* ------------------------------------------------------------- the watch */

typedef struct bwatch {
    memo_repo *repo;
    memo_watch *w;
    pthread_t thread;
    _Atomic pid_t tid; /* the watch's thread, for its CPU time */
    bool running;
} bwatch;

static void *run(void *arg)
{
    bwatch *b = arg;
    atomic_store(&b->tid, gettid());
    if (memo_watch_run(b->w) != MEMO_OK)
        die("memo_watch_run", memo_last_error(b->repo));
    return NULL;
}

static void watch_start(bwatch *b)
{
    memo_watch_config cfg = MEMO_WATCH_CONFIG_INIT;
    cfg.schema = &blog_schema_desc;
    cfg.retry_ms = 50;
    if (memo_watch_open(b->repo, &cfg, &b->w) != MEMO_OK)
        die("memo_watch_open", memo_last_error(b->repo));
    pthread_create(&b->thread, NULL, run, b);
    b->running = true;
}

static void watch_stop(bwatch *b)
{
    if (!b->running)
        return;
    memo_watch_stop(b->w);
    pthread_join(b->thread, NULL);
    memo_watch_close(b->w);
    b->running = false;
}

/* Until the slot confirmed every change committed so far; microseconds. */
static double caught_up(PGconn *pg, double limit_s)
{
    char *target = sql_value(pg, "SELECT pg_current_wal_lsn()");
    char q[256];
    snprintf(
        q, sizeof q,
        "SELECT coalesce((SELECT confirmed_flush_lsn >= '%s' FROM pg_replication_slots "
        "WHERE slot_name = 'memo_blog'), false)",
        target);
    free(target);
    double t0 = now_us();
    for (;;) {
        char *v = sql_value(pg, q);
        bool done = strcmp(v, "t") == 0;
        free(v);
        if (done)
            return now_us() - t0;
        if (now_us() - t0 > limit_s * 1e6)
            die("memo watch", "did not catch up in time");
        usleep(2000);
    }
}

/* A counter of the watch's statistics. */
static long long watch_stat(memo_repo *repo, const char *name)
{
    char *s = memo_stats_json(repo), pat[64];
    snprintf(pat, sizeof pat, "\"%s\":", name);
    const char *w = s ? strstr(s, "\"watch\":") : NULL, *p = w ? strstr(w, pat) : NULL;
    long long v = p ? strtoll(p + strlen(pat), NULL, 10) : -1;
    free(s);
    return v;
}

/* --------------------------------------------------------------- the lag */

static double *commit_at, *del_at; /* by user id, microseconds */
static _Atomic bool lag_stop;
static double rate; /* row changes per second, all writers */
static int lag_seconds;
static char key_head[64]; /* "blog:{user:" */
static const char *key_tag;

static void *subscriber(void *arg)
{
    redisContext *c = arg;
    redisReply *r;
    while (redisGetReply(c, (void **)&r) == REDIS_OK && r) {
        double t = now_us();
        /* ["message", channel, key] */
        if (r->type == REDIS_REPLY_ARRAY && r->elements == 3 &&
            r->element[2]->type == REDIS_REPLY_STRING) {
            const char *k = r->element[2]->str;
            size_t hl = strlen(key_head);
            if (strncmp(k, key_head, hl) == 0) {
                long id = strtol(k + hl, NULL, 10);
                if (id > 0 && id <= USERS && del_at[id] == 0)
                    del_at[id] = t;
            }
            if (strcmp(k, "stop") == 0) { /* lag_row's, once it is over */
                freeReplyObject(r);
                break;
            }
        }
        freeReplyObject(r);
    }
    return NULL;
}

static void *writer(void *arg)
{
    int k = (int)(intptr_t)arg;
    PGconn *pg = pg_connect();
    redisContext *rc = redis_connect();
    PGresult *p =
        PQprepare(pg, "u", "UPDATE users SET karma = karma + 1 WHERE id = $1", 1, NULL);
    if (PQresultStatus(p) != PGRES_COMMAND_OK)
        die("prepare", PQerrorMessage(pg));
    PQclear(p);
    double interval = 1e6 * WRITERS / rate, next = now_us() + interval * k / WRITERS;
    double end = now_us() + lag_seconds * 1e6;
    for (long id = 1 + k; id <= USERS && !lag_stop; id += WRITERS) {
        double t = now_us();
        if (t >= end)
            break;
        if (next > t)
            usleep((useconds_t)(next - t));
        next += interval;
        char key[128], ids[24];
        snprintf(key, sizeof key, "%s%ld}:%s", key_head, id, key_tag);
        freeReplyObject(redisCommand(rc, "SET %s x", key));
        snprintf(ids, sizeof ids, "%ld", id);
        const char *v[] = {ids};
        PGresult *r = PQexecPrepared(pg, "u", 1, v, NULL, NULL, 0);
        double done = now_us();
        if (PQresultStatus(r) != PGRES_COMMAND_OK)
            die("UPDATE", PQresultErrorMessage(r));
        PQclear(r);
        commit_at[id] = done;
    }
    redisFree(rc);
    PQfinish(pg);
    return NULL;
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

/* The watch's own lag histogram (commit timestamp to DEL acknowledged):
 * its p50 and p99 from memo_stats_json, in microseconds. */
static void own_lag(memo_repo *repo, double *p50, double *p99)
{
    char *s = memo_stats_json(repo);
    const char *w = s ? strstr(s, "\"watch\":") : NULL;
    const char *a = w ? strstr(w, "\"p50\":") : NULL,
               *b = w ? strstr(w, "\"p99\":") : NULL;
    *p50 = a ? strtod(a + 6, NULL) : -1;
    *p99 = b ? strtod(b + 6, NULL) : -1;
    free(s);
}

/* targets of 0: none (the issue sets them at 1000 changes/s only) */
static void lag_row(bwatch *bw, PGconn *pg, double changes_per_s, double target_p50_ms,
                    double target_p99_ms)
{
    rate = changes_per_s;
    memset(commit_at, 0, (USERS + 1) * sizeof *commit_at);
    memset(del_at, 0, (USERS + 1) * sizeof *del_at);
    caught_up(pg, 60);
    memo_stats_reset(bw->repo);
    redisContext *sub = redis_connect();
    redisReply *r = redisCommand(sub, "SUBSCRIBE __keyevent@0__:del");
    freeReplyObject(r);
    pthread_t st, wt[WRITERS];
    pthread_create(&st, NULL, subscriber, sub);
    lag_stop = false;
    double t0 = now_us();
    for (int k = 0; k < WRITERS; k++)
        pthread_create(&wt[k], NULL, writer, (void *)(intptr_t)k);
    for (int k = 0; k < WRITERS; k++)
        pthread_join(wt[k], NULL);
    double secs = (now_us() - t0) / 1e6;
    caught_up(pg, 60);
    usleep(200000); /* the last notifications */
    /* the subscriber's connection is its thread's alone: told to stop on
     * its channel */
    redisContext *un = redis_connect();
    freeReplyObject(redisCommand(un, "PUBLISH __keyevent@0__:del stop"));
    redisFree(un);
    pthread_join(st, NULL);
    redisFree(sub);

    size_t n = 0, missing = 0;
    double *lags = malloc(USERS * sizeof *lags);
    for (long id = 1; id <= USERS; id++) {
        if (commit_at[id] == 0)
            continue;
        if (del_at[id] == 0) {
            missing++;
            continue;
        }
        double l = del_at[id] - commit_at[id];
        lags[n++] = l > 0 ? l : 0;
    }
    qsort(lags, n, sizeof *lags, cmp_double);
    double p50 = n ? lags[n / 2] : 0, p99 = n ? lags[(size_t)((double)n * 0.99)] : 0;
    double own50, own99;
    own_lag(bw->repo, &own50, &own99);
    double achieved = (double)(n + missing) / secs;
    bool met = target_p50_ms <= 0 ||
               (p50 / 1e3 <= target_p50_ms && p99 / 1e3 <= target_p99_ms && missing == 0);
    printf("lag at %.0f changes/s (%.0f achieved, %zu changes, %d writers)\n",
           changes_per_s, achieved, n + missing, WRITERS);
    printf("  COMMIT returned to DEL seen:   p50 %7.2f ms   p99 %7.2f ms", p50 / 1e3,
           p99 / 1e3);
    if (target_p50_ms > 0)
        printf("   (target p50 <= %.0f ms, p99 <= %.0f ms: %s)", target_p50_ms,
               target_p99_ms, met ? "met" : "MISS");
    printf("\n");
    printf("  the watch's own (commit time to DEL acknowledged): p50 %.2f ms   p99 %.2f "
           "ms\n",
           own50 / 1e3, own99 / 1e3);
    printf("  changes whose DEL was not seen: %zu\n\n", missing);
    if (json_out) {
        char targets[128] = "\"target_p50_ms\":null,\"target_p99_ms\":null,\"met\":null";
        if (target_p50_ms > 0)
            snprintf(targets, sizeof targets,
                     "\"target_p50_ms\":%.0f,\"target_p99_ms\":%.0f,\"met\":%s",
                     target_p50_ms, target_p99_ms, met ? "true" : "false");
        fprintf(json_out,
                "{\"bench\":\"watch\",\"row\":\"lag\",\"rate\":%.0f,\"achieved\":%.0f,"
                "\"changes\":%zu,\"p50_ms\":%.3f,\"p99_ms\":%.3f,\"own_p50_ms\":%.3f,"
                "\"own_p99_ms\":%.3f,\"missing\":%zu,%s}\n",
                changes_per_s, achieved, n + missing, p50 / 1e3, p99 / 1e3, own50 / 1e3,
                own99 / 1e3, missing, targets);
    }
    free(lags);
}

/* ------------------------------------------------------------ catch-up */

static void catch_up_row(bwatch *bw, PGconn *pg, int changes)
{
    caught_up(pg, 60);
    watch_stop(bw);
    for (int at = 0; at < changes; at += 1000) {
        char q[160];
        snprintf(q, sizeof q,
                 "UPDATE users SET karma = karma + 1 WHERE id > %d AND id <= %d",
                 at % USERS, at % USERS + 1000);
        sql(pg, q);
    }
    memo_stats_reset(bw->repo);
    double t0 = now_us();
    watch_start(bw);
    caught_up(pg, 600);
    double us = now_us() - t0; /* from the start: connecting is part of it */
    long long seen = watch_stat(bw->repo, "changes");
    double per_s = (double)seen / (us / 1e6);
    bool met = per_s >= 50000 && seen >= changes;
    printf("catch-up: %d row changes in %d transactions written with the watch stopped\n",
           changes, changes / 1000);
    printf("  decoded and invalidated: %lld changes in %.2f s: %.0f changes/s (target >= "
           "50000: %s)\n\n",
           seen, us / 1e6, per_s, met ? "met" : "MISS");
    if (json_out)
        fprintf(
            json_out,
            "{\"bench\":\"watch\",\"row\":\"catch-up\",\"changes\":%lld,\"seconds\":%.3f,"
            "\"per_s\":%.0f,\"target_per_s\":50000,\"met\":%s}\n",
            seen, us / 1e6, per_s, met ? "true" : "false");
}

/* ---------------------------------------------------------- throughput */

static _Atomic long tput_count;
static double tput_end;

static void *tput_writer(void *arg)
{
    unsigned seed = (unsigned)(intptr_t)arg;
    PGconn *pg = pg_connect();
    PGresult *p =
        PQprepare(pg, "u", "UPDATE users SET karma = karma + 1 WHERE id = $1", 1, NULL);
    PQclear(p);
    long n = 0;
    while (now_us() < tput_end) {
        char ids[24];
        snprintf(ids, sizeof ids, "%d", 1 + (int)(rand_r(&seed) % USERS));
        const char *v[] = {ids};
        PGresult *r = PQexecPrepared(pg, "u", 1, v, NULL, NULL, 0);
        if (PQresultStatus(r) != PGRES_COMMAND_OK)
            die("UPDATE", PQresultErrorMessage(r));
        PQclear(r);
        n++;
    }
    atomic_fetch_add(&tput_count, n);
    PQfinish(pg);
    return NULL;
}

static double tput(double seconds)
{
    tput_count = 0;
    tput_end = now_us() + seconds * 1e6;
    pthread_t t[TPUT_THREADS];
    for (int i = 0; i < TPUT_THREADS; i++)
        pthread_create(&t[i], NULL, tput_writer, (void *)(intptr_t)(i + 1));
    for (int i = 0; i < TPUT_THREADS; i++)
        pthread_join(t[i], NULL);
    return (double)tput_count / seconds;
}

/* CPU time of a thread or process, from the scheduler: nanoseconds. */
static double cpu_ns(const char *path)
{
    FILE *f = fopen(path, "r");
    double ns = 0;
    if (f) {
        if (fscanf(f, "%lf", &ns) != 1)
            ns = 0;
        fclose(f);
    }
    return ns;
}

static double redis_cpu_s(redisContext *rc)
{
    redisReply *r = redisCommand(rc, "INFO cpu");
    double sys = 0, user = 0;
    if (r && r->type == REDIS_REPLY_STRING) {
        const char *a = strstr(r->str, "used_cpu_sys:"),
                   *b = strstr(r->str, "used_cpu_user:");
        sys = a ? strtod(a + 13, NULL) : 0;
        user = b ? strtod(b + 14, NULL) : 0;
    }
    freeReplyObject(r);
    return sys + user;
}

/* One case of the throughput row: updates a second and WAL an update; with
 * the watch, the CPU an update cost its WAL sender, its thread, Redis. */
typedef struct tcase {
    double rate, wal, sender_us, watch_us, redis_us;
} tcase;

static tcase run_case(bwatch *bw, PGconn *pg, redisContext *rc, double seconds,
                      bool watched)
{
    tcase c = {0};
    char sender[64] = "", thread[64] = "";
    if (watched) {
        char *pid = sql_value(pg, "SELECT active_pid FROM pg_replication_slots WHERE "
                                  "slot_name = 'memo_blog'");
        snprintf(sender, sizeof sender, "/proc/%s/schedstat", pid);
        free(pid);
        snprintf(thread, sizeof thread, "/proc/self/task/%d/schedstat",
                 (int)atomic_load(&bw->tid));
    }
    char *lsn0 = sql_value(pg, "SELECT pg_current_wal_lsn()");
    double s0 = watched ? cpu_ns(sender) : 0, w0 = watched ? cpu_ns(thread) : 0,
           r0 = redis_cpu_s(rc);
    c.rate = tput(seconds);
    if (watched)
        caught_up(pg, 120); /* its work for these updates, all of it */
    double s1 = watched ? cpu_ns(sender) : 0, w1 = watched ? cpu_ns(thread) : 0,
           r1 = redis_cpu_s(rc);
    char q[160];
    snprintf(q, sizeof q, "SELECT pg_wal_lsn_diff(pg_current_wal_lsn(), '%s')", lsn0);
    free(lsn0);
    char *wal = sql_value(pg, q);
    double updates = c.rate * seconds;
    c.wal = strtod(wal, NULL) / updates;
    free(wal);
    c.sender_us = (s1 - s0) / 1e3 / updates;
    c.watch_us = (w1 - w0) / 1e3 / updates;
    c.redis_us = (r1 - r0) * 1e6 / updates;
    return c;
}

static int cmp_case(const void *a, const void *b)
{
    return cmp_double(&((const tcase *)a)->rate, &((const tcase *)b)->rate);
}

static void throughput_row(bwatch *bw, PGconn *pg, double seconds)
{
    tcase cases[3][TPUT_ROUNDS];
    redisContext *rc = redis_connect();
    for (int r = 0; r < TPUT_ROUNDS; r++) {
        for (int s = 0; s < 3; s++) {
            int which = (s + r) % 3; /* the order rotates */
            sql(pg, which ? "ALTER TABLE users REPLICA IDENTITY FULL"
                          : "ALTER TABLE users REPLICA IDENTITY DEFAULT");
            if (which == 2) {
                watch_start(bw);
                caught_up(pg, 120); /* what the other cases wrote: not timed */
            }
            cases[which][r] = run_case(bw, pg, rc, seconds, which == 2);
            if (which == 2)
                watch_stop(bw);
        }
    }
    redisFree(rc);
    sql(pg, "ALTER TABLE users REPLICA IDENTITY FULL");
    /* the ratios of each round (its cases ran one after the other, so a
     * drift of the machine falls on them alike), then their median */
    double rfull[TPUT_ROUNDS], rwatch[TPUT_ROUNDS];
    for (int r = 0; r < TPUT_ROUNDS; r++) {
        rfull[r] = cases[1][r].rate / cases[0][r].rate;
        rwatch[r] = cases[2][r].rate / cases[0][r].rate;
    }
    qsort(rfull, TPUT_ROUNDS, sizeof *rfull, cmp_double);
    qsort(rwatch, TPUT_ROUNDS, sizeof *rwatch, cmp_double);
    double full_ratio = rfull[TPUT_ROUNDS / 2], watch_ratio = rwatch[TPUT_ROUNDS / 2];
    /* WAL an update: each case's median (a checkpoint's full-page images
     * fall on one round), before the rounds are sorted by rate */
    double wal[3];
    for (int k = 0; k < 3; k++) {
        double v[TPUT_ROUNDS];
        for (int r = 0; r < TPUT_ROUNDS; r++)
            v[r] = cases[k][r].wal;
        qsort(v, TPUT_ROUNDS, sizeof *v, cmp_double);
        wal[k] = v[TPUT_ROUNDS / 2];
    }
    for (int k = 0; k < 3; k++) /* each case's median round, by rate */
        qsort(cases[k], TPUT_ROUNDS, sizeof cases[k][0], cmp_case);
    const tcase *a = &cases[0][TPUT_ROUNDS / 2], *b = &cases[1][TPUT_ROUNDS / 2],
                *c = &cases[2][TPUT_ROUNDS / 2];
    bool met = watch_ratio >= 0.9;
    printf("writers' throughput: %d connections, single-row UPDATEs, %.0f s a case, %d "
           "rounds; rates: the median round's; ratios: the median of the rounds'\n",
           TPUT_THREADS, seconds, TPUT_ROUNDS);
    printf(
        "  REPLICA IDENTITY DEFAULT, no watch   %8.0f updates/s           WAL %4.0f B an "
        "update\n",
        a->rate, wal[0]);
    printf("  REPLICA IDENTITY FULL, no watch      %8.0f updates/s   %.2fx (rounds "
           "%.2f-%.2f)"
           "   WAL %4.0f B an update\n",
           b->rate, full_ratio, rfull[0], rfull[TPUT_ROUNDS - 1], wal[1]);
    printf("  FULL, the watch streaming            %8.0f updates/s   %.2fx (rounds "
           "%.2f-%.2f)"
           "   WAL %4.0f B an update\n",
           c->rate, watch_ratio, rwatch[0], rwatch[TPUT_ROUNDS - 1], wal[2]);
    printf("  with the watch / without: %.2fx (target >= 0.90: %s)\n", watch_ratio,
           met ? "met" : "MISS");
    printf("  CPU an update, the watch streaming: its WAL sender %.1f us, the watch %.1f "
           "us, "
           "Redis %.1f us\n\n",
           c->sender_us, c->watch_us, c->redis_us);
    if (json_out)
        fprintf(json_out,
                "{\"bench\":\"watch\",\"row\":\"writers\",\"plain\":%.0f,\"full\":%.0f,"
                "\"watched\":%.0f,\"ratio\":%.3f,\"by\":\"throughput\",\"target\":0.9,"
                "\"met\":%s,\"wal_plain\":%.0f,\"wal_full\":%.0f,\"sender_us\":%.2f,"
                "\"watch_us\":%.2f,\"redis_us\":%.2f}\n",
                a->rate, b->rate, c->rate, watch_ratio, met ? "true" : "false", wal[0],
                wal[1], c->sender_us, c->watch_us, c->redis_us);
}

int main(int argc, char **argv)
{
    const char *sql_path = NULL, *json_path = NULL;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--sql") == 0 && i + 1 < argc)
            sql_path = argv[++i];
        else if (strcmp(argv[i], "--json") == 0 && i + 1 < argc)
            json_path = argv[++i];
        else if (strcmp(argv[i], "--quick") == 0)
            quick = true;
        else if (strcmp(argv[i], "--only") == 0 && i + 1 < argc)
            only = argv[++i];
        else if (strcmp(argv[i], "--rounds") == 0 && i + 1 < argc)
            i++; /* bench.c's option: the same BENCH_ARGS reach both */
        else {
            fprintf(stderr,
                    "usage: bench_watch --sql FILE [--json FILE] [--quick] [--only "
                    "lag|catch-up|writers]\n");
            return 2;
        }
    }
    redis_url = getenv("REDIS_URL");
    db_url = getenv("DATABASE_URL");
    if (!redis_url || !db_url || !sql_path) {
        fprintf(stderr,
                "bench_watch: REDIS_URL, DATABASE_URL and --sql FILE are needed\n");
        return 2;
    }
    if (json_path && !(json_out = fopen(json_path, "a")))
        die(json_path, "cannot append");

    PGconn *pg = pg_connect();
    apply_file(pg, sql_path);
    sql(pg, "SELECT pg_terminate_backend(active_pid) FROM pg_replication_slots WHERE "
            "slot_name = 'memo_blog' AND active_pid IS NOT NULL");
    usleep(200000);
    sql(pg, "SELECT pg_drop_replication_slot(slot_name) FROM pg_replication_slots WHERE "
            "slot_name = 'memo_blog'");
    sql(pg, "TRUNCATE comments, posts, users, orgs RESTART IDENTITY CASCADE");
    sql(pg,
        "INSERT INTO orgs (slug, name, plan, created_at) VALUES ('w', 'W', 'p', now())");
    char q[512];
    snprintf(
        q, sizeof q,
        "INSERT INTO users (email, name, org_id, karma, active, created_at) SELECT "
        "'w' || g || '@bench', 'User ' || g, 1, 0, true, now() FROM generate_series(1, "
        "%d) g",
        USERS);
    sql(pg, q);
    sql(pg, "VACUUM ANALYZE users");
    redisContext *rc = redis_connect();
    freeReplyObject(redisCommand(rc, "CONFIG SET notify-keyspace-events Eg"));
    snprintf(key_head, sizeof key_head, "blog:{user:");
    key_tag = blog_user_desc.row.key.tag;

    memo_config cfg = {
        .redis_url = redis_url, .database_url = db_url, .flags = MEMO_STATS_PRIVATE};
    memo_error err;
    bwatch bw = {0};
    if (memo_open(&bw.repo, &cfg, &err) != MEMO_OK)
        die("memo_open", err.message);
    commit_at = calloc(USERS + 1, sizeof *commit_at);
    del_at = calloc(USERS + 1, sizeof *del_at);

    printf("memo %s: memo watch benchmark (the change stream; docs/watch.md)\n\n",
           memo_version());
    watch_start(&bw);
    caught_up(pg, 60);
    lag_seconds = quick ? 2 : 5;
    if (!only || strcmp(only, "lag") == 0) {
        lag_row(&bw, pg, 1000, 5, 50);
        lag_row(&bw, pg, 5000, 0, 0);
    }
    if (!only || strcmp(only, "catch-up") == 0)
        catch_up_row(&bw, pg, quick ? 50000 : 200000);
    watch_stop(&bw);
    if (!only || strcmp(only, "writers") == 0)
        throughput_row(&bw, pg, quick ? 1 : 3);

    freeReplyObject(redisCommand(rc, "CONFIG SET notify-keyspace-events %s", ""));
    redisFree(rc);
    sql(pg, "SELECT pg_drop_replication_slot('memo_blog')");
    memo_close(bw.repo);
    PQfinish(pg);
    free(commit_at);
    free(del_at);
    if (json_out)
        fclose(json_out);
    return 0;
}
