/* Statistics: exact counters and latency histograms per entity, lock-free on
 * the hot path (relaxed atomics), read as JSON. */
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

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

static void hist_json(memop_buf *b, const char *name, const memop_hist *h)
{
    uint64_t n = 0;
    for (unsigned i = 0; i < MEMOP_HIST_BUCKETS; i++)
        n += load(&h->b[i]);
    memop_buf_printf(b,
                     "\"%s\":{\"count\":%" PRIu64 ",\"p50\":%" PRIu64 ",\"p90\":%" PRIu64
                     ",\"p99\":%" PRIu64 "}",
                     name, n, memop_hist_quantile(h, 0.5), memop_hist_quantile(h, 0.9),
                     memop_hist_quantile(h, 0.99));
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

char *memo_stats_json(memo_repo *repo)
{
    if (!repo)
        return NULL;
    memop_buf b = {0};
    /* the connection to Redis: whether the breaker lets calls through, and
     * how many invalidations wait for it */
    pthread_mutex_lock(&repo->pending.lock);
    size_t pending = repo->pending.n;
    pthread_mutex_unlock(&repo->pending.lock);
    memop_buf_puts(&b, "{\"redis\":{\"server\":");
    json_string_to(&b, repo->redis_name);
    memop_buf_printf(&b, ",\"breaker\":\"%s\",\"pending\":%zu},",
                     atomic_load(&repo->breaker) == MEMOP_BREAKER_CLOSED ? "closed" : "open",
                     pending);
    memop_buf_puts(&b, "\"entities\":{");
    unsigned n = atomic_load(&repo->nentities);
    for (unsigned i = 0; i < n; i++) {
        const memop_entity *e = repo->entity_list[i];
        const memop_stats *s = &e->stats;
        memop_buf_printf(&b,
                         "%s\"%s.%s\":{\"hits\":%" PRIu64 ",\"misses\":%" PRIu64
                         ",\"negative_hits\":%" PRIu64 ",\"fills\":%" PRIu64
                         ",\"fill_rejects\":%" PRIu64 ",\"lease_waits\":%" PRIu64
                         ",\"invalidations\":%" PRIu64 ",\"db_queries\":%" PRIu64
                         ",\"degraded\":%" PRIu64 ",\"errors\":%" PRIu64 ",",
                         i ? "," : "", e->desc->schema, e->desc->name, load(&s->hits),
                         load(&s->misses), load(&s->negative_hits), load(&s->fills),
                         load(&s->fill_rejects), load(&s->lease_waits),
                         load(&s->invalidations), load(&s->db_queries), load(&s->degraded),
                         load(&s->errors));
        hist_json(&b, "hit_latency_us", &s->hit_latency);
        memop_buf_puts(&b, ",");
        hist_json(&b, "miss_latency_us", &s->miss_latency);
        memop_buf_puts(&b, ",\"ops\":{");
        for (unsigned op = 0; op < MEMOP_OP_COUNT; op++) {
            memop_buf_printf(&b, "%s\"%s\":{\"calls\":%" PRIu64 ",", op ? "," : "",
                             memop_op_name(op), load(&s->ops[op]));
            hist_json(&b, "latency_us", &s->op_latency[op]);
            memop_buf_puts(&b, "}");
        }
        memop_buf_puts(&b, "}}");
    }
    memop_buf_puts(&b, "}}");
    if (b.failed) {
        memop_buf_free(&b);
        return NULL;
    }
    return b.s;
}

void memo_stats_reset(memo_repo *repo)
{
    if (!repo)
        return;
    unsigned n = atomic_load(&repo->nentities);
    for (unsigned i = 0; i < n; i++) {
        memop_stats *s = &repo->entity_list[i]->stats;
        _Atomic uint64_t *counters[] = {&s->hits,         &s->misses,      &s->negative_hits,
                                        &s->fills,        &s->fill_rejects, &s->lease_waits,
                                        &s->invalidations, &s->db_queries, &s->degraded,
                                        &s->errors};
        for (size_t k = 0; k < sizeof counters / sizeof counters[0]; k++)
            atomic_store_explicit(counters[k], 0, memory_order_relaxed);
        for (unsigned op = 0; op < MEMOP_OP_COUNT; op++) {
            atomic_store_explicit(&s->ops[op], 0, memory_order_relaxed);
            for (unsigned b = 0; b < MEMOP_HIST_BUCKETS; b++)
                atomic_store_explicit(&s->op_latency[op].b[b], 0, memory_order_relaxed);
        }
        for (unsigned b = 0; b < MEMOP_HIST_BUCKETS; b++) {
            atomic_store_explicit(&s->hit_latency.b[b], 0, memory_order_relaxed);
            atomic_store_explicit(&s->miss_latency.b[b], 0, memory_order_relaxed);
        }
    }
}
