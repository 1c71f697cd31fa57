/* Keeping leases alive. A lease is short (lease_ms), so that a filler that
 * dies frees its key soon; but a query may take longer than that, and a
 * filler whose lease ran out could not fill: a slow row would never be
 * cached, and every reader of it would query. So a filler registers its
 * leases for the time of its query, and the keeper thread extends every
 * lease registered for a quarter of lease_ms, every quarter of lease_ms,
 * with the EXTEND script: only while the key still holds the filler's
 * lease, so a lease that a write deleted is never brought back.
 *
 * Most queries end before the keeper looks: registering costs a lock and
 * two pointer writes, and the keeper sleeps while nothing is registered. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "internal.h"

/* A quarter of the lease: a lease is extended well before it can expire. */
static uint64_t period_us(memo_repo *repo)
{
    uint64_t p = (uint64_t)repo->cfg.lease_ms * 1000u / 4;
    return p < 1000 ? 1000 : p;
}

void memop_lease_hold_start(memo_repo *repo, memop_lease_hold *h, const memop_key *keys,
                            const char *const *tokens, size_t n)
{
    memop_lease_keeper *k = &repo->keeper;
    h->keys = keys;
    h->tokens = tokens;
    h->n = n;
    h->since_us = memop_now_us();
    h->prev = NULL;
    pthread_mutex_lock(&k->lock);
    h->id = ++k->next_id;
    h->next = k->holds;
    if (k->holds)
        k->holds->prev = h;
    k->holds = h;
    if (k->idle)
        pthread_cond_signal(&k->cond);
    pthread_mutex_unlock(&k->lock);
}

void memop_lease_hold_end(memo_repo *repo, memop_lease_hold *h)
{
    memop_lease_keeper *k = &repo->keeper;
    pthread_mutex_lock(&k->lock);
    if (h->prev)
        h->prev->next = h->next;
    else
        k->holds = h->next;
    if (h->next)
        h->next->prev = h->prev;
    pthread_mutex_unlock(&k->lock);
}

/* The leases due for extension, copied out of the holds (whose memory is
 * their owners') under the lock. */
typedef struct due {
    uint64_t id;
    memop_key key;
    char token[MEMOP_LEASE_MAX];
} due;

static size_t collect_due(memop_lease_keeper *k, uint64_t now, uint64_t period, due **out,
                          size_t *cap)
{
    size_t n = 0;
    for (memop_lease_hold *h = k->holds; h; h = h->next) {
        if (h->since_us + period > now)
            continue;
        for (size_t i = 0; i < h->n; i++) {
            if (n == *cap) {
                size_t c = *cap ? *cap * 2 : 64;
                due *grown = realloc(*out, c * sizeof *grown);
                if (!grown)
                    return n; /* the rest wait for the next round */
                *out = grown;
                *cap = c;
            }
            due *d = &(*out)[n++];
            d->id = h->id;
            d->key = h->keys[i];
            snprintf(d->token, sizeof d->token, "%s", h->tokens[i]);
        }
    }
    return n;
}

/* Extends them in one pipeline; the holds whose leases went out get a new
 * `since`. */
static void extend(memo_repo *repo, due *d, size_t n, uint64_t now)
{
    memop_rconn *c = memop_redis_acquire(repo);
    if (!c)
        return; /* Redis is away: the fill will not happen either */
    memop_script_call *calls = calloc(n, sizeof *calls);
    char ms[16];
    snprintf(ms, sizeof ms, "%d", repo->cfg.lease_ms);
    bool broken = false;
    if (calls) {
        for (size_t i = 0; i < n; i++) {
            calls[i].argv[0] = d[i].key.s;
            calls[i].lens[0] = d[i].key.len;
            calls[i].argv[1] = d[i].token;
            calls[i].lens[1] = strlen(d[i].token);
            calls[i].argv[2] = ms;
            calls[i].lens[2] = strlen(ms);
            calls[i].argc = 3;
        }
        broken = memop_redis_script_many(repo, c, MEMOP_SCRIPT_EXTEND, 1, calls, n) != 0;
    }
    memop_redis_release(repo, c, broken);
    free(calls);
    if (broken || !calls)
        return;
    memop_lease_keeper *k = &repo->keeper;
    pthread_mutex_lock(&k->lock);
    /* (a lease a write took away answered 0 and stays away; its filler's
     * fill will be refused) */
    for (memop_lease_hold *h = k->holds; h; h = h->next)
        for (size_t i = 0; i < n; i++)
            if (d[i].id == h->id) {
                h->since_us = now;
                break;
            }
    k->extended += n;
    pthread_mutex_unlock(&k->lock);
}

static void *keeper_main(void *arg)
{
    memo_repo *repo = arg;
    memop_lease_keeper *k = &repo->keeper;
    uint64_t period = period_us(repo);
    due *d = NULL;
    size_t cap = 0;
    pthread_mutex_lock(&k->lock);
    while (!k->closing) {
        if (!k->holds) {
            k->idle = true;
            pthread_cond_wait(&k->cond, &k->lock);
            k->idle = false;
            continue;
        }
        struct timespec until;
        memop_deadline_ts(memop_now_us() + period, &until);
        pthread_cond_timedwait(&k->cond, &k->lock, &until);
        if (k->closing)
            break;
        uint64_t now = memop_now_us();
        size_t n = collect_due(k, now, period, &d, &cap);
        if (n == 0)
            continue;
        pthread_mutex_unlock(&k->lock);
        extend(repo, d, n, now);
        pthread_mutex_lock(&k->lock);
    }
    pthread_mutex_unlock(&k->lock);
    free(d);
    return NULL;
}

memo_status memop_lease_keeper_start(memo_repo *repo)
{
    memop_lease_keeper *k = &repo->keeper;
    pthread_mutex_init(&k->lock, NULL);
    pthread_condattr_t attr;
    pthread_condattr_init(&attr);
    pthread_condattr_setclock(&attr, CLOCK_MONOTONIC);
    pthread_cond_init(&k->cond, &attr);
    pthread_condattr_destroy(&attr);
    k->initialised = true;
    if (pthread_create(&k->thread, NULL, keeper_main, repo) != 0)
        return MEMO_ERR_NOMEM;
    k->started = true;
    return MEMO_OK;
}

void memop_lease_keeper_stop(memo_repo *repo)
{
    memop_lease_keeper *k = &repo->keeper;
    if (!k->initialised)
        return;
    if (k->started) {
        pthread_mutex_lock(&k->lock);
        k->closing = true;
        pthread_cond_signal(&k->cond);
        pthread_mutex_unlock(&k->lock);
        pthread_join(k->thread, NULL);
    }
    pthread_mutex_destroy(&k->lock);
    pthread_cond_destroy(&k->cond);
    k->initialised = false;
}
