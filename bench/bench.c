/* memo's benchmark: every operation through the generated blog repository
 * next to its floors, the same work written by hand with hiredis, libpq and
 * jansson, in one process and one run, rounds interleaved, medians reported.
 *
 *   REDIS_URL=... DATABASE_URL=... bench [--rounds N] [--json FILE] [--quick]
 *                                        [--sql FILE]
 *
 * `make bench` sets up the servers and runs it (see bench/run.sh). What each
 * row compares and why is docs/benchmark.md. The decisions, in short (issue
 * 15, "an honest benchmark"):
 *
 * - Every ratio is memo / floor and says how it is judged: by latency
 *   (memo's p50 over the floor's: lower is better) or by throughput (memo's
 *   rate over the floor's: keys/s for batches, ops/s for the mixed
 *   workload: higher is better). A ratio is the median of the per-round
 *   ratios; each side's figures are medians of its rounds. A round runs
 *   every side in CHUNKS pieces, interleaved, the first side alternating,
 *   so that a drift of the machine falls on all sides alike.
 * - Reads have two floors: A, the bytes alone (GET, MGET: hiredis' reply,
 *   nothing decoded), and B, the same bytes decoded into the same blog_user
 *   structs by a careful hand-written decode with jansson (the tree, then
 *   member by member into the struct, strings copied, the tree freed).
 *   Targets are on A: memo's figure includes decoding into the caller's
 *   structs, A's does not; B shows where memo stands against code written
 *   by hand.
 * - Writes are like for like. Both sides write the full row (every column,
 *   the seeded values with a new karma: email, name and org_id do not
 *   change, so no lookup points elsewhere and no list changes membership or
 *   order). The floor sends a prepared UPDATE of every column, then one DEL
 *   of the row key and of the email lookup key (the app does not read the
 *   old row, so it drops the lookup of the email it writes). memo sends one
 *   statement that also locks the row and returns the old and new key
 *   fields, then one DEL of the row (a lease lives in its value key; the
 *   email did not change, so its lookup stays).
 * - The partial update writes karma alone on both sides: memo's
 *   update_fields (its one statement for every mask, the same lock and
 *   RETURNING) against a prepared UPDATE of karma and a DEL of the row key
 *   (karma is in no lookup or list, so the floor knows the row is all).
 * - The mixed row replays one Zipf trace per round (ids, and which
 *   operations are writes) on both sides, each from an empty Redis database
 *   of its own (FLUSHDB before each of its rounds), both caching the whole
 *   row and writing as above: the same number of operations, the same
 *   reads, the same writes. It is judged by throughput.
 * - allocs: every malloc/calloc/realloc in the process during one side's
 *   rounds (hiredis', libpq's and jansson's included), per call.
 * - Redis CPU: the server's used_cpu_user + used_cpu_sys (INFO cpu, all its
 *   threads) over one side's rounds, per call, read on a connection of its
 *   own between pieces of rounds; and the commands each side sent, from
 *   INFO commandstats, which counts the commands a script runs as well as
 *   the script. Nothing is subtracted: the INFO calls are four a piece
 *   of tens or hundreds of calls. memo's repositories keep their
 *   statistics private (MEMO_STATS_PRIVATE), so the publisher's one command
 *   a second does not show up as a per-call cost.
 *
 * Server keys: database 0 holds memo's keys and the floors' ("raw:"),
 * database 2 memo's side of the mixed row, database 3 its floor's ("mix:").
 * The floors' keys of the read rows hold copies of the bytes memo cached. */
#define _GNU_SOURCE 1 /* RTLD_NEXT-free malloc counting via __libc_malloc */
#include <inttypes.h>
#include <math.h>
#include <pthread.h>
#include <sched.h>
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
#include "hot.h" /* the same users with `near 1000` */

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

enum {
    USERS = 100000,
    ORGS = 1000,
    HOT = 1000,     /* ids 1..HOT are the read rows' hot rows */
    LIST_ORGS = 10, /* orgs 1..LIST_ORGS are the listed ones (100 users each) */
    MAX_ROUNDS = 15,
    MIX_MEMO_DB = 2,
    MIX_FLOOR_DB = 3,
    BATCH = 100,
    CHUNKS = 8 /* a side's round runs in this many pieces, interleaved */
};

static memo_repo *repo;          /* every row but the mixed one: database 0 */
static memo_repo *unnamed;       /* the same, statements unnamed (MEMO_DB_UNNAMED) */
static memo_repo *bounced;       /* through PgBouncer (transaction mode), if running */
static memo_repo *mix_repo;      /* the mixed row's memo side: database 2 */
static memo_repo *near_repo;     /* schema hot (near caches): database 0 */
static memo_repo *near_writer;   /* another repository writing what near_repo reads */
static memo_repo *mix_near_repo; /* the near mixed row's memo side: database 2 */
static memo_repo *clustered;     /* on a 3-master Redis Cluster, if one runs */
static redisContext *cnodes[8];  /* the cluster's masters: INFO, flushes */
static int ncnodes;
/* the servers whose CPU and commands a side's chunk counts: 0 the single
 * Redis, 1..ncnodes the cluster's masters (a cluster row's cluster side) */
static int srv_lo, srv_hi;
static bool have_cluster(void);
static redisContext *rc;     /* the floors' connection: database 0 */
static redisContext *rc_mix; /* the mixed row's floor: database 3 */
static redisContext *ctl;    /* INFO, flushes, deletes, copies: never timed */
static int ctl_db;
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

static void prepare(const char *name, const char *q)
{
    PGresult *r = PQprepare(pg, name, q, 0, NULL);
    if (PQresultStatus(r) != PGRES_COMMAND_OK) {
        fprintf(stderr, "bench: %s: %s", q, PQerrorMessage(pg));
        exit(2);
    }
    PQclear(r);
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
    PQclear(sql("SET client_min_messages = warning")); /* not "already exists" */
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
}

/* ------------------------------------------------------ Redis by hand */

/* A control command (never timed): dies on an error. */
static redisReply *ctl_argv(int argc, const char **argv, const size_t *lens)
{
    redisReply *r = redisCommandArgv(ctl, argc, argv, lens);
    if (!r)
        die(ctl->errstr);
    if (r->type == REDIS_REPLY_ERROR) {
        fprintf(stderr, "bench: %s: %s\n", argv[0], r->str);
        exit(2);
    }
    return r;
}

static void ctl_select(int db)
{
    if (db == ctl_db)
        return;
    char n[16];
    snprintf(n, sizeof n, "%d", db);
    const char *argv[] = {"SELECT", n};
    freeReplyObject(ctl_argv(2, argv, NULL));
    ctl_db = db;
}

static void ctl_flush(int db)
{
    ctl_select(db);
    const char *argv[] = {"FLUSHDB"};
    freeReplyObject(ctl_argv(1, argv, NULL));
}

static void select_db(redisContext *c, int db)
{
    redisReply *r = redisCommand(c, "SELECT %d", db);
    if (!r || r->type == REDIS_REPLY_ERROR)
        die("SELECT");
    freeReplyObject(r);
}

/* memo's keys (runtime/src/keys.c, no prefix): blog:{<head><part><tail>}:<tag> */
static void memo_key_of(char *out, size_t n, const memo_key_desc *k, const char *part)
{
    snprintf(out, n, "%s:{%s%s%s}:%s", blog_user_desc.schema, k->head, part, k->tail,
             k->tag);
}

static void memo_row_key_of(char *out, size_t n, int64_t id)
{
    char part[24];
    snprintf(part, sizeof part, "%" PRId64, id);
    memo_key_of(out, n, &blog_user_desc.row.key, part);
}

/* The floors' keys, in namespace ns ("raw" or "mix"). */
static void floor_row_key(char *out, size_t n, const char *ns, int64_t id)
{
    snprintf(out, n, "%s:{user:%" PRId64 "}", ns, id);
}

static void floor_email_key(char *out, size_t n, const char *ns, const char *email)
{
    snprintf(out, n, "%s:{user.email:%s}", ns, email);
}

static void floor_list_key(char *out, size_t n, const char *ns, int64_t org)
{
    snprintf(out, n, "%s:{user.by_org:%" PRId64 "}", ns, org);
}

static char raw_keys[USERS + 1][32];     /* raw:{user:<id>} */
static char raw_email_keys[HOT + 1][64]; /* raw:{user.email:<email of id>} */
static char email_of[HOT + 1][48];

/* ------------------------------------------------- the floors' codec */

/* The row as the floors read and write it: JSON written and read with
 * jansson (the same members memo writes), and PostgreSQL's binary results
 * (what memo asks for too). */

static char *user_encode(const blog_user *u)
{
    json_t *o = json_pack(
        "{s:I,s:s,s:s,s:I,s:s?,s:i,s:b,s:I}", "id", (json_int_t)u->id, "email", u->email,
        "name", u->name, "org_id", (json_int_t)u->org_id, "bio", u->bio, "karma",
        (int)u->karma, "active", (int)u->active, "created_at", (json_int_t)u->created_at);
    char *s = o ? json_dumps(o, JSON_COMPACT) : NULL;
    json_decref(o);
    if (!s)
        die("floor encode");
    return s;
}

static char *dup_string(const json_t *v)
{
    char *s = strdup(json_string_value(v));
    if (!s)
        die("out of memory");
    return s;
}

/* A careful decode: the tree, each member checked and copied into the
 * struct (which owns its strings, as memo's do), the tree freed. */
static bool user_decode(const char *s, size_t n, blog_user *u)
{
    memset(u, 0, sizeof *u);
    json_t *j = json_loadb(s, n, 0, NULL);
    if (!json_is_object(j)) {
        json_decref(j);
        return false;
    }
    json_t *id = json_object_get(j, "id"), *email = json_object_get(j, "email"),
           *name = json_object_get(j, "name"), *org = json_object_get(j, "org_id"),
           *bio = json_object_get(j, "bio"), *karma = json_object_get(j, "karma"),
           *active = json_object_get(j, "active"),
           *created = json_object_get(j, "created_at");
    bool ok = json_is_integer(id) && json_is_string(email) && json_is_string(name) &&
              json_is_integer(org) && (json_is_string(bio) || json_is_null(bio)) &&
              json_is_integer(karma) && json_is_boolean(active) &&
              json_is_integer(created);
    if (ok) {
        u->id = json_integer_value(id);
        u->email = dup_string(email);
        u->name = dup_string(name);
        u->org_id = json_integer_value(org);
        u->bio = json_is_null(bio) ? NULL : dup_string(bio);
        u->karma = (int32_t)json_integer_value(karma);
        u->active = json_is_true(active);
        u->created_at = json_integer_value(created);
    }
    json_decref(j);
    return ok;
}

static uint64_t be(const char *p, int n)
{
    uint64_t x = 0;
    for (int i = 0; i < n; i++)
        x = x << 8 | (unsigned char)p[i];
    return x;
}

static char *pg_text(const PGresult *res, int col)
{
    char *s = strdup(PQgetvalue(res, 0, col)); /* libpq ends binary text with NUL */
    if (!s)
        die("out of memory");
    return s;
}

/* SELECT id, email, name, org_id, bio, karma, active, created_at, binary */
static bool pg_user(const PGresult *res, blog_user *u)
{
    memset(u, 0, sizeof *u);
    if (PQntuples(res) != 1 || PQgetlength(res, 0, 0) != 8 ||
        PQgetlength(res, 0, 3) != 8 || PQgetlength(res, 0, 5) != 4 ||
        PQgetlength(res, 0, 6) != 1 || PQgetlength(res, 0, 7) != 8)
        return false;
    u->id = (int64_t)be(PQgetvalue(res, 0, 0), 8);
    u->email = pg_text(res, 1);
    u->name = pg_text(res, 2);
    u->org_id = (int64_t)be(PQgetvalue(res, 0, 3), 8);
    u->bio = PQgetisnull(res, 0, 4) ? NULL : pg_text(res, 4);
    u->karma = (int32_t)(uint32_t)be(PQgetvalue(res, 0, 5), 4);
    u->active = PQgetvalue(res, 0, 6)[0] != 0;
    /* PostgreSQL counts from 2000-01-01, the struct from 1970 */
    u->created_at = (int64_t)be(PQgetvalue(res, 0, 7), 8) + INT64_C(946684800000000);
    return true;
}

/* ------------------------------------------------------------ measurement */

typedef struct sample {
    double *us; /* per-call latencies of one round */
    size_t n;
    double secs;
    long items; /* keys or operations, for the rate */
    long allocs;
} sample;

typedef void (*op_fn)(long i, long *items);
typedef void (*round_fn)(int round, long n);

/* Calls i0..i1-1 of fn, each timed into s->us[i]; time, items and
 * allocations are added to s's. */
static void run_calls(op_fn fn, long i0, long i1, sample *s)
{
    long a0 = atomic_load(&allocations);
    double t0 = now_us();
    for (long i = i0; i < i1; i++) {
        double t = now_us();
        long items = 1;
        fn(i, &items);
        s->us[i] = now_us() - t;
        s->items += items;
    }
    s->secs += (now_us() - t0) / 1e6;
    s->allocs += atomic_load(&allocations) - a0;
}

static sample sample_new(long n)
{
    sample s = {calloc((size_t)n, sizeof(double)), (size_t)n, 0, 0, 0};
    if (!s.us)
        die("out of memory");
    return s;
}

/* One round: n calls of fn, each timed. */
static sample run_round(op_fn fn, long n)
{
    sample s = sample_new(n);
    run_calls(fn, 0, n, &s);
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

static double median(const double *v, int n)
{
    double c[MAX_ROUNDS];
    memcpy(c, v, (size_t)n * sizeof *c);
    qsort(c, (size_t)n, sizeof *c, cmp_double);
    return n % 2 ? c[n / 2] : (c[n / 2 - 1] + c[n / 2]) / 2;
}

/* ------------------------------------------------ the server's side */

enum { MAX_CMDS = 64 };

typedef struct cmdstat {
    char name[40];
    double calls, usec;
} cmdstat;

typedef struct cmdstats {
    cmdstat c[MAX_CMDS];
    int n;
} cmdstats;

static cmdstat *cmdstat_find(cmdstats *s, const char *name, bool add)
{
    for (int i = 0; i < s->n; i++)
        if (strcmp(s->c[i].name, name) == 0)
            return &s->c[i];
    if (!add || s->n == MAX_CMDS)
        return NULL;
    cmdstat *c = &s->c[s->n++];
    snprintf(c->name, sizeof c->name, "%s", name);
    c->calls = c->usec = 0;
    return c;
}

/* INFO on server k: 0 the single Redis (ctl), 1.. the cluster's masters. */
static redisReply *info_of(int k, const char *section)
{
    const char *argv[] = {"INFO", section};
    if (k == 0)
        return ctl_argv(2, argv, NULL);
    redisReply *r = redisCommandArgv(cnodes[k - 1], 2, argv, NULL);
    if (!r || r->type != REDIS_REPLY_STRING)
        die("INFO on a cluster node");
    return r;
}

/* INFO commandstats: cmdstat_<name>:calls=N,usec=N,..., summed over every
 * server (a side on the cluster has its commands there, the other side's
 * are on the single Redis). */
static void read_cmdstats(cmdstats *s)
{
    s->n = 0;
    for (int k = srv_lo; k <= srv_hi; k++) {
        redisReply *r = info_of(k, "commandstats");
        char *save = NULL;
        for (char *line = strtok_r(r->str, "\r\n", &save); line;
             line = strtok_r(NULL, "\r\n", &save)) {
            char name[40];
            double calls, usec;
            if (sscanf(line, "cmdstat_%39[^:]:calls=%lf,usec=%lf", name, &calls, &usec) !=
                3)
                continue;
            cmdstat *c = cmdstat_find(s, name, true);
            if (c) {
                c->calls += calls;
                c->usec += usec;
            }
        }
        freeReplyObject(r);
    }
}

/* INFO cpu: the servers' user and system CPU seconds, all their threads. */
static double read_cpu(void)
{
    double s = 0;
    for (int k = srv_lo; k <= srv_hi; k++) {
        redisReply *r = info_of(k, "cpu");
        const char *sys = strstr(r->str, "used_cpu_sys:"),
                   *user = strstr(r->str, "used_cpu_user:");
        if (!sys || !user)
            die("INFO cpu: no used_cpu_sys or used_cpu_user");
        s += strtod(sys + strlen("used_cpu_sys:"), NULL) +
             strtod(user + strlen("used_cpu_user:"), NULL);
        freeReplyObject(r);
    }
    return s;
}

/* ------------------------------------------------------------------ rows */

enum by { BY_LATENCY, BY_THROUGHPUT };

typedef struct side {
    const char *label;
    op_fn op;
    round_fn before; /* before each of its rounds, untimed: flushes, deletes */
} side;

typedef struct row {
    const char *name;
    enum by by;
    const char *unit; /* what the rate counts */
    long n;           /* calls a round */
    void (*setup)(void);
    round_fn round;          /* once a round, before any side: the trace */
    side sides[3];           /* memo, then its floors */
    double target;           /* on memo / sides[1]; 0: none */
    double cpu_target;       /* on memo / sides[1]'s Redis CPU per call; 0: none */
    const char *target_says; /* the target's name in the summary */
    bool (*available)(void); /* NULL: always; else skipped when false */
} row;

typedef struct measured {
    double p50[MAX_ROUNDS], p99[MAX_ROUNDS], rate[MAX_ROUNDS], allocs[MAX_ROUNDS],
        cpu[MAX_ROUNDS]; /* Redis CPU us per call */
    cmdstats sent;       /* commands over all rounds */
    long calls;          /* over all rounds */
} measured;

typedef struct verdict {
    char what[64], vs[48];
    const char *by;
    double ratio, target;
    bool higher_better, met;
} verdict;

static verdict verdicts[24];
static int nverdicts;

/* One chunk of a side's round, calls i0..i1-1, into its sample; the
 * server's CPU and commands around it go to m. */
static void measure_chunk(const side *s, long i0, long i1, sample *smp, measured *m,
                          double *cpu)
{
    static cmdstats before, after;
    read_cmdstats(&before);
    double cpu0 = read_cpu();
    run_calls(s->op, i0, i1, smp);
    double cpu1 = read_cpu();
    read_cmdstats(&after);
    *cpu += cpu1 - cpu0;
    for (int i = 0; i < after.n; i++) {
        if (strcmp(after.c[i].name, "info") == 0)
            continue; /* ours, on the control connection */
        cmdstat *b = cmdstat_find(&before, after.c[i].name, false);
        double calls = after.c[i].calls - (b ? b->calls : 0);
        double usec = after.c[i].usec - (b ? b->usec : 0);
        cmdstat *sum = calls > 0 ? cmdstat_find(&m->sent, after.c[i].name, true) : NULL;
        if (sum) {
            sum->calls += calls;
            sum->usec += usec;
        }
    }
}

/* A side's round done: its figures. */
static void round_done(int r, long n, sample *smp, double cpu, measured *m)
{
    m->p50[r] = pct(smp, 0.5);
    m->p99[r] = pct(smp, 0.99);
    m->rate[r] = (double)smp->items / smp->secs;
    m->allocs[r] = (double)smp->allocs / (double)n;
    m->cpu[r] = cpu * 1e6 / (double)n;
    m->calls += n;
    free(smp->us);
}

static int cmp_calls(const void *a, const void *b)
{
    const cmdstat *x = a, *y = b;
    return x->calls < y->calls ? 1 : x->calls > y->calls ? -1 : strcmp(x->name, y->name);
}

/* "evalsha 1.00 (1.80 us), get 1.00 (0.10 us)": commands a call and the
 * server's time in one of them (commandstats' usec: a script's includes the
 * commands it runs), the most frequent first, those under 0.005 a call left
 * out. */
static void commands_text(measured *m, char *out, size_t n)
{
    qsort(m->sent.c, (size_t)m->sent.n, sizeof *m->sent.c, cmp_calls);
    size_t len = 0;
    out[0] = '\0';
    for (int i = 0; i < m->sent.n && len < n; i++) {
        double per = m->sent.c[i].calls / (double)m->calls;
        if (per < 0.005)
            continue;
        int w = snprintf(out + len, n - len, "%s%s %.2f (%.2f us)", len ? ", " : "",
                         m->sent.c[i].name, per, m->sent.c[i].usec / m->sent.c[i].calls);
        if (w < 0)
            break;
        len += (size_t)w;
    }
    if (!out[0])
        snprintf(out, n, "-");
}

/* {"evalsha":{"per_call":1.0,"usec_each":1.8},...}: the same, as JSON. */
static void commands_json(const measured *m, char *out, size_t n)
{
    size_t len = (size_t)snprintf(out, n, "{");
    for (int i = 0; i < m->sent.n && len < n; i++) {
        int w = snprintf(out + len, n - len,
                         "%s\"%s\":{\"per_call\":%.4f,\"usec_each\":%.3f}", i ? "," : "",
                         m->sent.c[i].name, m->sent.c[i].calls / (double)m->calls,
                         m->sent.c[i].usec / m->sent.c[i].calls);
        if (w < 0)
            break;
        len += (size_t)w;
    }
    if (len < n)
        snprintf(out + len, n - len, "}");
}

static void add_verdict(const char *what, const char *vs, const char *by, double ratio,
                        double target, bool higher_better)
{
    if (nverdicts == (int)(sizeof verdicts / sizeof *verdicts))
        return;
    verdict *v = &verdicts[nverdicts++];
    snprintf(v->what, sizeof v->what, "%s", what);
    snprintf(v->vs, sizeof v->vs, "%s", vs);
    v->by = by;
    v->ratio = ratio;
    v->target = target;
    v->higher_better = higher_better;
    v->met = higher_better ? ratio >= target : ratio <= target;
}

static void side_json(const char *label, const measured *m, int nr, char *out, size_t n)
{
    static char cmds[4096];
    commands_json(m, cmds, sizeof cmds);
    snprintf(out, n,
             "{\"side\":\"%s\",\"p50_us\":%.2f,\"p99_us\":%.2f,\"rate\":%.0f,"
             "\"allocs_per_call\":%.1f,\"redis_cpu_us_per_call\":%.3f,\"commands\":%s}",
             label, median(m->p50, nr), median(m->p99, nr), median(m->rate, nr),
             median(m->allocs, nr), median(m->cpu, nr), cmds);
}

/* Measures one row, its sides interleaved in chunks of every round, then
 * prints a block of the table and a JSON line. */
static void run_row(const row *w)
{
    int ns = w->sides[2].op ? 3 : 2;
    long n = w->n;
    if (quick)
        n = n / 4 > 50 ? n / 4 : n;
    static measured m[3];
    memset(m, 0, sizeof m);
    /* each side is charged its own servers: on a cluster row, the cluster
     * side its masters (not their replicas), the other the single Redis */
    bool on_cluster = w->available == have_cluster;
    if (w->setup)
        w->setup();
    for (int r = 0; r < rounds; r++) {
        if (w->round)
            w->round(r, n);
        sample smp[3];
        double cpu[3] = {0};
        for (int s = 0; s < ns; s++) {
            smp[s] = sample_new(n);
            if (w->sides[s].before)
                w->sides[s].before(r, n);
        }
        /* A round is CHUNKS chunks a side, interleaved, the first side
         * alternating: a drift of the machine (another process's load, the
         * disk's flush times) falls on every side alike. */
        for (long c = 0; c < CHUNKS; c++) {
            long i0 = n * c / CHUNKS, i1 = n * (c + 1) / CHUNKS;
            for (int k = 0; k < ns; k++) {
                int s = (r + c) % 2 ? k : (k + 1) % ns; /* memo first, or last */
                srv_lo = on_cluster && s == 0 ? 1 : 0;
                srv_hi = on_cluster && s == 0 ? ncnodes : 0;
                measure_chunk(&w->sides[s], i0, i1, &smp[s], &m[s], &cpu[s]);
            }
        }
        for (int s = 0; s < ns; s++)
            round_done(r, n, &smp[s], cpu[s], &m[s]);
    }

    const char *by = w->by == BY_LATENCY ? "latency" : "throughput";
    printf("\n%s: by %s (%s), %ld calls a round, rate in %s/s\n", w->name, by,
           w->by == BY_LATENCY ? "p50" : "rate", n, w->unit);
    printf("  %-36s %8s %8s %10s %7s %9s   %s\n", "side", "p50 us", "p99 us", "rate/s",
           "allocs", "Redis us", "Redis commands a call");
    for (int s = 0; s < ns; s++) {
        char cmds[512];
        commands_text(&m[s], cmds, sizeof cmds);
        printf("  %-36s %8.1f %8.1f %10.0f %7.1f %9.2f   %s\n", w->sides[s].label,
               median(m[s].p50, rounds), median(m[s].p99, rounds),
               median(m[s].rate, rounds), median(m[s].allocs, rounds),
               median(m[s].cpu, rounds), cmds);
    }
    static char json[16384];
    size_t jl = 0;
    if (json_out) {
        jl +=
            (size_t)snprintf(json + jl, sizeof json - jl,
                             "{\"op\":\"%s\",\"by\":\"%s\",\"unit\":\"%s\",\"calls\":%ld,"
                             "\"rounds\":%d,\"sides\":[",
                             w->name, by, w->unit, n, rounds);
        for (int s = 0; s < ns && jl < sizeof json; s++) {
            static char one[8192];
            side_json(w->sides[s].label, &m[s], rounds, one, sizeof one);
            jl +=
                (size_t)snprintf(json + jl, sizeof json - jl, "%s%s", s ? "," : "", one);
        }
        if (jl < sizeof json)
            jl += (size_t)snprintf(json + jl, sizeof json - jl, "],\"ratios\":[");
    }
    for (int s = 1; s < ns; s++) {
        double ratio[MAX_ROUNDS], cpu[MAX_ROUNDS];
        for (int r = 0; r < rounds; r++) {
            ratio[r] = w->by == BY_LATENCY ? m[0].p50[r] / m[s].p50[r]
                                           : m[0].rate[r] / m[s].rate[r];
            cpu[r] = m[s].cpu[r] > 0 ? m[0].cpu[r] / m[s].cpu[r] : 0;
        }
        double q = median(ratio, rounds), c = median(cpu, rounds);
        double lo = ratio[0], hi = ratio[0]; /* the spread: how far to trust q */
        for (int r = 1; r < rounds; r++) {
            lo = ratio[r] < lo ? ratio[r] : lo;
            hi = ratio[r] > hi ? ratio[r] : hi;
        }
        bool higher = w->by == BY_THROUGHPUT;
        /* targets are on the first floor: A where there are two */
        bool judged = s == 1 && w->target > 0, cpu_judged = s == 1 && w->cpu_target > 0;
        bool met = higher ? q >= w->target : q <= w->target, cpu_met = c <= w->cpu_target;
        char goal[48] = "", cgoal[48] = "";
        if (judged) {
            add_verdict(w->target_says ? w->target_says : w->name, w->sides[s].label, by,
                        q, w->target, higher);
            snprintf(goal, sizeof goal, " (target %s %.2f: %s)",
                     higher ? ">=" : "<=", w->target, met ? "met" : "MISS");
        }
        if (cpu_judged) {
            char what[64];
            snprintf(what, sizeof what, "%s, Redis CPU", w->name);
            add_verdict(what, w->sides[s].label, "redis_cpu", c, w->cpu_target, false);
            snprintf(cgoal, sizeof cgoal, " (target <= %.2f: %s)", w->cpu_target,
                     cpu_met ? "met" : "MISS");
        }
        printf("  memo / %s: %s %.2fx (rounds %.2f-%.2f)%s; Redis CPU %.2fx%s\n",
               ns == 3 ? (s == 1 ? "A" : "B") : "floor", by, q, lo, hi, goal, c, cgoal);
        if (json_out && jl < sizeof json)
            jl += (size_t)snprintf(
                json + jl, sizeof json - jl,
                "%s{\"vs\":\"%s\",\"by\":\"%s\",\"ratio\":%.3f,\"min\":%.3f,"
                "\"max\":%.3f,\"target\":%.2f,\"met\":%s},"
                "{\"vs\":\"%s\",\"by\":\"redis_cpu\",\"ratio\":%.3f,\"target\":%.2f,"
                "\"met\":%s}",
                s > 1 ? "," : "", w->sides[s].label, by, q, lo, hi,
                judged ? w->target : 0.0, judged ? (met ? "true" : "false") : "null",
                w->sides[s].label, c, cpu_judged ? w->cpu_target : 0.0,
                cpu_judged ? (cpu_met ? "true" : "false") : "null");
    }
    if (json_out && jl < sizeof json)
        fprintf(json_out, "%s]}\n", json);
    fflush(stdout);
}

/* A floor on its own: p50, p99 and rate, medians of the rounds. */
static void floor_only(const char *name, op_fn op, long n)
{
    double p50[MAX_ROUNDS], p99[MAX_ROUNDS], rate[MAX_ROUNDS];
    if (quick)
        n = n / 4 > 50 ? n / 4 : n;
    for (int r = 0; r < rounds; r++) {
        sample s = run_round(op, n);
        p50[r] = pct(&s, 0.5);
        p99[r] = pct(&s, 0.99);
        rate[r] = (double)s.items / s.secs;
        free(s.us);
    }
    printf("  %-36s %8.1f %8.1f %10.0f\n", name, median(p50, rounds), median(p99, rounds),
           median(rate, rounds));
    if (json_out)
        fprintf(json_out,
                "{\"floor\":\"%s\",\"p50_us\":%.2f,\"p99_us\":%.2f,\"rate\":%.0f}\n",
                name, median(p50, rounds), median(p99, rounds), median(rate, rounds));
}

/* ------------------------------------------------------ reads: the hot rows */

static int64_t hot(long i)
{
    return 1 + (int64_t)((uint64_t)i * 2654435761u % HOT);
}

/* Copies the value at memo's key src (database 0) to the floor's key dst. */
static void copy_value(const char *src, const char *dst)
{
    const char *get[] = {"GET", src};
    redisReply *r = ctl_argv(2, get, NULL);
    if (r->type != REDIS_REPLY_STRING) {
        fprintf(stderr, "bench: %s is not cached\n", src);
        exit(2);
    }
    const char *set[] = {"SET", dst, r->str};
    size_t lens[] = {3, strlen(dst), r->len};
    freeReplyObject(ctl_argv(3, set, lens));
    freeReplyObject(r);
}

/* memo caches the hot rows, their email lookups and the lists of the listed
 * orgs (again before each read row: a write row may have invalidated some);
 * the floors' keys get the same bytes: rows as memo caches them, the email
 * keys the row itself (one GET: the fastest a hand-written lookup can be),
 * the lists memo's JSON array of ids. */
static void warm_reads(void)
{
    ctl_select(0);
    char src[128];
    for (int64_t id = 1; id <= HOT; id++) {
        blog_user u;
        if (blog_user_get(repo, id, &u) != MEMO_OK)
            die("warm get");
        snprintf(email_of[id], sizeof email_of[id], "%s", u.email);
        blog_user_clear(&u);
        if (blog_user_get_by_email(repo, email_of[id], &u) != MEMO_OK)
            die("warm get_by_email");
        blog_user_clear(&u);
        floor_email_key(raw_email_keys[id], sizeof raw_email_keys[id], "raw",
                        email_of[id]);
        memo_row_key_of(src, sizeof src, id);
        copy_value(src, raw_keys[id]);
        copy_value(src, raw_email_keys[id]);
    }
    for (int64_t org = 1; org <= LIST_ORGS; org++) {
        blog_user_list l;
        if (blog_user_by_org(repo, org, &l) != MEMO_OK || l.len != BATCH)
            die("warm list");
        for (size_t k = 0; k < l.len; k++) {
            memo_row_key_of(src, sizeof src, l.items[k].id);
            copy_value(src, raw_keys[l.items[k].id]);
        }
        blog_user_list_clear(&l);
        char part[24], dst[64];
        snprintf(part, sizeof part, "%" PRId64, org);
        memo_key_of(src, sizeof src, &blog_user_desc.lists[0].key, part);
        floor_list_key(dst, sizeof dst, "raw", org);
        copy_value(src, dst);
    }
}

/* The hot schema's user (the blog's, near-cached): one read, its karma. */
static int32_t near_read(memo_repo *rp, int64_t id)
{
    hot_user u;
    if (hot_user_get(rp, id, &u) != MEMO_OK)
        die("near get");
    int32_t k = u.karma;
    hot_user_clear(&u);
    return k;
}

static memo_entity_stats near_stats(memo_repo *rp)
{
    memo_entity_stats s = MEMO_ENTITY_STATS_INIT;
    memo_stats_entity(rp, &hot_user_desc, &s);
    return s;
}

/* The hot rows in near_repo's near cache (near 1000 holds all HOT): read
 * in passes until it holds them all (a fill's own message, arriving late,
 * may drop the copy of the read that followed it). */
static void warm_near(void)
{
    warm_reads();
    for (int pass = 0; pass < 50; pass++) {
        for (int64_t id = 1; id <= HOT; id++)
            for (int k = 0; k < 2; k++)
                near_read(near_repo, id);
        struct timespec ts = {0, 50000000};
        nanosleep(&ts, NULL);
        if (near_stats(near_repo).near_entries == HOT)
            return;
    }
    die("the near cache does not hold the hot rows");
}

static void m_near_hit(long i, long *items)
{
    (void)items;
    near_read(near_repo, hot(i));
}

/* GET: the reply, a string or nil. */
static redisReply *floor_get(redisContext *c, const char *key)
{
    const char *argv[] = {"GET", key};
    redisReply *r = redisCommandArgv(c, 2, argv, NULL);
    if (!r || (r->type != REDIS_REPLY_STRING && r->type != REDIS_REPLY_NIL))
        die("floor GET");
    return r;
}

static void m_get_hit(long i, long *items)
{
    (void)items;
    blog_user u;
    if (blog_user_get(repo, hot(i), &u) != MEMO_OK)
        die("get");
    blog_user_clear(&u);
}

static void floor_get_bytes(redisContext *c, const char *key)
{
    redisReply *r = floor_get(c, key);
    if (r->type != REDIS_REPLY_STRING)
        die("floor GET: not cached");
    freeReplyObject(r);
}

static void floor_get_decode(redisContext *c, const char *key)
{
    redisReply *r = floor_get(c, key);
    blog_user u;
    if (r->type != REDIS_REPLY_STRING || !user_decode(r->str, r->len, &u))
        die("floor GET: not a row");
    freeReplyObject(r);
    blog_user_clear(&u);
}

static void floor_get_hit_a(long i, long *items)
{
    (void)items;
    floor_get_bytes(rc, raw_keys[hot(i)]);
}

static void floor_get_hit_b(long i, long *items)
{
    (void)items;
    floor_get_decode(rc, raw_keys[hot(i)]);
}

static void m_get_by_email(long i, long *items)
{
    (void)items;
    blog_user u;
    if (blog_user_get_by_email(repo, email_of[hot(i)], &u) != MEMO_OK)
        die("get_by_email");
    blog_user_clear(&u);
}

static void floor_email_a(long i, long *items)
{
    (void)items;
    floor_get_bytes(rc, raw_email_keys[hot(i)]);
}

static void floor_email_b(long i, long *items)
{
    (void)items;
    floor_get_decode(rc, raw_email_keys[hot(i)]);
}

/* ----------------------------------------------------- reads: batches */

static void many_ids(long i, int64_t *ids)
{
    for (int k = 0; k < BATCH; k++)
        ids[k] = hot(i * BATCH + k); /* 100 different hot ids */
}

static void m_get_many(long i, long *items)
{
    int64_t ids[BATCH];
    many_ids(i, ids);
    blog_user_list l;
    if (blog_user_get_many(repo, ids, BATCH, &l) != MEMO_OK || l.len != BATCH)
        die("get_many");
    blog_user_list_clear(&l);
    *items = BATCH;
}

/* MGET of the floor's row keys of ids, every one a string. */
static redisReply *floor_mget(const int64_t *ids, size_t n)
{
    const char *argv[1 + BATCH];
    argv[0] = "MGET";
    for (size_t k = 0; k < n; k++)
        argv[k + 1] = raw_keys[ids[k]];
    redisReply *r = redisCommandArgv(rc, (int)n + 1, argv, NULL);
    if (!r || r->type != REDIS_REPLY_ARRAY || r->elements != n)
        die("floor MGET");
    for (size_t k = 0; k < n; k++)
        if (r->element[k]->type != REDIS_REPLY_STRING)
            die("floor MGET: not cached");
    return r;
}

/* The rows of an MGET into an array of structs, as memo's lists hold them. */
static void decode_rows(const redisReply *r)
{
    blog_user_list l = {calloc(r->elements, sizeof *l.items), r->elements, false};
    if (!l.items)
        die("out of memory");
    for (size_t k = 0; k < r->elements; k++)
        if (!user_decode(r->element[k]->str, r->element[k]->len, &l.items[k]))
            die("floor MGET: not a row");
    blog_user_list_clear(&l);
}

static void floor_many_a(long i, long *items)
{
    int64_t ids[BATCH];
    many_ids(i, ids);
    freeReplyObject(floor_mget(ids, BATCH));
    *items = BATCH;
}

static void floor_many_b(long i, long *items)
{
    int64_t ids[BATCH];
    many_ids(i, ids);
    redisReply *r = floor_mget(ids, BATCH);
    decode_rows(r);
    freeReplyObject(r);
    *items = BATCH;
}

static void m_list(long i, long *items)
{
    blog_user_list l;
    if (blog_user_by_org(repo, 1 + i % LIST_ORGS, &l) != MEMO_OK || l.len != BATCH)
        die("list");
    *items = (long)l.len;
    blog_user_list_clear(&l);
}

/* A hand-written list: GET the ids, then MGET their rows. A reads the ids
 * with strtoll (it needs them for the keys) and stops at the bytes of the
 * rows; B reads the ids and the rows with jansson. */
static redisReply *floor_list_ids(long i)
{
    char key[64];
    floor_list_key(key, sizeof key, "raw", 1 + i % LIST_ORGS);
    redisReply *r = floor_get(rc, key);
    if (r->type != REDIS_REPLY_STRING)
        die("floor list: not cached");
    return r;
}

static void floor_list_a(long i, long *items)
{
    redisReply *r = floor_list_ids(i);
    int64_t ids[BATCH];
    size_t n = 0;
    const char *p = r->str;
    if (*p++ != '[')
        die("floor list: not an array");
    while (*p && *p != ']' && n < BATCH) {
        char *end;
        ids[n++] = strtoll(p, &end, 10);
        if (end == p || ids[n - 1] < 1 || ids[n - 1] > USERS)
            die("floor list: not an id");
        p = *end == ',' ? end + 1 : end;
    }
    freeReplyObject(r);
    freeReplyObject(floor_mget(ids, n));
    *items = (long)n;
}

static void floor_list_b(long i, long *items)
{
    redisReply *r = floor_list_ids(i);
    json_t *a = json_loadb(r->str, r->len, 0, NULL);
    freeReplyObject(r);
    if (!json_is_array(a) || json_array_size(a) > BATCH)
        die("floor list: not an array");
    int64_t ids[BATCH];
    size_t n = json_array_size(a);
    for (size_t k = 0; k < n; k++) {
        json_t *v = json_array_get(a, k);
        if (!json_is_integer(v) || json_integer_value(v) < 1 ||
            json_integer_value(v) > USERS)
            die("floor list: not an id");
        ids[k] = json_integer_value(v);
    }
    json_decref(a);
    r = floor_mget(ids, n);
    decode_rows(r);
    freeReplyObject(r);
    *items = (long)n;
}

/* ------------------------------------------------------------ reads: misses */

/* Each side reads ids nobody read in this run, from ranges of its own, and
 * their keys are deleted before its round in case a read row cached them. */
static int64_t memo_miss_base, unnamed_miss_base, floor_miss_base;

static void miss_round(int r, long n)
{
    memo_miss_base = 20000 + r * n;
    unnamed_miss_base = 40000 + r * n; /* sides run in alternating chunks: */
    floor_miss_base = 60000 + r * n;   /* each misses keys of its own */
}

static void delete_keys(bool memo, int64_t from, long n)
{
    ctl_select(0);
    static char keys[500][64];
    const char *argv[501];
    argv[0] = "DEL";
    for (long i = 0; i < n; i += 500) {
        int k = 0;
        for (long j = i; j < n && j < i + 500; j++, k++) {
            if (memo)
                memo_row_key_of(keys[k], sizeof keys[k], from + j);
            else
                floor_row_key(keys[k], sizeof keys[k], "raw", from + j);
            argv[k + 1] = keys[k];
        }
        freeReplyObject(ctl_argv(k + 1, argv, NULL));
    }
}

static void m_miss_before(int r, long n)
{
    (void)r;
    delete_keys(true, memo_miss_base, n);
}

static void floor_miss_before(int r, long n)
{
    (void)r;
    delete_keys(false, floor_miss_base, n);
}

static void m_get_miss(long i, long *items)
{
    (void)items;
    blog_user u;
    if (blog_user_get(repo, memo_miss_base + i, &u) != MEMO_OK)
        die("get miss");
    blog_user_clear(&u);
}

/* The same miss with unnamed statements (each parsed at its call), as
 * memo runs behind a transaction-mode pooler: against the prepared one. */
static void m_get_miss_unnamed(long i, long *items)
{
    (void)items;
    blog_user u;
    if (blog_user_get(unnamed, unnamed_miss_base + i, &u) != MEMO_OK)
        die("get miss (unnamed)");
    blog_user_clear(&u);
}

/* A miss through PgBouncer in transaction mode (memo finds it and sends
 * statements unnamed): against the prepared miss direct. */
static void m_get_miss_bounced(long i, long *items)
{
    (void)items;
    blog_user u;
    if (blog_user_get(bounced, unnamed_miss_base + i, &u) != MEMO_OK)
        die("get miss (through PgBouncer)");
    blog_user_clear(&u);
}

static bool have_pgbouncer(void)
{
    return bounced != NULL;
}

static void unnamed_miss_before(int r, long n)
{
    (void)r;
    delete_keys(true, unnamed_miss_base, n);
}

/* A miss by hand: the row from PostgreSQL (prepared, binary results) into
 * *u, then SET with a TTL, as JSON written by jansson. */
static void floor_load(redisContext *c, const char *key, int64_t id, blog_user *u)
{
    char idtxt[24];
    snprintf(idtxt, sizeof idtxt, "%" PRId64, id);
    const char *params[] = {idtxt};
    PGresult *res = PQexecPrepared(pg, "floor_select", 1, params, NULL, NULL, 1);
    if (PQresultStatus(res) != PGRES_TUPLES_OK || !pg_user(res, u))
        die("floor SELECT");
    PQclear(res);
    char *json = user_encode(u);
    const char *argv[] = {"SET", key, json, "EX", "600"};
    redisReply *r = redisCommandArgv(c, 5, argv, NULL);
    if (!r || r->type != REDIS_REPLY_STATUS)
        die("floor SET");
    freeReplyObject(r);
    free(json);
}

static void floor_get_miss(long i, long *items)
{
    (void)items;
    int64_t id = floor_miss_base + i;
    redisReply *r = floor_get(rc, raw_keys[id]);
    if (r->type != REDIS_REPLY_NIL)
        die("floor miss: cached");
    freeReplyObject(r);
    blog_user u;
    floor_load(rc, raw_keys[id], id, &u);
    blog_user_clear(&u);
}

/* ------------------------------------------------------------------ writes */

static char bio_text[256];    /* every row's bio, as seeded */
static char created_text[64]; /* every row's created_at (one INSERT: one now()) */
static int64_t created_us;    /* the same, microseconds since 1970 */

/* The full row a write sends, the same on both sides: the row as seeded
 * with a new karma (so email, name and org_id keep their values). */
typedef struct full_row {
    blog_user u;
    char email[48], name[48], id[24], org[24], karma[16];
    const char *params[8]; /* the floor's, as text */
} full_row;

static void full_row_of(int64_t id, long karma, full_row *w)
{
    int32_t k = (int32_t)(karma % 1000000);
    bool active = id % 7 != 0;
    snprintf(w->email, sizeof w->email, "user%" PRId64 "@example.com", id);
    snprintf(w->name, sizeof w->name, "User number %" PRId64, id);
    snprintf(w->id, sizeof w->id, "%" PRId64, id);
    snprintf(w->org, sizeof w->org, "%" PRId64, 1 + id % ORGS);
    snprintf(w->karma, sizeof w->karma, "%" PRId32, k);
    w->u = (blog_user){.id = id,
                       .email = w->email,
                       .name = w->name,
                       .org_id = 1 + id % ORGS,
                       .bio = bio_text,
                       .karma = k,
                       .active = active,
                       .created_at = created_us};
    const char *p[8] = {w->id,    w->email,           w->name,     w->org, bio_text,
                        w->karma, active ? "t" : "f", created_text};
    memcpy(w->params, p, sizeof p);
}

static void m_write(memo_repo *rp, int64_t id, long karma)
{
    full_row w;
    full_row_of(id, karma, &w);
    if (blog_user_update(rp, &w.u) != MEMO_OK)
        die("update");
}

/* UPDATE of every column, then one DEL of the row key and the email key. */
static void floor_write(redisContext *c, const char *ns, int64_t id, long karma)
{
    full_row w;
    full_row_of(id, karma, &w);
    PGresult *res = PQexecPrepared(pg, "floor_update", 8, w.params, NULL, NULL, 0);
    if (PQresultStatus(res) != PGRES_COMMAND_OK || strcmp(PQcmdTuples(res), "1") != 0)
        die("floor UPDATE");
    PQclear(res);
    char rowk[48], email[96];
    floor_row_key(rowk, sizeof rowk, ns, id);
    floor_email_key(email, sizeof email, ns, w.email);
    const char *argv[] = {"DEL", rowk, email};
    redisReply *r = redisCommandArgv(c, 3, argv, NULL);
    if (!r || r->type != REDIS_REPLY_INTEGER)
        die("floor DEL");
    freeReplyObject(r);
}

static int64_t update_id(long i)
{
    return 2000 + i % 5000;
}

static void m_update_karma(long i, long *items)
{
    (void)items;
    blog_user u = {.id = update_id(i), .karma = (int32_t)(i % 1000000)};
    if (blog_user_update_fields(repo, &u, BLOG_USER_KARMA) != MEMO_OK)
        die("update_fields");
}

/* UPDATE of karma, then a DEL of the row key. */
static void floor_update_karma(long i, long *items)
{
    (void)items;
    char id[24], karma[16], rowk[48];
    snprintf(id, sizeof id, "%" PRId64, update_id(i));
    snprintf(karma, sizeof karma, "%ld", i % 1000000);
    const char *params[] = {id, karma};
    PGresult *res = PQexecPrepared(pg, "floor_update_karma", 2, params, NULL, NULL, 0);
    if (PQresultStatus(res) != PGRES_COMMAND_OK || strcmp(PQcmdTuples(res), "1") != 0)
        die("floor UPDATE karma");
    PQclear(res);
    floor_row_key(rowk, sizeof rowk, "raw", update_id(i));
    redisReply *r = redisCommand(rc, "DEL %s", rowk);
    if (!r || r->type != REDIS_REPLY_INTEGER)
        die("floor DEL");
    freeReplyObject(r);
}

static void m_update(long i, long *items)
{
    (void)items;
    m_write(repo, update_id(i), i);
}

static void floor_update(long i, long *items)
{
    (void)items;
    floor_write(rc, "raw", update_id(i), i);
}

/* ------------------------------------------------------ on a Redis Cluster */

/* The same operations by a repository on a 3-master cluster, against the
 * same on one Redis (issue 13: within 10%; get_many at least as fast). */
static bool have_cluster(void)
{
    return clustered != NULL;
}

/* Both repositories hold the hot rows. */
static void warm_cluster(void)
{
    warm_reads();
    for (int pass = 0; pass < 2; pass++)
        for (int64_t id = 1; id <= HOT; id++) {
            blog_user u;
            if (blog_user_get(clustered, id, &u) != MEMO_OK)
                die("warm get (cluster)");
            blog_user_clear(&u);
        }
}

static void c_get_hit(long i, long *items)
{
    (void)items;
    blog_user u;
    if (blog_user_get(clustered, hot(i), &u) != MEMO_OK)
        die("get (cluster)");
    blog_user_clear(&u);
}

static int64_t cluster_miss_base, single_miss_base;

/* Both sides read ids no other row read (PostgreSQL's pages alike cold). */
static void cluster_miss_round(int r, long n)
{
    cluster_miss_base = 70000 + r * n;
    single_miss_base = 85000 + r * n;
}

static void s_miss_before(int r, long n)
{
    (void)r;
    delete_keys(true, single_miss_base, n);
}

static void s_get_miss(long i, long *items)
{
    (void)items;
    blog_user u;
    if (blog_user_get(repo, single_miss_base + i, &u) != MEMO_OK)
        die("get miss (one Redis)");
    blog_user_clear(&u);
}

/* The cluster side's miss keys go before its round (every user key on the
 * cluster: SCAN + UNLINK on each master, untimed). */
static void c_miss_before(int r, long n)
{
    (void)r;
    (void)n;
    if (memo_flush(clustered, &blog_user_desc, NULL, NULL, NULL, NULL) != MEMO_OK)
        die("flush (cluster)");
}

static void c_get_miss(long i, long *items)
{
    (void)items;
    blog_user u;
    if (blog_user_get(clustered, cluster_miss_base + i, &u) != MEMO_OK)
        die("get miss (cluster)");
    blog_user_clear(&u);
}

static void c_get_many(long i, long *items)
{
    int64_t ids[BATCH];
    many_ids(i, ids);
    blog_user_list l;
    if (blog_user_get_many(clustered, ids, BATCH, &l) != MEMO_OK || l.len != BATCH)
        die("get_many (cluster)");
    blog_user_list_clear(&l);
    *items = BATCH;
}

static void c_update(long i, long *items)
{
    (void)items;
    m_write(clustered, update_id(i), i);
}

/* ------------------------------------------------------ the Zipf workload */

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

enum { MIXED_N = 5000, WRITE_PCT = 5 };
static int64_t trace_id[MIXED_N];
static bool trace_write[MIXED_N];
static long trace_n; /* the last trace's length (--quick: shorter) */

/* One trace a round, replayed by both sides. */
static void mixed_round(int r, long n)
{
    (void)r;
    trace_n = n;
    for (long i = 0; i < n; i++) {
        trace_id[i] = zipf();
        trace_write[i] = next() % 100 < WRITE_PCT;
    }
}

static void m_mixed_before(int r, long n)
{
    (void)r;
    (void)n;
    ctl_flush(MIX_MEMO_DB);
}

static void floor_mixed_before(int r, long n)
{
    (void)r;
    (void)n;
    ctl_flush(MIX_FLOOR_DB);
}

static void m_mixed(long i, long *items)
{
    (void)items;
    if (trace_write[i]) {
        m_write(mix_repo, trace_id[i], i);
        return;
    }
    blog_user u;
    if (blog_user_get(mix_repo, trace_id[i], &u) != MEMO_OK)
        die("mixed get");
    blog_user_clear(&u);
}

/* The same by hand: GET and decode, else SELECT and SET; writes as above. */
static void floor_mixed(long i, long *items)
{
    (void)items;
    int64_t id = trace_id[i];
    if (trace_write[i]) {
        floor_write(rc_mix, "mix", id, i);
        return;
    }
    char key[48];
    floor_row_key(key, sizeof key, "mix", id);
    redisReply *r = floor_get(rc_mix, key);
    blog_user u;
    if (r->type == REDIS_REPLY_STRING) {
        if (!user_decode(r->str, r->len, &u))
            die("mixed: not a row");
        freeReplyObject(r);
    } else {
        freeReplyObject(r);
        floor_load(rc_mix, key, id, &u);
    }
    blog_user_clear(&u);
}

/* The same trace with `near 1000` on users (schema hot, the same table):
 * against memo without it. Its Redis database is emptied before its
 * rounds, and its near cache with it (FLUSHDB's message), so both start
 * cold. */
static void m_mixed_near_before(int r, long n)
{
    (void)r;
    (void)n;
    ctl_flush(MIX_MEMO_DB);
    for (int k = 0; k < 1000; k++) {
        if (near_stats(mix_near_repo).near_entries == 0)
            return;
        struct timespec ts = {0, 1000000};
        nanosleep(&ts, NULL);
    }
    die("the near cache was not emptied by FLUSHDB");
}

/* The write of the mixed row (the full row, as m_write) in schema hot: the
 * karma written. */
static int32_t near_write(memo_repo *rp, int64_t id, long karma)
{
    full_row w;
    full_row_of(id, karma, &w);
    hot_user h;
    memcpy(&h, &w.u, sizeof h); /* the same columns, the same layout */
    if (hot_user_update(rp, &h) != MEMO_OK)
        die("near update");
    return h.karma;
}

static void m_mixed_near(long i, long *items)
{
    (void)items;
    if (trace_write[i])
        near_write(mix_near_repo, trace_id[i], i);
    else
        near_read(mix_near_repo, trace_id[i]);
}

/* After the near mixed row, quiet: every row its last trace touched, read
 * through the near cache, against PostgreSQL. */
static void near_stale_check(void)
{
    struct timespec ts = {0, 100000000}; /* the last messages arrive */
    nanosleep(&ts, NULL);
    long stale = 0, checked = 0;
    for (long i = 0; i < trace_n; i++) {
        int32_t karma = near_read(mix_near_repo, trace_id[i]);
        char idtxt[24];
        snprintf(idtxt, sizeof idtxt, "%" PRId64, trace_id[i]);
        const char *params[] = {idtxt};
        PGresult *res = PQexecPrepared(pg, "floor_select", 1, params, NULL, NULL, 1);
        blog_user db;
        if (PQresultStatus(res) != PGRES_TUPLES_OK || !pg_user(res, &db))
            die("near check select");
        PQclear(res);
        stale += db.karma != karma;
        checked++;
        blog_user_clear(&db);
    }
    printf("  near copies read back after the mixed row: %ld stale of %ld reads\n", stale,
           checked);
    add_verdict("mixed near: stale reads after", "PostgreSQL", "stale", (double)stale, 0,
                false);
    if (json_out)
        fprintf(json_out,
                "{\"op\":\"near stale after mixed\",\"stale\":%ld,\"reads\":%ld}\n",
                stale, checked);
}

/* Near hits on one thread, back to back, without timing each call: the
 * rate the near cache sustains on one core. */
static void near_rate(void)
{
    long n = quick ? 200000 : 2000000;
    double rate[MAX_ROUNDS];
    for (int r = 0; r < rounds; r++) {
        double t0 = now_us();
        for (long i = 0; i < n; i++)
            near_read(near_repo, hot(i));
        rate[r] = (double)n / ((now_us() - t0) / 1e6);
    }
    memo_entity_stats s = near_stats(near_repo);
    double m = median(rate, rounds);
    printf("\nnear cache: %.2f M hits/s on one thread (target >= 2); %.0f bytes per "
           "entry (%" PRIu64 " entries, %" PRIu64 " bytes)\n",
           m / 1e6, s.near_entries ? (double)s.near_bytes / (double)s.near_entries : 0,
           s.near_entries, s.near_bytes);
    add_verdict("near get hit, one thread", "2 M hits/s", "M_hits_per_s", m / 1e6, 2.0,
                true);
    if (json_out)
        fprintf(
            json_out,
            "{\"op\":\"near hits one thread\",\"rate\":%.0f,\"bytes_per_entry\":%.1f}\n",
            m, s.near_entries ? (double)s.near_bytes / (double)s.near_entries : 0);
}

/* A write in one repository, seen by another's near cache: from the
 * write's return to the first read that returns it (two repositories in
 * one process: each its own connections and subscriber, as two processes
 * would have; tests/integration/test_near.c measures across processes). */
static void near_delay(void)
{
    enum { N = 200 };
    double d[N];
    int64_t id = 1;
    for (int k = 0; k < N; k++) {
        /* the old row is in the near cache */
        for (int tries = 0;; tries++) {
            uint64_t before = near_stats(near_repo).near_hits;
            near_read(near_repo, id);
            if (near_stats(near_repo).near_hits > before)
                break;
            if (tries > 1000)
                die("the row does not stay in the near cache");
        }
        int32_t karma = near_write(near_writer, id, 500000 + k);
        double t0 = now_us();
        for (;;) {
            if (near_read(near_repo, id) == karma)
                break;
            sched_yield(); /* the subscriber may need this CPU */
            if (now_us() - t0 > 5e6)
                die("a write was not seen within 5 s");
        }
        d[k] = now_us() - t0;
    }
    qsort(d, N, sizeof d[0], cmp_double);
    printf("near cache invalidation delay (a write's return to the other repository's "
           "first read of it):\n  p50 %.1f us, p99 %.1f us, max %.1f us (%d writes)\n",
           d[N / 2], d[N * 99 / 100], d[N - 1], N);
    if (json_out)
        fprintf(json_out,
                "{\"op\":\"near invalidation delay\",\"p50_us\":%.1f,\"p99_us\":%.1f,"
                "\"max_us\":%.1f}\n",
                d[N / 2], d[N * 99 / 100], d[N - 1]);
}

/* ---------------------------------------------------- floors on their own */

static void floor_select(long i, long *items)
{
    (void)items;
    char idtxt[24];
    snprintf(idtxt, sizeof idtxt, "%" PRId64, hot(i));
    const char *params[] = {idtxt};
    PGresult *res = PQexecPrepared(pg, "floor_select", 1, params, NULL, NULL, 1);
    if (PQresultStatus(res) != PGRES_TUPLES_OK)
        die("floor select");
    PQclear(res);
}

static void floor_pipeline(long i, long *items)
{
    for (int k = 0; k < 64; k++) {
        const char *argv[] = {"GET", raw_keys[hot(i * 64 + k)]};
        redisAppendCommandArgv(rc, 2, argv, NULL);
    }
    for (int k = 0; k < 64; k++) {
        void *r;
        if (redisGetReply(rc, &r) != REDIS_OK)
            die("pipeline");
        freeReplyObject(r);
    }
    *items = 64;
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
        double best[MAX_ROUNDS];
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

static const row rows[] = {
    {.name = "get hit",
     .by = BY_LATENCY,
     .unit = "ops",
     .n = 4000,
     .setup = warm_reads,
     .sides = {{"memo", m_get_hit, NULL},
               {"A: GET, bytes only", floor_get_hit_a, NULL},
               {"B: GET + jansson into the struct", floor_get_hit_b, NULL}},
     .target = 1.10,
     .cpu_target = 1.20},
    /* a hit in the process against the wire's floor: target 0.05 (20x) */
    {.name = "near get hit",
     .by = BY_LATENCY,
     .unit = "ops",
     .n = 20000,
     .setup = warm_near,
     .sides = {{"memo, near cache", m_near_hit, NULL},
               {"A: GET, bytes only", floor_get_hit_a, NULL}},
     .target = 0.05},
    {.name = "get_by_email hit",
     .by = BY_LATENCY,
     .unit = "ops",
     .n = 4000,
     .setup = warm_reads,
     .sides = {{"memo", m_get_by_email, NULL},
               {"A: GET of the row, bytes only", floor_email_a, NULL},
               {"B: GET + jansson into the struct", floor_email_b, NULL}},
     .target = 1.15},
    {.name = "get miss",
     .by = BY_LATENCY,
     .unit = "ops",
     .n = 1000,
     .round = miss_round,
     .sides = {{"memo", m_get_miss, m_miss_before},
               {"GET + SELECT + jansson + SET EX", floor_get_miss, floor_miss_before}},
     .target = 1.25},
    /* the cost of MEMO_DB_UNNAMED (PgBouncer's transaction mode), direct:
     * the same keys, deleted before each side's round; no target */
    {.name = "get miss, unnamed statements",
     .by = BY_LATENCY,
     .unit = "ops",
     .n = 1000,
     .round = miss_round,
     .sides = {{"memo, unnamed statements", m_get_miss_unnamed, unnamed_miss_before},
               {"memo, prepared statements", m_get_miss, m_miss_before}}},
    /* the same through PgBouncer (tests/servers.sh pgbouncer-start, which
     * bench/run.sh runs): the pooler's hop and unnamed statements */
    {.name = "get miss through PgBouncer",
     .by = BY_LATENCY,
     .unit = "ops",
     .n = 1000,
     .round = miss_round,
     .sides = {{"memo through PgBouncer (unnamed)", m_get_miss_bounced,
                unnamed_miss_before},
               {"memo direct, prepared statements", m_get_miss, m_miss_before}},
     .available = have_pgbouncer},
    {.name = "get_many(100) hit",
     .by = BY_THROUGHPUT,
     .unit = "keys",
     .n = 400,
     .setup = warm_reads,
     .sides = {{"memo", m_get_many, NULL},
               {"A: MGET 100, bytes only", floor_many_a, NULL},
               {"B: MGET 100 + jansson into structs", floor_many_b, NULL}},
     .target = 0.80},
    {.name = "list(100) hit",
     .by = BY_THROUGHPUT,
     .unit = "keys",
     .n = 400,
     .setup = warm_reads,
     .sides = {{"memo", m_list, NULL},
               {"A: GET ids + MGET 100, bytes only", floor_list_a, NULL},
               {"B: GET ids + MGET 100 + jansson", floor_list_b, NULL}},
     .target = 0.80},
    /* fsync times swing: more samples than the others */
    {.name = "update (full row)",
     .by = BY_LATENCY,
     .unit = "ops",
     .n = 1500,
     .sides = {{"memo", m_update, NULL},
               {"UPDATE every column + DEL 2 keys", floor_update, NULL}},
     .target = 1.15},
    {.name = "update_fields (karma)",
     .by = BY_LATENCY,
     .unit = "ops",
     .n = 1500,
     .sides = {{"memo", m_update_karma, NULL},
               {"UPDATE karma + DEL the row key", floor_update_karma, NULL}},
     .target = 1.15},
    {.name = "mixed: Zipf(1.1), 5% writes, cold",
     .by = BY_THROUGHPUT,
     .unit = "ops",
     .n = MIXED_N,
     .round = mixed_round,
     .sides = {{"memo", m_mixed, m_mixed_before},
               {"the same trace by hand", floor_mixed, floor_mixed_before}},
     .target = 0.95,
     .target_says = "mixed"},
    /* the same trace, near 1000 on users, against memo without it */
    {.name = "mixed: Zipf(1.1), 5% writes, cold, near",
     .by = BY_THROUGHPUT,
     .unit = "ops",
     .n = MIXED_N,
     .round = mixed_round,
     .sides = {{"memo, near 1000 on users", m_mixed_near, m_mixed_near_before},
               {"memo without near", m_mixed, NULL}},
     .target = 5.0,
     .target_says = "mixed near"},
    /* a 3-master Redis Cluster (tests/servers.sh cluster-start, which
     * bench/run.sh runs) against one Redis: the same calls, the same warm
     * or cold start; the floor is memo on one Redis */
    {.name = "get hit, cluster",
     .by = BY_LATENCY,
     .unit = "ops",
     .n = 4000,
     .setup = warm_cluster,
     .sides = {{"memo on a 3-master cluster", c_get_hit, NULL},
               {"memo on one Redis", m_get_hit, NULL}},
     .target = 1.10,
     .available = have_cluster},
    {.name = "get miss, cluster",
     .by = BY_LATENCY,
     .unit = "ops",
     .n = 1000,
     .round = cluster_miss_round,
     .sides = {{"memo on a 3-master cluster", c_get_miss, c_miss_before},
               {"memo on one Redis", s_get_miss, s_miss_before}},
     .target = 1.10,
     .available = have_cluster},
    {.name = "update (full row), cluster",
     .by = BY_LATENCY,
     .unit = "ops",
     .n = 1500,
     .sides = {{"memo on a 3-master cluster", c_update, NULL},
               {"memo on one Redis", m_update, NULL}},
     .target = 1.10,
     .available = have_cluster},
    {.name = "get_many(100) hit, cluster",
     .by = BY_THROUGHPUT,
     .unit = "keys",
     .n = 400,
     .setup = warm_cluster,
     .sides = {{"memo on a 3-master cluster", c_get_many, NULL},
               {"memo on one Redis", m_get_many, NULL}},
     .target = 1.00,
     .available = have_cluster},
    /* the same, warm: Redis and the near cache keep what earlier rounds
     * read (both sides alike); what a near cache is for. No target. */
    {.name = "mixed: Zipf(1.1), 5% writes, warm, near",
     .by = BY_THROUGHPUT,
     .unit = "ops",
     .n = MIXED_N,
     .round = mixed_round,
     .sides = {{"memo, near 1000 on users", m_mixed_near, NULL},
               {"memo without near", m_mixed, NULL}}}};

static void open_repo(memo_repo **out, const char *redis_url, const char *db_url,
                      unsigned flags)
{
    memo_config cfg = {.size = sizeof cfg,
                       .redis_url = redis_url,
                       .database_url = db_url,
                       .flags = MEMO_STATS_PRIVATE | flags};
    memo_error err;
    if (memo_open(out, &cfg, &err) != MEMO_OK)
        die(err.message);
}

/* What the writes send and the floors' statements. */
static void prepare_floors(void)
{
    PGresult *res = sql("SELECT bio, created_at::text, "
                        "(extract(epoch FROM created_at) * 1000000)::int8 "
                        "FROM users WHERE id = 1");
    snprintf(bio_text, sizeof bio_text, "%s", PQgetvalue(res, 0, 0));
    snprintf(created_text, sizeof created_text, "%s", PQgetvalue(res, 0, 1));
    created_us = strtoll(PQgetvalue(res, 0, 2), NULL, 10);
    PQclear(res);
    prepare("floor_select", "SELECT id, email, name, org_id, bio, karma, active, "
                            "created_at FROM users WHERE id = $1");
    prepare("floor_update", "UPDATE users SET email = $2, name = $3, org_id = $4, "
                            "bio = $5, karma = $6, active = $7, created_at = $8 "
                            "WHERE id = $1");
    prepare("floor_update_karma", "UPDATE users SET karma = $2 WHERE id = $1");
    for (int64_t id = 1; id <= USERS; id++)
        floor_row_key(raw_keys[id], sizeof raw_keys[id], "raw", id);
}

static void summary(void)
{
    printf("\ntargets (ratio = memo / floor; latency and Redis CPU: lower is better, "
           "throughput: higher):\n");
    printf("  %-36s %-11s %-36s %8s %10s\n", "row", "by", "floor", "ratio", "target");
    for (int i = 0; i < nverdicts; i++) {
        verdict *v = &verdicts[i];
        /* ratios, or a count or rate of their own (stale, M_hits_per_s) */
        bool ratio = strcmp(v->by, "latency") == 0 || strcmp(v->by, "throughput") == 0 ||
                     strcmp(v->by, "redis_cpu") == 0;
        printf("  %-36s %-11s %-36s %7.2f%s %s %.2f %s\n", v->what,
               strcmp(v->by, "redis_cpu") == 0 ? "Redis CPU" : v->by, v->vs, v->ratio,
               ratio ? "x" : " ", v->higher_better ? ">=" : "<=", v->target,
               v->met ? "met" : "MISS");
        if (json_out)
            fprintf(json_out,
                    "{\"verdict\":\"%s\",\"by\":\"%s\",\"vs\":\"%s\",\"ratio\":%.3f,"
                    "\"cmp\":\"%s\",\"target\":%.2f,\"met\":%s}\n",
                    v->what, v->by, v->vs, v->ratio,
                    v->higher_better ? ">=" : "<=", v->target, v->met ? "true" : "false");
    }
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
    if (rounds < 3 || rounds > MAX_ROUNDS)
        rounds = 7;
    if (json_path && !(json_out = fopen(json_path, "w")))
        die("cannot write the JSON file");
    const char *redis_url = getenv("REDIS_URL"), *db_url = getenv("DATABASE_URL");
    if (!redis_url || !db_url)
        die("REDIS_URL and DATABASE_URL must be set (make bench sets them)");
    char host[64], mix_url[128];
    int port;
    if (sscanf(redis_url, "redis://%63[^:]:%d", host, &port) != 2)
        die("cannot read REDIS_URL");
    snprintf(mix_url, sizeof mix_url, "redis://%s:%d/%d", host, port, MIX_MEMO_DB);
    rc = redisConnect(host, port);
    rc_mix = redisConnect(host, port);
    ctl = redisConnect(host, port);
    pg = PQconnectdb(db_url);
    if (!rc || rc->err || !rc_mix || rc_mix->err || !ctl || ctl->err ||
        PQstatus(pg) != CONNECTION_OK)
        die("cannot connect");
    select_db(rc, 0);
    select_db(ctl, 0);
    select_db(rc_mix, MIX_FLOOR_DB);
    seed(sql_path);
    for (int db = 0; db <= MIX_FLOOR_DB; db++)
        ctl_flush(db);
    open_repo(&repo, redis_url, db_url, 0);
    open_repo(&unnamed, redis_url, db_url, MEMO_DB_UNNAMED);
    const char *pooler = getenv("MEMO_BENCH_PGBOUNCER_URL");
    if (pooler && *pooler)
        open_repo(&bounced, redis_url, pooler, 0); /* found out at connect */
    open_repo(&mix_repo, mix_url, db_url, 0);
    open_repo(&near_repo, redis_url, db_url, 0);
    open_repo(&near_writer, redis_url, db_url, 0);
    open_repo(&mix_near_repo, mix_url, db_url, 0);
    const char *cluster = getenv("MEMO_BENCH_CLUSTER_URL");
    if (cluster && *cluster) {
        open_repo(&clustered, cluster, db_url, 0);
        /* its masters, for the servers' CPU and commands */
        const char *p = cluster + strlen("redis://");
        while (*p && *p != '/' && ncnodes < 8) {
            char h[64];
            int pt, used = 0;
            if (sscanf(p, "%63[^:]:%d%n", h, &pt, &used) != 2)
                die("cannot read MEMO_BENCH_CLUSTER_URL");
            if (!(cnodes[ncnodes] = redisConnect(h, pt)) || cnodes[ncnodes]->err)
                die("cannot connect to a cluster node");
            ncnodes++;
            p += used + (p[used] == ',');
        }
    }
    prepare_floors();
    zipf_cdf = malloc(USERS * sizeof *zipf_cdf);
    if (!zipf_cdf)
        die("out of memory");
    double sum = 0, acc = 0;
    for (int i = 0; i < USERS; i++)
        sum += 1.0 / pow(i + 1, 1.1);
    for (int i = 0; i < USERS; i++)
        zipf_cdf[i] = (acc += 1.0 / pow(i + 1, 1.1) / sum);

    printf("memo %s benchmark: %d rounds, medians. Ratios are memo / floor, the median "
           "of the\nper-round ratios, by latency (p50) or by throughput (rate). allocs: "
           "per call, the\nwhole process. Redis us: the server's CPU per call (INFO cpu: "
           "everything it does,\nsystem calls included). Redis commands: INFO "
           "commandstats, calls per call and\n(in brackets) the server's time in one "
           "call of it; a script's commands count\ntoo, and its time includes "
           "theirs.\n",
           MEMO_VERSION, rounds);
    for (size_t i = 0; i < sizeof rows / sizeof *rows; i++)
        if (!rows[i].available || rows[i].available())
            run_row(&rows[i]);
        else
            printf("\n%s: skipped (no %s)\n", rows[i].name,
                   rows[i].available == have_cluster
                       ? "Redis Cluster: MEMO_BENCH_CLUSTER_URL"
                       : "PgBouncer: MEMO_BENCH_PGBOUNCER_URL");
    near_stale_check();
    near_rate();
    near_delay();
    printf("\nfloors on their own (for reference):\n");
    printf("  %-36s %8s %8s %10s\n", "", "p50 us", "p99 us", "rate/s");
    floor_only("prepared SELECT, binary", floor_select, 4000);
    floor_only("pipeline of 64 GETs (rate: GETs)", floor_pipeline, 400);
    threads();
    summary();

    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    printf("\npeak RSS: %ld KiB\n", ru.ru_maxrss);
    if (json_out) {
        fprintf(json_out, "{\"op\":\"peak_rss\",\"kib\":%ld}\n", ru.ru_maxrss);
        fclose(json_out);
    }
    memo_close(repo);
    memo_close(unnamed);
    memo_close(bounced);
    memo_close(mix_repo);
    memo_close(near_repo);
    memo_close(near_writer);
    memo_close(mix_near_repo);
    memo_close(clustered);
    for (int k = 0; k < ncnodes; k++)
        redisFree(cnodes[k]);
    redisFree(rc);
    redisFree(rc_mix);
    redisFree(ctl);
    PQfinish(pg);
    free(zipf_cdf);
    return 0;
}
