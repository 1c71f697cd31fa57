/* How a miss is filled: one key through the cache, with leases (the fix of
 * Facebook's memcache paper). Every read (get, get_by, list) goes through
 * memop_cached_read; the batch path (batch.c) does the same for many keys
 * at once.
 *
 * A lease lives in the value key itself (MEMOP_LEASE_MARK and a token,
 * expiring after lease_ms), so the first ask is one native command,
 * SET key lease NX GET PX lease_ms, which Redis runs as cheaply as a GET:
 *
 *   a value       -> a hit (or a negative hit)
 *   nil           -> the key was empty and now holds our lease: query
 *                    PostgreSQL (the lease kept alive meanwhile, lease.c),
 *                    FILL while the key still holds our lease
 *   a lease       -> another is filling: back off and ask again (the LEASE
 *                    script, which also takes over a lease memo did not
 *                    set), and past the bound read PostgreSQL without filling
 *   corrupt (another type, too large) -> delete, ask again
 *   Redis failing, the entity being dropped or its invalidations queued
 *                    -> read PostgreSQL (degraded), fill nothing
 *
 * A write deletes the key after COMMIT, value or lease, so a fill that read
 * the old row before the write is refused: no stale value survives a
 * write. */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "internal.h"

void memop_read_free(memop_read *r)
{
    memop_buf_free(&r->value);
}

bool memop_is_null_value(const char *s, size_t n)
{
    return n == 4 && memcmp(s, memop_null_value, 4) == 0;
}

/* Deletes values that are not what their keys name (a wrong type, not
 * decodable, too large, another row's), so the next read refills them: on
 * the caller's connection when it has one (a second one from the pool could
 * be the one it waits for), else on a connection of their own. */
void memop_discard(memo_repo *repo, memop_entity *e, memop_rconn *c,
                   const memop_key *keys, size_t n, const char *why)
{
    if (n == 0)
        return;
    MEMOP_ADD(e->stats.corrupt, n);
    memop_fail(repo, MEMO_ERR_ARG,
               "corrupt value at %s (%s): deleted, read from PostgreSQL", keys[0].s, why);
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
        memop_redis_release(repo, c, memop_rconn_broken(c));
}

/* The loader failed: let the next reader try at once rather than wait out
 * the lease. */
void memop_release_lease(memo_repo *repo, const memop_key *key, const char *lease)
{
    memop_rconn *c = memop_redis_acquire(repo);
    if (!c)
        return;
    const char *argv[] = {key->s, lease};
    size_t lens[] = {key->len, strlen(lease)};
    redisReply *rep = memop_redis_script(repo, c, MEMOP_SCRIPT_RELEASE, 1, 2, argv, lens);
    memop_redis_release(repo, c, rep == NULL);
}

/* A fill that raced a drop of the whole entity (its invalidations were
 * lost) may have put back what the drop had to remove: delete it again.
 * The drop began after the write that needs it committed, so a fill that
 * read before that write either landed before the drop's SCAN (which
 * finds it) or sees the new generation here. */
void memop_undo_fill_if_dropped(memo_repo *repo, memop_entity *e, memop_rconn *c,
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

/* Runs the loader and fills under the lease (when one is given), keeping
 * the lease alive while the query runs (lease.c). */
static enum memop_outcome load_and_fill(memop_read *r, const char *lease)
{
    memo_repo *repo = r->repo;
    uint64_t ttl = 0;
    r->value.len = 0;
    memop_lease_hold hold;
    if (lease)
        memop_lease_hold_start(repo, &hold, r->key, &lease, 1);
    r->st = r->load(repo, r->e, r->ctx, &r->value, &ttl);
    if (lease)
        memop_lease_hold_end(repo, &hold);
    if (r->st != MEMO_OK && r->st != MEMO_NOT_FOUND) {
        if (lease)
            memop_release_lease(repo, r->key, lease);
        return MEMOP_FAILED;
    }
    if (!lease)
        return MEMOP_LOADED;
    if (r->value.len > (size_t)repo->cfg.max_value_bytes) {
        /* it would be refused as corrupt when read back: not cached */
        memop_release_lease(repo, r->key, lease);
        return MEMOP_LOADED;
    }
    if (memop_test_hooks.before_fill)
        memop_test_hooks.before_fill(r->key->s);
    memop_rconn *c = memop_redis_acquire(repo);
    if (!c)
        return MEMOP_LOADED; /* the value is fresh; only the cache misses out */
    char ttlbuf[24];
    snprintf(ttlbuf, sizeof ttlbuf, "%" PRIu64, ttl ? ttl : 1);
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
        const char *argv[] = {r->key->s, lease, r->value.s, ttlbuf};
        size_t lens[] = {r->key->len, strlen(lease), r->value.len, strlen(ttlbuf)};
        rep = memop_redis_script(repo, c, MEMOP_SCRIPT_FILL, 1, 4, argv, lens);
        if (rep && rep->type == REDIS_REPLY_INTEGER) {
            r->filled = rep->integer == 1;
            MEMOP_INC(*(r->filled ? &r->e->stats.fills : &r->e->stats.fill_rejects));
            if (r->filled)
                memop_undo_fill_if_dropped(repo, r->e, c, r->drop_gen, r->key, 1);
        } else if (rep && memop_redis_reply_failed(repo, rep, "EVALSHA (fill)") !=
                              MEMOP_REDIS_OUTAGE) {
            MEMOP_INC(r->e->stats.errors); /* refused: the lease stays till it expires */
        }
    }
    memop_redis_release(repo, c, rep == NULL || memop_rconn_broken(c));
    return MEMOP_LOADED;
}

/* The value read from PostgreSQL may go to waiters only if no write of this
 * process committed meanwhile: a waiter that began after such a write must
 * not get what was read before it (memop_flight_finish compares seq under
 * the lock waiters join by). */
static enum memop_outcome lead(memop_read *r, memop_flight *f, const char *lease)
{
    uint64_t seq = atomic_load(&r->repo->write_seq);
    enum memop_outcome o = load_and_fill(r, lease);
    if (f)
        memop_flight_finish(r->repo, f, &r->value,
                            o == MEMOP_LOADED && (!lease || r->filled), seq);
    return o;
}

static bool refuses_writes(const redisReply *r)
{
    return r && r->type == REDIS_REPLY_ERROR &&
           (strncmp(r->str, "OOM ", 4) == 0 || strncmp(r->str, "MISCONF ", 8) == 0 ||
            strncmp(r->str, "READONLY ", 9) == 0);
}

/* Asks Redis for the key: natively (SET NX GET PX) first, with the LEASE
 * script after a lease was seen. Returns the reply (living in c), or NULL
 * with *oversize when the value was larger than a reply may be. */
static redisReply *ask(memop_read *r, memop_rconn *c, bool native, const char *lease,
                       bool *oversize)
{
    memo_repo *repo = r->repo;
    char lease_ms[16], max[16];
    snprintf(lease_ms, sizeof lease_ms, "%d", repo->cfg.lease_ms);
    snprintf(max, sizeof max, "%d", repo->cfg.max_value_bytes);
    redisReply *rep;
    if (native) {
        const char *argv[] = {"SET", r->key->s, lease, "NX", "GET", "PX", lease_ms};
        size_t lens[] = {3, r->key->len, strlen(lease), 2, 3, 2, strlen(lease_ms)};
        rep = memop_redis_command(repo, c, 7, argv, lens);
    } else {
        const char *argv[] = {r->key->s, lease, lease_ms, max};
        size_t lens[] = {r->key->len, strlen(lease), strlen(lease_ms), strlen(max)};
        rep = memop_redis_script(repo, c, MEMOP_SCRIPT_LEASE, 1, 4, argv, lens);
    }
    *oversize = !rep && c->oversize;
    return rep;
}

/* One key through the cache. On MEMOP_HIT the value is in r->value. */
enum memop_outcome memop_cached_read(memop_read *r)
{
    memo_repo *repo = r->repo;
    memop_stats *s = &r->e->stats;
    char lease[MEMOP_LEASE_MAX];
    memop_make_lease(repo, lease);
    r->drop_gen = atomic_load(&r->e->drop_gen);
    r->from_redis = false; /* (a read healing a corrupt value asks again) */

    uint64_t deadline = 0, backoff = 500;
    bool native = memop_now_us() >= atomic_load(&repo->native_off_until);
    /* an entity whose invalidations were lost or wait in the queue is not
     * read from the cache until they are done */
    while (!memop_key_bypassed(repo, r->e, r->key)) {
        memop_rconn *c = memop_redis_acquire(repo);
        if (!c)
            break;
        bool oversize;
        redisReply *rep = ask(r, c, native, lease, &oversize);
        if (native && refuses_writes(rep)) {
            /* SET NX GET is a write, which Redis refuses under maxmemory
             * with noeviction, after a failed save, or as a replica; a hit
             * needs none: the script reads first and writes only on a
             * miss. For a second, reads ask it directly. */
            atomic_store(&repo->native_off_until, memop_now_us() + 1000000u);
            memop_redis_release(repo, c, false);
            native = false;
            continue;
        }
        if (native && rep && rep->type == REDIS_REPLY_ERROR &&
            strncmp(rep->str, "ERR syntax error", 16) == 0) {
            /* (memo_open says so too, unless it opened degraded) */
            memop_fail(repo, MEMO_ERR_CONFIG,
                       "Redis %s refused SET NX GET: memo needs Redis 7.0 or later",
                       repo->redis_name);
            MEMOP_INC(s->errors);
            memop_redis_release(repo, c, false);
            break;
        }
        const char *corrupt = NULL;
        if (oversize) {
            corrupt = "too large";
        } else if (!rep || rep->type == REDIS_REPLY_ERROR) {
            enum memop_redis_error kind = memop_redis_reply_failed(
                repo, rep, native ? "SET NX GET" : "EVALSHA (lease)");
            if (kind == MEMOP_REDIS_WRONGTYPE) {
                corrupt = "wrong type"; /* someone stored a list or a set here */
            } else {
                if (kind != MEMOP_REDIS_OUTAGE)
                    MEMOP_INC(s->errors);
                memop_redis_release(repo, c, rep == NULL);
                break;
            }
        } else if (rep->type == REDIS_REPLY_INTEGER && rep->integer == 2) {
            corrupt = "too large"; /* larger than any value memo writes */
        } else if (rep->type == REDIS_REPLY_STRING &&
                   rep->len > (size_t)repo->cfg.max_value_bytes) {
            corrupt = "too large";
        }
        if (corrupt) {
            /* (an oversized reply took its connection with it) */
            memop_redis_release(repo, c, oversize);
            if (r->healed) /* back at once: do without the cache */
                break;
            r->healed = true;
            memop_discard(repo, r->e, NULL, r->key, 1, corrupt);
            continue;
        }
        /* the reply lives in the connection: take what is needed, then release */
        long long got = -1;
        if (rep->type == REDIS_REPLY_NIL && native)
            got = 1; /* the key was empty: it holds our lease now */
        else if (rep->type == REDIS_REPLY_STRING && memop_is_lease(rep->str, rep->len))
            got = 0;
        else if (rep->type == REDIS_REPLY_INTEGER)
            got = rep->integer;
        if (rep->type == REDIS_REPLY_STRING && got < 0) {
            bool neg = memop_is_null_value(rep->str, rep->len);
            r->value.len = 0;
            memop_buf_append(&r->value, rep->str, rep->len);
            memop_redis_release(repo, c, false);
            if (!r->missed)
                MEMOP_INC(*(neg ? &s->negative_hits : &s->hits));
            r->from_redis = true;
            if (r->value.failed) {
                r->st = memop_fail(repo, MEMO_ERR_NOMEM, "out of memory");
                return MEMOP_FAILED;
            }
            return neg ? MEMOP_NEG_HIT : MEMOP_HIT;
        }
        memop_redis_release(repo, c, false);
        if (!r->missed) {
            MEMOP_INC(s->misses);
            r->missed = true;
        }
        if (got == 1)
            return lead(r, memop_flight_lead(repo, r->key), lease);
        if (got != 0)
            break;
        if (native) {
            /* a lease: ask the script at once, which takes over one memo
             * did not set (no time to live, or too long a one) */
            native = false;
            continue;
        }
        /* Another holds the lease: it is querying now, and keeps its lease
         * alive while it does. A thread of this process shares its flight;
         * else ask again after a short, jittered back-off, up to the bound,
         * then read the database without filling. */
        uint64_t now = memop_now_us();
        if (deadline == 0) {
            deadline = now + (uint64_t)repo->cfg.lease_wait_ms * 1000u;
            MEMOP_INC(s->lease_waits);
        }
        if (memop_flight_wait(repo, r->key, deadline, &r->value))
            return memop_is_null_value(r->value.s, r->value.len) ? MEMOP_NEG_HIT
                                                                 : MEMOP_HIT;
        now = memop_now_us();
        if (now >= deadline)
            return load_and_fill(r, NULL);
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
    memop_flight *f = memop_flight_lead(repo, r->key);
    if (f)
        return lead(r, f, NULL);
    uint64_t until = memop_now_us() + (uint64_t)repo->cfg.lease_wait_ms * 1000u;
    if (memop_flight_wait(repo, r->key, until, &r->value))
        return memop_is_null_value(r->value.s, r->value.len) ? MEMOP_NEG_HIT : MEMOP_HIT;
    return load_and_fill(r, NULL);
}

void memop_record(memop_entity *e, enum memop_op op, uint64_t t0, bool hit)
{
    uint64_t us = memop_now_us() - t0;
    MEMOP_INC(e->stats.ops[op]);
    memop_hist_add(&e->stats.op_latency[op], us);
    memop_hist_add(hit ? &e->stats.hit_latency : &e->stats.miss_latency, us);
}
