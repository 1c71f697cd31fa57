/* memo's benchmark: every operation through the generated blog repository,
 * next to its raw floor (hiredis and libpq by hand, the way a careful C
 * programmer would write cache-aside), measured in the same process and the
 * same run, rounds interleaved, medians reported.
 *
 *   REDIS_URL=... DATABASE_URL=... bench [--rounds N] [--json FILE] [--quick]
 *
 * `make bench` sets up the servers and runs it (see bench/run.sh). */
#define _GNU_SOURCE 1 /* RTLD_NEXT-free malloc counting via __libc_malloc */
#include <inttypes.h>
#include <math.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>

#include <hiredis/hiredis.h>
#include <jansson.h>
#include <libpq-fe.h>

#include "blog.h"

/* ------------------------------------------------------ allocation count */

/* The executable's malloc interposes the C library's for every library in
 * the process, so this counts hiredis', libpq's and jansson's too. */
extern void *__libc_malloc(size_t);
extern void *__libc_calloc(size_t, size_t);
extern void *__libc_realloc(void *, size_t);
extern void __libc_free(void *);
static _Atomic long allocations;

void *malloc(size_t n)
{
    atomic_fetch_add_explicit(&allocations, 1, memory_order_relaxed);
    return __libc_malloc(n);
}

void *calloc(size_t n, size_t m)
{
    atomic_fetch_add_explicit(&allocations, 1, memory_order_relaxed);
    return __libc_calloc(n, m);
}

void *realloc(void *p, size_t n)
{
    atomic_fetch_add_explicit(&allocations, 1, memory_order_relaxed);
    return __libc_realloc(p, n);
}

void free(void *p)
{
    __libc_free(p);
}

/* ---------------------------------------------------------------- setup */

enum { USERS = 100000, ORGS = 1000 };

static memo_repo *repo;
static redisContext *rc;
static PGconn *pg;
static int rounds = 7;
static bool quick;
static FILE *json_out;

static double now_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1e6 + (double)ts.tv_nsec / 1e3;
}

static void die(const char *what)
{
    fprintf(stderr, "bench: %s\n", what);
    exit(2);
}

static PGresult *sql(const char *q)
{
    PGresult *r = PQexec(pg, q);
    if (PQresultStatus(r) != PGRES_COMMAND_OK && PQresultStatus(r) != PGRES_TUPLES_OK) {
        fprintf(stderr, "bench: %s: %s", q, PQerrorMessage(pg));
        exit(2);
    }
    return r;
}

static uint64_t rng = 88172645463325252ull;
static uint64_t next(void)
{
    rng ^= rng << 13;
    rng ^= rng >> 7;
    rng ^= rng << 17;
    return rng;
}

/* ~330-byte values: a bio of 130 characters and the rest of the row. */
static void seed(const char *sql_path)
{
    FILE *f = fopen(sql_path, "r");
    if (!f)
        die("cannot read blog.sql");
    static char buf[1 << 16];
    size_t n = fread(buf, 1, sizeof buf - 1, f);
    fclose(f);
    buf[n] = '\0';
    PQclear(sql(buf));
    PQclear(sql("TRUNCATE comments, posts, users, orgs RESTART IDENTITY CASCADE"));
    PQclear(sql("INSERT INTO orgs (slug, name, plan, created_at) SELECT 'org-' || i, "
                "'Organisation ' || i, 'pro', now() FROM generate_series(1, 1000) i"));
    PQclear(
        sql("INSERT INTO users (email, name, org_id, bio, karma, active, created_at) "
            "SELECT 'user' || i || '@example.com', 'User number ' || i, 1 + i % 1000, "
            "repeat('Writes about caches, databases and the space between. ', "
            "3)::varchar(130), "
            "i % 1000, i % 7 <> 0, now() FROM generate_series(1, 100000) i"));
    PQclear(sql("ANALYZE"));
    redisReply *r = redisCommand(rc, "FLUSHDB");
    freeReplyObject(r);
}

/* --------------------------------------------------------- measurement */

typedef struct sample {
    double *us; /* per-operation latencies of one round */
    size_t n;
    double secs;
    long items; /* keys or operations, for the rate */
    long allocs;
} sample;

typedef void (*op_fn)(long i, long *items);

/* One round: n calls of fn, each timed. */
static sample run_round(op_fn fn, long n)
{
    sample s = {calloc((size_t)n, sizeof(double)), (size_t)n, 0, 0, 0};
    long a0 = atomic_load(&allocations);
    double t0 = now_us();
    for (long i = 0; i < n; i++) {
        double t = now_us();
        long items = 1;
        fn(i, &items);
        s.us[i] = now_us() - t;
        s.items += items;
    }
    s.secs = (now_us() - t0) / 1e6;
    s.allocs = atomic_load(&allocations) - a0;
    return s;
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

static double pct(sample *s, double q)
{
    qsort(s->us, s->n, sizeof *s->us, cmp_double);
    return s->us[(size_t)(q * (double)(s->n - 1))];
}

static double median(double *v, int n)
{
    qsort(v, (size_t)n, sizeof *v, cmp_double);
    return n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

typedef struct result {
    const char *name;
    double p50, p99, rate, allocs_per_op;
} result;

/* Measures memo's op and its raw floor, rounds interleaved, and prints the
 * medians and the median of the per-round ratios. by_rate: compare items/s
 * (higher is better), else p50 latency (lower is better). */
static void compare(const char *name, const char *raw_name, op_fn memo_op, op_fn raw_op,
                    op_fn prepare, long n, bool by_rate, double target, const char *unit)
{
    double mp50[16], mp99[16], mrate[16], rp50[16], rp99[16], rrate[16], ratio[16],
        alloc[16];
    if (quick)
        n = n / 4 > 50 ? n / 4 : n;
    for (int r = 0; r < rounds; r++) {
        if (prepare)
            prepare(-1, NULL);
        sample raw = run_round(raw_op, n);
        if (prepare)
            prepare(-1, NULL);
        sample m = run_round(memo_op, n);
        rp50[r] = pct(&raw, 0.5);
        rp99[r] = pct(&raw, 0.99);
        rrate[r] = (double)raw.items / raw.secs;
        mp50[r] = pct(&m, 0.5);
        mp99[r] = pct(&m, 0.99);
        mrate[r] = (double)m.items / m.secs;
        ratio[r] = by_rate ? mrate[r] / rrate[r] : mp50[r] / rp50[r];
        alloc[r] = (double)m.allocs / (double)n;
        free(raw.us);
        free(m.us);
    }
    double q = median(ratio, rounds);
    bool has_target = target > 0;
    bool met = !has_target || (by_rate ? q >= target : q <= target);
    char goal[32] = "-";
    if (has_target)
        snprintf(goal, sizeof goal, "%s %.2f %s", by_rate ? ">=" : "<=", target,
                 met ? "met" : "MISS");
    printf("%-20s %8.1f %8.1f %10.0f   %-20s %8.1f %8.1f %10.0f   %6.2fx %-14s %6.1f\n",
           name, median(mp50, rounds), median(mp99, rounds), median(mrate, rounds),
           raw_name, median(rp50, rounds), median(rp99, rounds), median(rrate, rounds), q,
           goal, median(alloc, rounds));
    if (json_out)
        fprintf(
            json_out,
            "{\"op\":\"%s\",\"raw\":\"%s\",\"p50_us\":%.2f,\"p99_us\":%.2f,\"rate\":%.0f,"
            "\"raw_p50_us\":%.2f,\"raw_p99_us\":%.2f,\"raw_rate\":%.0f,\"ratio\":%.3f,"
            "\"by\":\"%s\",\"target\":%.2f,\"met\":%s,\"allocs_per_op\":%.1f,\"unit\":\"%"
            "s\"}\n",
            name, raw_name, median(mp50, rounds), median(mp99, rounds),
            median(mrate, rounds), median(rp50, rounds), median(rp99, rounds),
            median(rrate, rounds), q, by_rate ? "rate" : "p50", target,
            met ? "true" : "false", median(alloc, rounds), unit);
}

/* A raw operation on its own: p50, p99 and rate, medians of the rounds. */
static void raw_only(const char *name, op_fn op, long n)
{
    double p50[16], p99[16], rate[16];
    if (quick)
        n = n / 4 > 50 ? n / 4 : n;
    for (int r = 0; r < rounds; r++) {
        sample s = run_round(op, n);
        p50[r] = pct(&s, 0.5);
        p99[r] = pct(&s, 0.99);
        rate[r] = (double)s.items / s.secs;
        free(s.us);
    }
    printf("%-20s %8s %8s %10s   %-20s %8.1f %8.1f %10.0f\n", "", "", "", "", name,
           median(p50, rounds), median(p99, rounds), median(rate, rounds));
    if (json_out)
        fprintf(json_out,
                "{\"raw\":\"%s\",\"raw_p50_us\":%.2f,\"raw_p99_us\":%.2f,\"raw_rate\":%."
                "0f}\n",
                name, median(p50, rounds), median(p99, rounds), median(rate, rounds));
}

/* ------------------------------------------------------------ the ops */

static int64_t hot(long i)
{
    return 1 + (int64_t)((uint64_t)i * 2654435761u % 1000); /* 1000 warm rows */
}

static void bench_get_hit(long i, long *items)
{
    (void)items;
    blog_user u;
    if (blog_user_get(repo, hot(i), &u) != MEMO_OK)
        die("get");
    blog_user_clear(&u);
}

static char raw_keys[USERS + 1][48];

static void raw_get_decode(long i, long *items)
{
    (void)items;
    redisReply *r = redisCommand(rc, "GET %s", raw_keys[hot(i)]);
    if (!r || r->type != REDIS_REPLY_STRING)
        die("raw GET");
    json_t *j = json_loadb(r->str, r->len, 0, NULL);
    if (!j)
        die("raw decode");
    json_decref(j);
    freeReplyObject(r);
}

static void raw_get(long i, long *items)
{
    (void)items;
    redisReply *r = redisCommand(rc, "GET %s", raw_keys[hot(i)]);
    if (!r || r->type != REDIS_REPLY_STRING)
        die("raw GET");
    freeReplyObject(r);
}

static char email_of[1001][48];

static void bench_get_by_email_hit(long i, long *items)
{
    (void)items;
    blog_user u;
    if (blog_user_get_by_email(repo, email_of[hot(i)], &u) != MEMO_OK)
        die("get_by_email");
    blog_user_clear(&u);
}

/* Misses: fresh ids each call, from a range nobody read yet. */
static long miss_base = 20000;

static void bench_get_miss(long i, long *items)
{
    (void)items;
    blog_user u;
    if (blog_user_get(repo, miss_base + i, &u) != MEMO_OK)
        die("get miss");
    blog_user_clear(&u);
}

static void raw_miss(long i, long *items)
{
    (void)items;
    int64_t id = miss_base + 50000 + i;
    char key[48];
    snprintf(key, sizeof key, "raw:{user:%" PRId64 "}", id);
    redisReply *r = redisCommand(rc, "GET %s", key);
    if (!r || r->type != REDIS_REPLY_NIL)
        die("raw miss GET");
    freeReplyObject(r);
    char idtxt[24];
    snprintf(idtxt, sizeof idtxt, "%" PRId64, id);
    const char *params[] = {idtxt};
    PGresult *res = PQexecPrepared(pg, "raw_select", 1, params, NULL, NULL, 0);
    if (PQresultStatus(res) != PGRES_TUPLES_OK || PQntuples(res) != 1)
        die("raw select");
    json_t *o =
        json_pack("{s:I,s:s,s:s,s:I,s:s,s:i,s:b,s:s}", "id", (json_int_t)id, "email",
                  PQgetvalue(res, 0, 1), "name", PQgetvalue(res, 0, 2), "org_id",
                  (json_int_t)atoll(PQgetvalue(res, 0, 3)), "bio", PQgetvalue(res, 0, 4),
                  "karma", atoi(PQgetvalue(res, 0, 5)), "active",
                  PQgetvalue(res, 0, 6)[0] == 't', "created_at", PQgetvalue(res, 0, 7));
    char *s = json_dumps(o, JSON_COMPACT);
    r = redisCommand(rc, "SET %s %s EX 600", key, s);
    freeReplyObject(r);
    free(s);
    json_decref(o);
    PQclear(res);
}

static void after_misses(long i, long *items)
{
    (void)i;
    (void)items;
    miss_base += 1000; /* next round reads ids nobody read */
}

static void raw_select(long i, long *items)
{
    (void)items;
    char idtxt[24];
    snprintf(idtxt, sizeof idtxt, "%" PRId64, hot(i));
    const char *params[] = {idtxt};
    PGresult *res = PQexecPrepared(pg, "raw_select", 1, params, NULL, NULL, 0);
    if (PQresultStatus(res) != PGRES_TUPLES_OK)
        die("raw select");
    PQclear(res);
}

static void bench_update(long i, long *items)
{
    (void)items;
    blog_user u;
    int64_t id = 2000 + (i % 5000);
    char email[48], name[] = "Updated", bio[] = "Short.";
    snprintf(email, sizeof email, "user%" PRId64 "@example.com", id);
    u = (blog_user){.id = id,
                    .email = email,
                    .name = name,
                    .org_id = 1 + id % 1000,
                    .bio = bio,
                    .karma = (int32_t)i,
                    .active = true};
    if (blog_user_update(repo, &u) != MEMO_OK)
        die("update");
}

static void raw_update(long i, long *items)
{
    (void)items;
    int64_t id = 2000 + (i % 5000);
    char idtxt[24], karma[16];
    snprintf(idtxt, sizeof idtxt, "%" PRId64, id);
    snprintf(karma, sizeof karma, "%ld", i);
    const char *params[] = {idtxt, karma};
    PGresult *res = PQexecPrepared(pg, "raw_update", 2, params, NULL, NULL, 0);
    if (PQresultStatus(res) != PGRES_COMMAND_OK)
        die("raw update");
    PQclear(res);
    redisReply *r = redisCommand(rc, "DEL raw:{user:%" PRId64 "}", id);
    freeReplyObject(r);
}

static int64_t many_ids[100];

static void bench_get_many_hit(long i, long *items)
{
    blog_user_list l;
    for (int k = 0; k < 100; k++)
        many_ids[k] = hot(i * 100 + k);
    if (blog_user_get_many(repo, many_ids, 100, &l) != MEMO_OK || l.len != 100)
        die("get_many");
    blog_user_list_clear(&l);
    *items = 100;
}

static void bench_list_hit(long i, long *items)
{
    blog_user_list l;
    if (blog_user_by_org(repo, 1 + i % 10, &l) != MEMO_OK || l.len != 100)
        die("list");
    *items = (long)l.len;
    blog_user_list_clear(&l);
}

static void raw_mget(long i, long *items)
{
    const char *argv[101];
    argv[0] = "MGET";
    for (int k = 0; k < 100; k++)
        argv[k + 1] = raw_keys[hot(i * 100 + k)];
    redisReply *r = redisCommandArgv(rc, 101, argv, NULL);
    if (!r || r->elements != 100)
        die("raw MGET");
    for (size_t k = 0; k < r->elements; k++) {
        json_t *j = json_loadb(r->element[k]->str, r->element[k]->len, 0, NULL);
        json_decref(j);
    }
    freeReplyObject(r);
    *items = 100;
}

static void raw_pipeline(long i, long *items)
{
    for (int k = 0; k < 64; k++)
        redisAppendCommand(rc, "GET %s", raw_keys[hot(i * 64 + k)]);
    for (int k = 0; k < 64; k++) {
        void *r;
        if (redisGetReply(rc, &r) != REDIS_OK)
            die("pipeline");
        freeReplyObject(r);
    }
    *items = 64;
}

/* ------------------------------------------------------ Zipf workload */

static double *zipf_cdf;

static int64_t zipf(void)
{
    double u = (double)(next() >> 11) / 9007199254740992.0;
    size_t lo = 0, hi = USERS - 1;
    while (lo < hi) {
        size_t mid = (lo + hi) / 2;
        if (zipf_cdf[mid] < u)
            lo = mid + 1;
        else
            hi = mid;
    }
    return (int64_t)lo + 1;
}

static void bench_mixed(long i, long *items)
{
    (void)items;
    int64_t id = zipf();
    if (next() % 100 < 5) {
        blog_user u;
        char email[48], name[] = "Mixed", bio[] = "Mixed.";
        snprintf(email, sizeof email, "user%" PRId64 "@example.com", id);
        u = (blog_user){.id = id,
                        .email = email,
                        .name = name,
                        .org_id = 1 + id % 1000,
                        .bio = bio,
                        .karma = (int32_t)i,
                        .active = true};
        if (blog_user_update(repo, &u) != MEMO_OK)
            die("mixed update");
        return;
    }
    blog_user u;
    if (blog_user_get(repo, id, &u) != MEMO_OK)
        die("mixed get");
    blog_user_clear(&u);
}

/* The same workload by hand: GET, else SELECT and SET; UPDATE then DEL. */
static void raw_mixed(long i, long *items)
{
    (void)items;
    int64_t id = zipf();
    char key[48], idtxt[24];
    snprintf(key, sizeof key, "mix:{user:%" PRId64 "}",
             id); /* apart from the floors' keys */
    snprintf(idtxt, sizeof idtxt, "%" PRId64, id);
    if (next() % 100 < 5) {
        char karma[16];
        snprintf(karma, sizeof karma, "%ld", i);
        const char *params[] = {idtxt, karma};
        PGresult *res = PQexecPrepared(pg, "raw_update", 2, params, NULL, NULL, 0);
        PQclear(res);
        redisReply *r = redisCommand(rc, "DEL %s", key);
        freeReplyObject(r);
        return;
    }
    redisReply *r = redisCommand(rc, "GET %s", key);
    if (r && r->type == REDIS_REPLY_STRING) {
        json_t *j = json_loadb(r->str, r->len, 0, NULL);
        json_decref(j);
        freeReplyObject(r);
        return;
    }
    freeReplyObject(r);
    const char *params[] = {idtxt};
    PGresult *res = PQexecPrepared(pg, "raw_select", 1, params, NULL, NULL, 0);
    if (PQntuples(res) == 1) {
        json_t *o = json_pack("{s:I,s:s,s:s,s:s}", "id", (json_int_t)id, "email",
                              PQgetvalue(res, 0, 1), "name", PQgetvalue(res, 0, 2), "bio",
                              PQgetvalue(res, 0, 4));
        char *s = json_dumps(o, JSON_COMPACT);
        r = redisCommand(rc, "SET %s %s EX 600", key, s);
        freeReplyObject(r);
        free(s);
        json_decref(o);
    }
    PQclear(res);
}

/* --------------------------------------------------------------- threads */

typedef struct thread_arg {
    long n;
    double secs;
} thread_arg;

static void *thread_hits(void *p)
{
    thread_arg *a = p;
    double t0 = now_us();
    for (long i = 0; i < a->n; i++) {
        blog_user u;
        if (blog_user_get(repo, hot(i), &u) != MEMO_OK)
            die("thread get");
        blog_user_clear(&u);
    }
    a->secs = (now_us() - t0) / 1e6;
    return NULL;
}

static void threads(void)
{
    printf("\nthreads sharing one repository (get hits, pool of 8 connections):\n");
    printf("%8s %14s\n", "threads", "gets/s");
    long per = quick ? 2000 : 8000;
    for (int t = 1; t <= 8; t *= 2) {
        double best[16];
        for (int r = 0; r < rounds; r++) {
            pthread_t th[8];
            thread_arg a[8];
            double t0 = now_us();
            for (int k = 0; k < t; k++) {
                a[k].n = per;
                pthread_create(&th[k], NULL, thread_hits, &a[k]);
            }
            for (int k = 0; k < t; k++)
                pthread_join(th[k], NULL);
            best[r] = (double)(per * t) / ((now_us() - t0) / 1e6);
        }
        double m = median(best, rounds);
        printf("%8d %14.0f\n", t, m);
        if (json_out)
            fprintf(json_out, "{\"op\":\"threads\",\"threads\":%d,\"rate\":%.0f}\n", t,
                    m);
    }
}

/* ------------------------------------------------------------------ main */

static void warm(void)
{
    for (int64_t id = 1; id <= 1000; id++) {
        blog_user u;
        if (blog_user_get(repo, id, &u) != MEMO_OK)
            die("warm");
        snprintf(email_of[id], sizeof email_of[id], "%s", u.email);
        blog_user_clear(&u);
        if (blog_user_get_by_email(repo, email_of[id], &u) != MEMO_OK)
            die("warm email");
        blog_user_clear(&u);
    }
    for (int64_t org = 1; org <= 10; org++) {
        blog_user_list l;
        if (blog_user_by_org(repo, org, &l) != MEMO_OK)
            die("warm list");
        blog_user_list_clear(&l);
    }
    /* the raw keys hold exactly what memo caches */
    for (int64_t id = 1; id <= USERS; id++)
        snprintf(raw_keys[id], sizeof raw_keys[id], "raw:{user:%" PRId64 "}", id);
    for (int64_t id = 1; id <= 1000; id++) {
        redisReply *r = redisCommand(rc, "GET blog:{user:%" PRId64 "}:%s", id,
                                     blog_user_desc.row.key.tag);
        if (!r || r->type != REDIS_REPLY_STRING)
            die("warm copy");
        redisReply *s = redisCommand(rc, "SET %s %b", raw_keys[id], r->str, r->len);
        freeReplyObject(s);
        freeReplyObject(r);
    }
    PGresult *res =
        PQprepare(pg, "raw_select",
                  "SELECT id, email, name, org_id, bio, karma, active, created_at "
                  "FROM users WHERE id = $1",
                  1, NULL);
    PQclear(res);
    res =
        PQprepare(pg, "raw_update", "UPDATE users SET karma = $2 WHERE id = $1", 2, NULL);
    PQclear(res);
}

int main(int argc, char **argv)
{
    const char *sql_path = "build/schemas/blog.sql", *json_path = NULL;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--rounds") == 0 && i + 1 < argc)
            rounds = atoi(argv[++i]);
        else if (strcmp(argv[i], "--json") == 0 && i + 1 < argc)
            json_path = argv[++i];
        else if (strcmp(argv[i], "--sql") == 0 && i + 1 < argc)
            sql_path = argv[++i];
        else if (strcmp(argv[i], "--quick") == 0)
            quick = true;
    }
    if (rounds < 3 || rounds > 15)
        rounds = 7;
    if (json_path && !(json_out = fopen(json_path, "w")))
        die("cannot write the JSON file");
    const char *redis_url = getenv("REDIS_URL"), *db_url = getenv("DATABASE_URL");
    if (!redis_url || !db_url)
        die("REDIS_URL and DATABASE_URL must be set (make bench sets them)");
    char host[64];
    int port;
    if (sscanf(redis_url, "redis://%63[^:]:%d", host, &port) != 2)
        die("cannot read REDIS_URL");
    rc = redisConnect(host, port);
    pg = PQconnectdb(db_url);
    if (!rc || rc->err || PQstatus(pg) != CONNECTION_OK)
        die("cannot connect");
    seed(sql_path);
    memo_config cfg = {.redis_url = redis_url, .database_url = db_url};
    memo_error err;
    if (memo_open(&repo, &cfg, &err) != MEMO_OK)
        die(err.message);
    warm();
    zipf_cdf = malloc(USERS * sizeof *zipf_cdf);
    double sum = 0, acc = 0;
    for (int i = 0; i < USERS; i++)
        sum += 1.0 / pow(i + 1, 1.1);
    for (int i = 0; i < USERS; i++)
        zipf_cdf[i] = (acc += 1.0 / pow(i + 1, 1.1) / sum);

    printf(
        "memo %s benchmark: %d rounds, medians; ratio = memo / raw (p50) or memo / raw "
        "(rate)\n\n",
        MEMO_VERSION, rounds);
    printf("%-20s %8s %8s %10s   %-20s %8s %8s %10s   %7s %-14s %6s\n", "memo", "p50 us",
           "p99 us", "rate/s", "raw floor", "p50 us", "p99 us", "rate/s", "ratio",
           "target", "allocs");
    compare("get hit", "GET + json_loads", bench_get_hit, raw_get_decode, NULL, 4000,
            false, 1.10, "ops");
    compare("get_by_email hit", "GET + json_loads", bench_get_by_email_hit,
            raw_get_decode, NULL, 4000, false, 1.15, "ops");
    compare("get miss", "GET + SELECT + SET", bench_get_miss, raw_miss, after_misses,
            1000, false, 1.25, "ops");
    /* fsync times swing: more samples than the others */
    compare("update", "UPDATE + DEL", bench_update, raw_update, NULL, 1500, false, 1.15,
            "ops");
    compare("get_many(100) hit", "MGET 100 + decode", bench_get_many_hit, raw_mget, NULL,
            400, true, 0.8, "keys");
    compare("list(100) hit", "MGET 100 + decode", bench_list_hit, raw_mget, NULL, 400,
            true, 0.8, "keys");
    printf("\nraw floors alone (for reference):\n");
    raw_only("GET alone", raw_get, 4000);
    raw_only("prepared SELECT", raw_select, 4000);
    raw_only("pipeline 64 GETs", raw_pipeline, 400);
    threads();
    printf("\nZipf(1.1) over %d users, 5%% updates, from a cold cache:\n", USERS);
    compare("zipf, 5% writes", "same by hand", bench_mixed, raw_mixed, NULL, 5000, false,
            0, "ops");

    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    printf("\npeak RSS: %ld KiB\n", ru.ru_maxrss);
    if (json_out) {
        fprintf(json_out, "{\"op\":\"peak_rss\",\"kib\":%ld}\n", ru.ru_maxrss);
        fclose(json_out);
    }
    memo_close(repo);
    redisFree(rc);
    PQfinish(pg);
    return 0;
}
