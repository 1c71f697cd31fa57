/* Statistics: exact counters and latency histograms per entity, lock-free on
 * the hot path (relaxed atomics), read as JSON. */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "internal.h"

/* Bucket b covers [lower(b), lower(b+1)): values 0..7 have a bucket each, then
 * each power of two is split in four, so a bucket is within 25% of its
 * values. 128 buckets reach past 2^31 us (35 minutes). */
static unsigned bucket_of(uint64_t us)
{
    if (us < 8)
        return (unsigned)us;
    unsigned log = 63u - (unsigned)__builtin_clzll(us); /* >= 3 */
    unsigned sub = (unsigned)(us >> (log - 2)) & 3u;
    unsigned b = 8 + (log - 3) * 4 + sub;
    return b < MEMOP_HIST_BUCKETS ? b : MEMOP_HIST_BUCKETS - 1;
}

static uint64_t bucket_lower(unsigned b)
{
    if (b < 8)
        return b;
    unsigned log = (b - 8) / 4 + 3, sub = (b - 8) % 4;
    return (1ull << log) + (uint64_t)sub * (1ull << (log - 2));
}

void memop_hist_add(memop_hist *h, uint64_t us)
{
    MEMOP_INC(h->b[bucket_of(us)]);
    MEMOP_ADD(h->sum_us, us);
}

uint64_t memop_hist_upper(unsigned b)
{
    return b + 1 < MEMOP_HIST_BUCKETS ? bucket_lower(b + 1) : UINT64_MAX;
}

uint64_t memop_hist_quantile(const memop_hist *h, double q)
{
    uint64_t counts[MEMOP_HIST_BUCKETS], total = 0;
    for (unsigned b = 0; b < MEMOP_HIST_BUCKETS; b++) {
        counts[b] = atomic_load_explicit(&h->b[b], memory_order_relaxed);
        total += counts[b];
    }
    if (total == 0)
        return 0;
    uint64_t rank = (uint64_t)(q * (double)(total - 1)) + 1, seen = 0;
    for (unsigned b = 0; b < MEMOP_HIST_BUCKETS; b++) {
        seen += counts[b];
        if (seen >= rank) {
            /* the middle of the bucket */
            uint64_t lo = bucket_lower(b);
            uint64_t hi = b + 1 < MEMOP_HIST_BUCKETS ? bucket_lower(b + 1) : lo + 1;
            return lo + (hi - lo) / 2;
        }
    }
    return 0;
}

const char *memop_op_name(enum memop_op op)
{
    static const char *const names[MEMOP_OP_COUNT] = {
        "get", "get_by", "list", "get_many", "insert", "update", "delete",
    };
    return op < MEMOP_OP_COUNT ? names[op] : "?";
}

static uint64_t load(const _Atomic uint64_t *x)
{
    return atomic_load_explicit(x, memory_order_relaxed);
}

#define COUNTERS MEMOP_COUNTERS

static uint64_t hist_count(const memop_hist *h)
{
    uint64_t n = 0;
    for (unsigned i = 0; i < MEMOP_HIST_BUCKETS; i++)
        n += load(&h->b[i]);
    return n;
}

static void hist_json(memop_buf *b, const char *name, const memop_hist *h, bool raw)
{
    if (raw) {
        /* the buckets themselves (sparse), so processes can be summed */
        memop_buf_printf(b, "\"%s\":{\"sum\":%" PRIu64 ",\"b\":[", name,
                         load(&h->sum_us));
        bool first = true;
        for (unsigned i = 0; i < MEMOP_HIST_BUCKETS; i++) {
            uint64_t c = load(&h->b[i]);
            if (c) {
                memop_buf_printf(b, "%s[%u,%" PRIu64 "]", first ? "" : ",", i, c);
                first = false;
            }
        }
        memop_buf_puts(b, "]}");
        return;
    }
    memop_buf_printf(b,
                     "\"%s\":{\"count\":%" PRIu64 ",\"p50\":%" PRIu64 ",\"p90\":%" PRIu64
                     ",\"p99\":%" PRIu64 "}",
                     name, hist_count(h), memop_hist_quantile(h, 0.5),
                     memop_hist_quantile(h, 0.9), memop_hist_quantile(h, 0.99));
}

void memop_stats_write_json(memop_buf *b, const char *const *names,
                            const memop_stats *const *stats, size_t n, bool raw)
{
    memop_buf_puts(b, "{");
    for (size_t i = 0; i < n; i++) {
        const memop_stats *s = stats[i];
        memop_buf_printf(b, "%s\"%s\":{", i ? "," : "", names[i]);
#define JSON_COUNTER(name, help)                                                         \
    memop_buf_printf(b, "\"" #name "\":%" PRIu64 ",", load(&s->name));
        COUNTERS(JSON_COUNTER)
        MEMOP_GAUGES(JSON_COUNTER)
#undef JSON_COUNTER
        hist_json(b, "hit_latency_us", &s->hit_latency, raw);
        memop_buf_puts(b, ",");
        hist_json(b, "miss_latency_us", &s->miss_latency, raw);
        memop_buf_puts(b, ",\"ops\":{");
        for (unsigned op = 0; op < MEMOP_OP_COUNT; op++) {
            memop_buf_printf(b, "%s\"%s\":{\"calls\":%" PRIu64 ",", op ? "," : "",
                             memop_op_name(op), load(&s->ops[op]));
            hist_json(b, "latency_us", &s->op_latency[op], raw);
            memop_buf_puts(b, "}");
        }
        memop_buf_puts(b, "}}");
    }
    memop_buf_puts(b, "}");
}

/* A JSON string literal of s (a socket path may hold any byte). */
static void json_string_to(memop_buf *b, const char *s)
{
    memop_buf_puts(b, "\"");
    for (; *s; s++) {
        unsigned char c = (unsigned char)*s;
        if (c == '"' || c == '\\')
            memop_buf_printf(b, "\\%c", c);
        else if (c < 0x20)
            memop_buf_printf(b, "\\u%04x", c);
        else
            memop_buf_append(b, s, 1);
    }
    memop_buf_puts(b, "\"");
}

/* The repository's entities, for the writers. */
static size_t entity_arrays(memo_repo *repo, char (*names)[160], const char **np,
                            const memop_stats **sp)
{
    size_t n = atomic_load(&repo->nentities);
    for (size_t i = 0; i < n; i++) {
        const memop_entity *e = repo->entity_list[i];
        snprintf(names[i], sizeof names[i], "%s.%s", e->desc->schema, e->desc->name);
        np[i] = names[i];
        sp[i] = &e->stats;
    }
    return n;
}

static void redis_state(memo_repo *repo, bool *up, size_t *pending)
{
    pthread_mutex_lock(&repo->pending.lock);
    *pending = repo->pending.n;
    pthread_mutex_unlock(&repo->pending.lock);
    *up = atomic_load(&repo->breaker) == MEMOP_BREAKER_CLOSED;
}

/* Names and counters of every entity, for the writers: per call, since
 * repositories and threads may write at once. */
typedef struct named {
    char names[MEMOP_MAX_ENTITIES][160];
    const char *np[MEMOP_MAX_ENTITIES];
    const memop_stats *sp[MEMOP_MAX_ENTITIES];
} named;

static void prom_histogram(memop_buf *b, const char *name, const char *labels,
                           const memop_hist *h);

void memop_watch_write_json(memop_buf *b, const memop_watch_stats *w, bool raw)
{
    memop_buf_puts(b, "{");
#define WATCH_JSON(name, help)                                                           \
    memop_buf_printf(b, "\"" #name "\":%" PRIu64 ",", load(&w->name));
    MEMOP_WATCH_COUNTERS(WATCH_JSON)
#undef WATCH_JSON
    memop_buf_printf(b, "\"lag_bytes\":%" PRIu64 ",", load(&w->lag_bytes));
    if (w->state[0]) { /* one process's */
        uint64_t lsn = load(&w->confirmed_lsn);
        memop_buf_printf(b,
                         "\"confirmed_lsn\":\"%X/%X\",\"state\":", (unsigned)(lsn >> 32),
                         (unsigned)lsn);
        json_string_to(b, w->state);
        memop_buf_puts(b, ",");
    }
    hist_json(b, "lag_us", &w->lag, raw);
    memop_buf_puts(b, "}");
}

/* "watch": what memo watch did in this process, when it ran here. */
static void watch_json(memo_repo *repo, memop_buf *b, bool raw)
{
    memop_watch_stats *w = atomic_load(&repo->watch);
    if (!w)
        return;
    memop_buf_puts(b, ",\"watch\":");
    pthread_mutex_lock(&w->lock); /* for the state */
    memop_watch_write_json(b, w, raw);
    pthread_mutex_unlock(&w->lock);
}

void memop_watch_write_prometheus(memop_buf *b, const memop_watch_stats *w,
                                  unsigned watchers, unsigned streaming)
{
#define WATCH_PROM(cname, help)                                                          \
    memop_buf_printf(b,                                                                  \
                     "# HELP memo_watch_" #cname "_total " help ".\n"                    \
                     "# TYPE memo_watch_" #cname "_total counter\n"                      \
                     "memo_watch_" #cname "_total %" PRIu64 "\n",                        \
                     load(&w->cname));
    MEMOP_WATCH_COUNTERS(WATCH_PROM)
#undef WATCH_PROM
    memop_buf_printf(
        b,
        "# HELP memo_watch_processes Processes running memo watch.\n"
        "# TYPE memo_watch_processes gauge\nmemo_watch_processes %u\n"
        "# HELP memo_watch_streaming Watches streaming (not standing by).\n"
        "# TYPE memo_watch_streaming gauge\nmemo_watch_streaming %u\n"
        "# HELP memo_watch_lag_bytes WAL read but not yet invalidated and "
        "confirmed.\n# TYPE memo_watch_lag_bytes gauge\nmemo_watch_lag_bytes %" PRIu64
        "\n",
        watchers, streaming, load(&w->lag_bytes));
    memop_buf_puts(b, "# HELP memo_watch_lag_seconds From a change's COMMIT to its keys' "
                      "DEL acknowledged.\n# TYPE memo_watch_lag_seconds histogram\n");
    prom_histogram(b, "memo_watch_lag_seconds", "stream=\"main\"", &w->lag);
}

static void watch_prometheus(memo_repo *repo, memop_buf *b)
{
    memop_watch_stats *w = atomic_load(&repo->watch);
    if (!w)
        return;
    pthread_mutex_lock(&w->lock);
    bool streaming = strcmp(w->state, "streaming") == 0;
    pthread_mutex_unlock(&w->lock);
    memop_watch_write_prometheus(b, w, 1, streaming);
}

memo_status memop_watch_stats_init(memo_repo *repo)
{
    if (atomic_load(&repo->watch))
        return MEMO_OK;
    memop_watch_stats *w = calloc(1, sizeof *w);
    if (!w)
        return MEMO_ERR_NOMEM;
    pthread_mutex_init(&w->lock, NULL);
    snprintf(w->state, sizeof w->state, "starting");
    memop_watch_stats *none = NULL;
    if (!atomic_compare_exchange_strong(&repo->watch, &none, w)) {
        pthread_mutex_destroy(&w->lock);
        free(w);
    }
    return MEMO_OK;
}

void memop_watch_stats_free(memo_repo *repo)
{
    memop_watch_stats *w = atomic_load(&repo->watch);
    if (!w)
        return;
    pthread_mutex_destroy(&w->lock);
    free(w);
    atomic_store(&repo->watch, NULL);
}

static char *stats_json(memo_repo *repo, bool raw, const char *process)
{
    named *t = malloc(sizeof *t);
    if (!t)
        return NULL;
    memop_buf b = {0};
    bool up;
    size_t pending;
    redis_state(repo, &up, &pending);
    memop_buf_puts(&b, "{");
    if (process)
        memop_buf_printf(&b, "\"process\":%s,", process);
    memop_buf_puts(&b, "\"redis\":{\"server\":");
    json_string_to(&b, repo->redis_name);
    uint64_t extended = 0;
    if (repo->keeper.initialised) {
        pthread_mutex_lock(&repo->keeper.lock);
        extended = repo->keeper.extended;
        pthread_mutex_unlock(&repo->keeper.lock);
    }
    /* statements unnamed: configured, or a pooler found (db.c) */
    bool unnamed = (repo->cfg.flags & MEMO_DB_UNNAMED) || atomic_load(&repo->db_unnamed);
    memop_buf_printf(&b,
                     ",\"breaker\":\"%s\",\"pending\":%zu,\"lease_extensions\":%" PRIu64,
                     up ? "closed" : "open", pending, extended);
    /* opened degraded, then refused by the Redis that came up (breaker.c) */
    char refused[256] = "";
    if (repo->redis_opened) {
        pthread_mutex_lock(&repo->prober_lock);
        snprintf(refused, sizeof refused, "%s", repo->redis_refused);
        pthread_mutex_unlock(&repo->prober_lock);
    }
    if (refused[0]) {
        memop_buf_puts(&b, ",\"refused\":");
        json_string_to(&b, refused);
    }
    /* a Redis Cluster: the masters memo routes to, and its redirections */
    if (repo->redis_opened && atomic_load(&repo->cluster.on)) {
        memop_cluster *cl = &repo->cluster;
        int nodes[MEMOP_NODES_MAX];
        memop_buf_printf(&b,
                         ",\"cluster\":{\"masters\":%zu,\"moved\":%" PRIu64
                         ",\"asked\":%" PRIu64 ",\"tryagain\":%" PRIu64
                         ",\"refreshes\":%" PRIu64 ",\"failovers\":%" PRIu64
                         ",\"down\":[",
                         memop_redis_masters(repo, nodes), atomic_load(&cl->moved),
                         atomic_load(&cl->asked), atomic_load(&cl->tryagain),
                         atomic_load(&cl->refreshes), atomic_load(&cl->failovers));
        /* the nodes whose keys read PostgreSQL now */
        unsigned nn = atomic_load_explicit(&cl->nnodes, memory_order_acquire), shown = 0;
        for (unsigned i = 0; i < nn; i++)
            if (atomic_load(&cl->nodes[i]->down)) {
                memop_buf_puts(&b, shown++ ? "," : "");
                json_string_to(&b, cl->nodes[i]->name);
            }
        memop_buf_puts(&b, "]}");
    }
    /* the near caches' subscriber, when there are near caches */
    bool live;
    uint64_t connects;
    char why[256];
    if (memop_near_state(repo, &live, &connects, why, sizeof why)) {
        memop_buf_printf(&b,
                         ",\"near\":{\"subscriber\":\"%s\",\"connects\":%" PRIu64
                         ",\"last_error\":",
                         live ? "live" : "down", connects);
        json_string_to(&b, why);
        memop_buf_puts(&b, "}");
    }
    memop_buf_printf(&b, "},\"database\":{\"statements\":\"%s\"},\"entities\":",
                     unnamed ? "unnamed" : "prepared");
    size_t n = entity_arrays(repo, t->names, t->np, t->sp);
    memop_stats_write_json(&b, t->np, t->sp, n, raw);
    free(t);
    watch_json(repo, &b, raw);
    memop_buf_puts(&b, "}");
    if (b.failed) {
        memop_buf_free(&b);
        return NULL;
    }
    return b.s;
}

char *memo_stats_json(memo_repo *repo)
{
    return repo ? stats_json(repo, false, NULL) : NULL;
}

char *memop_stats_publication(memo_repo *repo, const char *process)
{
    return stats_json(repo, true, process);
}

/* --------------------------------------------------------- Prometheus */

/* Prometheus buckets, in seconds: a fine bucket is counted under the first
 * bound its upper end does not pass, so a count is never early. */
static const double bounds_s[] = {0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025,
                                  0.005,   0.01,   0.025,   0.05,   0.1,   0.25,
                                  0.5,     1,      2.5,     5,      10};

static void prom_histogram(memop_buf *b, const char *name, const char *labels,
                           const memop_hist *h)
{
    uint64_t counts[MEMOP_HIST_BUCKETS], total = 0;
    for (unsigned i = 0; i < MEMOP_HIST_BUCKETS; i++)
        total += counts[i] = load(&h->b[i]);
    for (size_t k = 0; k < sizeof bounds_s / sizeof bounds_s[0]; k++) {
        uint64_t le = 0;
        for (unsigned i = 0; i < MEMOP_HIST_BUCKETS; i++)
            if (counts[i] && (double)memop_hist_upper(i) <= bounds_s[k] * 1e6)
                le += counts[i];
        memop_buf_printf(b, "%s_bucket{%s,le=\"%g\"} %" PRIu64 "\n", name, labels,
                         bounds_s[k], le);
    }
    memop_buf_printf(b, "%s_bucket{%s,le=\"+Inf\"} %" PRIu64 "\n", name, labels, total);
    memop_buf_printf(b, "%s_sum{%s} %.6f\n", name, labels,
                     (double)load(&h->sum_us) / 1e6);
    memop_buf_printf(b, "%s_count{%s} %" PRIu64 "\n", name, labels, total);
}

void memop_stats_write_prometheus(memop_buf *b, const char *const *names,
                                  const memop_stats *const *stats, size_t n)
{
    /* a family per counter (memo_cache_<name>_total) and gauge (without _total) */
#define PROM_FAMILY(cname, help, suffix, type)                                           \
    memop_buf_puts(b, "# HELP memo_cache_" #cname suffix " " help ".\n"                  \
                      "# TYPE memo_cache_" #cname suffix " " type "\n");                 \
    for (size_t i = 0; i < n; i++)                                                       \
        memop_buf_printf(b, "memo_cache_" #cname suffix "{entity=\"%s\"} %" PRIu64 "\n", \
                         names[i], load(&stats[i]->cname));
#define PROM_COUNTER(cname, help) PROM_FAMILY(cname, help, "_total", "counter")
#define PROM_GAUGE(cname, help) PROM_FAMILY(cname, help, "", "gauge")
    COUNTERS(PROM_COUNTER)
    MEMOP_GAUGES(PROM_GAUGE)
#undef PROM_GAUGE
#undef PROM_COUNTER
#undef PROM_FAMILY
    memop_buf_puts(b, "# HELP memo_operations_total Calls by entity and operation.\n"
                      "# TYPE memo_operations_total counter\n");
    for (size_t i = 0; i < n; i++)
        for (unsigned op = 0; op < MEMOP_OP_COUNT; op++)
            memop_buf_printf(
                b, "memo_operations_total{entity=\"%s\",op=\"%s\"} %" PRIu64 "\n",
                names[i], memop_op_name(op), load(&stats[i]->ops[op]));
    memop_buf_puts(
        b, "# HELP memo_operation_duration_seconds Latency of calls by entity and "
           "operation.\n"
           "# TYPE memo_operation_duration_seconds histogram\n");
    for (size_t i = 0; i < n; i++)
        for (unsigned op = 0; op < MEMOP_OP_COUNT; op++) {
            char labels[256];
            snprintf(labels, sizeof labels, "entity=\"%s\",op=\"%s\"", names[i],
                     memop_op_name(op));
            prom_histogram(b, "memo_operation_duration_seconds", labels,
                           &stats[i]->op_latency[op]);
        }
    memop_buf_puts(b,
                   "# HELP memo_lookup_duration_seconds Latency of reads by whether the "
                   "cache answered.\n"
                   "# TYPE memo_lookup_duration_seconds histogram\n");
    for (size_t i = 0; i < n; i++) {
        char labels[256];
        snprintf(labels, sizeof labels, "entity=\"%s\",result=\"hit\"", names[i]);
        prom_histogram(b, "memo_lookup_duration_seconds", labels, &stats[i]->hit_latency);
        snprintf(labels, sizeof labels, "entity=\"%s\",result=\"miss\"", names[i]);
        prom_histogram(b, "memo_lookup_duration_seconds", labels,
                       &stats[i]->miss_latency);
    }
}

char *memo_stats_prometheus(memo_repo *repo)
{
    if (!repo)
        return NULL;
    named *t = malloc(sizeof *t);
    if (!t)
        return NULL;
    memop_buf b = {0};
    size_t n = entity_arrays(repo, t->names, t->np, t->sp);
    memop_stats_write_prometheus(&b, t->np, t->sp, n);
    free(t);
    watch_prometheus(repo, &b);
    bool up;
    size_t pending;
    redis_state(repo, &up, &pending);
    memop_buf_printf(&b,
                     "# HELP memo_redis_up Whether Redis answers (the circuit breaker is "
                     "closed).\n# TYPE memo_redis_up gauge\nmemo_redis_up %d\n"
                     "# HELP memo_redis_pending_invalidations Invalidations waiting for "
                     "Redis.\n# TYPE memo_redis_pending_invalidations gauge\n"
                     "memo_redis_pending_invalidations %zu\n",
                     up ? 1 : 0, pending);
    if (b.failed) {
        memop_buf_free(&b);
        return NULL;
    }
    return b.s;
}

memo_status memo_stats_entity(memo_repo *repo, const memo_entity_desc *d,
                              memo_entity_stats *out)
{
    if (!repo || !d || !out)
        return MEMO_ERR_ARG;
    /* only the fields the caller's struct has (see memo_config) */
    size_t size = out->size ? out->size : sizeof *out;
    if (size > sizeof *out || size < sizeof out->size)
        return memop_fail(repo, MEMO_ERR_ARG,
                          "memo_entity_stats.size does not match this "
                          "libmemo: rebuild against its memo.h");
    memo_entity_stats all = {.size = out->size};
    memop_entity *e;
    memo_status st = memop_entity_get(repo, d, &e);
    if (st != MEMO_OK)
        return st;
    memo_entity_stats *theirs = out;
    out = &all;
    const memop_stats *s = &e->stats;
#define COPY_COUNTER(name, help) out->name = load(&s->name);
    COUNTERS(COPY_COUNTER)
    MEMOP_GAUGES(COPY_COUNTER)
#undef COPY_COUNTER
    for (unsigned op = 0; op < MEMOP_OP_COUNT; op++)
        out->calls += load(&s->ops[op]);
    out->hit_p50_us = memop_hist_quantile(&s->hit_latency, 0.5);
    out->hit_p99_us = memop_hist_quantile(&s->hit_latency, 0.99);
    out->miss_p50_us = memop_hist_quantile(&s->miss_latency, 0.5);
    out->miss_p99_us = memop_hist_quantile(&s->miss_latency, 0.99);
    memcpy(theirs, &all, size);
    return MEMO_OK;
}

void memo_stats_reset(memo_repo *repo)
{
    if (!repo)
        return;
    unsigned n = atomic_load(&repo->nentities);
    for (unsigned i = 0; i < n; i++) {
        memop_stats *s = &repo->entity_list[i]->stats;
#define ZERO_COUNTER(name, help) atomic_store_explicit(&s->name, 0, memory_order_relaxed);
        COUNTERS(ZERO_COUNTER)
#undef ZERO_COUNTER
        for (unsigned op = 0; op < MEMOP_OP_COUNT; op++) {
            atomic_store_explicit(&s->ops[op], 0, memory_order_relaxed);
            for (unsigned b = 0; b < MEMOP_HIST_BUCKETS; b++)
                atomic_store_explicit(&s->op_latency[op].b[b], 0, memory_order_relaxed);
            atomic_store_explicit(&s->op_latency[op].sum_us, 0, memory_order_relaxed);
        }
        for (unsigned b = 0; b < MEMOP_HIST_BUCKETS; b++) {
            atomic_store_explicit(&s->hit_latency.b[b], 0, memory_order_relaxed);
            atomic_store_explicit(&s->miss_latency.b[b], 0, memory_order_relaxed);
        }
        atomic_store_explicit(&s->hit_latency.sum_us, 0, memory_order_relaxed);
        atomic_store_explicit(&s->miss_latency.sum_us, 0, memory_order_relaxed);
    }
    memop_watch_stats *w = atomic_load(&repo->watch);
    if (w) {
#define ZERO_WATCH(name, help) atomic_store_explicit(&w->name, 0, memory_order_relaxed);
        MEMOP_WATCH_COUNTERS(ZERO_WATCH)
#undef ZERO_WATCH
        for (unsigned b = 0; b < MEMOP_HIST_BUCKETS; b++)
            atomic_store_explicit(&w->lag.b[b], 0, memory_order_relaxed);
        atomic_store_explicit(&w->lag.sum_us, 0, memory_order_relaxed);
    }
}

/* ------------------------------------------------------------- publishing */

void memop_stats_identity(memo_repo *repo)
{
    repo->publish = !(repo->cfg.flags & MEMO_STATS_PRIVATE);
    char host[128] = "unknown";
    gethostname(host, sizeof host - 1);
    host[sizeof host - 1] = '\0';
    char hostpart[MEMOP_KEY_PART_MAX + 1];
    size_t hlen = memop_key_part(host, strlen(host), hostpart);
    hostpart[hlen] = '\0'; /* (memop_key_part does not terminate) */
    memop_key_stats(repo, hostpart, (long)getpid(), repo->token_prefix & 0xffffffffu,
                    &repo->stats_key);
    snprintf(repo->process_json, sizeof repo->process_json,
             "{\"host\":\"%.*s\",\"pid\":%ld}", (int)hlen, hostpart, (long)getpid());
}

/* Every stats_publish_ms (the prober calls it) and at memo_close: the
 * process's statistics to <prefix>memo:stats:<host>:<pid>:<random>, which
 * expires after three intervals, so `memo stats` sums the processes alive. */
void memop_stats_publish(memo_repo *repo)
{
    if (!repo->publish || atomic_load(&repo->breaker) != MEMOP_BREAKER_CLOSED)
        return;
    char *json = memop_stats_publication(repo, repo->process_json);
    memop_rconn *c = json ? memop_redis_acquire(repo) : NULL;
    if (c) {
        char ttl[24];
        int ms = repo->cfg.stats_publish_ms * 3;
        snprintf(ttl, sizeof ttl, "%d", ms < 500 ? 500 : ms);
        const char *argv[] = {"SET", repo->stats_key.s, json, "PX", ttl};
        size_t lens[] = {3, repo->stats_key.len, strlen(json), 2, strlen(ttl)};
        redisReply *r = memop_redis_command(repo, c, 5, argv, lens);
        memop_redis_release(repo, c, r == NULL);
    }
    free(json);
}
