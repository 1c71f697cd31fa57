/* The read engine: get, get_by, list and get_many, all through one
 * cache-aside path with leases (the fix of Facebook's memcache paper):
 *
 *   GET_OR_LEASE  -> value: a hit (or a negative hit)
 *                 -> lease taken: query PostgreSQL, FILL while the lease holds
 *                 -> lease held by another: back off and ask again, and past
 *                    the bound read PostgreSQL without filling
 *   Redis failing -> read PostgreSQL (degraded), fill nothing
 *
 * A write deletes value and lease after COMMIT, so a fill that read the old
 * row before the write is refused: no stale value survives a write. */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "internal.h"

/* -------------------------------------------------------------- helpers */

uint64_t memop_ttl_ms(uint64_t ttl_ms, unsigned jitter_pct)
{
    if (jitter_pct == 0 || ttl_ms == 0)
        return ttl_ms;
    /* uniform in [ttl, ttl * (1 + jitter)]: keys filled together expire apart */
    uint64_t spread = ttl_ms * jitter_pct / 100;
    return ttl_ms + memop_random() % (spread + 1);
}

static void make_token(memo_repo *repo, char *out, size_t size)
{
    uint64_t n = atomic_fetch_add(&repo->token_counter, 1);
    snprintf(out, size, "%016" PRIx64 "%016" PRIx64, repo->token_prefix, n ^ memop_random());
}

static uint64_t row_ttl(memo_repo *repo, const memo_lookup_desc *l)
{
    return memop_ttl_ms(l->ttl_ms ? l->ttl_ms : (uint64_t)repo->cfg.default_ttl_ms,
                        l->jitter_pct);
}

static uint64_t negative_ttl(memo_repo *repo, const memo_lookup_desc *l)
{
    return memop_ttl_ms(l->negative_ttl_ms ? l->negative_ttl_ms
                                           : (uint64_t)repo->cfg.negative_ttl_ms,
                        l->jitter_pct);
}

/* ------------------------------------------------ the cache-aside path */

enum outcome {
    HIT,        /* value holds what Redis had */
    NEG_HIT,    /* Redis remembered that there is nothing */
    LOADED,     /* the loader ran: its context holds the result */
    FAILED      /* the loader failed; the status says how */
};

/* Loads from PostgreSQL. Writes the value to cache into `value` (the
 * literal null when there is no row) and its TTL into *ttl_ms. */
typedef memo_status (*loader_fn)(memo_repo *, memop_entity *, void *ctx, memop_buf *value,
                                 uint64_t *ttl_ms);

typedef struct read_ctx {
    memo_repo *repo;
    memop_entity *e;
    const memop_key *key;
    loader_fn load;
    void *ctx;
    memop_buf value;
    memo_status st;
    bool degraded;
    bool missed; /* counted as a miss: the caller's latency is a miss's */
    bool filled; /* this call's fill was accepted */
    bool healed; /* a corrupt value at the key was deleted once already */
    uint64_t drop_gen; /* the entity's drop generation when the read began */
    /* A second value the loader found, filled with the first under its
     * lease: a unique lookup's row (see load_unique). */
    bool also;
    memop_key also_key;
    memop_buf also_value;
    uint64_t also_ttl;
    char storage[1024]; /* where value starts: a typical row needs no malloc */
} read_ctx;

/* Sets up a read; value starts in the context's own storage. */
#define READ_CTX(name, repo_, e_, key_, load_, ctx_)                                      \
    read_ctx name = {.repo = (repo_), .e = (e_), .key = (key_), .load = (load_),            \
                     .ctx = (ctx_), .st = MEMO_OK};                                          \
    name.value = MEMOP_BUF_IN(name.storage)

static void read_ctx_free(read_ctx *r)
{
    memop_buf_free(&r->value);
    memop_buf_free(&r->also_value);
}

static bool is_null_value(const char *s, size_t n)
{
    return n == 4 && memcmp(s, memop_null_value, 4) == 0;
}

/* Deletes values that are not what their keys name (a wrong type, not
 * decodable, too large, another row's), so the next read refills them: on
 * the caller's connection when it has one (a second one from the pool could
 * be the one it waits for), else on a connection of their own. */
static void discard(memo_repo *repo, memop_entity *e, memop_rconn *c, const memop_key *keys,
                    size_t n, const char *why)
{
    if (n == 0)
        return;
    MEMOP_ADD(e->stats.corrupt, n);
    memop_fail(repo, MEMO_ERR_ARG, "corrupt value at %s (%s): deleted, read from PostgreSQL",
               keys[0].s, why);
    bool own = c == NULL;
    if (own && !(c = memop_redis_acquire(repo)))
        return;
    for (size_t i = 0; i < n; i += 64) {
        const char *argv[65];
        size_t lens[65], k = 0;
        argv[k] = "DEL";
        lens[k++] = 3;
        for (size_t j = i; j < n && j < i + 64; j++) {
            argv[k] = keys[j].s;
            lens[k++] = keys[j].len;
        }
        redisReply *rep = memop_redis_command(repo, c, (int)k, argv, lens);
        if (!rep) /* the transport recorded it; the caller sees the broken context */
            break;
        if (rep->type == REDIS_REPLY_ERROR)
            memop_redis_reply_failed(repo, rep, "DEL (corrupt value)");
    }
    if (own)
        memop_redis_release(repo, c, c->ctx->err != 0);
}

/* The loader failed: let the next reader try at once rather than wait out
 * the lease. */
static void release_lease(memo_repo *repo, const memop_key *lease, const char *token)
{
    memop_rconn *c = memop_redis_acquire(repo);
    if (!c)
        return;
    const char *argv[] = {lease->s, token};
    size_t lens[] = {lease->len, strlen(token)};
    redisReply *rep = memop_redis_script(repo, c, MEMOP_SCRIPT_RELEASE, 1, 2, argv, lens);
    memop_redis_release(repo, c, rep == NULL);
}

/* A fill that raced a drop of the whole entity (its invalidations were
 * lost) may have put back what the drop had to remove: delete it again.
 * The drop began after the write that needs it committed, so a fill that
 * read before that write either landed before the drop's SCAN (which
 * finds it) or sees the new generation here. */
static void undo_fill_if_dropped(memo_repo *repo, memop_entity *e, memop_rconn *c,
                                 uint64_t gen, const memop_key *keys, size_t n)
{
    if (atomic_load(&e->drop_gen) == gen || n == 0)
        return;
    const char *argv[3] = {"DEL", keys[0].s, n > 1 ? keys[1].s : NULL};
    size_t lens[3] = {3, keys[0].len, n > 1 ? keys[1].len : 0};
    redisReply *rep = memop_redis_command(repo, c, n > 1 ? 3 : 2, argv, lens);
    if (rep && rep->type == REDIS_REPLY_ERROR)
        memop_redis_reply_failed(repo, rep, "DEL (after a drop)");
}

/* Runs the loader and fills under the lease (when token is given), keeping
 * the lease alive while the query runs (lease.c). */
static enum outcome load_and_fill(read_ctx *r, const memop_key *lease, const char *token)
{
    memo_repo *repo = r->repo;
    uint64_t ttl = 0;
    r->value.len = 0;
    r->also = false;
    memop_lease_hold hold;
    if (token)
        memop_lease_hold_start(repo, &hold, lease, &token, 1);
    r->st = r->load(repo, r->e, r->ctx, &r->value, &ttl);
    if (token)
        memop_lease_hold_end(repo, &hold);
    if (r->st != MEMO_OK && r->st != MEMO_NOT_FOUND) {
        if (token)
            release_lease(repo, lease, token);
        return FAILED;
    }
    if (!token)
        return LOADED;
    if (r->value.len > (size_t)repo->cfg.max_value_bytes) {
        /* it would be refused as corrupt when read back: not cached */
        release_lease(repo, lease, token);
        return LOADED;
    }
    bool also = r->also && r->also_value.len <= (size_t)repo->cfg.max_value_bytes &&
                !r->also_value.failed;
    if (memop_test_hooks.before_fill)
        memop_test_hooks.before_fill(r->key->s);
    memop_rconn *c = memop_redis_acquire(repo);
    if (!c)
        return LOADED; /* the value is fresh; only the cache misses out */
    char ttlbuf[24], alsottl[24];
    snprintf(ttlbuf, sizeof ttlbuf, "%" PRIu64, ttl ? ttl : 1);
    snprintf(alsottl, sizeof alsottl, "%" PRIu64, r->also_ttl ? r->also_ttl : 1);
    redisReply *rep;
    if (memop_test_hooks.no_leases) {
        /* the naive cache-aside the tests must be able to catch */
        const char *argv[] = {"SET", r->key->s, r->value.s, "PX", ttlbuf};
        size_t lens[] = {3, r->key->len, r->value.len, 2, strlen(ttlbuf)};
        rep = memop_redis_command(repo, c, 5, argv, lens);
        if (rep && rep->type == REDIS_REPLY_STATUS) {
            r->filled = true;
            MEMOP_INC(r->e->stats.fills);
        }
    } else {
        const char *argv[] = {r->key->s,   lease->s,     also ? r->also_key.s : NULL,
                              token,       r->value.s,   ttlbuf,
                              also ? r->also_value.s : NULL, alsottl};
        size_t lens[] = {r->key->len,     lease->len,
                         also ? r->also_key.len : 0, strlen(token),
                         r->value.len,    strlen(ttlbuf),
                         also ? r->also_value.len : 0, strlen(alsottl)};
        if (also) {
            rep = memop_redis_script(repo, c, MEMOP_SCRIPT_FILL_PAIR, 3, 8, argv, lens);
        } else {
            const char *av[] = {argv[0], argv[1], argv[3], argv[4], argv[5]};
            size_t al[] = {lens[0], lens[1], lens[3], lens[4], lens[5]};
            rep = memop_redis_script(repo, c, MEMOP_SCRIPT_FILL, 2, 5, av, al);
        }
        if (rep && rep->type == REDIS_REPLY_INTEGER) {
            r->filled = rep->integer == 1;
            MEMOP_INC(*(r->filled ? &r->e->stats.fills : &r->e->stats.fill_rejects));
            if (r->filled) {
                memop_key both[2] = {*r->key};
                if (also)
                    both[1] = r->also_key;
                undo_fill_if_dropped(repo, r->e, c, r->drop_gen, both, also ? 2 : 1);
            }
        } else if (rep) {
            memop_redis_reply_failed(repo, rep, "EVALSHA (fill)");
        }
    }
    memop_redis_release(repo, c, rep == NULL || c->ctx->err);
    return LOADED;
}

/* ---------------------------------------------------------- single flight */

static size_t flight_bucket(const memop_key *k)
{
    uint64_t h = 1469598103934665603ull;
    for (size_t i = 0; i < k->len; i++)
        h = (h ^ (unsigned char)k->s[i]) * 1099511628211ull;
    return (size_t)(h % MEMOP_FLIGHT_BUCKETS);
}

static memop_flight **flight_find(memo_repo *repo, const memop_key *k)
{
    memop_flight **p = &repo->flights[flight_bucket(k)];
    for (; *p; p = &(*p)->next)
        if ((*p)->keylen == k->len && memcmp((*p)->key, k->s, k->len) == 0)
            break;
    return p;
}

static void flight_unref(memop_flight *f)
{
    if (--f->refs > 0)
        return;
    pthread_cond_destroy(&f->cond);
    memop_buf_free(&f->value);
    free(f);
}

/* Becomes the leader of the key's flight, or NULL when another thread
 * already leads one (or memory is short: then go alone). */
static memop_flight *flight_lead(memo_repo *repo, const memop_key *k)
{
    pthread_mutex_lock(&repo->flights_lock);
    memop_flight **p = flight_find(repo, k), *f = NULL;
    if (!*p && (f = calloc(1, sizeof *f + k->len + 1))) {
        pthread_cond_init(&f->cond, NULL);
        f->refs = 1;
        f->keylen = k->len;
        memcpy(f->key, k->s, k->len + 1);
        *p = f;
    }
    pthread_mutex_unlock(&repo->flights_lock);
    return f;
}

/* Publishes the leader's value to the waiters and leaves the table. */
static void flight_finish(memo_repo *repo, memop_flight *f, const memop_buf *value,
                          bool shareable)
{
    memop_key k;
    memcpy(k.s, f->key, f->keylen + 1);
    k.len = f->keylen;
    pthread_mutex_lock(&repo->flights_lock);
    memop_flight **p = flight_find(repo, &k);
    if (*p == f)
        *p = f->next;
    if (shareable && value && !value->failed) {
        memop_buf_append(&f->value, value->s, value->len);
        f->shareable = !f->value.failed;
    }
    f->done = true;
    pthread_cond_broadcast(&f->cond);
    flight_unref(f);
    pthread_mutex_unlock(&repo->flights_lock);
}

/* Waits for the key's flight, if there is one, until the deadline. True with
 * the leader's value in `out` when it could be shared. */
static bool flight_wait(memo_repo *repo, const memop_key *k, uint64_t deadline, memop_buf *out)
{
    pthread_mutex_lock(&repo->flights_lock);
    memop_flight *f = *flight_find(repo, k);
    bool got = false;
    if (f) {
        f->refs++;
        struct timespec until;
        clock_gettime(CLOCK_REALTIME, &until);
        uint64_t left = deadline > memop_now_us() ? deadline - memop_now_us() : 0;
        uint64_t ns = (uint64_t)until.tv_nsec + left * 1000u;
        until.tv_sec += (time_t)(ns / 1000000000u);
        until.tv_nsec = (long)(ns % 1000000000u);
        while (!f->done)
            if (pthread_cond_timedwait(&f->cond, &repo->flights_lock, &until) != 0)
                break;
        if (f->done && f->shareable) {
            out->len = 0;
            memop_buf_append(out, f->value.s, f->value.len);
            got = !out->failed;
        }
        flight_unref(f);
    }
    pthread_mutex_unlock(&repo->flights_lock);
    return got;
}

/* The value read from PostgreSQL may go to waiters only if no write of this
 * process committed meanwhile: a waiter that began after such a write must
 * not get what was read before it. */
static enum outcome lead(read_ctx *r, memop_flight *f, const memop_key *lease,
                         const char *token)
{
    uint64_t seq = atomic_load(&r->repo->write_seq);
    enum outcome o = load_and_fill(r, lease, token);
    if (f)
        flight_finish(r->repo, f, &r->value,
                      o == LOADED && (!token || r->filled) &&
                          atomic_load(&r->repo->write_seq) == seq);
    return o;
}

/* One key through the cache. On HIT the value is in r->value. */
static enum outcome cached_read(read_ctx *r)
{
    memo_repo *repo = r->repo;
    memop_stats *s = &r->e->stats;
    memop_key lease;
    memop_key_lease(r->key, &lease);
    char token[40];
    make_token(repo, token, sizeof token);
    char lease_ms[16], max[16];
    snprintf(lease_ms, sizeof lease_ms, "%d", repo->cfg.lease_ms);
    snprintf(max, sizeof max, "%d", repo->cfg.max_value_bytes);
    r->drop_gen = atomic_load(&r->e->drop_gen);

    uint64_t deadline = 0, backoff = 500;
    /* an entity whose invalidations were lost is not read from the cache
     * until all its entries are dropped */
    while (!memop_entity_dropping(r->e)) {
        memop_rconn *c = memop_redis_acquire(repo);
        if (!c)
            break;
        const char *argv[] = {r->key->s, lease.s, token, lease_ms, max};
        size_t lens[] = {r->key->len, lease.len, strlen(token), strlen(lease_ms), strlen(max)};
        redisReply *rep =
            memop_redis_script(repo, c, MEMOP_SCRIPT_GET_OR_LEASE, 2, 5, argv, lens);
        bool corrupt = false;
        if (!rep || rep->type == REDIS_REPLY_ERROR) {
            enum memop_redis_error kind =
                memop_redis_reply_failed(repo, rep, "EVALSHA (get-or-lease)");
            if (kind == MEMOP_REDIS_WRONGTYPE) {
                corrupt = true; /* someone stored a list or a set here */
            } else {
                if (kind != MEMOP_REDIS_OUTAGE)
                    MEMOP_INC(s->errors);
                memop_redis_release(repo, c, rep == NULL);
                break;
            }
        } else if (rep->type == REDIS_REPLY_INTEGER && rep->integer == 2) {
            corrupt = true; /* larger than any value memo writes */
        }
        if (corrupt) {
            if (r->healed) { /* back at once: do without the cache */
                memop_redis_release(repo, c, false);
                break;
            }
            r->healed = true;
            discard(repo, r->e, c, r->key, 1,
                    rep->type == REDIS_REPLY_ERROR ? "wrong type" : "too large");
            memop_redis_release(repo, c, false);
            continue;
        }
        /* the reply lives in the connection: take what is needed, then release */
        if (rep->type == REDIS_REPLY_STRING) {
            bool neg = is_null_value(rep->str, rep->len);
            r->value.len = 0;
            memop_buf_append(&r->value, rep->str, rep->len);
            memop_redis_release(repo, c, false);
            if (!r->missed)
                MEMOP_INC(*(neg ? &s->negative_hits : &s->hits));
            if (r->value.failed) {
                r->st = memop_fail(repo, MEMO_ERR_NOMEM, "out of memory");
                return FAILED;
            }
            return neg ? NEG_HIT : HIT;
        }
        long long got = rep->type == REDIS_REPLY_INTEGER ? rep->integer : -1;
        memop_redis_release(repo, c, false);
        if (!r->missed) {
            MEMOP_INC(s->misses);
            r->missed = true;
        }
        if (got == 1)
            return lead(r, flight_lead(repo, r->key), &lease, token);
        if (got != 0)
            break;
        /* Another holds the lease: it is querying now, and keeps its lease
         * alive while it does. A thread of this process shares its flight;
         * else ask Redis again after a short, jittered back-off, up to the
         * bound, then read the database without filling. */
        uint64_t now = memop_now_us();
        if (deadline == 0) {
            deadline = now + (uint64_t)repo->cfg.lease_wait_ms * 1000u;
            MEMOP_INC(s->lease_waits);
        }
        if (flight_wait(repo, r->key, deadline, &r->value))
            return is_null_value(r->value.s, r->value.len) ? NEG_HIT : HIT;
        now = memop_now_us();
        if (now >= deadline)
            return load_and_fill(r, NULL, NULL);
        uint64_t sleep = backoff / 2 + memop_random() % (backoff / 2 + 1);
        if (now + sleep > deadline)
            sleep = deadline - now;
        memop_sleep_us(sleep);
        if (backoff < 50000)
            backoff *= 2;
    }
    /* Without the cache (Redis is unavailable, refused the call, or the
     * entity's entries are being dropped): PostgreSQL answers, nothing is
     * filled, and the threads of this process that miss the same key share
     * one query, so an outage does not become a stampede. */
    if (!r->missed) {
        MEMOP_INC(s->misses);
        r->missed = true;
    }
    r->degraded = true;
    MEMOP_INC(s->degraded);
    memop_flight *f = flight_lead(repo, r->key);
    if (f)
        return lead(r, f, NULL, NULL);
    uint64_t until = memop_now_us() + (uint64_t)repo->cfg.lease_wait_ms * 1000u;
    if (flight_wait(repo, r->key, until, &r->value))
        return is_null_value(r->value.s, r->value.len) ? NEG_HIT : HIT;
    return load_and_fill(r, NULL, NULL);
}

static void record(memop_entity *e, enum memop_op op, uint64_t t0, bool hit)
{
    uint64_t us = memop_now_us() - t0;
    MEMOP_INC(e->stats.ops[op]);
    memop_hist_add(&e->stats.op_latency[op], us);
    memop_hist_add(hit ? &e->stats.hit_latency : &e->stats.miss_latency, us);
}

/* ------------------------------------------------------------- loaders */

/* Runs a statement with one key parameter. */
static memo_status query_one_key(memo_repo *repo, memo_tx *tx, memop_entity *e, unsigned stmt,
                                 const memo_field_desc *f, const void *key, PGresult **res)
{
    memop_params ps;
    ps.n = 0;
    memop_param_key(&ps, f, key);
    return memop_db_run(repo, tx, e, stmt, &ps, res);
}

typedef struct row_ctx {
    memo_tx *tx;
    unsigned stmt;
    const memo_field_desc *field;
    const void *key;
    const memo_lookup_desc *lookup;
    void *row;   /* filled on LOADED and found */
    bool found;
    struct read_ctx *read; /* load_unique: where the row's own value goes */
} row_ctx;

/* A row by a key field: the value is the row, or null. */
static memo_status load_row(memo_repo *repo, memop_entity *e, void *vctx, memop_buf *value,
                            uint64_t *ttl)
{
    row_ctx *ctx = vctx;
    PGresult *res;
    memo_status st = query_one_key(repo, ctx->tx, e, ctx->stmt, ctx->field, ctx->key, &res);
    if (st != MEMO_OK)
        return st;
    if (PQntuples(res) == 0) {
        PQclear(res);
        ctx->found = false;
        if (value) {
            memop_buf_puts(value, memop_null_value);
            *ttl = negative_ttl(repo, ctx->lookup);
        }
        return MEMO_NOT_FOUND;
    }
    st = memop_result_row(e->desc, res, 0, 0, ctx->row);
    PQclear(res);
    if (st == MEMO_ERR_SCHEMA)
        return memop_schema_mismatch(repo, e, NULL);
    if (st != MEMO_OK)
        return memop_fail(repo, st, "out of memory");
    ctx->found = true;
    if (!value)
        return MEMO_OK; /* a transaction's read: nothing to cache */
    st = memop_row_encode(e->desc, ctx->row, value);
    if (st != MEMO_OK) {
        memo_row_clear(e->desc, ctx->row);
        ctx->found = false;
        return memop_fail(repo, st, "cannot encode a row of %s", e->desc->table);
    }
    *ttl = row_ttl(repo, ctx->lookup);
    return MEMO_OK;
}

/* ----------------------------------------------------------- validation */

static memo_status check_key(memo_repo *repo, const memo_field_desc *f, const void *key)
{
    if (!key || (f->type == MEMO_TEXT && !*(const char *const *)key))
        return memop_fail(repo, MEMO_ERR_ARG, "%s: NULL key", f->name);
    return MEMO_OK;
}

/* Field f of a row holds the key value: a value read from Redis must be the
 * one its key names, or it is corrupt (copied under another key by a bug or
 * by someone else). */
static bool row_has(const memo_field_desc *f, const void *row, const void *key)
{
    const char *p = (const char *)row + f->offset;
    if ((f->flags & MEMO_FIELD_NULLABLE) && f->type != MEMO_TEXT && f->type != MEMO_JSON &&
        *(const bool *)((const char *)row + f->null_offset))
        return false;
    return memop_key_equal(f, p, key);
}

/* ------------------------------------------------------------------ get */

static memo_status get_row(memo_repo *repo, memop_entity *e, const void *key, void *out,
                           bool *hit)
{
    const memo_entity_desc *d = e->desc;
    const memo_field_desc *pk = &d->fields[d->pk];
    memop_key k;
    memop_key_of(repo, d, &d->row.key, pk, key, &k);

    row_ctx ctx = {NULL, MEMOP_SQL_SELECT, pk, key, &d->row, out, false, NULL};
    READ_CTX(r, repo, e, &k, load_row, &ctx);
    memo_status st = MEMO_OK;
    for (;;) {
        enum outcome o = cached_read(&r);
        *hit = !r.missed;
        if (o == NEG_HIT) {
            st = MEMO_NOT_FOUND;
        } else if (o == LOADED || o == FAILED) {
            st = r.st;
        } else {
            char why[128] = "another row's value";
            st = memop_row_decode(d, r.value.s, r.value.len, out, why, sizeof why);
            if (st == MEMO_OK && !row_has(pk, out, key)) {
                memo_row_clear(d, out);
                st = MEMO_ERR_ARG;
            }
            if (st != MEMO_OK) {
                /* corrupt: count it, drop it, and read again (then from
                 * PostgreSQL, which refills it) */
                discard(repo, e, NULL, &k, 1, why);
                if (!r.healed) {
                    r.healed = true;
                    continue;
                }
                r.value.len = 0;
                st = load_row(repo, e, &ctx, &r.value, &(uint64_t){0});
            }
        }
        break;
    }
    read_ctx_free(&r);
    return st;
}

memo_status memo_get(memo_repo *repo, const memo_entity_desc *d, const void *key, void *out)
{
    if (!repo || !d || !out)
        return repo ? memop_fail(repo, MEMO_ERR_ARG, "memo_get: NULL argument") : MEMO_ERR_ARG;
    memop_entity *e;
    memo_status st = memop_entity_get(repo, d, &e);
    if (st != MEMO_OK)
        return st;
    memset(out, 0, d->size);
    if ((st = check_key(repo, &d->fields[d->pk], key)) != MEMO_OK)
        return st;
    uint64_t t0 = memop_now_us();
    bool hit;
    st = get_row(repo, e, key, out, &hit);
    record(e, MEMOP_OP_GET, t0, hit);
    return st;
}

/* --------------------------------------------------------------- get_by */

/* A unique lookup's value is the primary key of its row. The row the query
 * found goes to the cache with it, under the lookup's lease, so the next
 * read by either key is a hit. That is safe because every write of a row
 * deletes the leases of its unique lookups, changed or not (write.c): a
 * write that commits after this query breaks the lease, and the fill of
 * both values is refused. */
static memo_status load_unique(memo_repo *repo, memop_entity *e, void *vctx,
                               memop_buf *value, uint64_t *ttl)
{
    row_ctx *ctx = vctx;
    read_ctx *r = ctx->read;
    const memo_entity_desc *d = e->desc;
    memop_buf tmp = {0};
    memop_buf *row = r ? &r->also_value : &tmp;
    row->len = 0;
    memo_status st = load_row(repo, e, ctx, row, &(uint64_t){0});
    memop_buf_free(&tmp);
    if (st == MEMO_NOT_FOUND) {
        memop_buf_puts(value, memop_null_value);
        *ttl = negative_ttl(repo, ctx->lookup);
        return st;
    }
    if (st != MEMO_OK)
        return st;
    const memo_field_desc *pk = &d->fields[d->pk];
    if (r) {
        memop_key_of(repo, d, &d->row.key, pk, (const char *)ctx->row + pk->offset,
                     &r->also_key);
        r->also_ttl = row_ttl(repo, &d->row);
        r->also = true;
    }
    *ttl = row_ttl(repo, ctx->lookup);
    return memop_pk_encode(pk, (const char *)ctx->row + pk->offset, value);
}

typedef union pk_value {
    int32_t i32;
    int64_t i64;
    char *text;
} pk_value;

enum fast { FAST_MISS, FAST_ROW, FAST_NONE, FAST_PK };

/* A unique lookup and its row in one round trip (the GET_BY script): the
 * row (FAST_ROW, decoded into out), a negative entry (FAST_NONE), only the
 * primary key (FAST_PK: the row is to be read as by get), or nothing usable
 * (FAST_MISS: the lookup path with its lease, which also sorts out what is
 * corrupt). */
static enum fast get_by_fast(memo_repo *repo, memop_entity *e, const memo_field_desc *f,
                             const void *key, const memop_key *k, void *out, pk_value *pk)
{
    const memo_entity_desc *d = e->desc;
    const memo_field_desc *pkf = &d->fields[d->pk];
    memop_stats *s = &e->stats;
    if (memop_entity_dropping(e))
        return FAST_MISS;
    memop_rconn *c = memop_redis_acquire(repo);
    if (!c)
        return FAST_MISS;
    /* the row key around the primary key's part */
    memop_key around;
    memop_key_build(repo, d, &d->row.key, "", 0, &around);
    size_t head = repo->key_prefix_len + strlen(d->schema) + 2 + strlen(d->row.key.head);
    char max[16];
    snprintf(max, sizeof max, "%d", repo->cfg.max_value_bytes);
    const char *argv[] = {k->s, around.s, around.s + head, pkf->type == MEMO_TEXT ? "1" : "0",
                          max};
    size_t lens[] = {k->len, head, around.len - head, 1, strlen(max)};
    redisReply *rep = memop_redis_script(repo, c, MEMOP_SCRIPT_GET_BY, 1, 5, argv, lens);
    enum fast result = FAST_MISS;
    if (rep && rep->type == REDIS_REPLY_ERROR &&
        memop_redis_error_kind(rep) == MEMOP_REDIS_OUTAGE)
        memop_redis_reply_failed(repo, rep, "EVALSHA (get-by)");
    if (!rep || rep->type != REDIS_REPLY_ARRAY || rep->elements < 1 ||
        rep->element[0]->type != REDIS_REPLY_STRING)
        goto out;
    const redisReply *v = rep->element[0];
    if (is_null_value(v->str, v->len)) {
        MEMOP_INC(s->negative_hits);
        result = FAST_NONE;
        goto out;
    }
    if (!memop_pk_decode(pkf, v->str, v->len, pk))
        goto out; /* the lookup path finds it corrupt and heals it */
    MEMOP_INC(s->hits);
    result = FAST_PK;
    if (rep->elements < 2 || rep->element[1]->type != REDIS_REPLY_STRING)
        goto out;
    const redisReply *row = rep->element[1];
    char why[128];
    if (is_null_value(row->str, row->len) ||
        memop_row_decode(d, row->str, row->len, out, why, sizeof why) != MEMO_OK)
        goto out; /* a row deleted since, or corrupt: the row path sorts it out */
    if (!row_has(pkf, out, pk) || !row_has(f, out, key)) {
        /* not the row of this lookup: the slow paths check both keys */
        memo_row_clear(d, out);
        goto out;
    }
    MEMOP_INC(s->hits);
    result = FAST_ROW;
out:
    memop_redis_release(repo, c, rep == NULL);
    return result;
}

memo_status memo_get_by(memo_repo *repo, const memo_entity_desc *d, unsigned u,
                        const void *key, void *out)
{
    if (!repo || !d || !out || u >= d->nuniques)
        return repo ? memop_fail(repo, MEMO_ERR_ARG, "memo_get_by: bad argument")
                    : MEMO_ERR_ARG;
    memop_entity *e;
    memo_status st = memop_entity_get(repo, d, &e);
    if (st != MEMO_OK)
        return st;
    memset(out, 0, d->size);
    const memo_lookup_desc *l = &d->uniques[u];
    const memo_field_desc *f = &d->fields[l->field];
    if ((st = check_key(repo, f, key)) != MEMO_OK)
        return st;
    uint64_t t0 = memop_now_us();
    memop_key k;
    memop_key_of(repo, d, &l->key, f, key, &k);

    bool hit = false, text_pk = d->fields[d->pk].type == MEMO_TEXT;
    pk_value pk = {0};
    row_ctx ctx = {NULL, MEMOP_SQL_UNIQUE(d, u), f, key, l, out, false, NULL};
    READ_CTX(r, repo, e, &k, load_unique, &ctx);
    ctx.read = &r;
    switch (get_by_fast(repo, e, f, key, &k, out, &pk)) {
    case FAST_ROW:
        if (text_pk)
            free(pk.text);
        record(e, MEMOP_OP_GET_BY, t0, true);
        return MEMO_OK;
    case FAST_NONE:
        record(e, MEMOP_OP_GET_BY, t0, true);
        return MEMO_NOT_FOUND;
    case FAST_PK: {
        st = get_row(repo, e, &pk, out, &hit);
        if (text_pk)
            free(pk.text);
        bool belongs = st == MEMO_OK && row_has(f, out, key);
        if (belongs || (st != MEMO_OK && st != MEMO_NOT_FOUND)) {
            record(e, MEMOP_OP_GET_BY, t0, hit);
            return st;
        }
        /* the lookup names a row that is gone or has another value: stale
         * or forged; the lookup path deletes it and asks the database */
        memo_row_clear(d, out);
        discard(repo, e, NULL, &k, 1, "names a row that does not have this value");
        r.healed = true;
        break;
    }
    case FAST_MISS:
        break;
    }

    for (;;) {
        enum outcome o = cached_read(&r);
        hit = !r.missed;
        if (o == NEG_HIT) {
            st = MEMO_NOT_FOUND;
        } else if (o == LOADED || o == FAILED) {
            st = r.st;
        } else {
            /* the lookup holds the primary key of a row with this value */
            bool ok = memop_pk_decode(&d->fields[d->pk], r.value.s, r.value.len, &pk);
            bool row_hit = false;
            if (ok) {
                st = get_row(repo, e, &pk, out, &row_hit);
                if (text_pk)
                    free(pk.text);
                ok = (st != MEMO_OK && st != MEMO_NOT_FOUND) ||
                     (st == MEMO_OK && row_has(f, out, key));
                if (!ok)
                    memo_row_clear(d, out);
            }
            if (!ok) {
                discard(repo, e, NULL, &k, 1, "not the primary key of a row with this value");
                if (!r.healed) {
                    r.healed = true;
                    continue;
                }
                ctx.read = NULL; /* read the database; fill nothing */
                memop_buf v = {0};
                st = load_unique(repo, e, &ctx, &v, &(uint64_t){0});
                memop_buf_free(&v);
                break;
            }
            hit = hit && row_hit;
        }
        break;
    }
    read_ctx_free(&r);
    record(e, MEMOP_OP_GET_BY, t0, hit);
    return st;
}

/* ------------------------------------------------------------- get_many */

/* A batch of keys: their parts, keys, what the cache said, and the rows. */
typedef struct batch {
    size_t n;
    const void *keys; /* the caller's, width bytes each */
    size_t width;
    char (*parts)[MEMOP_KEY_PART_MAX + 1];
    size_t *plens;
    memop_key *keys_r;    /* their Redis keys */
    unsigned char *state; /* enum below */
    bool *found;          /* a row is in rows[i] */
    bool *bad;            /* Redis held a corrupt value: to delete */
    char (*tokens)[40];   /* lease tokens of B_OURS positions */
    void *rows;           /* n row structs */
    uint64_t drop_gen;    /* the entity's drop generation when the batch began */
} batch;

enum { B_HIT, B_NONE, B_MISS, B_OURS };

static void batch_free(batch *b, const memo_entity_desc *d)
{
    if (b->rows)
        for (size_t i = 0; i < b->n; i++)
            memo_row_clear(d, (char *)b->rows + i * d->size);
    free(b->parts);
    free(b->plens);
    free(b->keys_r);
    free(b->state);
    free(b->found);
    free(b->bad);
    free(b->tokens);
    free(b->rows);
    memset(b, 0, sizeof *b);
}

static memo_status batch_init(memo_repo *repo, memop_entity *e, const void *keys, size_t n,
                              batch *b)
{
    const memo_entity_desc *d = e->desc;
    const memo_field_desc *pk = &d->fields[d->pk];
    memset(b, 0, sizeof *b);
    size_t m = n ? n : 1;
    b->n = n;
    b->keys = keys;
    b->width = memop_pk_width(pk);
    b->parts = malloc(m * sizeof *b->parts);
    b->plens = malloc(m * sizeof *b->plens);
    b->keys_r = malloc(m * sizeof *b->keys_r);
    b->state = calloc(m, 1);
    b->found = calloc(m, sizeof *b->found);
    b->bad = calloc(m, sizeof *b->bad);
    b->rows = calloc(m, d->size);
    if (!b->parts || !b->plens || !b->keys_r || !b->state || !b->found || !b->bad ||
        !b->rows) {
        batch_free(b, d);
        return memop_fail(repo, MEMO_ERR_NOMEM, "out of memory");
    }
    for (size_t i = 0; i < n; i++) {
        const void *key = (const char *)keys + i * b->width;
        memo_status st = check_key(repo, pk, key);
        if (st != MEMO_OK) {
            batch_free(b, d);
            return st;
        }
        b->plens[i] = memop_key_value(pk, key, b->parts[i]);
        memop_key_build(repo, d, &d->row.key, b->parts[i], b->plens[i], &b->keys_r[i]);
        b->state[i] = B_MISS;
    }
    return MEMO_OK;
}

/* Builds the text array literal {1,2,3} or {"a","b"} of the missed keys. */
static void pk_array(memop_buf *out, const memo_field_desc *pk, const void *keys, batch *b)
{
    memop_buf_puts(out, "{");
    bool first = true;
    for (size_t i = 0; i < b->n; i++) {
        if (b->state[i] != B_MISS && b->state[i] != B_OURS)
            continue;
        if (!first)
            memop_buf_puts(out, ",");
        first = false;
        if (pk->type == MEMO_INT32) {
            memop_buf_printf(out, "%" PRId32, ((const int32_t *)keys)[i]);
        } else if (pk->type == MEMO_INT64) {
            memop_buf_printf(out, "%" PRId64, ((const int64_t *)keys)[i]);
        } else {
            const char *s = ((const char *const *)keys)[i];
            memop_buf_puts(out, "\"");
            for (; *s; s++) {
                if (*s == '"' || *s == '\\')
                    memop_buf_puts(out, "\\");
                memop_buf_append(out, s, 1);
            }
            memop_buf_puts(out, "\"");
        }
    }
    memop_buf_puts(out, "}");
}

static uint64_t hash_part(const char *s, size_t n)
{
    uint64_t h = 1469598103934665603ull; /* FNV-1a */
    for (size_t i = 0; i < n; i++)
        h = (h ^ (unsigned char)s[i]) * 1099511628211ull;
    return h;
}

/* Reads the missed rows with one query and puts each where it was asked:
 * an open-addressing table maps key parts to positions, and a key asked
 * twice gets a copy at each position. */
static memo_status load_many(memo_repo *repo, memo_tx *tx, memop_entity *e, const void *keys,
                             batch *b)
{
    const memo_entity_desc *d = e->desc;
    const memo_field_desc *pk = &d->fields[d->pk];
    size_t cap = 16;
    while (cap < b->n * 2)
        cap *= 2;
    size_t *table = malloc(cap * sizeof *table);
    memop_buf arr = {0};
    memo_status st = MEMO_OK;
    PGresult *res = NULL;
    if (!table) {
        st = memop_fail(repo, MEMO_ERR_NOMEM, "out of memory");
        goto out;
    }
    for (size_t i = 0; i < cap; i++)
        table[i] = SIZE_MAX;
    for (size_t i = 0; i < b->n; i++) {
        if (b->state[i] != B_MISS && b->state[i] != B_OURS)
            continue;
        size_t h = hash_part(b->parts[i], b->plens[i]) & (cap - 1);
        while (table[h] != SIZE_MAX)
            h = (h + 1) & (cap - 1);
        table[h] = i;
    }
    pk_array(&arr, pk, keys, b);
    if (arr.failed) {
        st = memop_fail(repo, MEMO_ERR_NOMEM, "out of memory");
        goto out;
    }
    /* the ids as one array parameter, in text form */
    memop_params ps = {.values = {arr.s}, .lengths = {0}, .formats = {0}, .n = 1};
    if ((st = memop_db_run(repo, tx, e, MEMOP_SQL_SELECT_MANY, &ps, &res)) != MEMO_OK)
        goto out;
    for (int r = 0; r < PQntuples(res) && st == MEMO_OK; r++) {
        /* read the row into the first position of its key... */
        size_t first = SIZE_MAX;
        char part[MEMOP_KEY_PART_MAX + 1];
        void *tmp = calloc(1, d->size);
        if (!tmp) {
            st = memop_fail(repo, MEMO_ERR_NOMEM, "out of memory");
            break;
        }
        if ((st = memop_result_row(d, res, r, 0, tmp)) != MEMO_OK) {
            free(tmp);
            st = st == MEMO_ERR_SCHEMA ? memop_schema_mismatch(repo, e, NULL)
                                       : memop_fail(repo, st, "out of memory");
            break;
        }
        size_t plen = memop_key_value(pk, (char *)tmp + pk->offset, part);
        for (size_t h = hash_part(part, plen) & (cap - 1); table[h] != SIZE_MAX;
             h = (h + 1) & (cap - 1)) {
            size_t i = table[h];
            if (b->plens[i] != plen || memcmp(b->parts[i], part, plen) != 0)
                continue;
            void *dst = (char *)b->rows + i * d->size;
            /* ...and a copy into every other position of the same key */
            if (first == SIZE_MAX) {
                memcpy(dst, tmp, d->size);
                memset(tmp, 0, d->size);
                first = i;
            } else if ((st = memop_row_copy(d, (char *)b->rows + first * d->size, dst)) !=
                       MEMO_OK) {
                memop_fail(repo, st, "out of memory");
                break;
            }
            b->found[i] = true;
        }
        memo_row_clear(d, tmp);
        free(tmp);
    }
out:
    PQclear(res);
    memop_buf_free(&arr);
    free(table);
    return st;
}

/* Hands the found rows to out, moved to the front in the order asked. */
static void batch_take(batch *b, const memo_entity_desc *d, memo_rows *out)
{
    size_t k = 0;
    for (size_t i = 0; i < b->n; i++) {
        if (!b->found[i])
            continue;
        if (k != i) {
            memcpy((char *)b->rows + k * d->size, (char *)b->rows + i * d->size, d->size);
            memset((char *)b->rows + i * d->size, 0, d->size);
        }
        k++;
    }
    out->items = k ? b->rows : NULL;
    out->len = k;
    if (k == 0)
        free(b->rows);
    b->rows = NULL;
}

/* A value Redis returned for position i: a row of that key, or a negative
 * entry. False when it is neither (too large, not decodable, another
 * row's): corrupt. */
static bool batch_value(memo_repo *repo, const memo_entity_desc *d, batch *b, size_t i,
                        const redisReply *v)
{
    if (is_null_value(v->str, v->len)) {
        b->state[i] = B_NONE;
        return true;
    }
    if (v->len > (size_t)repo->cfg.max_value_bytes)
        return false;
    void *row = (char *)b->rows + i * d->size;
    char why[128];
    if (memop_row_decode(d, v->str, v->len, row, why, sizeof why) != MEMO_OK)
        return false;
    if (!row_has(&d->fields[d->pk], row, (const char *)b->keys + i * b->width)) {
        memo_row_clear(d, row);
        return false;
    }
    b->state[i] = B_HIT;
    b->found[i] = true;
    return true;
}

/* Deletes the corrupt values the batch found, on its own connection. */
static void batch_discard(memo_repo *repo, memop_entity *e, memop_rconn *c, batch *b)
{
    size_t n = 0, first = SIZE_MAX;
    for (size_t i = 0; i < b->n; i++)
        if (b->bad[i]) {
            n++;
            if (first == SIZE_MAX)
                first = i;
        }
    if (n == 0)
        return;
    memop_key *keys = n == 1 ? &b->keys_r[first] : malloc(n * sizeof *keys);
    if (!keys) {
        memop_fail(repo, MEMO_ERR_NOMEM, "out of memory");
        return; /* they stay misses; a later read deletes them */
    }
    if (n > 1)
        for (size_t i = 0, k = 0; i < b->n; i++)
            if (b->bad[i])
                keys[k++] = b->keys_r[i];
    discard(repo, e, c, keys, n, "not a row of its key");
    if (n > 1)
        free(keys);
    memset(b->bad, 0, b->n * sizeof *b->bad);
}

/* Takes the leases of the misses in one pipeline of GET_OR_LEASE. A value
 * filled since the MGET is taken as it is. A corrupt value (the wrong type,
 * too large, not its key's row) is deleted and its lease asked for once
 * more, so it is refilled now. False when the connection failed. */
static bool batch_lease(memo_repo *repo, memop_entity *e, memop_rconn *c, batch *b)
{
    const memo_entity_desc *d = e->desc;
    size_t misses = 0;
    for (size_t i = 0; i < b->n; i++)
        misses += b->state[i] == B_MISS;
    if (misses == 0)
        return true;
    memop_script_call *calls = calloc(misses, sizeof *calls);
    memop_key *leases = malloc(misses * sizeof *leases);
    size_t *pos = malloc(misses * sizeof *pos);
    bool *again = calloc(b->n, sizeof *again);
    char lease_ms[16], max[16];
    snprintf(lease_ms, sizeof lease_ms, "%d", repo->cfg.lease_ms);
    snprintf(max, sizeof max, "%d", repo->cfg.max_value_bytes);
    bool ok = true;
    if (!calls || !leases || !pos || !again)
        goto out; /* no leases: the misses are read without filling */
    for (int round = 0; round < 2; round++) {
        size_t k = 0;
        for (size_t i = 0; i < b->n; i++) {
            if (b->state[i] != B_MISS || (round > 0 && !again[i]))
                continue;
            make_token(repo, b->tokens[i], sizeof b->tokens[i]);
            memop_key_lease(&b->keys_r[i], &leases[k]);
            memop_script_call *call = &calls[k];
            memset(call, 0, sizeof *call);
            call->argv[0] = b->keys_r[i].s;
            call->lens[0] = b->keys_r[i].len;
            call->argv[1] = leases[k].s;
            call->lens[1] = leases[k].len;
            call->argv[2] = b->tokens[i];
            call->lens[2] = strlen(b->tokens[i]);
            call->argv[3] = lease_ms;
            call->lens[3] = strlen(lease_ms);
            call->argv[4] = max;
            call->lens[4] = strlen(max);
            call->argc = 5;
            pos[k++] = i;
        }
        if (k == 0)
            break;
        if (memop_redis_script_many(repo, c, MEMOP_SCRIPT_GET_OR_LEASE, 2, calls, k) != 0) {
            ok = false;
            break;
        }
        bool any = false;
        for (size_t j = 0; j < k; j++) {
            redisReply *v = calls[j].reply;
            size_t i = pos[j];
            if (v->type == REDIS_REPLY_INTEGER && v->integer == 1) {
                b->state[i] = B_OURS;
            } else if (v->type == REDIS_REPLY_INTEGER && v->integer == 2) {
                b->bad[i] = true; /* too large */
            } else if (v->type == REDIS_REPLY_STRING) {
                if (!batch_value(repo, d, b, i, v)) /* filled since the MGET, corrupt */
                    b->bad[i] = true;
            } else if (v->type == REDIS_REPLY_ERROR) {
                enum memop_redis_error kind =
                    memop_redis_reply_failed(repo, v, "EVALSHA (get-or-lease)");
                if (kind == MEMOP_REDIS_WRONGTYPE)
                    b->bad[i] = true;
                else if (kind != MEMOP_REDIS_OUTAGE)
                    MEMOP_INC(e->stats.errors);
            }
            /* 0: another filler holds it; this call reads it without filling */
            again[i] = b->bad[i];
            any |= b->bad[i];
        }
        batch_discard(repo, e, c, b);
        if (!any)
            break;
    }
out:
    free(calls);
    free(leases);
    free(pos);
    free(again);
    return ok;
}

/* Fills the keys this call holds leases for, in one pipeline. */
static void fill_many(memo_repo *repo, memop_entity *e, batch *b)
{
    const memo_entity_desc *d = e->desc;
    size_t count = 0;
    for (size_t i = 0; i < b->n; i++)
        count += b->state[i] == B_OURS;
    if (count == 0)
        return;
    memop_rconn *c = memop_redis_acquire(repo);
    if (!c)
        return;
    memop_buf *values = calloc(count, sizeof *values);
    memop_script_call *calls = calloc(count, sizeof *calls);
    memop_key *leases = malloc(count * sizeof *leases);
    size_t *pos = malloc(count * sizeof *pos);
    char (*ttls)[24] = malloc(count * sizeof *ttls);
    bool broken = false;
    if (!values || !calls || !leases || !pos || !ttls)
        goto out;
    size_t k = 0;
    for (size_t i = 0; i < b->n; i++) {
        if (b->state[i] != B_OURS)
            continue;
        uint64_t ttl;
        if (b->found[i]) {
            if (memop_row_encode(d, (char *)b->rows + i * d->size, &values[k]) != MEMO_OK)
                continue;
            ttl = row_ttl(repo, &d->row);
        } else {
            memop_buf_puts(&values[k], memop_null_value);
            ttl = negative_ttl(repo, &d->row);
        }
        /* a value too large to read back is not cached */
        if (values[k].failed || values[k].len > (size_t)repo->cfg.max_value_bytes) {
            memop_buf_free(&values[k]);
            continue;
        }
        memop_key_lease(&b->keys_r[i], &leases[k]);
        snprintf(ttls[k], sizeof ttls[k], "%" PRIu64, ttl ? ttl : 1);
        memop_script_call *call = &calls[k];
        call->argv[0] = b->keys_r[i].s;
        call->lens[0] = b->keys_r[i].len;
        call->argv[1] = leases[k].s;
        call->lens[1] = leases[k].len;
        call->argv[2] = b->tokens[i];
        call->lens[2] = strlen(b->tokens[i]);
        call->argv[3] = values[k].s;
        call->lens[3] = values[k].len;
        call->argv[4] = ttls[k];
        call->lens[4] = strlen(ttls[k]);
        call->argc = 5;
        pos[k++] = i;
    }
    if (memop_redis_script_many(repo, c, MEMOP_SCRIPT_FILL, 2, calls, k) != 0) {
        broken = true;
        goto out;
    }
    bool dropped = atomic_load(&e->drop_gen) != b->drop_gen;
    for (size_t j = 0; j < k; j++) {
        redisReply *r = calls[j].reply;
        if (r->type == REDIS_REPLY_INTEGER) {
            MEMOP_INC(*(r->integer == 1 ? &e->stats.fills : &e->stats.fill_rejects));
            if (r->integer == 1 && dropped)
                undo_fill_if_dropped(repo, e, c, b->drop_gen, &b->keys_r[pos[j]], 1);
        } else if (r->type == REDIS_REPLY_ERROR) {
            memop_redis_reply_failed(repo, r, "EVALSHA (fill)");
        }
    }
out:
    if (values)
        for (size_t i = 0; i < count; i++)
            memop_buf_free(&values[i]);
    free(values);
    free(calls);
    free(leases);
    free(pos);
    free(ttls);
    memop_redis_release(repo, c, broken);
}

/* Reads the batch's keys with one MGET. True when Redis answered; false
 * means do without the cache. A reply over its byte budget (some value far
 * too large) is no outage: every key goes to the lease pipeline, whose
 * script measures each value before sending it. */
static bool batch_mget(memo_repo *repo, memop_entity *e, memop_rconn **cp, batch *b)
{
    const memo_entity_desc *d = e->desc;
    memop_rconn *c = *cp;
    const char **argv = malloc((b->n + 1) * sizeof *argv);
    size_t *lens = malloc((b->n + 1) * sizeof *lens);
    redisReply *r = NULL;
    if (!argv || !lens) {
        free(argv);
        free(lens);
        memop_fail(repo, MEMO_ERR_NOMEM, "out of memory");
        return false;
    }
    argv[0] = "MGET";
    lens[0] = 4;
    for (size_t i = 0; i < b->n; i++) {
        argv[i + 1] = b->keys_r[i].s;
        lens[i + 1] = b->keys_r[i].len;
    }
    c->budget = memop_redis_reply_budget(repo, b->n);
    r = memop_redis_command(repo, c, (int)b->n + 1, argv, lens);
    free(argv);
    free(lens);
    if (!r && c->oversize) {
        memop_redis_release(repo, c, true);
        *cp = memop_redis_acquire(repo);
        return *cp != NULL;
    }
    if (!r || r->type != REDIS_REPLY_ARRAY || r->elements != b->n) {
        if (r)
            memop_redis_reply_failed(repo, r->type == REDIS_REPLY_ERROR ? r : NULL, "MGET");
        return false;
    }
    for (size_t i = 0; i < b->n; i++) {
        redisReply *v = r->element[i];
        if (v->type != REDIS_REPLY_STRING)
            continue; /* a miss (MGET answers nil for a key of another type too) */
        if (!batch_value(repo, d, b, i, v))
            b->bad[i] = true;
        else
            MEMOP_INC(*(b->state[i] == B_NONE ? &e->stats.negative_hits : &e->stats.hits));
    }
    batch_discard(repo, e, c, b);
    return true;
}

/* The batch path: one MGET; for the misses one pipeline of GET_OR_LEASE and
 * one query; fills for the leases taken. Rows come back in the order asked,
 * found rows only. Sets *all_hit when no key missed. */
static memo_status many(memo_repo *repo, memop_entity *e, const void *keys, size_t n,
                        memo_rows *out, bool *all_hit)
{
    const memo_entity_desc *d = e->desc;
    memop_stats *s = &e->stats;
    batch b;
    memo_status st = batch_init(repo, e, keys, n, &b);
    *all_hit = true;
    if (st != MEMO_OK || n == 0) {
        if (st == MEMO_OK)
            batch_free(&b, d);
        return st;
    }
    b.tokens = calloc(n, sizeof *b.tokens);
    if (!b.tokens) {
        batch_free(&b, d);
        return memop_fail(repo, MEMO_ERR_NOMEM, "out of memory");
    }
    b.drop_gen = atomic_load(&e->drop_gen);

    bool degraded = true;
    memop_rconn *c = memop_entity_dropping(e) ? NULL : memop_redis_acquire(repo);
    if (c && batch_mget(repo, e, &c, &b)) {
        degraded = false;
        size_t misses = 0;
        for (size_t i = 0; i < n; i++)
            misses += b.state[i] == B_MISS;
        MEMOP_ADD(s->misses, misses);
        *all_hit = misses == 0;
    }
    bool broken = c && !degraded && !batch_lease(repo, e, c, &b);
    if (c)
        memop_redis_release(repo, c, broken || c->ctx->err);
    if (degraded) {
        MEMOP_ADD(s->misses, n);
        MEMOP_INC(s->degraded);
        *all_hit = false;
    }

    size_t owned = 0;
    bool need_db = false;
    for (size_t i = 0; i < n; i++) {
        need_db |= b.state[i] == B_MISS || b.state[i] == B_OURS;
        owned += b.state[i] == B_OURS;
    }
    if (need_db) {
        /* the leases taken stay alive while the query runs */
        memop_key *leases = owned ? malloc(owned * sizeof *leases) : NULL;
        const char **tokens = owned ? malloc(owned * sizeof *tokens) : NULL;
        memop_lease_hold hold;
        bool held = leases && tokens;
        if (held) {
            for (size_t i = 0, k = 0; i < n; i++)
                if (b.state[i] == B_OURS) {
                    memop_key_lease(&b.keys_r[i], &leases[k]);
                    tokens[k++] = b.tokens[i];
                }
            memop_lease_hold_start(repo, &hold, leases, tokens, owned);
        }
        st = load_many(repo, NULL, e, keys, &b);
        if (held)
            memop_lease_hold_end(repo, &hold);
        free(leases);
        free(tokens);
        if (st == MEMO_OK) {
            fill_many(repo, e, &b);
        } else {
            for (size_t i = 0; i < n; i++) /* nobody should wait for these */
                if (b.state[i] == B_OURS) {
                    memop_key lease;
                    memop_key_lease(&b.keys_r[i], &lease);
                    release_lease(repo, &lease, b.tokens[i]);
                }
        }
    }
    if (st == MEMO_OK)
        batch_take(&b, d, out);
    batch_free(&b, d);
    return st;
}

memo_status memo_get_many(memo_repo *repo, const memo_entity_desc *d, const void *keys,
                          size_t n, memo_rows *out)
{
    if (!repo || !d || !out || (!keys && n > 0))
        return repo ? memop_fail(repo, MEMO_ERR_ARG, "memo_get_many: NULL argument")
                    : MEMO_ERR_ARG;
    out->items = NULL;
    out->len = 0;
    memop_entity *e;
    memo_status st = memop_entity_get(repo, d, &e);
    if (st != MEMO_OK)
        return st;
    uint64_t t0 = memop_now_us();
    bool hit;
    st = many(repo, e, keys, n, out, &hit);
    record(e, MEMOP_OP_GET_MANY, t0, hit);
    return st;
}

/* ------------------------------------------------------------------ list */

typedef struct list_ctx {
    memo_tx *tx;
    const memo_list_desc *list;
    unsigned stmt;
    const memo_field_desc *group;
    const void *key;
} list_ctx;

/* A list is the JSON array of its rows' primary keys, in order. */
static memo_status load_list(memo_repo *repo, memop_entity *e, void *vctx, memop_buf *value,
                             uint64_t *ttl)
{
    list_ctx *ctx = vctx;
    const memo_field_desc *pk = &e->desc->fields[e->desc->pk];
    PGresult *res;
    memo_status st = query_one_key(repo, ctx->tx, e, ctx->stmt, ctx->group, ctx->key, &res);
    if (st != MEMO_OK)
        return st;
    memop_buf_puts(value, "[");
    for (int r = 0; r < PQntuples(res) && st == MEMO_OK; r++) {
        union {
            int32_t i32;
            int64_t i64;
            char *text;
        } key = {0};
        const char *v = PQgetvalue(res, r, 0);
        int len = PQgetlength(res, r, 0);
        if (pk->type == MEMO_TEXT) {
            key.text = (char *)v; /* libpq's binary text is NUL-terminated */
        } else if ((pk->type == MEMO_INT64 && len == 8) || (pk->type == MEMO_INT32 && len == 4)) {
            uint64_t x = 0;
            for (int i = 0; i < len; i++)
                x = x << 8 | (unsigned char)v[i];
            if (len == 4)
                key.i32 = (int32_t)(uint32_t)x;
            else
                key.i64 = (int64_t)x;
        } else {
            st = memop_fail(repo, MEMO_ERR_SCHEMA, "list %s of %s: unexpected key column",
                            ctx->list->name, e->desc->table);
            break;
        }
        if (r > 0)
            memop_buf_puts(value, ",");
        if (memop_pk_encode(pk, &key, value) != MEMO_OK)
            st = memop_fail(repo, MEMO_ERR_NOMEM, "out of memory");
    }
    PQclear(res);
    memop_buf_puts(value, "]");
    if (st != MEMO_OK)
        return st;
    *ttl = memop_ttl_ms(ctx->list->ttl_ms, ctx->list->jitter_pct);
    return value->failed ? MEMO_ERR_NOMEM : MEMO_OK;
}

static void free_keys(const memo_field_desc *pk, void *keys, size_t n)
{
    if (keys && pk->type == MEMO_TEXT)
        for (size_t i = 0; i < n; i++)
            free(((char **)keys)[i]);
    free(keys);
}

memo_status memo_list(memo_repo *repo, const memo_entity_desc *d, unsigned l,
                      const void *key, memo_rows *out)
{
    if (!repo || !d || !out || l >= d->nlists)
        return repo ? memop_fail(repo, MEMO_ERR_ARG, "memo_list: bad argument") : MEMO_ERR_ARG;
    out->items = NULL;
    out->len = 0;
    memop_entity *e;
    memo_status st = memop_entity_get(repo, d, &e);
    if (st != MEMO_OK)
        return st;
    const memo_list_desc *ld = &d->lists[l];
    const memo_field_desc *g = &d->fields[ld->group];
    const memo_field_desc *pk = &d->fields[d->pk];
    if ((st = check_key(repo, g, key)) != MEMO_OK)
        return st;
    uint64_t t0 = memop_now_us();
    memop_key k;
    memop_key_of(repo, d, &ld->key, g, key, &k);

    list_ctx ctx = {NULL, ld, MEMOP_SQL_LIST(d, l), g, key};
    READ_CTX(r, repo, e, &k, load_list, &ctx);
    bool hit = false;
    for (;;) {
        enum outcome o = cached_read(&r);
        if (o == FAILED) {
            st = r.st;
            break;
        }
        void *keys = NULL;
        size_t n = 0;
        bool cached = o == HIT || o == NEG_HIT;
        /* more keys than the list's limit is as corrupt as no list at all */
        if (!memop_pk_array_decode(pk, r.value.s, r.value.len, ld->limit, &keys, &n)) {
            if (!cached) {
                st = memop_fail(repo, MEMO_ERR_DB, "list %s: cannot read its keys", ld->name);
                break;
            }
            discard(repo, e, NULL, &k, 1, "not a list of at most `limit` keys");
            if (!r.healed) {
                r.healed = true;
                continue;
            }
            r.value.len = 0; /* back at once: the database's list, not cached */
            if ((st = load_list(repo, e, &ctx, &r.value, &(uint64_t){0})) != MEMO_OK)
                break;
            cached = false;
            if (!memop_pk_array_decode(pk, r.value.s, r.value.len, SIZE_MAX, &keys, &n)) {
                st = memop_fail(repo, MEMO_ERR_NOMEM, "out of memory");
                break;
            }
        }
        bool rows_hit;
        st = many(repo, e, keys, n, out, &rows_hit);
        free_keys(pk, keys, n);
        hit = !r.missed && rows_hit;
        if (st != MEMO_OK)
            break;
        /* A cached list names rows of its group: one that names another
         * group's rows is stale (a write is deleting it right now) or
         * forged. Drop it and ask again; a row that moved meanwhile is left
         * out. */
        size_t kept = 0;
        for (size_t i = 0; i < out->len; i++) {
            char *row = (char *)out->items + i * d->size;
            if (!row_has(g, row, key)) {
                memo_row_clear(d, row);
                continue;
            }
            if (kept != i) {
                memcpy((char *)out->items + kept * d->size, row, d->size);
                memset(row, 0, d->size);
            }
            kept++;
        }
        if (kept != out->len && cached && !r.healed) {
            memo_rows_clear(d, out);
            discard(repo, e, NULL, &k, 1, "names rows of another group");
            r.healed = true;
            continue;
        }
        out->len = kept;
        if (kept == 0) {
            free(out->items);
            out->items = NULL;
        }
        break;
    }
    read_ctx_free(&r);
    record(e, MEMOP_OP_LIST, t0, hit);
    return st;
}

/* ------------------------------------------------------------ transactions */

/* Reads in a transaction see its own writes: they go to the database, on the
 * transaction's connection, and fill nothing. */

static memo_status tx_entity(memo_tx *tx, const memo_entity_desc *d, const void *arg,
                             memop_entity **e)
{
    if (!tx)
        return MEMO_ERR_ARG;
    if (!d || !arg)
        return memop_fail(tx->repo, MEMO_ERR_ARG, "NULL argument");
    return memop_entity_get(tx->repo, d, e);
}

memo_status memo_tx_get(memo_tx *tx, const memo_entity_desc *d, const void *key, void *out)
{
    memop_entity *e;
    memo_status st = tx_entity(tx, d, out, &e);
    if (st != MEMO_OK)
        return st;
    memset(out, 0, d->size);
    const memo_field_desc *pk = &d->fields[d->pk];
    if ((st = check_key(tx->repo, pk, key)) != MEMO_OK)
        return st;
    row_ctx ctx = {tx, MEMOP_SQL_SELECT, pk, key, &d->row, out, false, NULL};
    return load_row(tx->repo, e, &ctx, NULL, NULL);
}

memo_status memo_tx_get_by(memo_tx *tx, const memo_entity_desc *d, unsigned u, const void *key,
                           void *out)
{
    memop_entity *e;
    memo_status st = tx_entity(tx, d, out, &e);
    if (st != MEMO_OK)
        return st;
    if (u >= d->nuniques)
        return memop_fail(tx->repo, MEMO_ERR_ARG, "memo_tx_get_by: no lookup %u", u);
    memset(out, 0, d->size);
    const memo_field_desc *f = &d->fields[d->uniques[u].field];
    if ((st = check_key(tx->repo, f, key)) != MEMO_OK)
        return st;
    row_ctx ctx = {tx, MEMOP_SQL_UNIQUE(d, u), f, key, &d->uniques[u], out, false, NULL};
    return load_row(tx->repo, e, &ctx, NULL, NULL);
}

static memo_status tx_many(memo_tx *tx, memop_entity *e, const void *keys, size_t n,
                           memo_rows *out)
{
    batch b;
    memo_status st = batch_init(tx->repo, e, keys, n, &b);
    if (st != MEMO_OK)
        return st;
    if (n > 0 && (st = load_many(tx->repo, tx, e, keys, &b)) == MEMO_OK)
        batch_take(&b, e->desc, out);
    batch_free(&b, e->desc);
    return st;
}

memo_status memo_tx_get_many(memo_tx *tx, const memo_entity_desc *d, const void *keys,
                             size_t n, memo_rows *out)
{
    memop_entity *e;
    memo_status st = tx_entity(tx, d, out, &e);
    if (st != MEMO_OK)
        return st;
    out->items = NULL;
    out->len = 0;
    if (!keys && n > 0)
        return memop_fail(tx->repo, MEMO_ERR_ARG, "memo_tx_get_many: NULL keys");
    return tx_many(tx, e, keys, n, out);
}

memo_status memo_tx_list(memo_tx *tx, const memo_entity_desc *d, unsigned l, const void *key,
                         memo_rows *out)
{
    memop_entity *e;
    memo_status st = tx_entity(tx, d, out, &e);
    if (st != MEMO_OK)
        return st;
    out->items = NULL;
    out->len = 0;
    if (l >= d->nlists)
        return memop_fail(tx->repo, MEMO_ERR_ARG, "memo_tx_list: no list %u", l);
    const memo_list_desc *ld = &d->lists[l];
    const memo_field_desc *g = &d->fields[ld->group], *pk = &d->fields[d->pk];
    if ((st = check_key(tx->repo, g, key)) != MEMO_OK)
        return st;
    list_ctx ctx = {tx, ld, MEMOP_SQL_LIST(d, l), g, key};
    memop_buf value = {0};
    uint64_t ttl;
    if ((st = load_list(tx->repo, e, &ctx, &value, &ttl)) == MEMO_OK) {
        void *keys = NULL;
        size_t n = 0;
        if (!memop_pk_array_decode(pk, value.s, value.len, SIZE_MAX, &keys, &n))
            st = memop_fail(tx->repo, MEMO_ERR_NOMEM, "out of memory");
        else
            st = tx_many(tx, e, keys, n, out);
        free_keys(pk, keys, n);
    }
    memop_buf_free(&value);
    return st;
}
